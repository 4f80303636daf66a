"""Bradley-Terry maximum likelihood on the model x model win matrix, and bootstrap refits.

Ratings follow Chatbot Arena: P(i beats j) = 1 / (1 + 10 ** ((R_j - R_i) / 400)), ties count as half
a win each way, no regularisation. The fit's cost does not depend on the number of votes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import connected_components
from scipy.special import expit

from arena.errors import RatingsError
from arena.ratings.counts import PairCounts, _wins

SCALE = 400.0
BASE = 10.0
CENTRE = 1000.0
ALPHA = math.log(BASE) / SCALE  # natural-log strength per rating point
PSEUDO_COUNT = 0.1  # wins added each way to comparisons that would make the MLE infinite
Z95 = 1.959963984540054


def _components(adjacency: np.ndarray) -> np.ndarray:
    """Group label per model; groups numbered by size (largest first), then by first model."""
    _, labels = connected_components(adjacency > 0, directed=False)
    first_member = np.unique(labels, return_index=True)[1]
    order = np.lexsort((first_member, -np.bincount(labels)))
    return np.argsort(order)[labels]


def _repair(wins: np.ndarray, compared: np.ndarray, groups: np.ndarray):
    """Keep the maximum-likelihood ratings finite.

    The MLE is finite only if, within each group, every model can be reached from every other
    through "beat" edges (the win graph is strongly connected); otherwise some ratings run off to
    infinity (e.g. a model that never won). Then PSEUDO_COUNT wins are added each way to every
    compared pair that crosses between strongly connected parts, and the models outside their
    group's largest part are flagged (the whole group when no part is largest).
    Returns (wins, flagged).
    """
    n_strong, strong = connected_components(wins > 0, directed=True, connection="strong")
    flagged = np.zeros(len(wins), dtype=bool)
    if n_strong == groups.max(initial=-1) + 1:
        return wins, flagged
    cross = compared & (strong[:, None] != strong[None, :])
    part_size = np.bincount(strong)[strong]
    for group in np.unique(groups):
        members = groups == group
        main = np.unique(strong[members & (part_size == part_size[members].max())])
        flagged[members] = (strong[members] != main[0]) | (len(main) > 1)
    return wins + PSEUDO_COUNT * cross, flagged


def laplacian(weights: np.ndarray) -> np.ndarray:
    """diag(row sums) - W for the symmetrised pair weights W = weights + weights.T: the sum over
    pairs of weight * (e_i - e_j)(e_i - e_j)^T (a Hessian or score covariance of pair rows)."""
    sym = weights + weights.T
    return np.diag(sym.sum(axis=1)) - sym


def _loglik(wins: np.ndarray, theta: np.ndarray) -> float:
    return -float(np.sum(wins * np.logaddexp(0.0, theta[None, :] - theta[:, None])))


def _gradient(wins: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the log-likelihood and the win probabilities p[i, j] behind it."""
    p = expit(theta[:, None] - theta[None, :])
    return (wins * p.T - wins.T * p).sum(axis=1), p  # no cancellation between large sums


def _newton(wins, groups, theta=None, tol=1e-10, max_iter=100) -> np.ndarray:
    """Maximise the Bradley-Terry log-likelihood in natural-log units (damped Newton).

    The Hessian is singular along "shift every model of a group"; adding J/n per group makes it
    definite and keeps each group's mean where it started (0 from a cold start). Stops after a
    step below `tol`, or once the Newton decrement (what a full step would still gain) is below
    the resolution of the log-likelihood: converged to working precision.
    """
    games = wins + wins.T
    same = groups[:, None] == groups[None, :]
    definite = same / same.sum(axis=1, keepdims=True) + 1e-9 * np.eye(len(wins))
    theta = np.zeros(len(wins)) if theta is None else theta.copy()
    for _ in range(max_iter):
        grad, p = _gradient(wins, theta)
        w = games * p * p.T
        step = np.linalg.solve(np.diag(w.sum(axis=1)) - w + definite, grad)
        step *= min(1.0, 5.0 / max(np.abs(step).max(initial=0), 1e-300))  # at most 870 points
        ll = _loglik(wins, theta)
        t = _step_length(wins, theta, step, ll)
        theta = theta + t * step
        if t * np.abs(step).max(initial=0) < tol or grad @ step <= 1e-13 * abs(ll):
            return theta
    raise RatingsError("The Bradley-Terry fit did not converge.")


