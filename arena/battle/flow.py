"""A battle: pick a pair, run both sides at once, decide when a vote is allowed.

No Streamlit here: the page, the command line and the benchmarks drive the same code.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from arena.backends import Backends, chat_messages
from arena.backends.status import Download
from arena.battle.sides import SIDES, SideResult, masked, side_label
from arena.errors import ArenaError, InputError, ModelError, RegistryError
from arena.images import CheckedImage
from arena.kinds import Mode, Outcome
from arena.registry import ModelSpec, Registry

if TYPE_CHECKING:  # the page and the command line make the sampler; the battle only draws from it
    from arena.pairing import ActiveSampler


@dataclass(frozen=True)
class Event:
    """Something that happened on one side: a piece of text, its model's first download going
    on, or the side's final result."""

    side: str  # "a" (left) or "b" (right)
    text: str = ""
    result: SideResult | None = None  # set on the side's last event
    progress: Download | None = None  # set while the model downloads, before any text


@dataclass
class Battle:
    mode: Mode
    spec_a: ModelSpec
    spec_b: ModelSpec
    image: CheckedImage
    prompts: list[str] = field(default_factory=list)
    results: list[tuple[SideResult, SideResult]] = field(default_factory=list)
    battle_id: str | None = None
    outcome: Outcome | None = None
    replace_last: bool = False  # the last answers regenerate a stored turn
    unsaved: bool = False  # the last answers are not stored yet (record.save_turn)

    def __post_init__(self):
        self.mode = Mode(self.mode)

    @property
    def specs(self) -> dict[str, ModelSpec]:
        return {"a": self.spec_a, "b": self.spec_b}

    def answers(self, side: str) -> list[str]:
        i = SIDES.index(side)
        return [pair[i].answer for pair in self.results]

    def messages(self, side: str) -> list[dict]:
        """This side's view of the conversation: every prompt and its own earlier answers."""
        spec = self.specs[side]
        return chat_messages(self.image.image, self.prompts, self.answers(side), spec.system_prompt)

    def label(self, side: str) -> str:
        """'Model A' before the vote in an anonymous battle, else 'Model A: <name>'."""
        return side_label(self.specs[side], side, self.mode, self.outcome is not None)

    def shown(self, side: str, result: SideResult) -> SideResult:
        """A result of this side as the page may show it now (no model name before the vote)."""
        return masked(result, self.specs[side], side, self.mode, self.outcome is not None)

    @property
    def last_ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results[-1])

    @property
    def can_vote(self) -> bool:
        return (
            self.battle_id is not None
            and not self.unsaved
            and self.outcome is None
            and self.last_ok
        )

    def can_follow_up(self, max_turns: int) -> bool:
        return self.can_vote and len(self.prompts) < max_turns


def pick_models(
    registry: Registry,
    mode: Mode,
    models: tuple[str, str] | None = None,
    rng: random.Random | None = None,
    sampler: ActiveSampler | None = None,
) -> tuple[ModelSpec, ModelSpec]:
    """Anonymous: two different models drawn by the sampler (None: by weight, Registry.draw_pair),
    left/right at random. Named: the two given."""
    if Mode(mode) is Mode.ANONYMOUS and models is None:
        return sampler.draw(rng) if sampler is not None else registry.draw_pair(rng)
    if models is None or len(models) != 2:
        raise InputError("Named mode needs two models: pick one for each side.")
    if models[0] == models[1]:
        raise InputError("Pick two different models.")
    specs = tuple(registry.get(m) for m in models)
    for spec in specs:
        if not spec.enabled:
            raise RegistryError(
                f"Model '{spec.id}' is disabled in {registry.path} (enabled: false)."
            )
    return specs


def run_sides(backends: Backends, battle: Battle) -> Iterator[Event]:
    """Run the last prompt on both sides at the same time; yield events as they come."""
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    stop = threading.Event()
    for side in SIDES:
        backends.side_threads.submit(
            _run_side, backends, battle.specs[side], battle.messages(side), side, events, stop
        )
    finished = 0
    try:
        while finished < len(SIDES):
            event = events.get()
            if event.result is not None:
                finished += 1
            yield event
    finally:
        stop.set()


def _run_side(backends, spec, messages, side, events, stop) -> None:
    start = time.perf_counter()
    ttft = None
    parts: list[str] = []
    error = None
    stream = None
    try:
        stream = backends.get(spec.id).stream(
            messages, on_progress=lambda download: events.put(Event(side, progress=download))
        )
        for piece in stream:
            if stop.is_set():
                stream.close()
                break
            if ttft is None:
                ttft = time.perf_counter() - start
            parts.append(piece)
            events.put(Event(side, text=piece))
    except ModelError as exc:
        error = str(exc)
    except ArenaError as exc:
        error = f"Model '{spec.id}' failed: {exc}"
    except Exception as exc:  # noqa: BLE001 - one side's crash must not take the page down
        error = f"Model '{spec.id}' failed: {type(exc).__name__}: {exc}".splitlines()[0]
    total = time.perf_counter() - start
    tokens = stream.tokens if stream is not None else None
    result = SideResult(answer="".join(parts), error=error, ttft=ttft, total=total, tokens=tokens)
    if error is None and not result.ok and not stop.is_set():
        result = SideResult(
            answer=result.answer,
            error=f"Model '{spec.id}' failed: it returned an empty answer",
            ttft=ttft,
            total=total,
            tokens=tokens,
        )
    events.put(Event(side, result=result))


def ask(backends: Backends, battle: Battle, prompt: str) -> Iterator[Event]:
    """Add a prompt (the first or a follow-up) and stream both answers."""
    battle.prompts.append(prompt)
    yield from _collect(backends, battle, replace=False)


def regenerate(backends: Backends, battle: Battle) -> Iterator[Event]:
    """Ask both models again for the last prompt (before the vote only)."""
    if battle.outcome is not None or not battle.results:
        raise InputError("Only an answered battle without a vote can be regenerated.")
    battle.results.pop()
    yield from _collect(backends, battle, replace=True)


def _collect(backends, battle, replace: bool) -> Iterator[Event]:
    results: dict[str, SideResult] = {}
    for event in run_sides(backends, battle):
        if event.result is not None:
            results[event.side] = event.result
        yield event
    battle.results.append((results["a"], results["b"]))
    battle.replace_last = replace
    battle.unsaved = True
