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
from arena.ratings.counts import PairCounts

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


def _loglik(wins: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Log-likelihood of each stacked fit: wins (..., n, n), theta (..., n) -> shape (...)."""
    gap = theta[..., None, :] - theta[..., :, None]
    return -np.sum(wins * np.logaddexp(0.0, gap), axis=(-2, -1))


def _gradient(wins: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the log-likelihood and the win probabilities p[..., i, j] behind it."""
    p = expit(theta[..., :, None] - theta[..., None, :])
    flip = np.swapaxes
    grad = (wins * flip(p, -1, -2) - flip(wins, -1, -2) * p).sum(axis=-1)  # no cancellation
    return grad, p


def _newton(wins, groups, theta=None, tol=1e-10, max_iter=100) -> np.ndarray:
    """Maximise the Bradley-Terry log-likelihood in natural-log units (damped Newton): one fit
    (wins n x n) or a stack of them at once (wins (rounds, n, n): the bootstrap), each from
    `theta` (default 0).

    The Hessian is singular along "shift every model of a group"; adding J/n per group makes it
    definite and keeps each group's mean where it started (0 from a cold start). A fit stops
    after a step below `tol`, or once the Newton decrement (what a full step would still gain) is
    below the resolution of the log-likelihood: converged to working precision.
    """
    single = wins.ndim == 2
    wins = wins[None] if single else wins
    rounds, n = wins.shape[0], wins.shape[-1]
    games = wins + np.swapaxes(wins, -1, -2)
    same = groups[:, None] == groups[None, :]
    definite = same / same.sum(axis=1, keepdims=True) + 1e-9 * np.eye(n)
    start = np.zeros(n) if theta is None else theta
    thetas = np.array(np.broadcast_to(start, (rounds, n)))
    active = np.arange(rounds)
    diagonal = np.arange(n)
    for _ in range(max_iter):
        w_, th = wins[active], thetas[active]
        grad, p = _gradient(w_, th)
        w = games[active] * p * np.swapaxes(p, -1, -2)
        hessian = definite - w
        hessian[:, diagonal, diagonal] += w.sum(axis=-1)
        step = np.linalg.solve(hessian, grad[..., None])[..., 0]
        biggest = np.abs(step).max(axis=-1, initial=0)
        step *= np.minimum(1.0, 5.0 / np.maximum(biggest, 1e-300))[:, None]  # <= 870 points
        ll = _loglik(w_, th)
        t = _step_length(w_, th, step, ll)
        thetas[active] = th + t[:, None] * step
        done = (t * np.abs(step).max(axis=-1, initial=0) < tol) | (
            np.einsum("ri,ri->r", grad, step) <= 1e-13 * np.abs(ll)
        )
        active = active[~done]
        if not active.size:
            return thetas[0] if single else thetas
    raise RatingsError("The Bradley-Terry fit did not converge.")


def _step_length(wins, theta, step, ll) -> np.ndarray:
    """Per fit, the longest t in 1, 1/2, 1/4, ... that gains likelihood or still climbs; 0 if
    none does."""
    t = np.ones(len(theta))
    pending = np.arange(len(theta))
    for _ in range(40):
        new = theta[pending] + t[pending, None] * step[pending]
        w = wins[pending]
        climbs = np.einsum("ri,ri->r", _gradient(w, new)[0], step[pending]) >= 0
        pending = pending[~((_loglik(w, new) >= ll[pending]) | climbs)]
        if not pending.size:
            return t
        t[pending] *= 0.5
    t[pending] = 0.0
    return t


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
    """Ratings refitted on `rounds` multinomial resamples of the votes: shape (rounds, models).

    As FastChat, each round resamples the votes with replacement, as a multinomial over their
    cells; each fit starts from the point estimate and is centred (or anchored) like it. The fit
    sees only, per pair of models, how often each won and how often they tied (either seat, tie
    or both bad), so those are the cells: a multinomial summed over cells is the multinomial of
    the sums, the same distribution with a third of the draws. The rounds are fitted together.
    """
    if not counts.models:
        return np.zeros((rounds, 0))
    fit = _fit(counts)
    n = len(counts.models)
    left, right = np.triu_indices(n, 1)
    beat = counts.counts[0] + counts.counts[1].T  # beat[i, j]: i won against j, either seat
    tied = counts.counts[2] + counts.counts[3]
    tied = tied + tied.T
    cells = np.concatenate([beat[left, right], beat[right, left], tied[left, right]])
    used = np.flatnonzero(cells)
    rng = np.random.default_rng(seed)
    total = cells[used].sum()
    if not total:  # no battle between two models: every round is the point fit
        return _to_ratings(fit, np.tile(fit.theta, (rounds, 1)), anchor)
    thetas = np.empty((rounds, n))
    per_batch = max(1, 2_000_000 // (n * n))  # a few stacked n x n arrays per round at most
    for first in range(0, rounds, per_batch):
        size = min(per_batch, rounds - first)
        sample = np.zeros((size, cells.size))
        sample[:, used] = rng.multinomial(total, cells[used] / total, size=size)
        won, lost, ties = np.split(sample, 3, axis=1)
        wins = np.zeros((size, n, n))
        wins[:, left, right] = won + 0.5 * ties
        wins[:, right, left] = lost + 0.5 * ties
        thetas[first : first + size] = _newton(_repaired(wins, fit), fit.groups, fit.theta)
    return _to_ratings(fit, thetas, anchor)


def _repaired(wins: np.ndarray, fit: _Fit) -> np.ndarray:
    """_repair on each resampled round that needs it: a round in which every compared pair won
    against each other at least once has the point fit's groups as its strongly connected parts
    (the common case, checked without building the graph)."""
    fine = np.all((wins > 0) | ~fit.compared, axis=(1, 2))
    for r in np.flatnonzero(~fine):
        wins[r] = _repair(wins[r], fit.compared, fit.groups)[0]
    return wins


def expected_score(rating, opponent):
    """Predicted chance that `rating` beats `opponent` (ties counting half); numpy-friendly."""
    return 1.0 / (1.0 + BASE ** ((opponent - rating) / SCALE))
