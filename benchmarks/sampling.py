"""Active vs weighted pair sampling (ARENA_PAIR_SAMPLING), simulated, and the draw's latency.

    python benchmarks/sampling.py [--seeds 20] [--bias-seeds 200] [--quick] [--no-latency]
                                  [--latency-only] [--votes 1000000] [--models 50] [--db PATH]

Simulated voters follow Bradley-Terry with ties: the left answer wins with p - t/2, ties with
t = 0.3 * 4p(1 - p) (30 % between equals, fewer when one is far ahead), loses otherwise, so a
vote's expected score is p = 1 / (1 + 10 ** ((R_b - R_a) / 400)) and the true ratings are what
the fit estimates. Ratings are drawn per seed from 1000 +- 150, like a real leaderboard. The two
policies run the app's own code: weighted is Registry.draw_pair (every weight 1), active draws
from arena.pairing.active, recomputed every REFRESH votes as a shared sampler would be. Every
CHECK votes the plain fit with its sandwich intervals (arena.ratings) says whether to stop:
- newcomer: an arena of 10 (and 20) models with 5,000 votes drawn by weight gets a new model;
  votes until the newcomer's 95 % interval is narrower than +-25 points (target: active needs at
  least 40 % fewer);
- static: 10 and 30 models from no votes; votes until every interval is that narrow (target:
  active within 5 % of weighted).
Figures are medians over the seeds; seed k draws the same true ratings for both policies.

Bias: the mean over seeds of (estimate - truth), truth centred like the fit, with its standard
error: for the newcomer, and for the best and the worst model of a static arena; then, over
--bias-seeds runs at a fixed budget (no stopping rule), the newcomer's and every model's.

Latency (--latency-only: this part alone): --votes votes among --models models imported into a
fresh SQLite file (as benchmarks/leaderboard_1m.py does; --db keeps and reuses it), then
arena.pairing.ActiveSampler: a draw from kept chances; a process's first draw (by weight, and it
starts the first refresh); draws, about one a millisecond for LATENCY_S, while another thread
records 20 votes/s the way the page does, so that the sampler's refreshes (refresh_s 0.25 s)
keep computing in the background; and the time of those refreshes, taken in the thread that
runs them, apart from the draws.
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arena import pairing  # noqa: E402
from arena.ratings import ALPHA, PairCounts  # noqa: E402
from arena.ratings.bt import _fit, _to_ratings  # noqa: E402
from arena.ratings.sandwich import sandwich_bounds  # noqa: E402
from arena.registry import Registry, TransformersSpec  # noqa: E402

TIES = 0.3  # tie chance between equal models
SPREAD = 150.0  # sd of the true ratings
TARGET = 25.0  # interval half-width to reach, rating points
PRIOR_VOTES = 5000  # the newcomer's arena before it joins
REFRESH = 50  # votes between two computations of the active chances
CHECK = 50  # votes between two looks at the intervals
MAX_VOTES = 400_000  # a run that gets here stops (it would be reported as this many)
BIAS_BUDGET = 1000  # votes after the newcomer joins, for the fixed-budget bias check
LATENCY_S = 20.0  # how long votes keep arriving while the sampler draws
VOTE_EVERY_S = 0.05  # one vote per 50 ms: 20 votes/s, a busy arena
DRAW_EVERY_S = 0.001  # a draw per millisecond, as battles start
BUSY_REFRESH_S = 0.25  # the sampler's refresh_s meanwhile (5 s in the app): 80 refreshes in 20 s


def names(n: int) -> tuple[str, ...]:
    return tuple(f"m{i:02d}" for i in range(n))


@functools.cache
def registry(n: int) -> Registry:
    specs = tuple(TransformersSpec(backend="transformers", id=m, model="x") for m in names(n))
    return Registry(path=Path("simulated.yaml"), specs=specs)


class Arena:
    """True ratings, the vote counts so far, and the voters who add to them."""

    def __init__(self, true: np.ndarray, rng: np.random.Generator):
        self.true = true
        self.rng = rng
        self.models = names(len(true))
        self.index = {m: i for i, m in enumerate(self.models)}
        self.counts = np.zeros((4, len(true), len(true)), dtype=np.int64)

    def vote(self, left: np.ndarray, right: np.ndarray) -> None:
        p = expit(ALPHA * (self.true[left] - self.true[right]))
        tie = TIES * 4 * p * (1 - p)
        u = self.rng.random(len(left))
        code = np.where(u < p - tie / 2, 0, np.where(u < p + tie / 2, 2, 1))
        np.add.at(self.counts, (code, left, right), 1)

    def pair_counts(self, n: int | None = None) -> PairCounts:
        n = len(self.models) if n is None else n
        return PairCounts(self.models[:n], self.counts[:, :n, :n])

    def fit(self) -> tuple[np.ndarray, np.ndarray]:
        """(ratings, 95 % half-widths) of the plain fit with sandwich intervals."""
        counts = self.pair_counts()
        fit = _fit(counts)
        lower, upper = sandwich_bounds(counts, fit)
        return _to_ratings(fit, fit.theta, None), (upper - lower) / 2

    def truth(self) -> np.ndarray:
        return self.true - self.true.mean() + 1000.0


class Policy:
    """Draws `k` pairs (left, right indices) for an arena of its first `n` models."""

    def __init__(self, name: str, seed: int):
        self.name = name
        self.rng = random.Random(seed)

    def draw(self, arena: Arena, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.name == "weighted":
            reg = registry(n)
            pairs = [reg.draw_pair(self.rng) for _ in range(k)]
            ids = [(a.id, b.id) for a, b in pairs]
        else:
            chances = pairing.active(dict.fromkeys(arena.models[:n], 1.0), arena.pair_counts(n))
            ids = [chances.draw(self.rng) for _ in range(k)]
        left, right = zip(*((arena.index[a], arena.index[b]) for a, b in ids), strict=True)
        return np.array(left), np.array(right)


def prior_votes(arena: Arena, n: int, seed: int) -> None:
    """PRIOR_VOTES votes among the first n models, drawn by weight."""
    left, right = Policy("weighted", 10_000 + seed).draw(arena, n, PRIOR_VOTES)
    arena.vote(left, right)


def newcomer(policy: str, old: int, seed: int, budget: int | None = None):
    """Votes after a newcomer joins `old` models until its interval is narrow enough (or, with
    a budget, exactly that many); (votes, estimate - truth for every model)."""
    rng = np.random.default_rng(seed)
    arena = Arena(rng.normal(1000, SPREAD, old + 1), rng)
    prior_votes(arena, old, seed)
    drawer = Policy(policy, seed)
    votes = 0
    while votes < (budget or MAX_VOTES):
        arena.vote(*drawer.draw(arena, old + 1, REFRESH))
        votes += REFRESH
        if budget is None and votes % CHECK == 0:
            ratings, half = arena.fit()
            if half[-1] < TARGET:
                return votes, ratings - arena.truth()
    ratings, _ = arena.fit()
    return votes, ratings - arena.truth()


def static(policy: str, n: int, seed: int):
    """Votes until every model's interval is narrow enough; (votes, estimate - truth)."""
    rng = np.random.default_rng(seed)
    arena = Arena(rng.normal(1000, SPREAD, n), rng)
    drawer = Policy(policy, seed)
    votes = 0
    while votes < MAX_VOTES:
        arena.vote(*drawer.draw(arena, n, REFRESH))
        votes += REFRESH
        if votes >= 10 * n and votes % CHECK == 0:
            ratings, half = arena.fit()
            if half.max() < TARGET:
                break
    ratings, _ = arena.fit()
    return votes, ratings - arena.truth(), np.argsort(arena.true)


