"""Chatbot Arena's sequential test per voter: who keeps voting against everyone else.

For each decisive vote (a or b) of a voter, p is the share of that pair's decisive votes,
everyone's and this one included, that the same model won, whichever side it sat on. A voter
who votes like the crowd, picking the winner w with the crowd's probability p_w, has
E[1/(2p)] = p_w / (2 p_w) + p_l / (2 p_l) = 1, so the running product M = prod 1/(2p) is a test
martingale for "votes like everyone else" and P(M >= 1/alpha) <= alpha (Ville's inequality).
A voter who keeps picking the side few others pick multiplies M by large factors.

The rule is the issue's (#12): M over the voter's first `first` (100) decisive votes, or all of
them when there are fewer; flagged when M > 1/alpha and the voter has at least `min_votes` (5)
of them. A product that crosses 1/alpha early and falls back below by vote 100 does not flag:
`ever_crossed` reports it, for a look, without changing the flag. Votes after the first 100 do
not count, so a voter cannot be flagged for what they did after their 100th decisive vote.

`voter` is any code per vote: a logged-in user, or a client key to run the same test per key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from arena.errors import RatingsError
from arena.kinds import Outcome

FIRST = 100
ALPHA = 0.05
MIN_VOTES = 5
NO_VOTER = -1  # the code of a vote without a voter id: it counts in the pair shares only


@dataclass(frozen=True)
class VoterTest:
    """The test per voter code (index = code); the arrays are read-only.

    votes: decisive votes the statistic is over (at most `first`).
    log_statistic: log M, the sum of -log(2p) over those votes (0 for a voter with none).
    flagged: log M > log(1/alpha) with at least `min_votes` votes: the issue's rule.
    ever_crossed: the running log M exceeded log(1/alpha) at some vote k with
        min_votes <= k <= votes; informational (flagged implies ever_crossed, not conversely).
    """

    votes: np.ndarray  # int64
    log_statistic: np.ndarray  # float64
    flagged: np.ndarray  # bool
    ever_crossed: np.ndarray  # bool
    threshold: float  # log(1/alpha)

    def flagged_codes(self) -> np.ndarray:
        """The flagged voter codes, ascending (int64)."""
        return np.flatnonzero(self.flagged).astype(np.int64)


def decisive_votes(
    voter: np.ndarray, model_a: np.ndarray, model_b: np.ndarray, outcome: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(voter, winner, loser) of the a and b votes, in the given order; ties and both-bad dropped.

    `outcome` holds `Outcome` values ("a", "b", "tie", "bothbad") or the LMSYS labels
    ("model_a", ...); anything else raises RatingsError.
    """
    labels = np.asarray(outcome, dtype=str)
    left = np.isin(labels, (Outcome.A.value, Outcome.A.winner_label))
    right = np.isin(labels, (Outcome.B.value, Outcome.B.winner_label))
    draws = [label for o in (Outcome.TIE, Outcome.BOTH_BAD) for label in (o.value, o.winner_label)]
    unknown = ~(left | right | np.isin(labels, draws))
    if unknown.any():
        bad = ", ".join(sorted({repr(str(x)) for x in labels[unknown][:5]}))
        raise RatingsError(f"Unknown outcome(s) {bad}; expected a, b, tie or bothbad.")
    voter, model_a, model_b = (np.asarray(x, dtype=np.int64) for x in (voter, model_a, model_b))
    keep = left | right
    winner = np.where(left, model_a, model_b)[keep]
    loser = np.where(left, model_b, model_a)[keep]
    return voter[keep], winner, loser


def sequential_test(
    voter: np.ndarray,
    winner: np.ndarray,
    loser: np.ndarray,
    *,
    first: int = FIRST,
    alpha: float = ALPHA,
    min_votes: int = MIN_VOTES,
    voters: int | None = None,
) -> VoterTest:
    """The issue's test for every voter code in 0..voters-1 (default: the largest code + 1).

    One entry per decisive vote, in time order: voter code (>= 0, or NO_VOTER), winner and
    loser model indices (>= 0). Self-battles (winner == loser) compare nothing and are left
    out, of the shares and of the voter's votes alike.
    """
    voter, winner, loser = _checked(voter, winner, loser, first, alpha, min_votes)
    pair = winner != loser
    voter, winner, loser = voter[pair], winner[pair], loser[pair]
    size = _size(voter, voters)
    threshold = -math.log(alpha)
    order = np.argsort(voter, kind="stable")  # by voter, time order kept within each
    code = voter[order]
    terms = -np.log(2.0 * _same_way_share(winner, loser))[order]
    rank = _rank_in_group(code)
    used = (code >= 0) & (rank < first)  # each voter's first `first`: a prefix of their run
    code, terms, rank = code[used], terms[used], rank[used]
    votes = np.bincount(code, minlength=size)
    log_m = np.bincount(code, weights=terms, minlength=size)
    flagged = (votes >= min_votes) & (log_m > threshold)
    crossed = _ever_crossed(code, terms, rank, min_votes, threshold, size)
    return VoterTest(
        _frozen(votes), _frozen(log_m), _frozen(flagged), _frozen(crossed | flagged), threshold
    )


