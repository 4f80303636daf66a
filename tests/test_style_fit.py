"""Style control (arena.ratings.contextual), the plain-fit sandwich intervals
(arena.ratings.sandwich) and the leaderboard's style / sandwich options.

Every number is checked against a computation written here, from the model the contextual module's
docstring states: logit = theta_left - theta_right + z(features) . gamma, maximise
sum_i w_i [y_i z_i - softplus(z_i)] - lam / 2 |gamma|^2, w = 1 / max(n_pair, 50) normalised to
mean 1, features z-scored (no spread -> 0), ties score 0.5.
"""

import json
import math
from collections import Counter

import numpy as np
import pytest
from scipy.optimize import minimize, root
from scipy.special import expit

from arena.errors import RatingsError
from arena.ratings import (
    ALPHA,
    FEATURES,
    Z95,
    StyleBattles,
    aggregate_battles,
    bootstrap_ratings,
    bradley_terry,
    compute_leaderboard,
    fit_style,
    style_features,
)
from arena.ratings.bt import _fit
from arena.ratings.contextual import (
    bootstrap_intervals,
    pair_weights,
    sandwich_covariance,
    sandwich_intervals,
    standardise,
)
from arena.ratings.sandwich import plain_covariance, sandwich_bounds

LABEL = {1.0: "model_a", 0.0: "model_b", 0.5: "tie"}
OLD_KEYS = {
    "models",
    "warnings",
    "groups",
    "position_bias",
    "win_rate_matrix",
    "battle_count_matrix",
    "predicted_win_rate_matrix",
    "anchor",
    "bootstrap_rounds",
}
STYLE_KEYS = {"style_control", "style_coefficients", "style_reg", "style_battles"}
ROW_KEYS = set("model rank rating ci_lower ci_upper elo votes wins losses ties win_rate".split())
ROW_KEYS |= {"flagged", "group"}


# --- independent helpers -------------------------------------------------------------------------


