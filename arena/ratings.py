"""Ratings from votes: online Elo, Bradley-Terry maximum likelihood, bootstrap intervals.

Pure functions, votes in and ratings out: no database, no Streamlit. The store hands over
aggregated rows `(model_a, model_b, winner, count)` (a SQL GROUP BY) for the Bradley-Terry fit and,
optionally, `(model_a, model_b, winner)` in time order for online Elo. Winners use the LMSYS labels
"model_a", "model_b", "tie", "tie (bothbad)" (or `arena.outcome.Outcome` members).

Ratings follow Chatbot Arena: P(i beats j) = 1 / (1 + 10 ** ((R_j - R_i) / 400)), ties count as half
a win each way, no regularisation. The fit works on the model x model win matrix, so its cost does
not depend on the number of votes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy.sparse.csgraph import connected_components
from scipy.special import expit

from arena.errors import RatingsError
from arena.kinds import Outcome

SCALE = 400.0
BASE = 10.0
CENTRE = 1000.0
ALPHA = math.log(BASE) / SCALE  # natural-log strength per rating point
PSEUDO_COUNT = 0.1  # wins added each way to comparisons that would make the MLE infinite
Z95 = 1.959963984540054

# Outcome codes index the first axis of PairCounts.counts: 0 A wins, 1 B wins, 2 tie, 3 both bad.
_OUTCOMES = (Outcome.A, Outcome.B, Outcome.TIE, Outcome.BOTH_BAD)
_CODE = {label: i for i, o in enumerate(_OUTCOMES) for label in (o.winner_label, o.value)}
_LEFT_SCORE = (1, 0, 0.5, 0.5)  # FastChat's sa for each outcome code


def _outcome_code(winner: object, unknown: set[str]) -> int | None:
    code = _CODE.get(winner)  # type: ignore[call-overload]
    if code is None:
        unknown.add(repr(winner))
    return code


def _raise_unknown(unknown: set[str]) -> None:
    if unknown:
        expected = ", ".join(repr(o.winner_label) for o in Outcome)
        raise RatingsError(
            f"Unknown winner label(s) {', '.join(sorted(unknown))}; expected {expected}."
        )


# --- aggregation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PairCounts:
    """Votes per (model_a, model_b, outcome): counts[o, i, j] has models[i] on the left.

    Self-battles are not in `counts`; `self_battles` says how many were dropped.
    """

    models: tuple[str, ...]
    counts: np.ndarray  # int64, shape (4, n, n)
    self_battles: int = 0

    @property
    def wins(self) -> np.ndarray:
        """W[i, j]: wins of i over j in either seat, each tie counting half."""
        return _wins(self.counts)

    @property
    def battles(self) -> np.ndarray:
        """N[i, j] = N[j, i]: battles between i and j in either seat."""
        seats = self.counts.sum(axis=0)
        return seats + seats.T


def _wins(counts: np.ndarray) -> np.ndarray:
    half_ties = 0.5 * (counts[2] + counts[3])
    return counts[0] + counts[1].T + half_ties + half_ties.T


def aggregate(rows: Iterable[Sequence]) -> PairCounts:
    """Build PairCounts from `(model_a, model_b, winner, count)` rows (e.g. a SQL GROUP BY)."""
    cells: Counter = Counter()
    unknown: set[str] = set()
    self_battles = 0
    for model_a, model_b, winner, count in rows:
        code = _outcome_code(winner, unknown)
        if count < 0:
            raise RatingsError(f"Negative vote count {count} for {model_a} vs {model_b}.")
        if code is None or count == 0:
            continue
        if model_a == model_b:
            self_battles += int(count)
        else:
            cells[model_a, model_b, code] += int(count)
    _raise_unknown(unknown)
    models = tuple(sorted({m for a, b, _ in cells for m in (a, b)}))
    index = {m: i for i, m in enumerate(models)}
    counts = np.zeros((4, len(models), len(models)), dtype=np.int64)
    for (a, b, code), count in cells.items():
        counts[code, index[a], index[b]] = count
    return PairCounts(models, counts, self_battles)


def aggregate_battles(battles: Iterable[Sequence]) -> PairCounts:
    """Build PairCounts from raw `(model_a, model_b, winner, ...)` battles (extra fields ignored)."""
    counter = Counter((b[0], b[1], b[2]) for b in battles)
    return aggregate((a, b, w, n) for (a, b, w), n in counter.items())


# --- online Elo ----------------------------------------------------------------------------------


def online_elo(battles: Iterable[Sequence], k=4, base=10, scale=400, init=1000) -> dict[str, float]:
    """Chatbot Arena's online Elo (FastChat `compute_elo`), float for float, over battles in order.

    Each battle is `(model_a, model_b, winner, ...)`. Names become ints first, then a plain loop.
    """
    ids: dict[str, int] = {}
    unknown: set[str] = set()
    left, right, scores = [], [], []
    for battle in battles:
        code = _outcome_code(battle[2], unknown)
        left.append(ids.setdefault(battle[0], len(ids)))
        right.append(ids.setdefault(battle[1], len(ids)))
        scores.append(_LEFT_SCORE[code] if code is not None else 0)
    _raise_unknown(unknown)
    rating = elo_loop(left, right, scores, len(ids), k=k, base=base, scale=scale, init=init)
    return {name: float(rating[i]) for name, i in ids.items()}


def elo_loop(left, right, scores, n, k=4.0, base=10.0, scale=400.0, init=1000.0) -> list[float]:
    """FastChat's compute_elo loop over integer-coded battles (left[i] vs right[i], left's score
    scores[i]). Constants are used as floats: the same IEEE operations on the same values as
    FastChat's int constants, about a third faster."""
    k, base, scale = float(k), float(base), float(scale)
    rating = [float(init)] * n
    for a, b, sa in zip(left, right, scores, strict=True):
        ra, rb = rating[a], rating[b]
        ea = 1.0 / (1.0 + base ** ((rb - ra) / scale))
        eb = 1.0 / (1.0 + base ** ((ra - rb) / scale))
        rating[a] = ra + k * (sa - ea)
        rating[b] += k * (1.0 - sa - eb)  # reads rating[a] again when a == b, as FastChat does
    return rating


