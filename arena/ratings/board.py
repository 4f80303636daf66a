"""The leaderboard: ratings, intervals and ranks, per-model counts, matrices and warnings."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from arena.errors import RatingsError
from arena.ratings.bt import (
    CENTRE,
    PSEUDO_COUNT,
    Z95,
    _Fit,
    _fit,
    _to_ratings,
    bootstrap_ratings,
    expected_score,
)
from arena.ratings.contextual import (
    DEFAULT_LAMBDA,
    FEATURES,
    StyleBattles,
    bootstrap_intervals,
    fit_style,
    sandwich_intervals,
)
from arena.ratings.counts import PairCounts, aggregate
from arena.ratings.elo import online_elo
from arena.ratings.sandwich import sandwich_bounds

CI_METHODS = ("bootstrap", "sandwich")


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float | None, ...]:
    """Wilson score interval for a proportion; (None, None) without trials."""
    if trials == 0:
        return None, None
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    low = 0.0 if successes == 0 else centre - half  # exact ends, free of rounding
    return low, 1.0 if successes == trials else centre + half


@dataclass(frozen=True)
class ModelRow:
    model: str
    rank: int  # 1 + models of the same group whose ci_lower is above this ci_upper
    rating: float  # Bradley-Terry MLE
    ci_lower: float  # 2.5 % bootstrap quantile
    ci_upper: float  # 97.5 % bootstrap quantile
    elo: float | None  # online Elo, when battles in time order were given
    votes: int
    wins: int
    losses: int
    ties: int  # both tie labels
    win_rate: float  # wins / votes
    flagged: bool  # rating kept finite by PSEUDO_COUNT: treat it as a bound, not an estimate
    group: int  # index into Leaderboard.groups; ratings compare only within a group


@dataclass(frozen=True)
class PositionBias:
    """How often the left answer (model_a) won among decisive battles, with a Wilson 95 % CI."""

    left_wins: int
    decisive: int
    rate: float | None
    ci_lower: float | None
    ci_upper: float | None


@dataclass(frozen=True)
class StyleSummary:
    """What style control found: each feature's coefficient (logit per standard deviation of the
    z-scored feature) with its 95 % interval, and the plain, unweighted ratings of the same battles."""

    coefficients: dict[str, tuple[float, float, float]]  # feature -> (value, lower, upper)
    raw_ratings: dict[str, float]
    penalty: float  # lam on the summed loss
    battles: int

    def to_dict(self) -> dict:
        return {
            name: dict(zip(("coefficient", "ci_lower", "ci_upper"), values, strict=True))
            for name, values in self.coefficients.items()
        }


@dataclass(frozen=True)
class Leaderboard:
    """Rows sorted by group, then rating; matrices [i, j] follow `models` (the row order)."""

    rows: list[ModelRow]
    models: list[str]
    win_rate: np.ndarray  # (wins of i over j + half the ties) / battles; nan without battles
    battle_count: np.ndarray  # battles between i and j, either seat
    predicted_win_rate: np.ndarray  # from the ratings; nan across groups
    position_bias: PositionBias
    warnings: list[str]
    groups: list[list[str]]
    anchor: tuple[str, float] | None = None
    bootstrap_rounds: int = 0
    ci: str = "bootstrap"
    style: StyleSummary | None = None  # set when the ratings control for style

    def to_dict(self) -> dict:
        """JSON-ready: plain numbers, None for missing values, matrices keyed by model id. The
        keys of the plain bootstrap board are those it always had; sandwich intervals add `ci`,
        style control adds `style_control`, `style_coefficients`, `style_reg` and `rating_raw`."""
        anchor = dict(zip(("model", "rating"), self.anchor, strict=True)) if self.anchor else None
        models = [asdict(row) for row in self.rows]
        extra: dict = {}
        if self.ci != "bootstrap":
            extra["ci"] = self.ci
        if self.style is not None:
            extra.update(
                style_control=True,
                style_coefficients=self.style.to_dict(),
                style_reg=self.style.penalty,
                style_battles=self.style.battles,
            )
            for model in models:
                model["rating_raw"] = self.style.raw_ratings.get(model["model"])
        return {
            **extra,
            "models": models,
            "warnings": list(self.warnings),
            "groups": [list(g) for g in self.groups],
            "position_bias": asdict(self.position_bias),
            "win_rate_matrix": self._keyed(self.win_rate),
            "battle_count_matrix": self._keyed(self.battle_count),
            "predicted_win_rate_matrix": self._keyed(self.predicted_win_rate),
            "anchor": anchor,
            "bootstrap_rounds": self.bootstrap_rounds,
        }

    def _keyed(self, matrix: np.ndarray) -> dict[str, dict[str, float | int | None]]:
        return {
            a: {b: _plain(matrix[i, j]) for j, b in enumerate(self.models) if i != j}
            for i, a in enumerate(self.models)
        }

    def models_frame(self):
        """The per-model table as a pandas DataFrame (ModelRow's columns, and rating_raw when the
        ratings control for style)."""
        import pandas as pd  # only the UI needs it

        frame = pd.DataFrame(
            [asdict(r) for r in self.rows], columns=[f.name for f in fields(ModelRow)]
        )
        if self.style is not None:
            frame["rating_raw"] = [self.style.raw_ratings.get(m) for m in frame["model"]]
        return frame


def _plain(value) -> float | int | None:
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and math.isnan(value) else value


def compute_leaderboard(
    count_rows: Iterable[Sequence] | PairCounts,
    ordered_battles: Iterable[Sequence] | None = None,
    *,
    bootstrap_rounds: int = 100,
    seed: int = 0,
    anchor: tuple[str, float] | None = None,
    ci: str = "bootstrap",
    style: StyleBattles | None = None,
    style_reg: float = DEFAULT_LAMBDA,
) -> Leaderboard:
    """The whole board: ratings, CIs and ranks, per-model counts, matrices, warnings.

    `count_rows` are `(model_a, model_b, winner, count)` rows (or PairCounts); `ordered_battles`,
    `(model_a, model_b, winner)` in time order, adds online Elo. `ci` is "bootstrap"
    (`bootstrap_rounds` refits) or "sandwich". With `style` (the same battles, one row each, models
    in the counts' order) the ratings control for style (arena.ratings.contextual) and the plain
    ratings stay beside them. Seeded and reproducible.
    """
    if ci not in CI_METHODS:
        raise RatingsError(f"Unknown interval method {ci!r}; use one of {', '.join(CI_METHODS)}.")
    counts = count_rows if isinstance(count_rows, PairCounts) else aggregate(count_rows)
    elo = online_elo(ordered_battles) if ordered_battles is not None else {}
    warnings = []
    if counts.self_battles:
        warnings.append(f"Dropped {counts.self_battles} self-battle(s) where model_a == model_b.")
    if not counts.models:
        warnings.append("No votes to rate yet: the leaderboard is empty.")
        return _board(counts, [], np.zeros(0), [], warnings, None, bootstrap_rounds, ci)
    if anchor is not None and anchor[0] not in counts.models:
        warnings.append(f"Anchor model '{anchor[0]}' has no votes yet; ratings are centred.")
        anchor = None
    rounds = bootstrap_rounds if ci == "bootstrap" else 0
    fit = _fit(counts)
    summary = None
    if style is not None:
        fit, ratings, lower, upper, summary = _style_fit(
            counts, fit, style, style_reg, ci, rounds, seed, anchor
        )
    else:
        ratings = lower = upper = _to_ratings(fit, fit.theta, anchor)
        if ci == "sandwich":
            lower, upper = sandwich_bounds(counts, fit, anchor)
        elif rounds > 0:
            boot = bootstrap_ratings(counts, rounds, seed, anchor)
            lower, upper = np.quantile(boot, [0.025, 0.975], axis=0)
    rows = _rows(counts, fit, ratings, lower, upper, elo)
    names = np.array(counts.models)
    groups = [names[fit.groups == k].tolist() for k in np.unique(fit.groups)]
    warnings += _fit_warnings(counts, fit, anchor)
    return _board(counts, rows, ratings, groups, warnings, anchor, rounds, ci, summary)


def _style_fit(counts, plain, style: StyleBattles, lam, ci, rounds, seed, anchor):
    """The style-controlled fit in the plain fit's place: (fit view, ratings, lower, upper,
    summary); the plain ratings of the same battles go into the summary."""
    if tuple(style.models) != tuple(counts.models):
        raise RatingsError("Style battles and vote counts must list the same models in order.")
    fit = fit_style(style, lam)
    if ci == "sandwich":
        found = sandwich_intervals(fit, anchor)
    elif rounds > 0:
        found = bootstrap_intervals(style, fit, rounds, seed, anchor)
    else:  # no rounds: each interval is its point, as on the plain board
        point = sandwich_intervals(fit, anchor)
        found = replace(
            point,
            lower=point.ratings,
            upper=point.ratings,
            gamma_lower=point.gamma,
            gamma_upper=point.gamma,
        )
    raw = _to_ratings(plain, plain.theta, anchor)
    summary = StyleSummary(
        {
            name: (float(found.gamma[k]), float(found.gamma_lower[k]), float(found.gamma_upper[k]))
            for k, name in enumerate(FEATURES)
        },
        dict(zip(counts.models, raw.tolist(), strict=True)),
        float(lam),
        style.size,
    )
    return fit.bt, found.ratings, found.lower, found.upper, summary


def _fit_warnings(counts: PairCounts, fit: _Fit, anchor) -> list[str]:
    warnings = []
    if (n_groups := len(np.unique(fit.groups))) > 1:
        where = "the anchor's group is pinned, the others" if anchor else "each"
        warnings.append(
            f"The models form {n_groups} groups that never met each other; ratings and ranks "
            f"compare only within a group ({where} centred at {CENTRE:g})."
        )
    if fit.flagged.any():
        names = ", ".join(np.array(counts.models)[fit.flagged])
        warnings.append(
            f"Unreliable ratings for {names}: never won (or never lost) against the rest of their "
            f"group; {PSEUDO_COUNT:g} pseudo-wins each way on those comparisons keep them finite."
        )
    return warnings


def _rows(counts: PairCounts, fit: _Fit, ratings, lower, upper, elo) -> list[ModelRow]:
    c = counts.counts
    wins = c[0].sum(axis=1) + c[1].sum(axis=0)
    losses = c[1].sum(axis=1) + c[0].sum(axis=0)
    ties = (c[2] + c[3]).sum(axis=1) + (c[2] + c[3]).sum(axis=0)
    votes = wins + losses + ties
    same = fit.groups[:, None] == fit.groups[None, :]
    ranks = 1 + ((lower[None, :] > upper[:, None]) & same).sum(axis=1)
    columns = [ranks, ratings, lower, upper, [elo.get(m) for m in counts.models], votes, wins]
    columns += [losses, ties, wins / votes, fit.flagged, fit.groups]
    rows = [
        ModelRow(m, *v)
        for m, *v in zip(counts.models, *(np.asarray(c).tolist() for c in columns), strict=True)
    ]
    return sorted(rows, key=lambda r: (r.group, -r.rating, r.model))


def _board(
    counts, rows, ratings, groups, warnings, anchor, rounds, ci="bootstrap", style=None
) -> Leaderboard:
    order = [counts.models.index(r.model) for r in rows]
    battles = counts.battles[np.ix_(order, order)]
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = counts.wins[np.ix_(order, order)] / battles
    predicted = expected_score(ratings[order][:, None], ratings[order][None, :])
    group = np.array([row.group for row in rows])
    predicted[group[:, None] != group[None, :]] = np.nan
    models = [row.model for row in rows]
    bias = position_bias(counts)
    return Leaderboard(
        rows,
        models,
        win_rate,
        battles,
        predicted,
        bias,
        warnings,
        groups,
        anchor,
        rounds,
        ci,
        style,
    )


def position_bias(counts: PairCounts) -> PositionBias:
    """How often model_a (the left answer) won among decisive battles, with a Wilson 95 % CI."""
    left, right = int(counts.counts[0].sum()), int(counts.counts[1].sum())
    decisive = left + right
    return PositionBias(
        left, decisive, left / decisive if decisive else None, *wilson_interval(left, decisive)
    )
