"""The optional classifier model (ARENA_CLASSIFIER_MODEL) through the real OpenAI backend.

No trained model runs here, so a scripted OpenAI-compatible server (real HTTP, real streaming
protocol) stands in for one: it answers each yes/no question by a keyword of the question, the
way a model that understood it would, or misbehaves on cue. Everything else is real: the
registry, the backend, the background thread, the store."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

import pytest
from sqlalchemy import select

from arena.battle import Battle, SideResult, save_turn, start
from arena.categories.labeller import Labeller
from arena.categories.model import Classifier, answer_yes
from arena.cli import main
from arena.config import Settings
from arena.errors import ConfigError, ModelError
from arena.images import check_image
from arena.kinds import Requester
from arena.registry import load_registry
from arena.store.schema import battle_categories
from tests.conftest import png_bytes, serve_http, stream_chat

# what the scripted "model" says yes to: a category when the user's request mentions the word
YES_WHEN = {"ocr": "receipt", "counting": "how many", "charts": "chart"}


class _Judge(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        content = body["messages"][-1]["content"]
        texts = (
            [p["text"] for p in content if p["type"] == "text"]
            if isinstance(content, list)
            else [content]
        )
        question = texts[-1]
        mode = self.path.split("/")[1]
        if mode == "broken":
            self.send_response(500)
            self.end_headers()
            return
        category = question.split("a '", 1)[1].split("'", 1)[0]
        asked = question.split("\n\n", 1)[0].lower()
        if mode == "chatty":
            reply = "Well, it depends on what you mean."
        else:
            reply = "Yes." if YES_WHEN.get(category, "\0") in asked else "No"
        stream_chat(self, [reply])

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def judge():
    yield from serve_http(_Judge, requests=[])


@pytest.fixture
def registry(judge, tmp_path):
    port = judge.server_address[1]
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        + "".join(
            f"  - {{id: {name}, backend: openai, base_url: 'http://127.0.0.1:{port}/{name}/v1', "
            f"model: judge, max_retries: 0, temperature: 0.7}}\n"
            for name in ("good", "chatty", "broken", "left", "right")
        )
    )
    return load_registry(path)


def classifier_settings(settings, model) -> Settings:
    return Settings(**{**settings.__dict__, "classifier_model": model})


def run_battle(store, settings, registry, labeller, prompt) -> str:
    battle = Battle(
        mode="anonymous",
        spec_a=registry.get("left"),
        spec_b=registry.get("right"),
        image=check_image(png_bytes(), settings),
    )
    start(store, battle, Requester(session_id="s", voter_id="session:s"))
    battle.prompts.append(prompt)
    battle.results.append((SideResult("a", tokens=1), SideResult("b", tokens=1)))
    battle.unsaved = True
    save_turn(store, battle, labeller)
    return battle.battle_id


def stored(store, battle_id) -> dict[str, str]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(battle_categories.c.category, battle_categories.c.source).where(
                battle_categories.c.battle_id == battle_id
            )
        ).all()
    return dict(rows)


def wait_for(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("the background classifier did not finish in time")


def test_the_classifier_model_relabels_a_stored_battle_in_the_background(
    store, settings, registry, judge
):
    labeller = Labeller.from_settings(classifier_settings(settings, "good"), registry)
    judge.requests.clear()
    started = time.perf_counter()
    battle_id = run_battle(
        store, settings, registry, labeller, "How many coins are on this receipt?"
    )
    assert time.perf_counter() - started < 5  # it did not wait for the questions
    assert stored(store, battle_id)["counting"] == "rules"  # the rules' labels first
    wait_for(lambda: "good" in stored(store, battle_id).values())
    labels = stored(store, battle_id)
    assert labels == {"ocr": "good", "counting": "good"}
    questions = [r for r in judge.requests if r["model"] == "judge"]
    assert len(questions) == len(labeller.rules.categories)  # one yes/no question per category
    assert all(r["temperature"] == 0.0 for r in questions)  # not the entry's 0.7
    with_image = {
        q["messages"][0]["content"][-1]["text"].split("a '", 1)[1].split("'")[0]
        for q in questions
        if any(p["type"] == "image_url" for p in q["messages"][0]["content"])
    }
    assert with_image == {"ocr", "charts"}
    labeller.close()


@pytest.mark.parametrize("model", ["chatty", "broken"])
def test_a_classifier_that_fails_leaves_the_rules_labels(store, settings, registry, model, caplog):
    labeller = Labeller.from_settings(classifier_settings(settings, model), registry)
    battle_id = run_battle(store, settings, registry, labeller, "how many ducks are there")
    future = labeller.classifier._thread.submit(lambda: None)  # queued after the relabel
    future.result(timeout=30)
    assert stored(store, battle_id) == {"counting": "rules"}
    assert any("the rules' categories stay" in r.getMessage() for r in caplog.records)
    labeller.close()


def test_an_unknown_classifier_model_is_a_one_line_error(settings, registry):
    with pytest.raises(ConfigError, match="ARENA_CLASSIFIER_MODEL='nope'.*no model with id"):
        Labeller.from_settings(classifier_settings(settings, "nope"), registry)


@pytest.mark.parametrize(
    ("reply", "yes"), [("Yes", True), ("yes.", True), (" NO", False), ("no, it is not", False)]
)
def test_yes_and_no_are_read_from_the_first_word(reply, yes):
    assert answer_yes("m", reply) is yes


@pytest.mark.parametrize("reply", ["", "Maybe", "yesterday", "I think so"])
def test_anything_else_is_an_error(reply):
    with pytest.raises(ModelError):
        answer_yes("m", reply)


def test_classify_all_with_a_model_relabels_stored_battles(
    store, settings, registry, monkeypatch, capsys
):
    rules_only = Labeller.from_settings(settings)
    battle_id = run_battle(store, settings, registry, rules_only, "what does this chart show?")
    assert stored(store, battle_id) == {"charts": "rules"}
    monkeypatch.setenv("ARENA_DB_URL", settings.db_url)
    monkeypatch.setenv("ARENA_MODELS", str(registry.path))
    assert main(["classify", "--all", "--model", "good"]) == 0
    assert "labelled 1 battles with good" in capsys.readouterr().out
    assert stored(store, battle_id) == {"charts": "good"}
    assert main(["classify", "--all"]) == 0
    assert stored(store, battle_id) == {"charts": "rules"}


def test_classify_one_prompt_with_the_model(settings, registry, monkeypatch, capsys):
    monkeypatch.setenv("ARENA_MODELS", str(registry.path))
    assert (
        main(["classify", "--prompt", "how many items on the receipt", "--json", "--model", "good"])
        == 0
    )
    assert json.loads(capsys.readouterr().out) == ["ocr", "counting"]


def test_the_classifier_shares_no_state_between_requests(settings, registry):
    """One Classifier serves every session: classify holds its answers in locals only."""
    rules = Labeller.from_settings(settings).rules
    classifier = Classifier.from_registry("good", registry, settings, rules)
    try:
        assert classifier.classify(["how many cats"], None) == ("counting",)
        assert classifier.classify(["hello"], None) == ()
    finally:
        classifier.close()
