"""Which two models an anonymous battle draws: by models.yaml weight, or actively.

ARENA_PAIR_SAMPLING=weighted draws by weight alone (Registry.draw_pair). `active` follows the
Chatbot Arena paper (Chiang et al. 2024, "Active sampling"): a pair's chance grows with how much
one more vote on it would narrow its interval, sqrt(S / n) - sqrt(S / (n + 1)), where

- S is the variance one vote adds to the estimate of the pair's rating difference: the inverse
  of one vote's Fisher information, 1 / (m (1 - m)) in natural-log units, m being the pair's
  expected score under the current Bradley-Terry fit of the anonymous votes (a model without
  votes is taken at the centre). A lopsided pair tells less about its difference per vote, so it
  needs more votes for the same interval, which is what spreads votes to the top and the bottom
  of the board, where intervals are widest. m (1 - m) is floored at MIN_INFORMATION (about 500
  points apart) so that a model rated far off, or kept finite by the fit's pseudo-wins, does not
  take over. Ties, counting half, lower every pair's S by much the same factor, which cancels
  when the chances are normalised, so they are left out.
- n is the pair's votes (either seat) plus PSEUDO_VOTES: a pair never voted on counts one vote,
  so its priority is the highest there is, and finite. The priority falls as n ** -1.5,
  so a newcomer's pairs take most draws until they have about as many votes as the others.

Chance = (1 - epsilon) * priority * w_a * w_b / (sum of those) + epsilon / (allowed pairs), with
w the models.yaml weights: weight still says how often a model battles, and every allowed pair
keeps at least epsilon / pairs. A model with weight 0, or disabled, is in no pair: chance 0.

The ratings stay unbiased without inverse-propensity weights. Which pair is drawn depends only on
votes already cast, never on the outcome of the vote about to be cast, so the likelihood of the
outcomes factorises into the Bradley-Terry terms times the design's own probabilities, which do
not involve the ratings: the maximum-likelihood fit of the counts is the same function of the
data as under a fixed design, and stays consistent, with the same intervals. (The paper weights
by inverse propensity because it estimates the win matrix without a model, a quantity that
depends on how pairs were drawn. Where Bradley-Terry fits badly, the fit is the best
Bradley-Terry summary of the pairs voted on, a mix that the weights already change today.)
benchmarks/sampling.py measures the mean of estimate - truth under this design: about 0.

ActiveSampler keeps the chances per process and computes them again in a thread of its own, so a
draw is a bisection, never a fit, and never waits for one.
"""

from __future__ import annotations

import bisect
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from arena.kinds import PairSampling
from arena.ratings import CENTRE, PairCounts, aggregate, bradley_terry, expected_score
from arena.registry import ModelSpec, Registry
from arena.store import Store, VoteFilter

log = logging.getLogger(__name__)

EPSILON = 0.1  # share of the draws spread uniformly over the allowed pairs
PSEUDO_VOTES = 1.0  # votes every pair counts as having: a pair without votes stays finite
MIN_INFORMATION = 0.05  # floor of m (1 - m): about 500 rating points apart
REFRESH_S = 5.0  # a shared sampler asks whether votes came in at most this often
IDLE_S = 60.0  # a refresh thread given nothing to do for this long ends; the next one starts anew
_ANONYMOUS = VoteFilter(anonymous_only=True)
_SYSTEM = random.SystemRandom()


@dataclass(frozen=True)
class PairChances:
    """Every allowed pair (first before second in the weights' order) and its chance."""

    pairs: tuple[tuple[str, str], ...]
    chances: np.ndarray  # sums to 1
    _cumulative: list[float] = field(repr=False, compare=False)

    @classmethod
    def of(cls, pairs: Sequence[tuple[str, str]], chances: np.ndarray) -> PairChances:
        chances = np.asarray(chances, dtype=float) / np.sum(chances)
        return cls(tuple(pairs), chances, np.cumsum(chances).tolist())

    def chance(self, a: str, b: str) -> float:
        """The chance of the pair {a, b} in either order; 0 for a pair that is never drawn."""
        for k, pair in enumerate(self.pairs):
            if pair in ((a, b), (b, a)):
                return float(self.chances[k])
        return 0.0

    def draw(self, rng: random.Random) -> tuple[str, str]:
        """One pair, by its chance, in random left/right order."""
        k = bisect.bisect_right(self._cumulative, rng.random() * self._cumulative[-1])
        first, second = self.pairs[min(k, len(self.pairs) - 1)]
        return (second, first) if rng.random() < 0.5 else (first, second)


