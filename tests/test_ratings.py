import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from scipy.optimize import minimize

from arena.errors import RatingsError
from arena.kinds import Outcome
from arena.ratings import (
    ALPHA,
    PairCounts,
    aggregate,
    aggregate_battles,
    bootstrap_ratings,
    bradley_terry,
    compute_leaderboard,
    expected_score,
    online_elo,
    position_bias,
    wilson_interval,
)
from tests.conftest import skip_or_fail

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LABELS = ("model_a", "model_b", "tie", "tie (bothbad)")


def random_battles(n: int, models: int, seed: int, self_battles: bool = False) -> list[tuple]:
    """Seeded battles from known ratings, 20 % ties (both labels), optionally some self-battles."""
    rng = np.random.default_rng(seed)
    true = rng.normal(1000, 150, models)
    a = rng.integers(0, models, n)
    b = (a + rng.integers(0 if self_battles else 1, models, n)) % models
    code = np.where(rng.random(n) < expected_score(true[a], true[b]), 0, 1)
    code = np.where(rng.random(n) < 0.2, rng.integers(2, 4, n), code)
    triples = zip(a.tolist(), b.tolist(), code.tolist(), strict=True)
    return [(f"m{i}", f"m{j}", LABELS[c]) for i, j, c in triples]


def fastchat_compute_elo(battles, K=4, SCALE=400, BASE=10, INIT_RATING=1000):
    """lm-sys/FastChat elo_analysis.compute_elo, transcribed (itertuples -> plain tuples)."""
    rating = defaultdict(lambda: INIT_RATING)
    for model_a, model_b, winner in battles:
        ra = rating[model_a]
        rb = rating[model_b]
        ea = 1 / (1 + BASE ** ((rb - ra) / SCALE))
        eb = 1 / (1 + BASE ** ((ra - rb) / SCALE))
        if winner == "model_a":
            sa = 1
        elif winner == "model_b":
            sa = 0
        elif winner == "tie" or winner == "tie (bothbad)":
            sa = 0.5
        else:
            raise Exception(f"unexpected vote {winner}")
        rating[model_a] += K * (sa - ea)
        rating[model_b] += K * (1 - sa - eb)
    return dict(rating)


def neg_loglik(ratings: np.ndarray, wins: np.ndarray) -> float:
    diff = ALPHA * (ratings[:, None] - ratings[None, :])
    return float(np.sum(wins * np.logaddexp(0.0, -diff)))


def loglik_gradient(ratings: np.ndarray, wins: np.ndarray) -> np.ndarray:
    p = expected_score(ratings[:, None], ratings[None, :])
    return ALPHA * (wins.sum(axis=1) - ((wins + wins.T) * p).sum(axis=1))


# --- aggregation ---------------------------------------------------------------------------------


def test_aggregate_rows_and_raw_battles_agree():
    battles = random_battles(500, 6, seed=1, self_battles=True)
    rows = [(*key, n) for key, n in Counter(battles).items()]
    from_rows, from_battles = aggregate(rows), aggregate_battles(battles)
    assert from_rows.models == from_battles.models
    assert np.array_equal(from_rows.counts, from_battles.counts)
    assert from_rows.self_battles == sum(a == b for a, b, _ in battles) > 0
    assert from_rows.counts.sum() + from_rows.self_battles == 500
    with_timestamps = aggregate_battles((*b, 1.7e9 + i) for i, b in enumerate(battles))
    assert np.array_equal(with_timestamps.counts, from_rows.counts)


def test_outcome_members_and_values_are_accepted():
    counts = aggregate([("x", "y", Outcome.A, 2), ("x", "y", "b", 1), ("x", "y", "bothbad", 4)])
    assert counts.counts[:, 0, 1].tolist() == [2, 1, 0, 4]
    assert counts.wins.tolist() == [[0, 4], [3, 0]]  # 2 + half of 4, 1 + half of 4


@pytest.mark.parametrize(
    "call",
    [
        lambda rows: aggregate(rows),
        lambda rows: aggregate_battles(r[:3] for r in rows),
        lambda rows: online_elo(r[:3] for r in rows),
        lambda rows: compute_leaderboard(rows),
    ],
    ids=["aggregate", "aggregate_battles", "online_elo", "compute_leaderboard"],
)
def test_unknown_winner_labels_raise_naming_them(call):
    rows = [("x", "y", "model_a", 1), ("x", "y", "left", 1), ("y", "y", "Tie", 2)]
    with pytest.raises(RatingsError, match=r"'Tie', 'left'"):
        call(rows)