# --- Bradley-Terry -------------------------------------------------------------------------------


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


# --- leaderboard ---------------------------------------------------------------------------------


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

    def to_dict(self) -> dict:
        """JSON-ready: plain numbers, None for missing values, matrices keyed by model id."""
        anchor = dict(zip(("model", "rating"), self.anchor, strict=True)) if self.anchor else None
        return {
            "models": [asdict(row) for row in self.rows],
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
        """The per-model table as a pandas DataFrame (same columns as ModelRow)."""
        import pandas as pd  # only the UI needs it

        return pd.DataFrame(
            [asdict(r) for r in self.rows], columns=[f.name for f in fields(ModelRow)]
        )


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
) -> Leaderboard:
    """The whole board: ratings, bootstrap CIs and ranks, per-model counts, matrices, warnings.

    `count_rows` are `(model_a, model_b, winner, count)` rows (or PairCounts); `ordered_battles`,
    `(model_a, model_b, winner)` in time order, adds online Elo. Seeded and reproducible.
    """
    counts = count_rows if isinstance(count_rows, PairCounts) else aggregate(count_rows)
    elo = online_elo(ordered_battles) if ordered_battles is not None else {}
    warnings = []
    if counts.self_battles:
        warnings.append(f"Dropped {counts.self_battles} self-battle(s) where model_a == model_b.")
    if not counts.models:
        warnings.append("No votes to rate yet: the leaderboard is empty.")
        return _board(counts, [], np.zeros(0), [], warnings, None, bootstrap_rounds)
    if anchor is not None and anchor[0] not in counts.models:
        warnings.append(f"Anchor model '{anchor[0]}' has no votes yet; ratings are centred.")
        anchor = None
    fit = _fit(counts)
    ratings = lower = upper = _to_ratings(fit, fit.theta, anchor)
    if bootstrap_rounds > 0:
        boot = bootstrap_ratings(counts, bootstrap_rounds, seed, anchor)
        lower, upper = np.quantile(boot, [0.025, 0.975], axis=0)
    rows = _rows(counts, fit, ratings, lower, upper, elo)
    names = np.array(counts.models)
    groups = [names[fit.groups == k].tolist() for k in np.unique(fit.groups)]
    warnings += _fit_warnings(counts, fit, anchor)
    return _board(counts, rows, ratings, groups, warnings, anchor, bootstrap_rounds)


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


def _board(counts, rows, ratings, groups, warnings, anchor, rounds) -> Leaderboard:
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
        rows, models, win_rate, battles, predicted, bias, warnings, groups, anchor, rounds
    )


def position_bias(counts: PairCounts) -> PositionBias:
    """How often model_a (the left answer) won among decisive battles, with a Wilson 95 % CI."""
    left, right = int(counts.counts[0].sum()), int(counts.counts[1].sum())
    decisive = left + right
    return PositionBias(
        left, decisive, left / decisive if decisive else None, *wilson_interval(left, decisive)
    )