def simulate(n: int, models: int, seed: int, gamma=(0.0, 0.0, 0.0, 0.0), ties: float = 0.1):
    """Seeded battles: true ratings (Elo, sd 150), uneven pair frequencies (so the pair weights
    differ), random seats, per-model style habits with a lot of spread within a model, and outcomes
    from logit = ALPHA * (R_left - R_right) + z . gamma (z: the z-scored style features). A
    fraction `ties` of the battles is then replaced by ties. Returns (StyleBattles, true ratings)."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0, 150, models)
    i, j = np.triu_indices(models, 1)
    prob = (1.0 + i + j) ** 2.0
    pick = rng.choice(len(i), n, p=prob / prob.sum())
    swap = rng.random(n) < 0.5
    left, right = np.where(swap, j[pick], i[pick]), np.where(swap, i[pick], j[pick])
    habits = np.stack(
        [rng.uniform(a, b, models) for a, b in [(100, 600), (0, 3), (0, 6), (0, 4)]], axis=1
    )
    counts_l = rng.poisson(habits[left] * rng.lognormal(0, 0.7, (n, 4)))
    counts_r = rng.poisson(habits[right] * rng.lognormal(0, 0.7, (n, 4)))
    raw = (counts_l - counts_r) / (counts_l + counts_r + 1.0)
    z = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    p = expit(ALPHA * (true[left] - true[right]) + z @ np.asarray(gamma, dtype=float))
    score = (rng.random(n) < p).astype(float)
    score[rng.random(n) < ties] = 0.5
    names = tuple(f"m{k}" for k in range(models))
    return StyleBattles(names, left, right, score, raw), true


def triples(battles: StyleBattles) -> list[tuple[str, str, str]]:
    """The same battles as (model_a, model_b, winner) for the plain fit."""
    names = battles.models
    rows = zip(battles.left.tolist(), battles.right.tolist(), battles.score.tolist(), strict=True)
    return [(names[a], names[b], LABEL[s]) for a, b, s in rows]


def zscore(features: np.ndarray) -> np.ndarray:
    """Column z-scores (population sd); a column whose values are all equal becomes 0."""
    out = np.zeros_like(features, dtype=float)
    for k in range(features.shape[1]):
        col = features[:, k]
        if np.ptp(col) > 0:
            out[:, k] = (col - col.mean()) / col.std()
    return out


def weights_by_hand(battles: StyleBattles, reweight: bool) -> np.ndarray:
    if not reweight:
        return np.ones(battles.size)
    pairs = [frozenset(p) for p in zip(battles.left.tolist(), battles.right.tolist(), strict=True)]
    per_pair = Counter(pairs)
    w = np.array([1.0 / max(per_pair[p], 50) for p in pairs])
    return w / w.mean()


def design(battles: StyleBattles) -> np.ndarray:
    """Rows: battles; columns: one-hot left minus one-hot right, then the z-scored features."""
    n, m = battles.size, len(battles.models)
    d = np.zeros((n, m))
    d[np.arange(n), battles.left] += 1.0
    d[np.arange(n), battles.right] -= 1.0
    return np.hstack([d, zscore(np.asarray(battles.features, dtype=float))])


def objective(params, d, y, w, lam, m):
    """Minus the penalised weighted log-likelihood and its gradient; params = (theta, gamma)."""
    z = d @ params
    gamma = params[m:]
    value = -float(w @ (y * z - np.logaddexp(0.0, z))) + 0.5 * lam * float(gamma @ gamma)
    grad = -d.T @ (w * (y - expit(z)))
    grad[m:] += lam * gamma
    return value, grad


def scipy_fit(battles: StyleBattles, lam: float, reweight: bool):
    """The same fit by scipy, theta_0 pinned at 0 (the free shift): BFGS with the analytic
    gradient, then, since BFGS stops where the objective's rounding hides further gains (~1e-8 in
    the gradient), scipy's root finder on that gradient (Jacobian: the Hessian written here) to
    machine precision. Returns (BFGS params, polished params, (design, scores, weights)); params
    are the full (theta, gamma)."""
    m = len(battles.models)
    d, y, w = design(battles), battles.score, weights_by_hand(battles, reweight)

    def reduced(free):
        value, grad = objective(np.concatenate([[0.0], free]), d, y, w, lam, m)
        return value, grad[1:]

    def hessian(free):
        p = expit(d @ np.concatenate([[0.0], free]))
        h = d.T @ ((w * p * (1 - p))[:, None] * d)
        h[m:, m:] += lam * np.eye(d.shape[1] - m)
        return h[1:, 1:]

    start = np.zeros(d.shape[1] - 1)
    found = minimize(reduced, start, jac=True, method="BFGS", options={"gtol": 1e-11})
    assert np.abs(found.jac).max() < 1e-6, found.message
    polished = root(lambda free: reduced(free)[1], found.x, jac=hessian, options={"xtol": 1e-14})
    assert np.abs(polished.fun).max() < 1e-11, polished.message
    full = (np.concatenate([[0.0], x]) for x in (found.x, polished.x))
    return (*full, (d, y, w))


def centred(theta: np.ndarray) -> np.ndarray:
    return theta / ALPHA - (theta / ALPHA).mean() + 1000.0


def sandwich_by_hand(d, y, w, params, lam, m):
    """H^-1 G H^-1 from the per-battle design: H = D^T diag(w p (1 - p)) D + 1e-5 n I,
    G = D^T diag((w (y - p))^2) D - (lam / n)^2 (0, gamma) (0, gamma)^T."""
    n = len(y)
    p = expit(d @ params)
    h = d.T @ ((w * p * (1 - p))[:, None] * d) + 1e-5 * n * np.eye(d.shape[1])
    g = d.T @ (((w * (y - p)) ** 2)[:, None] * d)
    padded = np.concatenate([np.zeros(m), params[m:]])
    g -= (lam / n) ** 2 * np.outer(padded, padded)
    inverse = np.linalg.inv(h)
    return inverse @ g @ inverse


def plain_sandwich_by_hand(battles: list[tuple], ratings: dict[str, float]):
    """The plain fit's sandwich from one row per battle (weight 1, no features), models sorted."""
    models = sorted(ratings)
    index = {name: k for k, name in enumerate(models)}
    theta = ALPHA * np.array([ratings[name] for name in models])
    score = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}
    d = np.zeros((len(battles), len(models)))
    y = np.array([score[winner] for _, _, winner in battles])
    for row, (a, b, _) in enumerate(battles):
        d[row, index[a]], d[row, index[b]] = 1.0, -1.0
    return sandwich_by_hand(d, y, np.ones(len(y)), theta, 0.0, len(models))