def test_negative_count_raises():
    with pytest.raises(RatingsError, match="Negative"):
        aggregate([("x", "y", "model_a", -1)])


# --- online Elo ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params", [{}, {"k": 32}, {"k": 4, "base": 10, "scale": 400, "init": 1500}, {"k": 16.5}]
)
def test_online_elo_matches_fastchat_exactly(params):
    battles = random_battles(3000, 8, seed=2, self_battles=True)
    names = {"k": "K", "base": "BASE", "scale": "SCALE", "init": "INIT_RATING"}
    expected = fastchat_compute_elo(battles, **{names[k]: v for k, v in params.items()})
    assert online_elo(battles, **params) == expected  # float for float, not approximately


def test_fits_of_nothing_are_empty():
    assert online_elo([]) == {}
    assert bradley_terry(aggregate([])) == {}
    assert bootstrap_ratings(aggregate([]), rounds=3).shape == (3, 0)


# --- Bradley-Terry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wins, losses, ties",
    [(3, 1, 0), (1, 3, 0), (10, 10, 0), (5, 1, 4), (0, 0, 7), (2, 0, 2), (1000, 1, 0)],
)
def test_two_models_have_the_closed_form_difference(wins, losses, ties):
    rows = [("a", "b", "model_a", wins), ("b", "a", "model_a", losses), ("a", "b", "tie", ties)]
    ratings = bradley_terry(aggregate(rows))
    expected = 400 * math.log10((wins + ties / 2) / (losses + ties / 2))
    assert ratings["a"] - ratings["b"] == pytest.approx(expected, abs=1e-9)
    assert (ratings["a"] + ratings["b"]) / 2 == pytest.approx(1000)


@pytest.mark.parametrize("seed", [3, 4])
def test_bradley_terry_is_the_maximum_likelihood_estimate(seed):
    counts = aggregate_battles(random_battles(4000, 12, seed=seed))
    ours = np.array(list(bradley_terry(counts).values()))
    wins = counts.wins
    # Gradient of the log-likelihood (per rating point) vanishes, and the Newton step that remains
    # (distance to the optimum, to second order) is far below 0.001 Elo.
    grad = loglik_gradient(ours, wins)
    p = expected_score(ours[:, None], ours[None, :])
    hess = ALPHA**2 * (wins + wins.T) * p * p.T
    hess = np.diag(hess.sum(axis=1)) - hess
    assert np.abs(grad).max() < 1e-8 * wins.sum()
    assert np.abs(np.linalg.pinv(hess) @ grad).max() < 1e-6
    # An independent optimiser agrees to 0.001 Elo.
    found = minimize(
        neg_loglik,
        np.full(len(ours), 1000.0),
        args=(wins,),
        method="BFGS",
        jac=lambda r, w: -loglik_gradient(r, w),
        options={"gtol": 1e-10},
    )
    reference = found.x - found.x.mean() + 1000
    assert np.abs(ours - reference).max() < 1e-3
    assert neg_loglik(ours, wins) <= found.fun + 1e-9


def test_anchor_pins_one_model_and_shifts_the_rest():
    counts = aggregate_battles(random_battles(1000, 5, seed=5))
    centred = bradley_terry(counts)
    anchored = bradley_terry(counts, anchor=("m2", 1200.0))
    assert anchored["m2"] == pytest.approx(1200.0)
    shift = 1200.0 - centred["m2"]
    assert all(anchored[m] == pytest.approx(centred[m] + shift) for m in centred)
    assert np.mean(list(centred.values())) == pytest.approx(1000.0)


def test_unknown_anchor_raises_in_fits_and_warns_on_the_board():
    counts = aggregate([("x", "y", "model_a", 2), ("y", "x", "model_a", 1)])
    with pytest.raises(RatingsError, match="'nobody' has no votes"):
        bradley_terry(counts, anchor=("nobody", 1000.0))
    board = compute_leaderboard(counts, anchor=("nobody", 1000.0))
    assert any("'nobody' has no votes" in w for w in board.warnings)
    assert sum(r.rating for r in board.rows) == pytest.approx(2000.0)


# --- bootstrap -----------------------------------------------------------------------------------