def _allowed(weights: Mapping[str, float]) -> tuple[list[str], np.ndarray, tuple[np.ndarray, ...]]:
    names = [m for m, w in weights.items() if w > 0]
    if len(names) < 2:
        raise ValueError(f"two models with weight > 0 are needed to draw a pair, not {len(names)}")
    return names, np.array([weights[m] for m in names], dtype=float), np.triu_indices(len(names), 1)


def _pairs(names: list[str], upper: tuple[np.ndarray, ...]) -> list[tuple[str, str]]:
    return [(names[i], names[j]) for i, j in zip(*upper, strict=True)]


def weighted(weights: Mapping[str, float]) -> PairChances:
    """The chances Registry.draw_pair draws with: the first model by weight, then the second by
    weight among the rest."""
    names, w, (i, j) = _allowed(weights)
    total = w.sum()
    chances = w[i] * w[j] / total * (1 / (total - w[i]) + 1 / (total - w[j]))
    return PairChances.of(_pairs(names, (i, j)), chances)


def priorities(counts: PairCounts, models: Sequence[str]) -> np.ndarray:
    """How much one more vote would narrow each pair's interval, for the pairs (i < j) of
    `models` in order (the module docstring says how)."""
    ratings = bradley_terry(counts)
    rating = np.array([ratings.get(m, CENTRE) for m in models])
    index = {m: k for k, m in enumerate(counts.models)}
    seat = np.array([index.get(m, -1) for m in models])
    i, j = np.triu_indices(len(models), 1)
    votes = np.zeros(len(i))
    known = (seat[i] >= 0) & (seat[j] >= 0)
    votes[known] = counts.battles[seat[i][known], seat[j][known]]
    m = expected_score(rating[i], rating[j])
    spread = 1 / np.sqrt(np.maximum(m * (1 - m), MIN_INFORMATION))  # sqrt(S)
    n = votes + PSEUDO_VOTES
    return spread * (1 / np.sqrt(n) - 1 / np.sqrt(n + 1))


def active(
    weights: Mapping[str, float], counts: PairCounts, epsilon: float = EPSILON
) -> PairChances:
    """The active chances of the pairs of models with weight > 0, from the votes so far."""
    names, w, (i, j) = _allowed(weights)
    gain = priorities(counts, names) * w[i] * w[j]
    chances = (1 - epsilon) * gain / gain.sum() + epsilon / len(gain)
    return PairChances.of(_pairs(names, (i, j)), chances)


@dataclass(frozen=True)
class _Kept:
    chances: PairChances
    version: tuple | None  # None: the last refresh failed
    checked_at: float