def _step_length(wins: np.ndarray, theta: np.ndarray, step: np.ndarray, ll: float) -> float:
    """Longest t in 1, 1/2, 1/4, ... that gains likelihood or still climbs; 0 if none does."""
    for halvings in range(40):
        t, new = 0.5**halvings, theta + 0.5**halvings * step
        if _loglik(wins, new) >= ll or _gradient(wins, new)[0] @ step >= 0:
            return t
    return 0.0


@dataclass(frozen=True)
class _Fit:
    models: tuple[str, ...]
    theta: np.ndarray
    groups: np.ndarray
    flagged: np.ndarray
    compared: np.ndarray


def _fit(counts: PairCounts) -> _Fit:
    compared = counts.battles > 0
    groups = _components(compared)
    wins, flagged = _repair(counts.wins, compared, groups)
    return _Fit(counts.models, _newton(wins, groups), groups, flagged, compared)


def _to_ratings(fit: _Fit, theta: np.ndarray, anchor: tuple[str, float] | None) -> np.ndarray:
    """Rating points, each group centred at CENTRE; the anchor's group shifted to pin it.

    `theta` is fit.theta or a stack of bootstrap fits, shape (rounds, models).
    """
    groups = fit.groups
    onehot = groups[:, None] == np.arange(groups.max() + 1)[None, :]
    ratings = theta / ALPHA
    ratings = ratings - ((ratings @ onehot) / onehot.sum(axis=0))[..., groups] + CENTRE
    if anchor is not None:
        if anchor[0] not in fit.models:
            raise RatingsError(f"Anchor model '{anchor[0]}' has no votes; pick one on the board.")
        i = fit.models.index(anchor[0])
        ratings = ratings + np.expand_dims(anchor[1] - ratings[..., i], -1) * (groups == groups[i])
    return ratings


def bradley_terry(counts: PairCounts, anchor: tuple[str, float] | None = None) -> dict[str, float]:
    """Maximum-likelihood Bradley-Terry ratings (Chatbot Arena scale), by model.

    Each group of models that met (directly or not) is centred at 1000; `anchor=(model, rating)`
    pins that model instead (and shifts its group with it).
    """
    if not counts.models:
        return {}
    fit = _fit(counts)
    return dict(zip(counts.models, _to_ratings(fit, fit.theta, anchor).tolist(), strict=True))


def bootstrap_ratings(
    counts: PairCounts, rounds: int = 100, seed: int = 0, anchor: tuple[str, float] | None = None
) -> np.ndarray:
    """Ratings refitted on `rounds` multinomial resamples of the counts: shape (rounds, models).

    As FastChat: resample the (model_a, model_b, outcome) cells; each fit starts from the point
    estimate and is centred (or anchored) like it.
    """
    if not counts.models:
        return np.zeros((rounds, 0))
    fit = _fit(counts)
    flat = counts.counts.ravel()
    cells = np.flatnonzero(flat)
    rng = np.random.default_rng(seed)
    samples = rng.multinomial(flat[cells].sum(), flat[cells] / flat[cells].sum(), size=rounds)
    thetas = np.empty((rounds, len(counts.models)))
    resampled = np.zeros(flat.shape, dtype=np.int64)
    for r, sample in enumerate(samples):
        resampled[cells] = sample
        wins, _ = _repair(_wins(resampled.reshape(counts.counts.shape)), fit.compared, fit.groups)
        thetas[r] = _newton(wins, fit.groups, fit.theta)
    return _to_ratings(fit, thetas, anchor)


def expected_score(rating, opponent):
    """Predicted chance that `rating` beats `opponent` (ties counting half); numpy-friendly."""
    return 1.0 / (1.0 + BASE ** ((opponent - rating) / SCALE))