def grouped_test(
    voter: np.ndarray,
    votes: np.ndarray,
    share: np.ndarray,
    *,
    alpha: float = ALPHA,
    min_votes: int = MIN_VOTES,
    voters: int | None = None,
) -> VoterTest:
    """The same test from counts a database has already grouped: one entry per (voter, winner,
    loser) over each voter's first `first` decisive votes (the SQL window of
    arena.store.screening.first_decisive), with `votes` of them and p = `share`, that pair's
    share of everyone's decisive votes won by this winner. log M is a sum, so grouping the votes
    changes nothing; only `ever_crossed`, which needs each vote's order, is not known (False).
    """
    voter = np.asarray(voter, dtype=np.int64)
    votes = np.asarray(votes, dtype=np.int64)
    share = np.asarray(share, dtype=np.float64)
    if not 0 < alpha < 1 or min_votes < 1:
        raise ValueError(f"alpha ({alpha}) must be in (0, 1) and min_votes ({min_votes}) >= 1")
    if voter.size and (voter.min() < 0 or (share <= 0).any() or (share > 1).any()):
        raise ValueError("voter codes must be >= 0 and shares in (0, 1]")
    size = _size(voter, voters)
    threshold = -math.log(alpha)
    counted = np.bincount(voter, weights=votes, minlength=size).astype(np.int64)
    log_m = np.bincount(voter, weights=votes * -np.log(2.0 * share), minlength=size)
    flagged = (counted >= min_votes) & (log_m > threshold)
    return VoterTest(
        _frozen(counted), _frozen(log_m), _frozen(flagged), _frozen(flagged.copy()), threshold
    )


def _checked(
    voter: np.ndarray, winner: np.ndarray, loser: np.ndarray, first: int, alpha: float, min_v: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    if first < 1 or min_v < 1:
        raise ValueError(f"first ({first}) and min_votes ({min_v}) must be at least 1")
    arrays = tuple(np.asarray(x) for x in (voter, winner, loser))
    if any(a.ndim != 1 for a in arrays) or len({a.size for a in arrays}) != 1:
        raise ValueError("voter, winner and loser must be 1-D arrays of the same length")
    if any(a.size and a.dtype.kind not in "iu" for a in arrays):
        raise ValueError("voter, winner and loser must hold integer codes")
    voter, winner, loser = (a.astype(np.int64, copy=False) for a in arrays)
    if voter.size and (voter.min() < NO_VOTER or min(winner.min(), loser.min()) < 0):
        raise ValueError("voter codes must be >= -1 and model indices >= 0")
    return voter, winner, loser


def _size(voter: np.ndarray, voters: int | None) -> int:
    largest = int(voter.max()) + 1 if voter.size else 0
    if voters is None:
        return largest
    if voters < largest:
        raise ValueError(f"voter code {largest - 1} is out of range for voters={voters}")
    return voters


def _same_way_share(winner: np.ndarray, loser: np.ndarray) -> np.ndarray:
    """p per vote: the pair's decisive votes won by this vote's winner / all of the pair's."""
    if not winner.size:
        return np.ones(0)
    models = int(max(winner.max(), loser.max())) + 1
    directed = winner * models + loser
    undirected = np.minimum(winner, loser) * models + np.maximum(winner, loser)
    if models * models <= max(4 * winner.size, 1 << 20):  # dense: counting beats sorting
        same = np.bincount(directed, minlength=models * models)
        both = same + same.reshape(models, models).T.ravel()
        return same[directed] / both[directed]
    _, same_at, same = np.unique(directed, return_inverse=True, return_counts=True)
    _, both_at, both = np.unique(undirected, return_inverse=True, return_counts=True)
    return same[same_at] / both[both_at]


def _rank_in_group(code: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal codes of a sorted array."""
    index = np.arange(code.size)
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]]) if code.size else index
    return index - np.repeat(starts, np.diff(np.r_[starts, code.size]))


def _ever_crossed(
    code: np.ndarray,
    terms: np.ndarray,
    rank: np.ndarray,
    min_votes: int,
    threshold: float,
    size: int,
) -> np.ndarray:
    """Whether a code's running sum of terms passed threshold at its vote min_votes or later."""
    total = np.cumsum(terms)
    starts = np.flatnonzero(rank == 0)
    before = np.repeat(total[starts] - terms[starts], np.diff(np.r_[starts, code.size]))
    crossed = (rank >= min_votes - 1) & (total - before > threshold)
    return np.bincount(code[crossed], minlength=size) > 0


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
