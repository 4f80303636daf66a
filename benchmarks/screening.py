"""What the screening costs the leaderboard at a million votes (issue #12), and whether the default
board's cost grows with the votes once every battle carries a prompt key and categories (#11).

    python benchmarks/screening.py [--votes N [N ...]] [--voters V] [--realistic] [--keep DIR]
                                   [--pg URL]

Votes among 50 models from known ratings (Bradley-Terry, a tenth ties), cast by V voters (a
Zipf-like few vote a lot) of whom 1 % always pick the weaker model, each vote with a client key,
a third of them with categories; imported through `arena.store.transfer.import_file`. An import
has no prompts or answers, so the benchmark then gives 5 % of the votes a prompt key drawn from
500 keys (at a million votes about 100 each, 90 of them over the cap of 10) and flags 0.5 % as identity leaks, with two UPDATEs: what
stored battles would carry (the benchmark says so; the app sets both when a turn is stored).

Printed: each screening read alone (leaks, duplicates, the voter test per voter and per client
key, the category counts), `screen_votes` as a whole, and the whole command-line process
`python -m arena leaderboard --json --bootstrap 100`: screened (the default), with the voter test
listing the flagged, with their votes left out too, and with nothing left out (`--no-dedup --include-identity-leaks`); the
first run of each stores its online Elo state, the figure is the median of three more.

--realistic gives the votes what battles played in the app carry: every vote a prompt key (nine
in ten unique, one in ten drawn from votes/150 shared keys, so those are over the cap of 10), and
every battle one category (three in ten a second one). With several sizes (e.g. --votes 300000
3000000 --realistic), the last line is the default board's time at the largest size over the
smallest: the issue's target is at most 1.2, and at most 1.5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arena.config import LIMITS, Settings  # noqa: E402
from arena.screened import Screen, screen_votes  # noqa: E402
from arena.store import Store, VoteFilter  # noqa: E402
from arena.store.transfer import import_file  # noqa: E402

LABELS = np.array(["model_a", "model_b", "tie", "tie (bothbad)"])
CATEGORIES = np.array(["ocr", "counting", "charts", "captioning", "reasoning", "creative"])


def votes_csv(path: Path, votes: int, voters: int, seed: int, realistic: bool = False) -> None:
    rng = np.random.default_rng(seed)
    models = 50
    true = rng.normal(1000, 120, size=models)
    a = rng.integers(0, models, votes)
    b = (a + rng.integers(1, models, votes)) % models
    voter = np.minimum(rng.zipf(1.3, votes) - 1, voters - 1)
    contrarian = voter % 100 == 7
    left_wins = rng.random(votes) < 1 / (1 + 10 ** ((true[b] - true[a]) / 400))
    left_wins = np.where(contrarian, true[a] < true[b], left_wins)
    code = np.where(left_wins, 0, 1)
    code = np.where(rng.random(votes) < 0.1, rng.integers(2, 4, votes), code)
    names = np.array([f"model-{i:02d}" for i in range(models)])
    labelled = np.ones(votes, dtype=bool) if realistic else rng.random(votes) < 0.33
    first = rng.integers(0, len(CATEGORIES), votes)
    category = np.where(labelled, CATEGORIES[first], "")
    if realistic:  # a second category for three in ten ("ocr,charts": the CSV form)
        pair = np.char.add(np.char.add(category, ","), CATEGORIES[(first + 1) % len(CATEGORIES)])
        category = np.where(rng.random(votes) < 0.3, pair, category)
    pd.DataFrame(
        {
            "model_a": names[a],
            "model_b": names[b],
            "winner": LABELS[code],
            "tstamp": np.round(1.7e9 + 0.5 * np.arange(votes), 3),
            "anony": rng.random(votes) >= 0.1,
            "judge": np.char.add("user:voter", voter.astype(str)),
            "categories": category,
        }
    ).to_csv(path, index=False)


def mark(store: Store, seed: int, realistic: bool = False) -> None:
    """Prompt keys on 5 % of the votes (500 keys; --realistic: on every vote, see the top) and
    identity leaks on 0.5 %, as stored battles would carry them; client keys: one per voter."""
    dialect = store.engine.dialect.name
    rand = "random()" if dialect == "postgresql" else "(abs(random()) / 9223372036854775807.0)"
    with store.write_engine.begin() as conn:
        conn.execute(text("UPDATE votes SET client_key = substr(voter_id, 6, 64)"))
        if realistic:
            shared = max(conn.execute(text("SELECT count(*) FROM votes")).scalar() // 150, 1)
            conn.execute(
                text(
                    f"UPDATE votes SET prompt_key = CASE WHEN {rand} < 0.1"
                    f" THEN 's' || CAST(CAST({rand} * {shared} AS INTEGER) AS TEXT)"
                    " ELSE 'u' || CAST(id AS TEXT) END"
                )
            )
        else:
            conn.execute(
                text(
                    f"UPDATE votes SET prompt_key = 'k' || CAST(CAST({rand} * 500 AS INTEGER)"
                    f" AS TEXT) WHERE {rand} < 0.05"
                )
            )
        conn.execute(text(f"UPDATE votes SET identity_leak = TRUE WHERE {rand} < 0.005"))


def timed(label: str, fn):
    start = time.perf_counter()
    value = fn()
    print(f"  {label:<58} {time.perf_counter() - start:8.3f} s", flush=True)
    return value


def parts(store: Store) -> None:
    which = VoteFilter()
    timed("identity leaks (partial index)", lambda: store.leak_votes(which))
    timed("prompt keys over the cap of 10", lambda: store.repeated_prompts(which, 10))
    timed("decisive votes per (winner, loser)", lambda: store.decisive_shares(which))
    for who in ("voter", "client"):
        timed(f"first 100 decisive votes per {who} (window function)",
              lambda w=who: store.first_decisive(which, w, 100))  # fmt: skip
    timed("votes per category", lambda: store.category_votes(which))
    screened = timed("screen_votes, default rules", lambda: screen_votes(store, which, Screen()))
    print(f"    left out: {screened.to_dict()['excluded']}")
    tested = timed("screen_votes with the voter test",
                   lambda: screen_votes(store, which, Screen(voter_test=True)))  # fmt: skip
    print(f"    flagged voters {len(tested.flagged_voters)}, clients {len(tested.flagged_clients)}")


def process(url: str, *flags: str) -> float:
    env = {**os.environ, "ARENA_DB_URL": url}
    command = [sys.executable, "-m", "arena", "leaderboard", "--json", "--bootstrap", "100", *flags]

    def once() -> float:
        start = time.perf_counter()
        subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True)
        return time.perf_counter() - start

    first = once()
    rest = statistics.median(once() for _ in range(3))
    print(f"  leaderboard {' '.join(flags) or '(default screening)':<46} first {first:6.2f} s, "
          f"then {rest:6.2f} s", flush=True)  # fmt: skip
    return rest


def run(url: str, args, votes: int, csv: Path, fresh: bool) -> float:
    """The figures at one size; the default board's process time."""
    settings = Settings(db_url=url, **dict.fromkeys(LIMITS, 0))
    store = Store.open(settings)
    if fresh:
        timed(f"import {votes:,} votes", lambda: import_file(store, csv))
        timed(
            "prompt keys, leaks and client keys (UPDATE)",
            lambda: mark(store, args.seed, args.realistic),
        )
    parts(store)
    default = process(url)
    if not args.quick:
        process(url, "--flagged-voters")
        process(url, "--exclude-flagged-voters")
    process(url, "--no-dedup", "--include-identity-leaks")
    store.engine.dispose()
    return default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--voters", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", metavar="DIR", help="keep (and reuse) the SQLite file here")
    parser.add_argument("--pg", metavar="URL", help="also run on this PostgreSQL database")
    parser.add_argument(
        "--realistic", action="store_true", help="every vote a prompt key and categories"
    )
    parser.add_argument("--quick", action="store_true", help="skip the voter-test boards")
    args = parser.parse_args()
    print("command: python benchmarks/screening.py " + " ".join(sys.argv[1:]), flush=True)
    boards: dict[str, list[float]] = {}
    for votes in args.votes:
        for engine, seconds in one_size(args, votes).items():
            boards.setdefault(engine, []).append(seconds)
    if len(args.votes) > 1:
        for engine, seconds in boards.items():
            ratio = seconds[-1] / seconds[0]
            print(
                f"{engine}: default board at {args.votes[-1]:,} votes over {args.votes[0]:,}: "
                f"{seconds[-1]:.2f} s / {seconds[0]:.2f} s = {ratio:.2f} (target <= 1.2)"
            )


def one_size(args, votes: int) -> dict[str, float]:
    """Every figure at one number of votes: the default board's time per engine."""
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "votes.csv"
        votes_csv(csv, votes, args.voters, args.seed, args.realistic)
        where = Path(args.keep) if args.keep else Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        name = "realistic" if args.realistic else "screening"
        db = where / f"{name}-{votes}.db"
        print(f"{votes:,} votes, SQLite ({db})", flush=True)
        fresh = not db.exists() or not args.keep
        found["SQLite"] = run(f"sqlite:///{db}", args, votes, csv, fresh)
        if args.pg:
            from sqlalchemy import create_engine

            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(args.pg)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            sep = "&" if "?" in args.pg else "?"
            try:
                print(f"{votes:,} votes, PostgreSQL (schema {schema})", flush=True)
                url = f"{args.pg}{sep}options=-csearch_path%3D{schema}"
                found["PostgreSQL"] = run(url, args, votes, csv, fresh=True)
            finally:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    return found


if __name__ == "__main__":
    main()