def test_bootstrap_is_seeded_and_reproducible():
    counts = aggregate_battles(random_battles(800, 6, seed=6))
    first, again = bootstrap_ratings(counts, seed=7), bootstrap_ratings(counts, seed=7)
    assert first.shape == (100, 6)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, bootstrap_ratings(counts, seed=8))
    assert np.allclose(first.mean(axis=1), 1000.0)  # every round centred like the point fit
    board = compute_leaderboard(counts, seed=7)
    lower, upper = np.quantile(first, [0.025, 0.975], axis=0)
    by_model = {r.model: r for r in board.rows}
    for i, model in enumerate(counts.models):
        assert by_model[model].ci_lower == pytest.approx(lower[i])
        assert by_model[model].ci_upper == pytest.approx(upper[i])
        assert lower[i] < by_model[model].rating < upper[i]


def test_anchored_bootstrap_has_a_zero_width_interval_for_the_anchor():
    counts = aggregate_battles(random_battles(800, 6, seed=9))
    board = compute_leaderboard(counts, bootstrap_rounds=20, anchor=("m0", 1000.0))
    row = next(r for r in board.rows if r.model == "m0")
    assert row.rating == row.ci_lower == pytest.approx(row.ci_upper) == pytest.approx(1000.0)


def test_rank_is_one_plus_models_clearly_above():
    board = compute_leaderboard(aggregate_battles(random_battles(3000, 10, seed=10)))
    for row in board.rows:
        above = sum(o.ci_lower > row.ci_upper for o in board.rows if o.group == row.group)
        assert row.rank == 1 + above
    assert board.rows[0].rank == 1
    assert [r.rating for r in board.rows] == sorted((r.rating for r in board.rows), reverse=True)


def test_without_bootstrap_the_interval_is_the_point():
    board = compute_leaderboard(
        aggregate_battles(random_battles(300, 4, seed=11)), bootstrap_rounds=0
    )
    assert all(r.ci_lower == r.rating == r.ci_upper for r in board.rows)
    assert [r.rank for r in board.rows] == [1, 2, 3, 4]


# --- edge cases ----------------------------------------------------------------------------------

LOOP = [("a", "b", "model_a", 3), ("b", "c", "model_a", 3), ("c", "a", "model_a", 3)]
BACK = [("b", "a", "model_a", 1), ("c", "b", "model_a", 1), ("a", "c", "model_a", 1)]
NEVER_WINS = LOOP + [("d", "a", "model_b", 4), ("b", "d", "model_a", 2)]
NEVER_LOSES = LOOP + [("d", "a", "model_a", 4), ("b", "d", "tie", 0), ("d", "c", "model_a", 1)]
ALL_TIES = [("a", "b", "tie", 3), ("b", "c", "tie (bothbad)", 2)]
TWO_GROUPS = LOOP + BACK + [("x", "y", "model_a", 2), ("y", "x", "model_a", 1)]

EDGE_CASES = {  # rows, models on the board, flagged models, groups, a warning that must show
    "healthy": (LOOP + BACK, "abc", "", 1, None),
    "never-wins": (NEVER_WINS, "abcd", "d", 1, "Unreliable ratings for d"),
    "never-loses": (NEVER_LOSES, "abcd", "d", 1, "Unreliable ratings for d"),
    "one-sided-pair": ([("a", "b", "model_a", 5)], "ab", "ab", 1, "Unreliable ratings for a, b"),
    "one-battle-newcomer": (LOOP + [("a", "d", "model_a", 1)], "abcd", "d", 1, "Unreliable"),
    "all-ties": (ALL_TIES, "abc", "", 1, None),
    "two-groups": (TWO_GROUPS, "abcxy", "", 2, "2 groups that never met"),
    "self-battles": (LOOP + BACK + [("a", "a", "model_a", 7)], "abc", "", 1, "Dropped 7 self"),
    "one-model-only": ([("solo", "solo", "tie", 3)], "", "", 0, "No votes"),
    "no-votes": ([], "", "", 0, "No votes"),
}


@pytest.mark.parametrize(
    "rows, models, flagged, n_groups, warning", EDGE_CASES.values(), ids=EDGE_CASES
)
def test_edge_cases(rows, models, flagged, n_groups, warning):
    board = compute_leaderboard(rows, bootstrap_rounds=30)
    assert sorted(board.models) == list(models)
    assert {r.model for r in board.rows if r.flagged} == set(flagged)
    assert len(board.groups) == n_groups
    for row in board.rows:
        assert all(math.isfinite(x) for x in (row.rating, row.ci_lower, row.ci_upper))
        assert row.ci_lower <= row.rating + 1e-9 and row.rating <= row.ci_upper + 1e-9
    if warning is None:
        assert board.warnings == []
    else:
        assert any(warning in w for w in board.warnings), board.warnings
    json.dumps(board.to_dict(), allow_nan=False)