def mean_se(x) -> str:
    x = np.asarray(x, dtype=float)
    se = x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return f"{x.mean():+6.2f} +- {se:4.2f}"


@dataclass
class Row:
    label: str
    weighted: float
    active: float
    goal: str  # "fewer" (at least 40 % fewer) or "same" (within 5 %)
    bias: dict

    @property
    def reduction(self) -> float:
        return 100 * (1 - self.active / self.weighted)

    @property
    def met(self) -> bool:
        return self.reduction >= 40 if self.goal == "fewer" else self.reduction >= -5


def simulate(seeds: int) -> list[Row]:
    rows = []
    for old in (10, 20):
        start = time.perf_counter()
        found = {p: [newcomer(p, old, s) for s in range(seeds)] for p in ("weighted", "active")}
        median = {p: float(np.median([v for v, _ in r])) for p, r in found.items()}
        bias = {p: {"newcomer": mean_se([e[-1] for _, e in r])} for p, r in found.items()}
        label = f"newcomer joins {old} models with {PRIOR_VOTES:,} votes"
        rows.append(Row(label, median["weighted"], median["active"], "fewer", bias))
        print(f"  ({label}: {time.perf_counter() - start:.0f} s)", flush=True)
    for n in (10, 30):
        start = time.perf_counter()
        found = {p: [static(p, n, s) for s in range(seeds)] for p in ("weighted", "active")}
        median = {p: float(np.median([v for v, *_ in r])) for p, r in found.items()}
        bias = {
            p: {
                "best": mean_se([e[order[-1]] for _, e, order in r]),
                "worst": mean_se([e[order[0]] for _, e, order in r]),
            }
            for p, r in found.items()
        }
        label = f"static arena of {n} models, from no votes"
        rows.append(Row(label, median["weighted"], median["active"], "same", bias))
        print(f"  ({label}: {time.perf_counter() - start:.0f} s)", flush=True)
    return rows


