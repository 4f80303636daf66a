"""Sandwich (robust) 95 % intervals for the plain Bradley-Terry fit, as arena-rank computes them.

Rows are the (model_a, model_b, outcome) cells with their counts, left's score 1, 0 or 0.5. H sums
count * p (1 - p) over the rows, plus arena-rank's ridge of HESSIAN_REG per battle on the
diagonal; G sums count * (score - p)^2. The covariance of the ratings is H^-1 G H^-1; an interval
is the rating +- 1.96 standard errors. Unlike the bootstrap it needs no refits, so its cost does
not grow with the votes.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from arena.ratings.bt import ALPHA, Z95, _Fit, _to_ratings, laplacian
from arena.ratings.contextual import HESSIAN_REG
from arena.ratings.counts import PairCounts

_SCORE = np.array([1.0, 0.0, 0.5, 0.5])  # left's score per outcome code


def plain_covariance(counts: PairCounts, fit: _Fit) -> np.ndarray:
    """H^-1 G H^-1 of the plain fit's ratings (natural-log units), models in counts.models order."""
    c = counts.counts.astype(np.float64)
    p = expit(fit.theta[:, None] - fit.theta[None, :])  # left beats right
    battles = c.sum(axis=0)
    hessian = laplacian(battles * p * (1.0 - p))
    hessian += HESSIAN_REG * battles.sum() * np.eye(len(p))
    squared = sum(c[o] * (_SCORE[o] - p) ** 2 for o in range(4))
    inverse = np.linalg.inv(hessian)
    return inverse @ laplacian(squared) @ inverse


def sandwich_bounds(counts: PairCounts, fit: _Fit, anchor=None) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) 95 % interval ends on the rating scale, centred or anchored like the fit."""
    cov = plain_covariance(counts, fit)
    var = np.diag(cov).copy()
    if anchor is not None:
        i = fit.models.index(anchor[0])
        diff = var + cov[i, i] - 2 * cov[:, i]
        var = np.where(fit.groups == fit.groups[i], diff, var)
    width = Z95 * np.sqrt(np.maximum(var, 0.0)) / ALPHA
    ratings = _to_ratings(fit, fit.theta, anchor)
    return ratings - width, ratings + width