def same_covariance(got: np.ndarray, want: np.ndarray, models: int) -> None:
    """Equal to 1e-9 of the largest entry once the ratings are centred (H's 1e-5 n ridge is all
    that holds the "shift every rating" direction, so rounding leaks ~1e-9 into it), and to 1e-8
    as they stand."""
    centre = np.eye(len(want))
    centre[:models, :models] -= 1.0 / models
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 1e-8 * scale
    assert np.abs(centre @ (got - want) @ centre.T).max() <= 1e-9 * scale


# --- pieces --------------------------------------------------------------------------------------


def test_style_features_on_a_hand_example():
    a = np.array([[10, 0, 3, 1], [0, 0, 0, 0], [7, 2, 0, 5]])
    b = np.array([[5, 0, 1, 4], [0, 0, 0, 0], [7, 0, 9, 5]])
    expected = [[5 / 16, 0, 2 / 5, -3 / 6], [0, 0, 0, 0], [0, 2 / 3, -9 / 10, 0]]
    assert np.allclose(style_features(a, b), expected, rtol=0, atol=1e-15)
    assert np.allclose(style_features(b, a), -np.array(expected), rtol=0, atol=1e-15)


def test_standardise_z_scores_and_zeroes_a_column_without_spread():
    rng = np.random.default_rng(0)
    features = np.column_stack([rng.normal(3, 2, 500), np.zeros(500), rng.exponential(1, 500)])
    z = standardise(features)
    assert np.array_equal(z[:, 1], np.zeros(500))
    for k in (0, 2):
        assert z[:, k].mean() == pytest.approx(0, abs=1e-12)
        assert z[:, k].std() == pytest.approx(1, abs=1e-12)
        assert np.allclose(z[:, k], (features[:, k] - features[:, k].mean()) / features[:, k].std())


def test_standardise_zeroes_a_constant_column_that_is_not_exactly_representable():
    features = np.column_stack([np.full(1000, 0.1), np.linspace(-1, 1, 1000)])
    assert np.array_equal(standardise(features)[:, 0], np.zeros(1000))


def test_pair_weights_exact_values_on_a_hand_built_example():
    # pairs (0, 1): 10 battles, (0, 2): 60, (1, 2): 200; seats mixed, the pair is unordered
    left = np.array([0] * 6 + [1] * 4 + [0] * 30 + [2] * 30 + [1] * 150 + [2] * 50)
    right = np.array([1] * 6 + [0] * 4 + [2] * 30 + [0] * 30 + [2] * 150 + [1] * 50)
    n = len(left)
    battles = StyleBattles(("a", "b", "c"), left, right, np.ones(n), np.zeros((n, 4)))
    w = pair_weights(battles)
    mean_raw = (10 / 50 + 60 / 60 + 200 / 200) / 270  # raw weights 1/50, 1/60, 1/200
    expected = {10: 1 / 50 / mean_raw, 60: 1 / 60 / mean_raw, 200: 1 / 200 / mean_raw}
    assert expected[10] == pytest.approx(270 / 110) and expected[200] == pytest.approx(270 / 440)
    sizes = np.array([10] * 10 + [60] * 60 + [200] * 200)
    assert np.allclose(w, [expected[s] for s in sizes], rtol=1e-14, atol=0)
    assert w.mean() == pytest.approx(1.0, abs=1e-14)
    assert w.sum() == pytest.approx(n, abs=1e-10)


def test_pair_weights_match_the_hand_count_on_random_battles():
    battles, _ = simulate(1500, 7, seed=1)
    w = pair_weights(battles)
    assert np.allclose(w, weights_by_hand(battles, True), rtol=1e-13, atol=0)
    assert w.mean() == pytest.approx(1.0, abs=1e-13)
    assert len(np.unique(np.round(w, 12))) > 2  # the example really has pairs below and above 50


# --- the fit -------------------------------------------------------------------------------------


