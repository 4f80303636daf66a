"""The models page and ARENA_PRELOAD, headless (AppTest) on the tiny LLaVA demo model in real
worker processes and a real SQLite file. Two registry entries share its directory, so "all"
means two workers without building a second architecture."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from tests.conftest import png_bytes

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")
PAGE = "arena/ui/models_page.py"
TIMEOUT = 180
LOAD_S = 120  # a worker imports torch and transformers, then loads
TOKEN = "a-token-of-sixteen-chars"
NAMES = {"tiny-llava": "Tiny LLaVA", "tiny-llava-2": "Tiny LLaVA again"}


@pytest.fixture
def app_env(llava_spec, tmp_path, monkeypatch):
    entries = [
        {"id": model_id, "name": name, "backend": "transformers", "model": llava_spec.model,
         "max_new_tokens": 8, "device": "cpu", "dtype": "float32"}
        for model_id, name in NAMES.items()
    ]  # fmt: skip
    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump({"models": entries}))
    for var in ("ARENA_PRELOAD", "ARENA_ADMINS", "ARENA_ADMIN_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ARENA_MODELS", str(models))
    monkeypatch.setenv("ARENA_DB_URL", f"sqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("ARENA_ADMIN_TOKEN", TOKEN)
    return tmp_path


def models_page(admin: bool) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if admin:
        at.session_state["admin"] = "token"  # what the Admin page keeps once the token was typed
    at.run()
    assert not at.exception, at.exception
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def public(at) -> dict[str, str]:
    frame = at.dataframe[0].value
    return dict(zip(frame["model"], frame["status"], strict=True))


def details(at) -> dict[str, dict]:
    frame = at.dataframe[1].value
    return {row["id"]: row for row in frame.to_dict("records")}


def run_until(at, condition, what: str) -> None:
    deadline = time.monotonic() + LOAD_S
    while not condition(at):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)
        at.run()
        assert not at.exception, at.exception


def page_text(at) -> str:
    parts = [m.value for m in at.markdown] + [str(d.value.to_dict()) for d in at.dataframe]
    return "\n".join(parts + [b.label for b in at.button])


def test_everyone_sees_the_display_names_and_readiness_only(app_env, llava_spec):
    at = models_page(admin=False)
    assert len(at.dataframe) == 1
    assert list(at.dataframe[0].value.columns) == ["model", "status"]
    assert public(at) == dict.fromkeys(NAMES.values(), "💤 loads on its first battle")
    text = page_text(at)
    for secret in ("transformers", llava_spec.model, *NAMES):  # backend, source, ids
        assert secret not in text
    assert not [b for b in at.button if b.key and b.key.startswith(("load_", "stop_"))]


def test_an_admin_sees_the_details_and_loads_and_stops_a_model(app_env, llava_spec):
    at = models_page(admin=True)
    rows = details(at)
    assert set(rows) == set(NAMES)
    row = rows["tiny-llava"]
    assert row["backend"] == "transformers" and row["source"] == llava_spec.model
    assert row["on this machine"].startswith("local directory, ") and row["on this machine"].endswith("kB")  # fmt: skip
    assert row["status"] == "💤 loads on its first battle" and row["answers"] == row["votes"] == 0

    at.button(key="load_tiny-llava").click().run()
    assert details(at)["tiny-llava"]["status"] == "⏳ loading"  # the click did not wait
    run_until(at, lambda a: details(a)["tiny-llava"]["status"] == "✅ ready", "tiny-llava to load")
    row = details(at)["tiny-llava"]
    assert row["worker pid"] > 0 and row["memory"].endswith("MB") and row["load time (s)"] > 0
    assert public(at)["Tiny LLaVA"] == "✅ ready"
    assert details(at)["tiny-llava-2"]["status"] == "💤 loads on its first battle"

    at.button(key="stop_tiny-llava").click().run()
    row = details(at)["tiny-llava"]
    assert row["status"] == "💤 loads on its first battle" and row["memory"] == ""
    assert row["load time (s)"] > 0  # the last load's time stays


def test_preload_all_loads_every_model_in_the_background_after_the_first_page_run(
    app_env, monkeypatch
):
    monkeypatch.setenv("ARENA_PRELOAD", "all")
    started = time.monotonic()
    at = models_page(admin=True)  # the battle page's first run, then the models page
    first_runs_s = time.monotonic() - started
    assert set(public(at).values()) == {"⏳ loading"}  # neither ready: the page did not wait
    run_until(at, lambda a: set(public(a).values()) == {"✅ ready"}, "both models to load")
    loads = [row["load time (s)"] for row in details(at).values()]
    assert 0 < first_runs_s < min(loads)

    at.switch_page("arena/ui/battle_page.py").run()  # a battle: the figures come from it
    at.radio(key="mode").set_value("named").run()
    at.selectbox(key="named_a").set_value("tiny-llava")
    at.selectbox(key="named_b").set_value("tiny-llava-2").run()
    at.file_uploader(key="image").set_value(("cat.png", png_bytes(), "image/png"))
    at.run()
    at.chat_input(key="prompt").set_value("What is in this picture?").run()
    at.button(key="vote_a").click().run()
    assert not at.exception, at.exception
    at.switch_page(PAGE).run()
    for row in details(at).values():
        assert row["answers"] == row["votes"] == 1 and row["median first token (s)"] > 0

    for model_id in NAMES:  # the workers end with the test
        at.button(key=f"stop_{model_id}").click().run()
    assert set(public(at).values()) == {"💤 loads on its first battle"}


def test_an_unknown_preload_id_is_one_line_on_the_page(app_env, monkeypatch):
    monkeypatch.setenv("ARENA_PRELOAD", "tiny-llava,tiny-nope")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [
        "Setting ARENA_PRELOAD='tiny-llava,tiny-nope' is invalid: no model 'tiny-nope' in "
        "models.yaml (its ids: tiny-llava, tiny-llava-2)."
    ]
    assert not at.file_uploader  # the page stopped there
