"""Active pair sampling (arena.pairing): the chances it gives, the models it never draws, and the
shared sampler that reads the store's maintained counts and keeps its chances between votes.
The store runs on a real SQLite file and on the real PostgreSQL server."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations

import numpy as np
import pytest
from sqlalchemy import text

from arena import pairing
from arena.battle import flow
from arena.config import Settings
from arena.errors import ConfigError, RegistryError
from arena.images import check_image
from arena.kinds import Mode, Outcome
from arena.ratings import aggregate
from arena.registry import load_registry
from arena.store import VoteFilter
from arena.store.transfer import import_file
from tests.conftest import png_bytes
from tests.stored import answered_battle, votes_in_order
from tests.test_store import OK_A, OK_B

OLD = ["m0", "m1", "m2", "m3"]


def rows_between(models, per_pair: int, split=(0.5, 0.3, 0.2)) -> list[tuple]:
    """Count rows: every pair of `models` with `per_pair` votes, won/lost/tied by `split`."""
    wins, losses, ties = (round(per_pair * s) for s in split)
    rows = []
    for a, b in combinations(models, 2):
        rows += [(a, b, "model_a", wins), (a, b, "model_b", losses), (a, b, "tie", ties)]
    return rows


def unit(models) -> dict[str, float]:
    return dict.fromkeys(models, 1.0)


COUNTS = {
    "no votes at all": ([], unit(OLD)),
    "every pair voted on": (rows_between(OLD, 40), unit(OLD)),
    "a newcomer": (rows_between(OLD, 40), unit([*OLD, "new"])),
    "uneven weights": (rows_between(OLD, 40), {"m0": 3.0, "m1": 1.0, "m2": 0.5, "m3": 0.1}),
    "one model never won": (
        [("m0", "m1", "model_a", 9), ("m0", "m2", "model_a", 5), ("m1", "m2", "tie", 4)],
        unit(["m0", "m1", "m2"]),
    ),
    "two groups that never met": (
        [("m0", "m1", "model_a", 9), ("m2", "m3", "model_b", 7)],
        unit(OLD),
    ),
    "votes of a model no longer in the registry": (rows_between([*OLD, "gone"], 30), unit(OLD)),
}


@pytest.mark.parametrize("rows,weights", COUNTS.values(), ids=COUNTS.keys())
def test_chances_sum_to_one_and_every_allowed_pair_keeps_epsilon(rows, weights):
    chances = pairing.active(weights, aggregate(rows))
    allowed = [m for m, w in weights.items() if w > 0]
    assert sorted(map(sorted, chances.pairs)) == sorted(map(sorted, combinations(allowed, 2)))
    assert np.isfinite(chances.chances).all()
    assert chances.chances.sum() == pytest.approx(1.0, abs=1e-12)
    assert chances.chances.min() >= pairing.EPSILON / len(chances.pairs) - 1e-15


@pytest.mark.parametrize("epsilon", [0.0, 0.05, 0.2, 1.0])
def test_epsilon_is_the_uniform_share(epsilon):
    chances = pairing.active(unit([*OLD, "new"]), aggregate(rows_between(OLD, 40)), epsilon)
    assert chances.chances.min() >= epsilon / len(chances.pairs) - 1e-15
    if epsilon == 1.0:
        assert np.allclose(chances.chances, 1 / len(chances.pairs))


@pytest.mark.parametrize("per_pair", [10, 40, 200])
def test_a_new_model_without_votes_gets_most_of_the_draws(per_pair):
    chances = pairing.active(unit([*OLD, "new"]), aggregate(rows_between(OLD, per_pair)))
    newcomer = sum(chances.chance("new", m) for m in OLD)
    assert newcomer > 0.8  # 4 of its 10 pairs: 0.4 by weight alone
    assert chances.chance("new", "m0") > 10 * chances.chance("m0", "m1")


def test_a_pair_without_votes_has_the_highest_finite_priority():
    rows = [r for r in rows_between(OLD, 40) if {r[0], r[1]} != {"m0", "m1"}]
    priority = pairing.priorities(aggregate(rows), OLD)  # pairs in order (m0, m1) first
    assert np.isfinite(priority).all() and priority.argmax() == 0


def test_fewer_votes_mean_a_higher_chance():
    rows = rows_between(OLD, 40) + [("m2", "m3", "tie", 60)]
    chances = pairing.active(unit(OLD), aggregate(rows))
    assert chances.chance("m2", "m3") < chances.chance("m0", "m1")


def test_weights_scale_the_active_part():
    even = pairing.active(unit(OLD), aggregate(rows_between(OLD, 40)))
    heavy = pairing.active({**unit(OLD), "m0": 3.0}, aggregate(rows_between(OLD, 40)))
    assert heavy.chance("m0", "m1") > even.chance("m0", "m1")
    assert heavy.chance("m2", "m3") < even.chance("m2", "m3")


@pytest.mark.parametrize("policy", [pairing.active, pairing.weighted])
def test_a_model_with_weight_zero_is_in_no_pair(policy):
    args = (aggregate(rows_between(OLD, 40)),) if policy is pairing.active else ()
    chances = policy({**unit(OLD), "m2": 0.0}, *args)
    assert all("m2" not in pair for pair in chances.pairs)
    assert chances.chance("m2", "m0") == 0.0


def test_the_weighted_chances_are_what_draw_pair_draws(tmp_path):
    registry = load_registry(write_registry(tmp_path))
    rng = random.Random(3)
    drawn = Counter(frozenset(s.id for s in registry.draw_pair(rng)) for _ in range(20_000))
    chances = pairing.weighted({s.id: s.weight for s in registry.battle_pool})
    for (a, b), chance in zip(chances.pairs, chances.chances, strict=True):
        assert drawn[frozenset((a, b))] / 20_000 == pytest.approx(chance, abs=0.012), (a, b)


def test_draws_follow_the_chances_in_random_order():
    chances = pairing.PairChances.of([("a", "b"), ("a", "c"), ("b", "c")], np.array([6, 3, 1]))
    rng = random.Random(0)
    drawn = [chances.draw(rng) for _ in range(20_000)]
    pairs = Counter(frozenset(d) for d in drawn)
    assert pairs[frozenset("ab")] / 20_000 == pytest.approx(0.6, abs=0.015)
    assert pairs[frozenset("bc")] / 20_000 == pytest.approx(0.1, abs=0.01)
    left = Counter(a for a, _ in drawn if {a, _} == {"a", "b"})
    assert 0.47 < left["a"] / pairs[frozenset("ab")] < 0.53


def test_two_models_are_needed():
    with pytest.raises(ValueError, match="two models with weight > 0"):
        pairing.active({"m0": 1.0, "m1": 0.0}, aggregate([]))


# ----- the shared sampler, on a real store ---------------------------------------------------

REGISTRY = """models:
  - {id: m0, model: x}
  - {id: m1, model: x, weight: 2}
  - {id: m2, model: x}
  - {id: m3, model: x}
  - {id: new, model: x}
  - {id: weightless, model: x, weight: 0}
  - {id: switched-off, model: x, enabled: false}
