"""Battles end to end below the page: real tiny models in real worker processes, a real SQLite file."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import yaml

from arena import battle as flow
from arena.backends import Backends, chat_messages
from arena.backends.base import Backend, Finished
from arena.backends.local import LocalBackend
from arena.battle import Battle
from arena.config import Settings
from arena.errors import InputError, ModelError
from arena.images import check_image
from arena.kinds import Outcome, Requester
from arena.registry import load_registry
from arena.store import Store
from tests.conftest import png_bytes
from tests.stored import stored_battle

PAIR = ("tiny-llava", "tiny-idefics3")
ME = Requester(session_id="s", voter_id="v")


@pytest.fixture(scope="module")
def demo_registry(demo_models_dir, tmp_path_factory):
    # the demo models plus one entry whose directory does not exist
    data = yaml.safe_load((demo_models_dir / "models.yaml").read_text())
    data["models"].append(
        {"id": "missing-model", "backend": "transformers", "model": "./no-such-dir", "weight": 0}
    )
    path = demo_models_dir / "models-with-missing.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_registry(path)


@pytest.fixture(scope="module")
def backends(demo_registry):
    pool = Backends(demo_registry, Settings(generation_timeout_s=120))
    yield pool
    pool.close()


@pytest.fixture
def image():
    return check_image(png_bytes((64, 48)), Settings())


def run(backends, battle, prompt):
    events = list(flow.ask(backends, battle, prompt))
    return events


def new_battle(registry, image, models=PAIR, mode="named"):
    a, b = flow.pick_models(registry, mode, models)
    return Battle(mode=mode, spec_a=a, spec_b=b, image=image)


def test_both_sides_stream_and_the_vote_is_stored(demo_registry, backends, image, tmp_path):
    store = Store.open(Settings(db_url=f"sqlite:///{tmp_path / 'a.db'}"))
    battle = new_battle(demo_registry, image)
    flow.start(store, battle, ME)
    events = run(backends, battle, "What is in the image?")
    chunks = {side: [e for e in events if e.result is None and e.side == side] for side in "ab"}
    assert len(chunks["a"]) > 1 and len(chunks["b"]) > 1  # streamed in pieces
    result_a, result_b = battle.results[-1]
    assert result_a.ok and result_b.ok
    assert result_a.answer == "".join(e.text for e in chunks["a"])
    assert 0 < result_a.ttft <= result_a.total and result_b.tokens > 0
    assert not battle.can_vote  # not stored yet
    flow.save_turn(store, battle)
    assert battle.can_vote
    flow.cast_vote(store, battle, Outcome.B, ME)
    row = stored_battle(store, battle.battle_id)
    assert row["vote"]["outcome"] == "b" and row["turns"][0]["answer_a"] == result_a.answer
    assert (row["model_a"], row["model_b"], row["mode"]) == (*PAIR, "named")


def test_follow_up_sees_own_answers_and_regenerate(demo_registry, backends, image, tmp_path):
    store = Store.open(Settings(db_url=f"sqlite:///{tmp_path / 'a.db'}"))
    battle = new_battle(demo_registry, image)
    flow.start(store, battle, ME)
    run(backends, battle, "Describe it.")
    flow.save_turn(store, battle)
    first_a = battle.results[0][0].answer
    run(backends, battle, "And the colours?")
    flow.save_turn(store, battle)
    messages = battle.messages("a")
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1]["content"][0]["text"] == first_a  # its own previous answer
    assert battle.messages("b")[1]["content"][0]["text"] == battle.results[0][1].answer
    list(flow.regenerate(backends, battle))
    flow.save_turn(store, battle)
    row = stored_battle(store, battle.battle_id)
    assert len(row["turns"]) == 2 and row["turns"][1]["answer_a"] == battle.results[1][0].answer
    assert battle.can_follow_up(max_turns=3) and not battle.can_follow_up(max_turns=2)


def test_every_demo_architecture_streams_through_its_worker_process(demo_registry, backends, image):
    for spec in demo_registry.specs:
        if spec.id == "missing-model":
            continue
        backend = backends.get(spec.id)
        messages = chat_messages(image.image, ["What is in the image?"])
        stream = backend.stream(messages)
        pieces = list(stream)
        assert len(pieces) > 1 and "".join(pieces).strip(), spec.id
        assert backend.pid is not None and backend.pid != os.getpid()  # its own process
        assert stream.tokens == spec.max_new_tokens and stream.finished


def test_requests_to_one_model_wait_their_turn(demo_registry, backends, image):
    """Several sessions asking one model at once: each gets its whole answer, one after another."""
    backend = backends.get("tiny-llava")
    messages = chat_messages(image.image, ["Same question"])
    expected = "".join(backend.stream(messages))
    answers: list[str] = []

    def ask():
        answers.append("".join(backend.stream(messages)))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [expected] * 4


def test_greedy_answers_are_deterministic(demo_registry, backends, image):
    one, two = new_battle(demo_registry, image), new_battle(demo_registry, image)
    run(backends, one, "Same question")
    run(backends, two, "Same question")
    assert one.results[0][0].answer == two.results[0][0].answer


def test_model_that_cannot_load_errors_on_its_side_only(demo_registry, backends, image):
    battle = new_battle(demo_registry, image, models=("tiny-llava", "missing-model"))
    run(backends, battle, "Hello?")
    ok, failed = battle.results[0]
    assert ok.ok and not failed.ok
    assert "missing-model" in failed.error and "no-such-dir" in failed.error
    assert not battle.last_ok


def test_worker_killed_during_a_battle_restarts_on_next_request(demo_registry, backends, image):
    backend = backends.get("tiny-idefics3")
    battle = new_battle(demo_registry, image)
    killed = threading.Event()
    events = []
    for event in flow.ask(backends, battle, "Tell me a long story"):
        events.append(event)
        if event.side == "b" and event.result is None and not killed.is_set():
            os.kill(backend.pid, signal.SIGKILL)
            killed.set()
    result_a, result_b = battle.results[0]
    assert result_a.ok
    assert (
        result_b.error
        and "worker process died" in result_b.error
        and "tiny-idefics3" in result_b.error
    )
    again = new_battle(demo_registry, image)
    run(backends, again, "Are you back?")
    assert again.results[0][1].ok


class RaisesMidStream(LocalBackend):
    """Fault injection (a real model cannot be made to crash on cue): the real worker's
    stream, interrupted by an exception after two pieces."""

    def generate(self, messages):
        for i, piece in enumerate(super().generate(messages)):
            if i == 2:
                raise ModelError(
                    self.spec.id, "CUDA error: an illegal memory access was encountered"
                )
            yield piece


def test_model_raising_mid_stream(demo_registry, image, tmp_path):
    settings = Settings(generation_timeout_s=120)
    pool = Backends(demo_registry, settings)
    pool._by_id["tiny-llava"] = RaisesMidStream(demo_registry.get("tiny-llava"), settings)
    try:
        store = Store.open(Settings(db_url=f"sqlite:///{tmp_path / 'a.db'}"))
        battle = new_battle(demo_registry, image)
        flow.start(store, battle, ME)
        run(pool, battle, "Go")
        broken, fine = battle.results[0]
        assert (
            broken.error and "illegal memory access" in broken.error and broken.answer
        )  # partial text kept
        assert fine.ok
        flow.save_turn(store, battle)
        with pytest.raises(InputError, match="Both answers"):
            flow.cast_vote(store, battle, Outcome.B, ME)
        nxt = new_battle(demo_registry, image, models=("tiny-idefics3", "tiny-qwen2-vl"))
        run(pool, nxt, "Next battle")
        assert all(r.ok for r in nxt.results[0])
    finally:
        pool.close()


def test_anonymous_pairs_are_two_different_enabled_models(demo_registry):
    for _ in range(50):
        a, b = flow.pick_models(demo_registry, "anonymous")
        assert a.id != b.id and "missing-model" not in (a.id, b.id)
    with pytest.raises(InputError, match="two different"):
        flow.pick_models(demo_registry, "named", ("tiny-llava", "tiny-llava"))


class Scripted(Backend):
    """A model that answers exactly what a test needs (no real model can be made to answer only
    whitespace, or to report a chosen token count, on cue): the prompt's own text after a
    pause, and a token count of the prompt's length, for that request only."""

    def generate(self, messages):
        prompt = messages[-1]["content"][-1]["text"]
        time.sleep(0.1)
        yield prompt
        time.sleep(0.1)
        yield Finished(tokens=len(prompt))

    def check(self) -> str:
        return "ok"