@pytest.mark.parametrize("reweight", [True, False], ids=["weighted", "unweighted"])
@pytest.mark.parametrize("lam", [0.0, 0.5, 1000.0])
def test_fit_matches_scipy_on_the_same_objective(lam, reweight):
    battles, _ = simulate(1200, 6, seed=2, gamma=(0.5, -0.2, 0.1, 0.0))
    fit = fit_style(battles, lam=lam, reweight=reweight)
    assert not fit.flagged.any()  # no pseudo-wins: the objective is exactly the stated one
    bfgs, exact, (d, y, w) = scipy_fit(battles, lam, reweight)
    assert np.abs(centred(fit.theta) - centred(bfgs[:6])).max() < 1e-5
    assert np.abs(fit.gamma - bfgs[6:]).max() < 1e-8
    assert np.abs(centred(fit.theta) - centred(exact[:6])).max() < 1e-6
    assert np.abs(fit.gamma - exact[6:]).max() < 1e-9
    # and the gradient of the objective written here vanishes at the arena fit
    _, grad = objective(np.concatenate([fit.theta, fit.gamma]), d, y, w, lam, 6)
    assert np.abs(grad).max() < 1e-8
    sandwich = sandwich_intervals(fit)
    assert np.allclose(sandwich.ratings, centred(fit.theta), rtol=0, atol=1e-9)


def test_coefficients_shrink_as_the_penalty_grows_and_vanish_for_a_huge_one():
    battles, _ = simulate(1000, 5, seed=3, gamma=(0.6, 0.3, -0.3, 0.2))
    norms = [
        np.linalg.norm(fit_style(battles, lam=lam, reweight=False).gamma)
        for lam in (0.0, 0.5, 10.0, 100.0, 1e3, 1e4)
    ]
    assert all(a > b for a, b in zip(norms, norms[1:], strict=False)), norms
    assert norms[0] > 0.2
    huge = fit_style(battles, lam=1e14, reweight=False)
    assert np.abs(huge.gamma).max() < 1e-9
    plain = bradley_terry(aggregate_battles(triples(battles)))
    got = sandwich_intervals(huge).ratings
    assert np.abs(got - np.array([plain[m] for m in battles.models])).max() < 1e-6


@pytest.mark.parametrize("lam", [0.5, 3.0])
@pytest.mark.parametrize("how", ["zero features", "same style both sides"])
def test_without_style_differences_the_fit_is_plain_bradley_terry(how, lam):
    battles, _ = simulate(2000, 8, seed=4)
    n = battles.size
    if how == "zero features":
        features = np.zeros((n, 4))
    else:
        counts = np.random.default_rng(5).poisson(50, (n, 4))
        features = style_features(counts, counts)
    same = StyleBattles(battles.models, battles.left, battles.right, battles.score, features)
    fit = fit_style(same, lam=lam, reweight=False)
    assert np.array_equal(fit.gamma, np.zeros(4))
    plain = bradley_terry(aggregate_battles(triples(same)))
    expected = np.array([plain[m] for m in same.models])
    assert np.abs(sandwich_intervals(fit).ratings - expected).max() < 1e-6


def test_zero_penalty_with_a_feature_without_spread_fits_or_explains():
    battles, _ = simulate(500, 5, seed=6)
    features = np.array(battles.features, dtype=float)
    features[:, 1] = 0.0  # e.g. no answer used a header
    flat = StyleBattles(battles.models, battles.left, battles.right, battles.score, features)
    try:
        fit = fit_style(flat, lam=0.0, reweight=False)
    except RatingsError:
        return  # a readable refusal is fine too
    reduced = StyleBattles(
        battles.models, battles.left, battles.right, battles.score, features[:, [0, 2, 3]]
    )
    assert np.allclose(fit.theta, fit_style(reduced, lam=0.0, reweight=False).theta, atol=1e-9)


