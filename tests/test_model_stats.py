"""Per-model figures from the stored battles (arena.store.model_stats), on a real SQLite file and
on the real PostgreSQL server: battles, turns and votes are written the way the page writes them."""

from __future__ import annotations

import pytest

from arena.battle.sides import SideResult
from arena.images import check_image
from arena.kinds import Mode, Outcome
from arena.store.model_stats import ModelStats
from tests.conftest import png_bytes


def ok(ttft=None, total=None, tokens=None) -> SideResult:
    return SideResult(answer="an answer", ttft=ttft, total=total, tokens=tokens)


FAILED = SideResult(answer="", error="Model 'm2' failed: boom", ttft=None, total=0.3)
BLANK = SideResult(answer="   ", ttft=0.1, total=0.2, tokens=1)  # only whitespace: no answer

# (model_a, model_b, turns [(result_a, result_b)], vote); a vote needs its last turn answered
BATTLES = [
    ("m1", "m2", [(ok(3.0, 4.0, 30), FAILED), (ok(1.0, 3.0, 20), ok(2.0, 4.0, 10))], Outcome.A),
    ("m1", "m3", [(ok(2.0), ok(0.5, 0.5, 5))], Outcome.B),  # no tokens; total == ttft: no rate
    ("m2", "m1", [(ok(1.0, 2.0), ok(4.0, 6.0, 4))], Outcome.TIE),
    ("m3", "m4", [(BLANK, ok(1.0, 2.0, 7))], None),
]

EXPECTED = {
    # answers: m1 on both sides; ttfts 1, 3, 2, 4 -> 2.5; rates 10, 30, 2 -> 10
    "m1": ModelStats("m1", answers=4, median_ttft=2.5, median_tokens_per_s=10.0, votes=3),
    # the failed turn counts for nothing; ttfts 2, 1 -> 1.5; one rate, 5
    "m2": ModelStats("m2", answers=2, median_ttft=1.5, median_tokens_per_s=5.0, votes=2),
    # the blank answer is no answer, so its timings count for nothing either
    "m3": ModelStats("m3", answers=1, median_ttft=0.5, median_tokens_per_s=None, votes=1),
    "m4": ModelStats("m4", answers=1, median_ttft=1.0, median_tokens_per_s=7.0, votes=0),
}


@pytest.fixture
def filled(store, settings):
    image = check_image(png_bytes(), settings)
    for model_a, model_b, turns, vote in BATTLES:
        battle_id = store.start_battle(
            mode=Mode.ANONYMOUS, model_a=model_a, model_b=model_b, image=image
        )
        for i, (result_a, result_b) in enumerate(turns):
            store.add_turn(battle_id, f"prompt {i}", result_a, result_b)
        if vote is not None:
            store.record_vote(battle_id, vote)
    return store


def test_each_model_gets_its_answers_medians_and_votes(filled):
    stats = filled.model_stats()
    assert stats.keys() == EXPECTED.keys()
    for model, expected in EXPECTED.items():
        got = stats[model]
        assert (got.answers, got.votes) == (expected.answers, expected.votes), model
        for name in ("median_ttft", "median_tokens_per_s"):
            want = getattr(expected, name)
            assert getattr(got, name) == (None if want is None else pytest.approx(want)), (model, name)  # fmt: skip


def test_an_empty_database_has_no_model_stats(store):
    assert store.model_stats() == {}


@pytest.mark.parametrize(
    "ttfts,median",
    [([5.0], 5.0), ([3.0, 1.0], 2.0), ([9.0, 1.0, 2.0], 2.0), ([4.0, 1.0, 3.0, 2.0], 2.5)],
)
def test_the_median_takes_the_middle_value_or_the_two_middle_ones(store, settings, ttfts, median):
    image = check_image(png_bytes(), settings)
    for ttft in ttfts:
        battle_id = store.start_battle(mode=Mode.NAMED, model_a="x", model_b="y", image=image)
        store.add_turn(battle_id, "p", ok(ttft, ttft + 1.0, 10), ok(1.0, 2.0, 10))
    assert store.model_stats()["x"].median_ttft == pytest.approx(median)
    assert store.model_stats()["x"].median_tokens_per_s == pytest.approx(10.0)