def report(rows: list[Row], seeds: int) -> None:
    print(f"\nvotes to +-{TARGET:g} points, median over {seeds} seeds:")
    print(f"  {'scenario':<44} {'weighted':>9} {'active':>9} {'fewer':>7}  target")
    for r in rows:
        goal = ">= 40 % fewer" if r.goal == "fewer" else "no worse than -5 %"
        verdict = "met" if r.met else "NOT MET"
        print(
            f"  {r.label:<44} {r.weighted:>9,.0f} {r.active:>9,.0f} {r.reduction:>6.1f}%"
            f"  {goal}: {verdict}"
        )
    print("\nbias at the stop, mean (estimate - truth) +- standard error, rating points:")
    for r in rows:
        for policy in ("weighted", "active"):
            parts = ", ".join(f"{k} {v}" for k, v in r.bias[policy].items())
            print(f"  {r.label:<44} {policy:<9} {parts}")


def bias_check(seeds: int) -> None:
    """The newcomer scenario (10 models) at a fixed budget, without the stopping rule."""
    print(
        f"\nbias at a fixed budget ({BIAS_BUDGET} votes after a newcomer joins 10 models), "
        f"{seeds} seeds:"
    )
    for policy in ("weighted", "active"):
        errors = np.array([newcomer(policy, 10, 1000 + s, BIAS_BUDGET)[1] for s in range(seeds)])
        z = errors.mean(axis=0) / (errors.std(axis=0, ddof=1) / np.sqrt(seeds))
        print(
            f"  {policy:<9} newcomer {mean_se(errors[:, -1])}; every model: largest "
            f"|mean / standard error| {np.abs(z).max():.2f} of {errors.shape[1]}, "
            f"spread of the errors {errors.std():.1f} points"
        )