def test_a_known_length_effect_is_recovered_and_the_others_are_not_invented():
    truth = np.array([0.4, 0.0, 0.0, 0.0])
    battles, true = simulate(20_000, 6, seed=0, gamma=truth, ties=0.0)
    found = sandwich_intervals(fit_style(battles))
    assert found.gamma_lower[0] < truth[0] < found.gamma_upper[0]
    assert found.gamma_lower[0] > 0
    for k in (1, 2, 3):
        assert found.gamma_lower[k] < 0 < found.gamma_upper[k], FEATURES[k]
    target = true - true.mean() + 1000.0
    assert ((found.lower < target) & (target < found.upper)).all()
    # the plain ratings absorb the length habit; controlling for style gets closer to the truth
    plain = bradley_terry(aggregate_battles(triples(battles)))
    plain = np.array([plain[m] for m in battles.models])
    assert np.abs(found.ratings - target).max() < 0.5 * np.abs(plain - target).max()


# --- sandwich intervals --------------------------------------------------------------------------


@pytest.mark.parametrize("reweight", [True, False], ids=["weighted", "unweighted"])
@pytest.mark.parametrize("lam", [0.0, 0.5, 40.0])
def test_sandwich_covariance_matches_the_per_battle_computation(lam, reweight):
    battles, _ = simulate(1500, 6, seed=7, gamma=(0.3, 0.1, 0.0, -0.2))
    fit = fit_style(battles, lam=lam, reweight=reweight)
    d, y, w = design(battles), battles.score, weights_by_hand(battles, reweight)
    expected = sandwich_by_hand(d, y, w, np.concatenate([fit.theta, fit.gamma]), lam, 6)
    cov = sandwich_covariance(fit)
    assert cov.shape == (10, 10)
    same_covariance(cov, expected, 6)
    found = sandwich_intervals(fit)
    width = Z95 * np.sqrt(np.diag(expected))
    assert np.allclose(found.upper - found.lower, 2 * width[:6] / ALPHA, rtol=1e-8, atol=0)
    assert np.allclose(found.gamma_upper - found.gamma_lower, 2 * width[6:], rtol=1e-8, atol=0)
    assert np.allclose(found.gamma, fit.gamma) and np.allclose(
        (found.upper + found.lower) / 2, found.ratings
    )


def test_style_sandwich_anchored_uses_the_variance_of_the_difference():
    battles, _ = simulate(1500, 6, seed=8, gamma=(0.3, 0.0, 0.0, 0.0))
    fit = fit_style(battles)
    cov = sandwich_by_hand(
        design(battles),
        battles.score,
        weights_by_hand(battles, True),
        np.concatenate([fit.theta, fit.gamma]),
        0.5,
        6,
    )
    found = sandwich_intervals(fit, anchor=("m2", 1000.0))
    centred_ratings = sandwich_intervals(fit).ratings
    assert found.ratings[2] == pytest.approx(1000.0, abs=1e-9)
    assert np.allclose(found.ratings - centred_ratings, 1000.0 - centred_ratings[2], atol=1e-9)
    width = (found.upper - found.lower) / 2
    assert width[2] < 1e-9
    var = np.diag(cov)[:6] + cov[2, 2] - 2 * cov[:6, 2]
    others = [0, 1, 3, 4, 5]
    assert np.allclose(width[others], Z95 * np.sqrt(var[others]) / ALPHA, rtol=1e-8, atol=0)


def test_plain_sandwich_matches_the_per_battle_computation():
    battles = triples(simulate(2000, 7, seed=9)[0])
    counts = aggregate_battles(battles)
    ratings = bradley_terry(counts)
    expected = plain_sandwich_by_hand(battles, ratings)
    same_covariance(plain_covariance(counts, _fit(counts)), expected, 7)
    board = compute_leaderboard(counts, ci="sandwich")
    rows = {r.model: r for r in board.rows}
    for k, name in enumerate(counts.models):
        half = Z95 * math.sqrt(expected[k, k]) / ALPHA
        assert rows[name].rating == pytest.approx(ratings[name], abs=1e-9)
        assert rows[name].ci_upper - rows[name].rating == pytest.approx(half, rel=1e-8)
        assert rows[name].rating - rows[name].ci_lower == pytest.approx(half, rel=1e-8)
    # anchored: the anchor has no width, the others the variance of their difference to it
    anchored = compute_leaderboard(counts, ci="sandwich", anchor=("m3", 1000.0))
    rows = {r.model: r for r in anchored.rows}
    assert rows["m3"].rating == pytest.approx(1000.0, abs=1e-9)
    assert rows["m3"].ci_upper - rows["m3"].ci_lower < 1e-9
    a = counts.models.index("m3")
    for k, name in enumerate(counts.models):
        if name != "m3":
            var = expected[k, k] + expected[a, a] - 2 * expected[k, a]
            half = Z95 * math.sqrt(var) / ALPHA
            assert (rows[name].ci_upper - rows[name].ci_lower) / 2 == pytest.approx(half, rel=1e-8)