def test_never_winning_model_rates_last_but_finite():
    rows = LOOP + BACK + [("d", "a", "model_b", 40), ("d", "b", "model_b", 40)]
    board = compute_leaderboard(rows, bootstrap_rounds=30)
    last = board.rows[-1]
    assert (last.model, last.flagged, last.wins, last.losses) == ("d", True, 0, 80)
    assert 0 < last.rating < min(r.rating for r in board.rows[:-1]) - 400


@pytest.mark.parametrize("seed", range(40))
def test_lopsided_sparse_data_with_huge_counts_stays_finite(seed):
    """Random sparse boards mixing counts of 1 and 1,000,000: many flags, no crash, no infinity."""
    rng = np.random.default_rng(seed)
    models = int(rng.integers(2, 15))
    rows = []
    for _ in range(int(rng.integers(1, 40))):
        a, b = rng.choice(models, 2, replace=False)
        winner = LABELS[int(rng.choice(4, p=[0.45, 0.45, 0.05, 0.05]))]
        rows.append((f"m{a}", f"m{b}", winner, int(rng.choice([1, 2, 10, 1000, 10**6]))))
    board = compute_leaderboard(rows, bootstrap_rounds=5, seed=seed)
    values = [x for r in board.rows for x in (r.rating, r.ci_lower, r.ci_upper)]
    assert np.isfinite(values).all()


def test_groups_are_fitted_centred_and_ranked_separately():
    rows = [
        ("a", "b", "model_a", 6),
        ("b", "a", "model_a", 2),
        ("b", "c", "model_a", 3),
        ("c", "b", "model_a", 1),
        ("x", "y", "model_a", 1),
        ("y", "x", "model_a", 4),
    ]
    board = compute_leaderboard(rows)
    assert board.groups == [["a", "b", "c"], ["x", "y"]]
    assert board.models == ["a", "b", "c", "y", "x"]
    for index, group in enumerate(board.groups):
        rows_ = [r for r in board.rows if r.model in group]
        assert {r.group for r in rows_} == {index}
        assert np.mean([r.rating for r in rows_]) == pytest.approx(1000.0)
        assert min(r.rank for r in rows_) == 1
    predicted = board.to_dict()["predicted_win_rate_matrix"]
    assert predicted["a"]["x"] is None and predicted["y"]["b"] is None
    assert predicted["y"]["x"] == pytest.approx(
        expected_score(board.rows[3].rating, board.rows[4].rating)
    )


# --- tables --------------------------------------------------------------------------------------


def test_per_model_counts_and_matrices():
    rows = [
        ("a", "b", "model_a", 3),
        ("b", "a", "model_a", 1),
        ("a", "b", "tie", 2),
        ("b", "a", "tie (bothbad)", 2),
        ("a", "c", "model_b", 1),
        ("c", "b", "model_a", 1),
    ]
    board = compute_leaderboard(rows, bootstrap_rounds=0)
    row = next(r for r in board.rows if r.model == "a")
    assert (row.votes, row.wins, row.losses, row.ties) == (9, 3, 2, 4)
    assert row.win_rate == pytest.approx(3 / 9)
    out = board.to_dict()
    assert out["battle_count_matrix"]["a"]["b"] == out["battle_count_matrix"]["b"]["a"] == 8
    assert out["win_rate_matrix"]["a"]["b"] == pytest.approx((3 + 2) / 8)
    assert out["win_rate_matrix"]["b"]["a"] == pytest.approx((1 + 2) / 8)
    assert out["win_rate_matrix"]["a"]["c"] == 0.0 and out["win_rate_matrix"]["c"]["a"] == 1.0
    ratings = {r.model: r.rating for r in board.rows}
    assert out["predicted_win_rate_matrix"]["a"]["b"] == pytest.approx(
        expected_score(ratings["a"], ratings["b"])
    )


