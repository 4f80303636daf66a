"""Time the rating engine on synthetic votes, and the one-row-per-battle sklearn fit it replaces.

    python benchmarks/ratings.py [--votes N] [--models M] [--seed S]

Votes come from known ratings (Bradley-Terry, ties between close models, +10 Elo for
the left seat), as
`(model_a, model_b, winner)` string triples like the database returns.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena import ratings  # noqa: E402

LABELS = ("model_a", "model_b", "tie", "tie (bothbad)")


def synthetic_battles(votes: int, models: int, seed: int):
    rng = np.random.default_rng(seed)
    true = rng.normal(1000, 120, size=models)
    a = rng.integers(0, models, votes)
    b = (a + rng.integers(1, models, votes)) % models
    p_left = 1 / (1 + 10 ** ((true[b] - true[a] - 10) / 400))  # +10 Elo for the left seat
    # Ties are likelier between close models; decisive odds keep the expected score at p_left.
    p_tie = 0.3 * np.minimum(p_left, 1 - p_left)
    p_decisive_left = (p_left - p_tie / 2) / (1 - p_tie)
    tie = rng.random(votes) < p_tie
    code = np.where(rng.random(votes) < p_decisive_left, 0, 1)
    code = np.where(tie, rng.integers(2, 4, votes), code)
    names = [f"model-{i:02d}" for i in range(models)]
    triples = list(
        zip(
            [names[i] for i in a.tolist()],
            [names[i] for i in b.tolist()],
            [LABELS[c] for c in code.tolist()],
            strict=True,
        )
    )
    return triples, dict(zip(names, true.tolist(), strict=True))


def timed(label: str, fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    seconds = time.perf_counter() - start
    print(f"  {label:<46} {seconds * 1000:10.1f} ms")
    return result, seconds


def sqlite_group_by(triples):
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "votes.db")
        db.execute("CREATE TABLE battles (model_a TEXT, model_b TEXT, winner TEXT)")
        timed(
            "sqlite executemany insert (setup)",
            db.executemany,
            "INSERT INTO battles VALUES (?, ?, ?)",
            triples,
        )
        db.commit()
        query = (
            "SELECT model_a, model_b, winner, count(*) FROM battles "
            "GROUP BY model_a, model_b, winner"
        )
        rows, _ = timed("sqlite GROUP BY", lambda: db.execute(query).fetchall())
        db.close()
    counts, _ = timed("aggregate(GROUP BY rows)", ratings.aggregate, rows)
    return counts


def sklearn_mle(triples, C: float):
    """FastChat's compute_mle_elo (2023): one row per battle, doubled; ties as one win each way.

    C=inf is FastChat's penalty=None (recent sklearn spells it so); C=1 is sklearn's default L2.
    """
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    df = pd.DataFrame(triples, columns=["model_a", "model_b", "winner"])
    models = pd.Series(
        np.arange(len(pd.concat([df.model_a, df.model_b]).unique())),
        index=pd.concat([df.model_a, df.model_b]).unique(),
    )
    df = pd.concat([df, df], ignore_index=True)
    n = len(df)
    X = np.zeros([n, len(models)])
    X[np.arange(n), models[df["model_a"]]] = +math.log(ratings.BASE)
    X[np.arange(n), models[df["model_b"]]] = -math.log(ratings.BASE)
    Y = np.zeros(n)
    Y[df["winner"] == "model_a"] = 1.0
    tie = ((df["winner"] == "tie") | (df["winner"] == "tie (bothbad)")).to_numpy(copy=True)
    tie[n // 2 :] = False
    Y[tie] = 1.0
    lr = LogisticRegression(fit_intercept=False, C=C, tol=1e-8, max_iter=1000)
    lr.fit(X, Y)
    elo = ratings.SCALE * lr.coef_[0]
    return dict(zip(models.index, elo - elo.mean() + ratings.CENTRE, strict=True))


def max_diff(x: dict, y: dict) -> float:
    return max(abs(x[m] - y[m]) for m in x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args()

    triples, true = synthetic_battles(args.votes, args.models, args.seed)
    print(f"{args.votes:,} votes among {args.models} models (seed {args.seed})")
    print("this engine:")
    counts, _ = timed("aggregate_battles (1 M Python triples)", ratings.aggregate_battles, triples)
    from_db = sqlite_group_by(triples)
    assert np.array_equal(from_db.counts, counts.counts)
    ours, fit_s = timed("bradley_terry: one fit", ratings.bradley_terry, counts)
    _, boot_s = timed("bootstrap_ratings: 100 rounds", ratings.bootstrap_ratings, counts, 100)
    _, board_s = timed(
        "compute_leaderboard (fit + 100 rounds + tables)", ratings.compute_leaderboard, counts
    )
    timed("online_elo", ratings.online_elo, triples)
    true_centred = {m: r - np.mean(list(true.values())) + ratings.CENTRE for m, r in true.items()}
    print(f"  max |ours - true ratings| = {max_diff(ours, true_centred):.2f} Elo (sampling error)")
    if args.skip_sklearn:
        return
    print("one row per battle into sklearn LogisticRegression (FastChat compute_mle_elo):")
    mle, sk_s = timed("penalty=None (C=inf), tol=1e-8", sklearn_mle, triples, math.inf)
    ridge, ridge_s = timed("default L2, C=1 (WildVision, GenAI-Arena)", sklearn_mle, triples, 1.0)
    print(f"  max |ours - sklearn penalty=None| = {max_diff(ours, mle):.5f} Elo")
    print(f"  max |ours - sklearn L2 C=1|       = {max_diff(ours, ridge):.5f} Elo")
    print("ratios:")
    print(f"  one fit: sklearn / ours = {sk_s / fit_s:,.0f}x")
    print(
        f"  fit + 100 bootstrap rounds: 101 sklearn fits (estimated {101 * sk_s:,.0f} s) / "
        f"our compute_leaderboard = {101 * sk_s / board_s:,.0f}x"
    )


if __name__ == "__main__":
    main()
