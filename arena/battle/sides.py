"""The two sides of a battle: what one model answered, when that answer counts as finished,
and what the page may say about a side before the vote.

A leaf module: the store and the pages import it without pulling in the backends.
"""

from __future__ import annotations

from dataclasses import dataclass

from arena.kinds import Mode
from arena.style import count_style

SIDES = ("a", "b")  # "a" is the left side ("Model A"), "b" the right one


def answer_finished(answer: str | None, error: str | None) -> bool:
    """The one rule for "this side answered": no error, and some text that is not whitespace.

    str.strip() removes every Unicode space (tabs, newlines, NBSP ...), unlike SQL's trim(),
    so the verdict is decided here and stored beside the answer (turns.ok_a / ok_b)."""
    return error is None and bool((answer or "").strip())


@dataclass(frozen=True)
class SideResult:
    """One model's answer to one prompt, with its timings."""

    answer: str = ""
    error: str | None = None
    ttft: float | None = None  # seconds to the first piece of text
    total: float | None = None  # seconds for the whole answer
    tokens: int | None = None

    @property
    def ok(self) -> bool:
        return answer_finished(self.answer, self.error)

    def columns(self, side: str) -> dict:
        """This side's columns of a stored turn (see arena.store.schema.turns)."""
        return {
            f"answer_{side}": self.answer,
            f"error_{side}": self.error,
            f"ttft_{side}": self.ttft,
            f"total_{side}": self.total,
            f"tokens_{side}": self.tokens,
            f"ok_{side}": self.ok,
            **count_style(self.answer, self.tokens).columns(side),
        }


def names_shown(mode: Mode, voted: bool) -> bool:
    """Model names are shown in named battles, and in anonymous ones once the vote is in."""
    return Mode(mode) is Mode.NAMED or voted


def side_label(spec, side: str, mode: Mode, voted: bool) -> str:
    """'Model A' until the names may be shown; then 'Model A: <name>'."""
    letter = side.upper()
    if names_shown(mode, voted):
        return f"Model {letter}: {spec.display_name}"
    return f"Model {letter}"


def masked(result: SideResult, spec, side: str, mode: Mode, voted: bool) -> SideResult:
    """The result as the page may show it: before the names are shown, an error must not name
    the model (its id, display name or hub id), so they become 'Model A' / 'Model B'."""
    if names_shown(mode, voted) or not result.error:
        return result
    error = result.error
    for secret in sorted(
        {spec.model, spec.id, spec.display_name}, key=len, reverse=True
    ):  # longest first
        error = error.replace(secret, f"Model {side.upper()}")
    return SideResult(
        answer=result.answer,
        error=error,
        ttft=result.ttft,
        total=result.total,
        tokens=result.tokens,
    )