"""


def write_registry(tmp_path, text: str = REGISTRY):
    path = tmp_path / "models.yaml"
    path.write_text(text)
    return path


def import_votes(store, tmp_path, rows, anonymous=True) -> None:
    """Votes through the real import (the triggers count them in vote_counts)."""
    records = [
        {"model_a": a, "model_b": b, "winner": w, "tstamp": 1.7e9 + k, "anony": anonymous}
        for k, (a, b, w) in enumerate((a, b, w) for a, b, w, n in rows for _ in range(n))
    ]
    path = tmp_path / f"votes-{anonymous}.json"
    path.write_text(json.dumps(records))
    import_file(store, path)


class Clock:
    """A clock the test moves: the sampler's refresh waits on it, not on real seconds."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def inline(job) -> None:
    """A sampler's `background` that runs the refresh where the draw asks for it, so that a test
    of when refreshes are due sees each one done before the draw returns."""
    job()


def eventually(condition, timeout_s: float = 10.0):
    """Polls `condition` every millisecond until it holds (the background refresh takes
    milliseconds; the bound is for a loaded machine) and returns its value."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"not within {timeout_s:g} s"
        time.sleep(0.001)
    return value


def replaced(sampler, old):
    """The sampler's chances once a background refresh has kept others than `old`."""
    return eventually(lambda: (chances := sampler.chances()) is not old and chances)