class _Background:
    """Runs jobs one at a time on one daemon thread, started with the first job and ended after
    IDLE_S without one, so a sampler that is dropped leaves no thread behind for long. Daemon,
    unlike concurrent.futures' workers (joined at exit): a refresh stuck on the database never
    holds up the process's exit."""

    def __init__(self, name: str):
        self._name = name
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def __call__(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            # Queued after start(): the new thread first blocks in get(), without the GIL. Queued
            # before, it would run the job at once, holding the GIL, and the draw that started it
            # would wait for the GIL up to the 5 ms switch interval.
            self._jobs.put(job)

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:  # a job queued meanwhile is run; else the next one starts a thread
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            try:
                job()
            except Exception:  # noqa: BLE001 - the thread must outlive a job's bug
                log.exception("%s: a background job failed", self._name)


class ActiveSampler:
    """Active pairs for one registry and one store, shared by every session of a process.

    The chances come from the store's maintained counts (Store.pair_counts: no vote is read) and
    are kept with Store.data_version(). A draw only reads what is kept (a bisection, microseconds):
    when the kept chances are older than `refresh_s` it asks for a refresh and goes on with them.
    The refresh runs in the background (`background`: by default one daemon thread of the
    sampler's own), at most one at a time: it asks the version and computes the chances again
    only when it changed (30 to 40 ms with 50 models and 1,000,000 votes on SQLite, too slow
    for a draw). Until the first refresh has kept chances, a draw is by weight: a process's first
    battle or two, not worth a wait. When the database or the fit fails, the draws go on with the
    chances kept, or by weight before there are any, and the next refresh tries again.
    Thread-safe: what is kept is one immutable value, swapped only by the refresh in flight,
    which holds `_refreshing`; the random source is the caller's.
    """

    def __init__(
        self,
        registry: Registry,
        store: Store,
        *,
        epsilon: float = EPSILON,
        refresh_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
        background: Callable[[Callable[[], None]], None] | None = None,
    ):
        self.registry = registry
        self.store = store
        self.epsilon = epsilon
        self.refresh_s = refresh_s
        self._clock = clock
        self._background = background or _Background("active pair sampling")
        self._specs = {s.id: s for s in registry.battle_pool}
        self._weights = {s.id: s.weight for s in registry.battle_pool}
        enough = len(self._weights) >= 2  # else draw() raises the registry's error
        # what is drawn until the first refresh keeps chances, computed here, off the draws' path
        self._by_weight = weighted(self._weights) if enough else None
        # Held by the one refresh in flight: taken by the draw that asks for it, released by the
        # thread that ran it once its result is kept (a Lock, not an RLock, allows that).
        self._refreshing = threading.Lock()
        self._kept: _Kept | None = None

    def chances(self) -> PairChances:
        """The chances kept, at once; a refresh is asked for in the background when it is due."""
        kept = self._kept
        if kept is None or self._clock() - kept.checked_at >= self.refresh_s:
            self._ask_refresh()
            kept = self._kept  # the same, unless `background` ran the refresh at once
        if kept is not None:
            return kept.chances
        return self._by_weight or weighted(self._weights)  # the latter raises: under two models

    def _ask_refresh(self) -> None:
        if not self._refreshing.acquire(blocking=False):
            return  # one is in flight
        try:
            self._background(self._refresh_and_release)
        except RuntimeError as exc:  # no thread could start: this draw goes on, the next asks again
            self._refreshing.release()
            log.warning("active pair sampling: the refresh did not start: %s", exc)

    def _refresh_and_release(self) -> None:
        try:
            self._refresh()
        finally:
            self._refreshing.release()

    def refresh(self) -> None:
        """Refresh now, after the refresh in flight if there is one: for a one-shot command,
        whose only draw would otherwise be by weight. A failure is logged, as in the background."""
        with self._refreshing:
            self._refresh()

    def _refresh(self) -> None:
        if self._by_weight is None:
            return  # no pair to draw: draw() raises the registry's error
        kept = self._kept
        try:
            version = self.store.data_version()
            fresh = kept.chances if kept and kept.version == version else self._compute()
            self._kept = _Kept(fresh, version, self._clock())
        except Exception as exc:  # noqa: BLE001 - a failed refresh must not stop a battle
            how = "from the chances it had" if kept else "by weight"
            log.warning("active pair sampling: %s; drawing %s until the next refresh", exc, how)
            self._kept = _Kept(kept.chances if kept else self._by_weight, None, self._clock())

    def _compute(self) -> PairChances:
        counts = aggregate(self.store.pair_counts(_ANONYMOUS) or [])
        return active(self._weights, counts, self.epsilon)

    def draw(self, rng: random.Random | None = None) -> tuple[ModelSpec, ModelSpec]:
        """Two different models, by their pair's active chance, in random left/right order."""
        rng = rng or _SYSTEM
        if len(self._specs) < 2:
            return self.registry.draw_pair(rng)  # raises the registry's error
        a, b = self.chances().draw(rng)
        return self._specs[a], self._specs[b]


def sampler_for(policy: str, registry: Registry, store: Store) -> ActiveSampler | None:
    """The sampler ARENA_PAIR_SAMPLING asks for; None for weighted (Registry.draw_pair)."""
    if PairSampling(policy) is PairSampling.ACTIVE:
        return ActiveSampler(registry, store)
    return None