@pytest.mark.parametrize("left, right", [(0, 0), (5, 5), (66, 34), (10, 0), (0, 3), (12334, 6366)])
def test_position_bias_and_its_wilson_interval(left, right):
    rows = [("p", "q", "model_a", left), ("q", "p", "model_b", right), ("p", "q", "tie", 9)]
    bias = position_bias(aggregate(rows))
    assert (bias.left_wins, bias.decisive) == (left, left + right)
    if left + right == 0:
        assert bias.rate is bias.ci_lower is bias.ci_upper is None
        return
    n, rate = left + right, left / (left + right)
    assert bias.rate == pytest.approx(rate)
    assert bias.ci_lower <= rate <= bias.ci_upper
    z = NormalDist().inv_cdf(0.975)
    for bound in (bias.ci_lower, bias.ci_upper):  # Wilson: |rate - p| = z * sqrt(p (1 - p) / n)
        assert abs(rate - bound) == pytest.approx(z * math.sqrt(bound * (1 - bound) / n), abs=1e-12)


def test_wilson_interval_of_nothing():
    assert wilson_interval(0, 0) == (None, None)


def test_to_dict_is_json_ready_and_complete():
    battles = random_battles(400, 4, seed=12)
    board = compute_leaderboard(aggregate_battles(battles), battles, bootstrap_rounds=10)
    out = json.loads(json.dumps(board.to_dict(), allow_nan=False))
    matrices = ["win_rate_matrix", "battle_count_matrix", "predicted_win_rate_matrix"]
    assert set(out) >= {"models", "warnings", "groups", "position_bias", *matrices}
    keys = set("model rank rating ci_lower ci_upper elo votes wins losses ties win_rate".split())
    keys |= {"flagged", "group"}
    assert all(set(m) == keys for m in out["models"])
    assert {m["model"]: m["elo"] for m in out["models"]} == pytest.approx(online_elo(battles))
    names = {m["model"] for m in out["models"]}
    assert set(out["win_rate_matrix"]) == names
    assert all(set(v) == names - {k} for k, v in out["battle_count_matrix"].items())
    frame = board.models_frame()
    assert list(frame.columns) == list(out["models"][0])
    assert frame["model"].tolist() == board.models
    assert list(compute_leaderboard([]).models_frame().columns) == list(out["models"][0])


def test_leaderboard_accepts_pair_counts_directly():
    counts = aggregate_battles(random_battles(200, 3, seed=13))
    assert isinstance(counts, PairCounts)
    rows = [
        (a, b, LABELS[o], int(n))
        for (o, i, j), n in np.ndenumerate(counts.counts)
        for a, b in [(counts.models[i], counts.models[j])]
    ]
    assert compute_leaderboard(counts).to_dict() == compute_leaderboard(rows).to_dict()


# --- real data -----------------------------------------------------------------------------------


def load_or_skip(name: str):
    path = DATA / name
    if not path.exists():
        skip_or_fail(f"{path} is absent (the shared/ data folder sits beside the repository)")
    text = path.read_text()
    records = (
        json.loads(text) if name.endswith(".json") else [json.loads(x) for x in text.splitlines()]
    )
    return [(r["model_a"], r["model_b"], r["winner"]) for r in records]


def published_scores() -> dict[str, float]:
    lines = (DATA / "wildvision_published_scores.md").read_text().splitlines()[2:]
    cells = [[c.strip() for c in line.split("|")] for line in lines if line.strip()]
    return {c[1]: float(c[2]) for c in cells}


def test_wildvision_bench_scores_are_reproduced():
    battles = load_or_skip("wildvision_bench_battles.jsonl")
    baseline = "claude-3-sonnet-20240229"
    board = compute_leaderboard(
        aggregate_battles(battles), bootstrap_rounds=0, anchor=(baseline, 1000.0)
    )
    assert "Dropped 500 self-battle(s) where model_a == model_b." in board.warnings
    scores = {r.model: round(100 * expected_score(r.rating, 1000.0), 2) for r in board.rows}
    assert scores == published_scores()


def test_genai_arena_has_two_groups_that_never_met():
    battles = load_or_skip("genai_arena_battles_20240220.json")
    board = compute_leaderboard(aggregate_battles(battles), battles, bootstrap_rounds=20)
    assert len(board.groups) == 2
    assert {frozenset(g) for g in board.groups} == {
        frozenset(m for m in board.models if m.endswith(suffix))
        for suffix in ("_generation", "_edition")
    }
    assert any("2 groups that never met" in w for w in board.warnings)
    for index, group in enumerate(board.groups):
        ratings = [r.rating for r in board.rows if r.group == index]
        assert len(ratings) == len(group) and np.mean(ratings) == pytest.approx(1000.0)
