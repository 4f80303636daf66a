"""Battles for the admin pages' tests, stored the way the page stores them (start, turn, vote),
each with its own prompt, image and voter, so a test can tell whether any of them leaked into
a page. Not a test module."""

from __future__ import annotations

from dataclasses import dataclass

from arena.battle import SideResult
from arena.images import check_image
from arena.kinds import Mode, Outcome, Requester
from tests.conftest import png_bytes
from tests.stored import answered_battle

REGISTRY = """\
models:
  - {id: secret-model-one, name: Secret Model One, backend: openai,
     base_url: "http://127.0.0.1:9/v1", model: hidden-weights-one}
  - {id: secret-model-two, name: Secret Model Two, backend: openai,
     base_url: "http://127.0.0.1:9/v1", model: hidden-weights-two}
  - {id: secret-model-three, name: Secret Model Three, backend: openai,
     base_url: "http://127.0.0.1:9/v1", model: hidden-weights-three}
"""
MODELS = ("secret-model-one", "secret-model-two", "secret-model-three")
NAMES = ("Secret Model One", "Secret Model Two", "Secret Model Three")


@dataclass(frozen=True)
class Seeded:
    battle_id: str
    prompt: str
    answer_a: str
    answer_b: str
    voter_id: str
    model_a: str
    model_b: str
    mode: Mode
    voted: bool
    image: bytes


def seed(store, settings, n: int) -> list[Seeded]:
    """n battles, newest last: pairs cycle through MODELS, every third battle is named, the even
    ones have a vote (A wins), battle 1's right side failed with an error."""
    seeded = []
    for i in range(n):
        a, b = MODELS[i % 3], MODELS[(i + 1) % 3]
        mode = Mode.NAMED if i % 3 == 2 else Mode.ANONYMOUS
        data = png_bytes((40 + i, 30), color=(10 + i, 200 - i, 77))
        voter = f"user:voter{i}@example.com"
        prompt, answer_a, answer_b = f"prompt-{i}-zebra", f"answer-a-{i}-giraffe", f"answer-b-{i}"
        error_b = "side B timed out" if i == 1 else None
        battle_id = answered_battle(
            store, mode=mode, model_a=a, model_b=b, image=check_image(data, settings),
            prompt=prompt, result_a=SideResult(answer_a, ttft=0.25, total=1.5, tokens=12),
            result_b=SideResult("" if error_b else answer_b, error=error_b, ttft=0.5, tokens=7),
            session_id=f"tab{i}", voter_id=voter, client_key=f"{i:032x}",
        )  # fmt: skip
        voted = i % 2 == 0
        if voted:
            store.record_vote(battle_id, Outcome.A, Requester(f"tab{i}", voter))
        seeded.append(Seeded(battle_id, prompt, answer_a, answer_b, voter, a, b, mode, voted, data))
    return seeded


def secrets_of(seeded: list[Seeded]) -> list[str]:
    """Every text of the seeded battles that only an admin may see."""
    texts = [*MODELS, *NAMES]
    for s in seeded:
        texts += [s.battle_id, s.prompt, s.answer_a, s.answer_b, s.voter_id]
    return texts