class HeldStore:
    """The real store, except that pair_counts waits until the test sets `go`, and that it counts
    the store's calls and how many run at once. It exists because a real store cannot be made
    slow on cue, nor say how often it was asked; every answer still comes from the real SQLite
    or PostgreSQL store underneath."""

    def __init__(self, store):
        self.store = store
        self.go = threading.Event()
        self.entered = threading.Event()  # pair_counts was called
        self.calls = Counter()
        self.inside = self.most_inside = 0
        self._lock = threading.Lock()

    def _call(self, name, fn, *args):
        with self._lock:
            self.calls[name] += 1
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            return fn(*args)
        finally:
            with self._lock:
                self.inside -= 1

    def data_version(self):
        return self._call("data_version", self.store.data_version)

    def pair_counts(self, which):
        def held():
            self.entered.set()
            assert self.go.wait(10), "the test never let pair_counts go"
            return self.store.pair_counts(which)

        return self._call("pair_counts", held)


def new_vote(store, settings, model_a="new", model_b="m1", outcome=Outcome.A) -> None:
    bid = answered_battle(
        store, mode=Mode.ANONYMOUS, model_a=model_a, model_b=model_b,
        image=check_image(png_bytes(), settings), prompt="?", result_a=OK_A, result_b=OK_B,
    )  # fmt: skip
    store.record_vote(bid, outcome)


@pytest.fixture
def voted(store, tmp_path):
    import_votes(store, tmp_path, rows_between(OLD, 20))
    import_votes(store, tmp_path, rows_between(["m0", "new"], 50), anonymous=False)  # named
    return store


def test_the_sampler_uses_the_maintained_anonymous_counts(voted, tmp_path):
    registry = load_registry(write_registry(tmp_path))
    sampler = pairing.ActiveSampler(registry, voted)
    sampler.refresh()  # what a one-shot command does before its only draw
    counted = Counter()
    for a, b, winner, _ in votes_in_order(voted):  # the slow, obvious way
        counted[a, b, winner] += 1
    expected = pairing.active(
        {s.id: s.weight for s in registry.battle_pool},
        aggregate((a, b, w, n) for (a, b, w), n in counted.items()),
    )
    chances = sampler.chances()
    assert chances.pairs == expected.pairs
    assert np.allclose(chances.chances, expected.chances)
    assert sum(chances.chance("new", m) for m in OLD) > 0.8  # its named votes do not count


def test_the_sampler_keeps_its_chances_until_votes_come_in_and_the_refresh_is_due(
    voted, tmp_path, settings
):
    clock = Clock()
    registry = load_registry(write_registry(tmp_path))
    sampler = pairing.ActiveSampler(registry, voted, refresh_s=5.0, clock=clock, background=inline)
    first = sampler.chances()
    sampler.draw(random.Random(0))
    assert sampler.chances() is first  # a second draw does not refit
    clock.now = 6.0
    assert sampler.chances() is first  # due, but no new vote: the version says so, no refit
    new_vote(voted, settings)
    clock.now = 10.0
    assert sampler.chances() is first  # a new vote, but the last check was 4 s ago
    clock.now = 11.5
    again = sampler.chances()
    assert again is not first
    assert again.chance("new", "m1") < first.chance("new", "m1")