def test_plain_sandwich_widths_are_close_to_the_bootstrap_at_20k_battles():
    counts = aggregate_battles(triples(simulate(20_000, 6, seed=10)[0]))
    fit = _fit(counts)
    lower, upper = sandwich_bounds(counts, fit)
    boot = bootstrap_ratings(counts, rounds=500, seed=1)
    b_lower, b_upper = np.quantile(boot, [0.025, 0.975], axis=0)
    ratio = (upper - lower) / (b_upper - b_lower)
    assert np.all(np.abs(ratio - 1) < 0.15), ratio


# --- bootstrap -----------------------------------------------------------------------------------


def test_style_bootstrap_is_seeded_and_close_to_the_sandwich():
    battles, _ = simulate(20_000, 6, seed=11, gamma=(0.3, 0.0, 0.1, 0.0))
    fit = fit_style(battles)
    first = bootstrap_intervals(battles, fit, rounds=8, seed=3)
    again = bootstrap_intervals(battles, fit, rounds=8, seed=3)
    other = bootstrap_intervals(battles, fit, rounds=8, seed=4)
    for name in ("ratings", "lower", "upper", "gamma", "gamma_lower", "gamma_upper"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    assert not np.array_equal(first.lower, other.lower)
    assert not np.array_equal(first.gamma_upper, other.gamma_upper)
    first = bootstrap_intervals(battles, fit, rounds=120, seed=3)
    sandwich = sandwich_intervals(fit)
    assert np.allclose(first.ratings, sandwich.ratings) and np.allclose(first.gamma, fit.gamma)
    ratio = (first.upper - first.lower) / (sandwich.upper - sandwich.lower)
    g_ratio = (first.gamma_upper - first.gamma_lower) / (
        sandwich.gamma_upper - sandwich.gamma_lower
    )
    assert np.all((1 / 1.3 < ratio) & (ratio < 1.3)), ratio
    assert np.all((1 / 1.3 < g_ratio) & (g_ratio < 1.3)), g_ratio
    assert ((first.lower < first.ratings) & (first.ratings < first.upper)).all()
    anchored = bootstrap_intervals(battles, fit, rounds=8, seed=3, anchor=("m1", 1000.0))
    assert anchored.ratings[1] == pytest.approx(1000.0, abs=1e-9)
    assert anchored.upper[1] - anchored.lower[1] < 1e-9


# --- groups and flags ----------------------------------------------------------------------------


def two_groups(seed: int) -> StyleBattles:
    """m0..m3 only meet each other, m4..m6 only each other; m6 never wins."""
    rng = np.random.default_rng(seed)
    blocks = []
    for members in ([0, 1, 2, 3], [4, 5, 6]):
        for _ in range(400):
            a, b = rng.choice(members, 2, replace=False)
            blocks.append((a, b))
    left, right = (np.array(x) for x in zip(*blocks, strict=True))
    score = rng.choice([1.0, 0.0, 0.5], len(left), p=[0.45, 0.45, 0.1])
    score = np.where(left == 6, 0.0, np.where(right == 6, 1.0, score))
    counts = rng.poisson(20, (len(left), 4)), rng.poisson(20, (len(left), 4))
    names = tuple(f"m{k}" for k in range(7))
    return StyleBattles(names, left, right, score, style_features(*counts))


def test_disconnected_groups_are_each_centred_and_a_never_winner_is_flagged():
    battles = two_groups(seed=12)
    fit = fit_style(battles)
    found = sandwich_intervals(fit)
    assert fit.groups.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert fit.flagged.tolist() == [False] * 6 + [True]
    assert np.isfinite(np.concatenate([found.ratings, found.lower, found.upper])).all()
    assert found.ratings[:4].mean() == pytest.approx(1000.0, abs=1e-9)
    assert found.ratings[4:].mean() == pytest.approx(1000.0, abs=1e-9)
    assert found.ratings[6] < found.ratings[4:6].min()
    counts = aggregate_battles(triples(battles))
    board = compute_leaderboard(counts, style=battles, ci="sandwich")
    assert any("2 groups that never met" in w for w in board.warnings), board.warnings
    assert any("Unreliable ratings for m6" in w for w in board.warnings), board.warnings
    rows = {r.model: r for r in board.rows}
    assert rows["m6"].flagged and rows["m6"].wins == 0
    assert [rows[f"m{k}"].group for k in range(7)] == [0, 0, 0, 0, 1, 1, 1]
    assert all(rows[f"m{k}"].rating == pytest.approx(found.ratings[k]) for k in range(7))
    json.dumps(board.to_dict(), allow_nan=False)


def test_zero_features_with_groups_and_a_never_winner_equal_plain_bradley_terry():
    battles = two_groups(seed=13)
    n = battles.size
    flat = StyleBattles(
        battles.models, battles.left, battles.right, battles.score, np.zeros((n, 4))
    )
    fit = fit_style(flat, reweight=False)
    plain = bradley_terry(aggregate_battles(triples(flat)))
    expected = np.array([plain[m] for m in flat.models])
    assert np.abs(sandwich_intervals(fit).ratings - expected).max() < 1e-6


# --- the leaderboard -----------------------------------------------------------------------------


def test_style_board_to_dict():
    battles, _ = simulate(3000, 6, seed=14, gamma=(0.4, 0.0, 0.0, 0.0))
    counts = aggregate_battles(triples(battles))
    board = compute_leaderboard(counts, style=battles, ci="sandwich", style_reg=0.5)
    out = json.loads(json.dumps(board.to_dict(), allow_nan=False))
    assert set(out) == OLD_KEYS | STYLE_KEYS | {"ci"}
    assert out["style_control"] is True and out["ci"] == "sandwich"
    assert out["style_reg"] == 0.5 and out["style_battles"] == 3000
    assert out["bootstrap_rounds"] == 0
    found = sandwich_intervals(fit_style(battles, lam=0.5))
    assert (
        list(out["style_coefficients"]) == list(FEATURES) == ["length", "headers", "lists", "bold"]
    )
    for k, name in enumerate(FEATURES):
        entry = out["style_coefficients"][name]
        assert set(entry) == {"coefficient", "ci_lower", "ci_upper"}
        assert entry["coefficient"] == pytest.approx(found.gamma[k], abs=1e-12)
        assert entry["ci_lower"] == pytest.approx(found.gamma_lower[k], abs=1e-12)
        assert entry["ci_upper"] == pytest.approx(found.gamma_upper[k], abs=1e-12)
    plain = bradley_terry(counts)
    by_model = {m["model"]: m for m in out["models"]}
    for m in out["models"]:
        assert set(m) == ROW_KEYS | {"rating_raw"}
        assert m["rating_raw"] == pytest.approx(plain[m["model"]], abs=1e-9)
        above = sum(o["ci_lower"] > m["ci_upper"] for o in out["models"])
        assert m["rank"] == 1 + above
    for k, name in enumerate(battles.models):
        assert by_model[name]["rating"] == pytest.approx(found.ratings[k], abs=1e-9)
        assert by_model[name]["ci_lower"] == pytest.approx(found.lower[k], abs=1e-9)
        assert by_model[name]["ci_upper"] == pytest.approx(found.upper[k], abs=1e-9)
    assert len({m["rank"] for m in out["models"]}) > 1  # the intervals really separate some
    assert list(board.models_frame().columns) == list(out["models"][0])


def test_style_board_with_bootstrap_intervals_and_an_anchor():
    battles, _ = simulate(1500, 5, seed=15, gamma=(0.4, 0.0, 0.0, 0.0))
    counts = aggregate_battles(triples(battles))
    board = compute_leaderboard(
        counts, style=battles, bootstrap_rounds=40, seed=2, anchor=("m0", 1200.0)
    )
    out = board.to_dict()
    assert set(out) == OLD_KEYS | STYLE_KEYS  # bootstrap is the default: no "ci" key
    assert out["bootstrap_rounds"] == 40
    fit = fit_style(battles)
    expected = bootstrap_intervals(battles, fit, 40, seed=2, anchor=("m0", 1200.0))
    rows = {r.model: r for r in board.rows}
    for k, name in enumerate(battles.models):
        assert rows[name].rating == pytest.approx(expected.ratings[k], abs=1e-9)
        assert rows[name].ci_lower == pytest.approx(expected.lower[k], abs=1e-9)
        assert rows[name].ci_upper == pytest.approx(expected.upper[k], abs=1e-9)
    assert rows["m0"].rating == pytest.approx(1200.0, abs=1e-9)
    anchored_plain = bradley_terry(counts, anchor=("m0", 1200.0))
    for m in out["models"]:
        assert m["rating_raw"] == pytest.approx(anchored_plain[m["model"]], abs=1e-9)


def test_style_board_without_bootstrap_rounds_keeps_the_rating_inside_its_interval():
    battles, _ = simulate(500, 5, seed=16, gamma=(0.4, 0.0, 0.0, 0.0))
    board = compute_leaderboard(
        aggregate_battles(triples(battles)), style=battles, bootstrap_rounds=0
    )
    for row in board.rows:
        assert row.ci_lower <= row.rating <= row.ci_upper, row
    for name, (value, lower, upper) in board.style.coefficients.items():
        assert lower <= value <= upper, name


def test_boards_without_style_keep_the_old_keys():
    battles = triples(simulate(600, 4, seed=17)[0])
    counts = aggregate_battles(battles)
    default = compute_leaderboard(counts, bootstrap_rounds=10).to_dict()
    assert set(default) == OLD_KEYS
    assert all(set(m) == ROW_KEYS for m in default["models"])
    sandwich = compute_leaderboard(counts, ci="sandwich").to_dict()
    assert set(sandwich) == OLD_KEYS | {"ci"} and sandwich["ci"] == "sandwich"
    assert all(set(m) == ROW_KEYS for m in sandwich["models"])
    assert sandwich["bootstrap_rounds"] == 0
    assert {m["model"]: m["rating"] for m in sandwich["models"]} == pytest.approx(
        bradley_terry(counts)
    )


# --- errors --------------------------------------------------------------------------------------


def empty_battles() -> StyleBattles:
    none = np.zeros(0, dtype=np.int64)
    return StyleBattles(("a", "b"), none, none, np.zeros(0), np.zeros((0, 4)))


def test_errors_are_ratings_errors_with_a_readable_message():
    with pytest.raises(RatingsError, match="No battles with style data"):
        fit_style(empty_battles())
    battles, _ = simulate(300, 4, seed=18)
    for lam in (-0.1, float("nan"), float("inf")):
        with pytest.raises(RatingsError, match="penalty must be a number >= 0"):
            fit_style(battles, lam=lam)
    left, right = battles.left.copy(), battles.right.copy()
    right[7] = left[7]
    with pytest.raises(RatingsError, match="cannot battle itself"):
        StyleBattles(battles.models, left, right, battles.score, battles.features)
    with pytest.raises(RatingsError, match="differ in length"):
        StyleBattles(
            battles.models, battles.left, battles.right[:-1], battles.score, battles.features
        )
    with pytest.raises(RatingsError, match="differ in length"):
        StyleBattles(
            battles.models, battles.left, battles.right, battles.score, battles.features[:5]
        )
    counts = aggregate_battles(triples(battles))
    with pytest.raises(RatingsError, match=r"Unknown interval method 'jackknife'.*bootstrap"):
        compute_leaderboard(counts, ci="jackknife")
    with pytest.raises(RatingsError, match="penalty must be a number >= 0"):
        compute_leaderboard(counts, style=battles, style_reg=-1.0)
    renamed = StyleBattles(
        ("x", "y", "z", "w"), battles.left, battles.right, battles.score, battles.features
    )
    with pytest.raises(RatingsError, match="same models in order"):
        compute_leaderboard(counts, style=renamed)