class TimedSampler(pairing.ActiveSampler):
    """The app's sampler, timing each refresh in the thread that runs it: (milliseconds, whether
    it computed the chances, i.e. saw new votes)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.refreshes: list[tuple[float, bool]] = []
        self._computed = False

    def _refresh(self) -> None:
        start = time.perf_counter_ns()
        self._computed = False
        super()._refresh()
        self.refreshes.append(((time.perf_counter_ns() - start) / 1e6, self._computed))

    def _compute(self):
        self._computed = True
        return super()._compute()


def latency(votes: int, models: int, db: Path | None) -> None:
    from leaderboard_1m import synthetic_csv

    from arena.config import LIMITS, Settings
    from arena.store import Store
    from arena.store.transfer import import_file

    with tempfile.TemporaryDirectory() as tmp:
        path = db or Path(tmp) / "votes.db"
        settings = Settings(db_url=f"sqlite:///{path}", **dict.fromkeys(LIMITS, 0))
        store = Store.open(settings)
        if store.data_version()[0] == 0:
            csv_path = Path(tmp) / "votes.csv"
            synthetic_csv(csv_path, votes, models, seed=0)
            start = time.perf_counter()
            import_file(store, csv_path)
            print(f"  imported {votes:,} votes in {time.perf_counter() - start:.1f} s")
        print(f"  {store.data_version()[0]:,} votes among {models} models in {path.name}")
        specs = tuple(
            TransformersSpec(backend="transformers", id=f"model-{i:02d}", model="x")
            for i in range(models)
        )
        reg = Registry(path=Path("bench.yaml"), specs=specs)
        rng = random.Random(0)

        firsts, cold = [], []
        for _ in range(10):  # a fresh sampler: its first draw is by weight and starts the refresh
            sampler = TimedSampler(reg, store)
            firsts.append(timed_draw(sampler, rng))
            sampler.refresh()  # waits for that refresh, then asks the version once more
            cold.append(sampler.refreshes[0][0])
        warm = pairing.ActiveSampler(reg, store, refresh_s=3600.0)
        warm.refresh()
        start = time.perf_counter()
        hits = [timed_draw(warm, rng) for _ in range(100_000)]
        rate = len(hits) / (time.perf_counter() - start)
        busy, refreshes, written = while_votes_arrive(store, settings, reg, rng)
        computed = [ms for ms, new in refreshes if new]
        print(f"  draw, kept chances (no refresh due): {summary(hits, 5)}; {rate:,.0f} draws/s")
        print(f"  a process's first draw (by weight):  {summary(firsts, 5)}")
        print(
            f"  draws while {written:,} votes arrived over {LATENCY_S:g} s (one draw per "
            f"{1000 * DRAW_EVERY_S:g} ms, refresh_s {BUSY_REFRESH_S:g}): {summary(busy, 5)}, "
            f"{len(busy):,} draws"
        )
        print(
            f"  background refresh that saw votes:   {summary(computed)}, {len(computed)} of "
            f"{len(refreshes)} refreshes (the others asked data_version alone)"
        )
        print(f"  background refresh, a fresh sampler: {summary(cold)}")
        parts(store, reg)
        store.engine.dispose()


def while_votes_arrive(store, settings, reg, rng) -> tuple[list[float], list, int]:
    """Draws, timed, while another thread records votes the way the page does (battle, turn,
    vote), so that the sampler's refreshes keep finding new votes and computing in the
    background; (draw milliseconds, the background refreshes, votes written)."""
    sampler = TimedSampler(reg, store, refresh_s=BUSY_REFRESH_S)
    sampler.refresh()  # kept chances to start from, as in a process that has run a while
    sampler.refreshes.clear()
    stop = threading.Event()
    written = []
    writer = threading.Thread(target=keep_voting, args=(store, settings, reg, stop, written))
    writer.start()
    draws = []
    end = time.perf_counter() + LATENCY_S
    while time.perf_counter() < end:
        draws.append(timed_draw(sampler, rng))
        time.sleep(DRAW_EVERY_S)
    stop.set()
    writer.join()
    sampler.refresh()  # after the refresh in flight, if any: its time is counted
    return draws, sampler.refreshes[:-1], len(written)  # this one's is not


def keep_voting(store, settings, reg, stop: threading.Event, written: list) -> None:
    from arena.battle import SideResult
    from arena.images import check_image
    from arena.kinds import Mode, Outcome, Requester

    image = check_image(png(), settings)
    answer = SideResult("An answer.", ttft=0.001, total=0.002, tokens=2)
    me = Requester(session_id="bench", voter_id="session:bench", client_key="bench")
    rng = random.Random(1)
    ids = [s.id for s in reg.battle_pool]
    while not stop.wait(VOTE_EVERY_S):
        a, b = rng.sample(ids, 2)
        bid = store.start_battle(
            mode=Mode.ANONYMOUS, model_a=a, model_b=b, image=image, requester=me
        )
        store.add_turn(bid, "What is in the image?", answer, answer)
        store.record_vote(bid, rng.choice(list(Outcome)), me)
        written.append(bid)


def png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (40, 80, 120)).save(buf, "PNG")
    return buf.getvalue()


def timed_draw(sampler, rng) -> float:
    start = time.perf_counter_ns()
    sampler.draw(rng)
    return (time.perf_counter_ns() - start) / 1e6


def summary(ms: list[float], target: float | None = None) -> str:
    p50, p99 = np.percentile(ms, [50, 99])
    verdict = "" if target is None else (" ok" if max(ms) <= target else f" OVER {target:g} ms")
    return f"median {p50:7.3f} ms, p99 {p99:7.3f} ms, max {max(ms):7.3f} ms{verdict}"


def parts(store, reg) -> None:
    from arena.ratings import aggregate
    from arena.store import VoteFilter

    def best_of(fn, times=5):
        seconds = []
        for _ in range(times):
            start = time.perf_counter()
            out = fn()
            seconds.append(time.perf_counter() - start)
        return out, 1000 * min(seconds)

    rows, read_ms = best_of(lambda: store.pair_counts(VoteFilter()))
    counts, agg_ms = best_of(lambda: aggregate(rows))
    weights = {s.id: s.weight for s in reg.battle_pool}
    _, fit_ms = best_of(lambda: pairing.active(weights, counts))
    _, version_ms = best_of(store.data_version)
    print(
        f"  miss, its parts (best of 5): data_version {version_ms:.2f} ms, pair_counts "
        f"({len(rows):,} rows) {read_ms:.2f} ms, aggregate {agg_ms:.2f} ms, fit and chances "
        f"{fit_ms:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--bias-seeds", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="5 seeds, 40 bias seeds, 100k votes")
    parser.add_argument("--no-latency", dest="latency", action="store_false")
    parser.add_argument("--latency-only", action="store_true", help="the draw's latency alone")
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--db", type=Path, help="SQLite file for the latency part, kept and reused")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.bias_seeds, args.votes = 5, 40, 100_000
    start = time.perf_counter()
    if args.latency_only:
        print(f"draw latency, {args.votes:,} votes among {args.models} models (SQLite):")
        latency(args.votes, args.models, args.db)
        return
    print(f"simulation: epsilon {pairing.EPSILON}, refresh every {REFRESH} votes", flush=True)
    rows = simulate(args.seeds)
    report(rows, args.seeds)
    if args.bias_seeds:
        bias_check(args.bias_seeds)
    if args.latency:
        print(f"\ndraw latency, {args.votes:,} votes among {args.models} models (SQLite):")
        latency(args.votes, args.models, args.db)
    met = all(r.met for r in rows)
    print(
        f"\nboth targets {'met' if met else 'NOT met'}; {time.perf_counter() - start:.0f} s in all"
    )


if __name__ == "__main__":
    main()
