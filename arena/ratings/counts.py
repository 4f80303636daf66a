"""Votes counted per (model_a, model_b, outcome): the input of every Bradley-Terry fit.

Winners use the LMSYS labels "model_a", "model_b", "tie", "tie (bothbad)" (or
`arena.kinds.Outcome` members).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from arena.errors import RatingsError
from arena.kinds import Outcome

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