def test_a_draw_never_waits_for_a_slow_refresh(voted, tmp_path, settings):
    held = HeldStore(voted)
    clock = Clock()
    registry = load_registry(write_registry(tmp_path))
    sampler = pairing.ActiveSampler(registry, held, clock=clock)
    rng = random.Random(0)
    by_weight = sampler.chances()  # nothing kept yet: by weight, and the first refresh starts
    assert held.entered.wait(10)  # it is held in pair_counts, for up to 10 s
    start = time.monotonic()
    assert all(sampler.draw(rng) and sampler.chances() is by_weight for _ in range(200))
    assert time.monotonic() - start < 1.0
    weights = {s.id: s.weight for s in registry.battle_pool}
    assert np.allclose(by_weight.chances, pairing.weighted(weights).chances)
    held.go.set()
    first = replaced(sampler, by_weight)

    held.go.clear()
    held.entered.clear()
    new_vote(voted, settings)
    clock.now = 6.0  # due: the draw asks for a refresh, which sees the vote and is held again
    assert sampler.chances() is first
    assert held.entered.wait(10)
    start = time.monotonic()
    assert all(sampler.draw(rng) and sampler.chances() is first for _ in range(200))
    assert time.monotonic() - start < 1.0
    held.go.set()
    assert replaced(sampler, first).chance("new", "m1") < first.chance("new", "m1")
    assert held.calls == Counter(data_version=2, pair_counts=2)


def test_new_votes_reach_the_chances_through_a_background_refresh(voted, tmp_path, settings):
    registry = load_registry(write_registry(tmp_path))
    sampler = pairing.ActiveSampler(registry, voted, refresh_s=0.05)  # the real clock
    first = replaced(sampler, sampler.chances())  # the first refresh replaces the weights
    for _ in range(5):
        new_vote(voted, settings)
    again = replaced(sampler, first)
    assert again.chance("new", "m1") < first.chance("new", "m1")


def test_one_refresh_at_a_time_however_many_threads_draw(voted, tmp_path):
    held = HeldStore(voted)
    started = []

    def thread_each(job):  # a thread per refresh: the sampler itself must keep them to one
        started.append(threading.Thread(target=job))
        started[-1].start()

    registry = load_registry(write_registry(tmp_path))
    sampler = pairing.ActiveSampler(registry, held, clock=Clock(), background=thread_each)
    by_weight = sampler.chances()  # nothing kept: every draw finds a refresh due
    assert held.entered.wait(10)

    def draws(seed):
        rng = random.Random(seed)
        return [sampler.draw(rng) for _ in range(50)]

    with ThreadPoolExecutor(8) as pool:
        drawn = [pair for some in pool.map(draws, range(8)) for pair in some]
    assert len(drawn) == 400 and all(a.id != b.id for a, b in drawn)
    assert len(started) == 1 and held.calls == Counter(data_version=1, pair_counts=1)
    held.go.set()
    replaced(sampler, by_weight)
    started[0].join(10)
    assert len(started) == 1 and held.most_inside == 1


def test_the_sampler_never_draws_weight_zero_or_disabled_models(voted, tmp_path):
    registry = load_registry(write_registry(tmp_path))
    sampler = pairing.ActiveSampler(registry, voted)
    rng = random.Random(1)
    drawn = [sampler.draw(rng) for _ in range(3000)]
    seen = Counter(s.id for pair in drawn for s in pair)
    assert all(a.id != b.id for a, b in drawn)
    assert set(seen) == {"m0", "m1", "m2", "m3", "new"}
    assert (
        0.45 < Counter(a.id for a, _ in drawn)["new"] / seen["new"] < 0.55
    )  # left/right at random


