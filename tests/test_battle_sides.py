"""The battle's sides without models: labels and name masking before the vote, the answer rule."""

from __future__ import annotations

import pytest

from arena.battle import Battle, SideResult, answer_finished
from arena.kinds import Mode, Outcome
from arena.registry import TransformersSpec

SPEC = TransformersSpec(
    backend="transformers", id="llava-ov", name="LLaVA OV", model="llava-hf/llava-ov-hf"
)
OTHER = TransformersSpec(backend="transformers", id="smol", name="Smol", model="org/smol")
ERROR = "Model 'llava-ov' failed: 'llava-hf/llava-ov-hf' is not in the cache (LLaVA OV)"


def _battle(mode: Mode) -> Battle:
    return Battle(mode=mode, spec_a=SPEC, spec_b=OTHER, image=None)


def test_errors_do_not_name_the_model_before_the_vote():
    battle = _battle(Mode.ANONYMOUS)
    masked = battle.shown("a", SideResult(error=ERROR)).error
    assert "llava" not in masked.lower() and "Model A" in masked
    battle.outcome = Outcome.TIE
    assert battle.shown("a", SideResult(error=ERROR)).error == ERROR  # revealed after the vote
    assert _battle(Mode.NAMED).shown("a", SideResult(error=ERROR)).error == ERROR


def test_masking_keeps_everything_but_the_names():
    result = SideResult("partial answer", error=ERROR, ttft=0.1, total=0.4, tokens=5)
    shown = _battle(Mode.ANONYMOUS).shown("a", result)
    assert (shown.answer, shown.ttft, shown.total, shown.tokens) == ("partial answer", 0.1, 0.4, 5)
    fine = SideResult("an answer")
    assert _battle(Mode.ANONYMOUS).shown("a", fine) is fine


def test_side_labels_show_names_only_when_they_may_be_seen():
    battle = _battle(Mode.ANONYMOUS)
    assert (battle.label("a"), battle.label("b")) == ("Model A", "Model B")
    battle.outcome = Outcome.A
    assert (battle.label("a"), battle.label("b")) == ("Model A: LLaVA OV", "Model B: Smol")
    assert _battle(Mode.NAMED).label("b") == "Model B: Smol"


def test_mode_is_an_enum_even_when_given_as_text():
    assert _battle("named").mode is Mode.NAMED  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        _battle("blind")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("answer", "error", "finished"),
    [
        ("yes", None, True),
        (" \u00a0yes\n", None, True),
        ("yes", "boom", False),
        (None, None, False),
        ("\t\n", None, False),
    ],
)
def test_answer_finished(answer, error, finished):
    assert answer_finished(answer, error) is finished
    assert SideResult(answer or "", error=error).ok is finished
    assert SideResult(answer or "", error=error).columns("a")["ok_a"] is finished