def _scripted_pool(registry) -> Backends:
    settings = Settings()
    pool = Backends(registry, settings)
    for spec in registry.specs:
        pool._by_id[spec.id] = Scripted(spec, settings)
    return pool


@pytest.mark.parametrize("blank", ["", "   ", "\n\n", "\t", "\u00a0", " \u00a0\r\n"], ids=repr)
def test_an_answer_of_only_whitespace_is_an_error_on_that_side(
    demo_registry, image, tmp_path, blank
):
    pool = _scripted_pool(demo_registry)
    store = Store.open(Settings(db_url=f"sqlite:///{tmp_path / 'a.db'}"))
    battle = new_battle(demo_registry, image)
    flow.start(store, battle, ME)
    run(pool, battle, blank)
    for result in battle.results[0]:
        assert result.error is not None and result.error.endswith(
            "failed: it returned an empty answer"
        )
        assert not result.ok and result.answer == blank
    flow.save_turn(store, battle)
    assert not battle.can_vote
    assert stored_battle(store, battle.battle_id)["turns"][0]["ok_a"] is False
    pool.close()


def test_sessions_battling_one_model_at_once_keep_their_own_token_counts(
    demo_registry, image, tmp_path
):
    """Backends are shared by every session: each stored turn has its own answer's token count."""
    pool = _scripted_pool(demo_registry)
    store = Store.open(Settings(db_url=f"sqlite:///{tmp_path / 'a.db'}"))
    prompts = ["short", "a much longer prompt", "the longest prompt of all three here"]
    battles = [new_battle(demo_registry, image) for _ in prompts]  # the same pair each time

    def play(battle, prompt):
        flow.start(store, battle, ME)
        run(pool, battle, prompt)
        flow.save_turn(store, battle)

    threads = [
        threading.Thread(target=play, args=pair) for pair in zip(battles, prompts, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for battle, prompt in zip(battles, prompts, strict=True):
        turn = stored_battle(store, battle.battle_id)["turns"][0]
        assert (turn["tokens_a"], turn["tokens_b"]) == (len(prompt), len(prompt))
    pool.close()