def test_the_sampler_is_shared_by_threads(voted, tmp_path):
    registry = load_registry(write_registry(tmp_path))
    sampler = pairing.ActiveSampler(registry, voted, refresh_s=0.0)  # every draw asks the store
    errors, drawn = [], []

    def draw(seed):
        try:
            rng = random.Random(seed)
            drawn.extend(tuple(s.id for s in sampler.draw(rng)) for _ in range(30))
        except Exception as exc:  # noqa: BLE001 - the test reports it below
            errors.append(exc)

    threads = [threading.Thread(target=draw, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(drawn) == 180
    assert all(a != b and {a, b} <= {"m0", "m1", "m2", "m3", "new"} for a, b in drawn)


def test_pick_models_draws_anonymous_pairs_from_the_sampler(voted, tmp_path):
    registry = load_registry(write_registry(tmp_path))
    sampler = pairing.ActiveSampler(registry, voted)
    sampler.refresh()  # else the first draws, before the background's first refresh, are by weight
    pairs = [flow.pick_models(registry, Mode.ANONYMOUS, sampler=sampler) for _ in range(200)]
    assert sum("new" in (a.id, b.id) for a, b in pairs) > 150  # by weight alone: about 80
    named = flow.pick_models(registry, Mode.NAMED, ("m2", "m3"), sampler=sampler)
    assert [s.id for s in named] == ["m2", "m3"]


def test_a_failing_database_leaves_the_draws_going_with_the_chances_kept(voted, tmp_path, caplog):
    clock = Clock()
    registry = load_registry(write_registry(tmp_path))
    sampler = pairing.ActiveSampler(registry, voted, clock=clock)
    sampler.refresh()
    first = sampler.chances()
    with voted.engine.begin() as conn:  # data_version and pair_counts fail from now on
        conn.execute(text("DROP TABLE vote_counts"))
    clock.now = 10.0
    assert sampler.draw(random.Random(0))[0].id in {"m0", "m1", "m2", "m3", "new"}  # asks
    eventually(lambda: "drawing from the chances it had until the next refresh" in caplog.text)
    assert sampler.chances() is first
    fresh = pairing.ActiveSampler(registry, voted)
    by_weight = fresh.chances()  # nothing kept yet: by weight, and its first refresh fails
    eventually(lambda: "drawing by weight until the next refresh" in caplog.text)
    assert fresh.chances() is by_weight
    weights = {s.id: s.weight for s in registry.battle_pool}
    assert np.allclose(by_weight.chances, pairing.weighted(weights).chances)


def test_a_pool_of_one_is_the_registrys_error(store, tmp_path):
    registry = load_registry(
        write_registry(
            tmp_path, "models:\n  - {id: a, model: x}\n  - {id: b, model: x, weight: 0}\n"
        )
    )
    with pytest.raises(RegistryError, match="at least two enabled models with weight > 0"):
        pairing.ActiveSampler(registry, store).draw()


def test_pair_counts_are_not_kept_for_a_date_filter(store):
    from datetime import UTC, datetime

    assert store.pair_counts(VoteFilter(since=datetime(2024, 1, 1, tzinfo=UTC))) is None
    assert store.pair_counts(VoteFilter()) == []


# ----- the setting ------------------------------------------------------------------------------


@pytest.mark.parametrize("raw,policy", [("weighted", None), ("active", pairing.ActiveSampler)])
def test_the_setting_picks_the_sampler(raw, policy, store, tmp_path):
    settings = Settings.from_env({"ARENA_PAIR_SAMPLING": raw})
    sampler = pairing.sampler_for(
        settings.pair_sampling, load_registry(write_registry(tmp_path)), store
    )
    assert sampler is None if policy is None else isinstance(sampler, policy)


@pytest.mark.parametrize("raw", ["smart", "Active", "active ", "uniform", "1"])
def test_the_setting_refuses_other_values_in_one_line(raw):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"ARENA_PAIR_SAMPLING": raw})
    assert str(error.value) == (
        f"Setting ARENA_PAIR_SAMPLING={raw!r} is invalid: expected one of weighted, active."
    )
    with pytest.raises(ConfigError, match="expected one of weighted, active"):
        Settings(pair_sampling=raw)
