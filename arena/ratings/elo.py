"""Chatbot Arena's online Elo, float for float."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from arena.ratings.counts import _LEFT_SCORE, _outcome_code, _raise_unknown


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


def elo_loop(
    left, right, scores, n, k=4.0, base=10.0, scale=400.0, init=1000.0, start=None
) -> list[float]:
    """FastChat's compute_elo loop over integer-coded battles (left[i] vs right[i], left's score
    scores[i]). Constants are used as floats: the same IEEE operations on the same values as
    FastChat's int constants, about a third faster. `start`: the ratings to continue from (models
    0..len(start)-1; the others start at `init`), float for float what a loop over the earlier
    battles followed by these gives."""
    k, base, scale = float(k), float(base), float(scale)
    rating = [float(r) for r in start or ()]
    rating += [float(init)] * (n - len(rating))
    for a, b, sa in zip(left, right, scores, strict=True):
        ra, rb = rating[a], rating[b]
        ea = 1.0 / (1.0 + base ** ((rb - ra) / scale))
        eb = 1.0 / (1.0 + base ** ((ra - rb) / scale))
        rating[a] = ra + k * (sa - ea)
        rating[b] += k * (1.0 - sa - eb)  # reads rating[a] again when a == b, as FastChat does
    return rating
