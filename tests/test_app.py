"""The whole page, headless (streamlit.testing AppTest), on the demo models and a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from arena.config import Settings
from arena.store import Store
from arena.store.schema import battles, votes
from tests.conftest import png_bytes
from tests.stored import stored_battle

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")
TIMEOUT = 180


@pytest.fixture
def app_env(demo_models_dir, tmp_path, monkeypatch):
    db_url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("ARENA_MODELS", str(demo_models_dir / "models.yaml"))
    monkeypatch.setenv("ARENA_DB_URL", db_url)
    return Store.open(Settings(db_url=db_url))


def texts(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += (
        [e.value for e in at.error] + [w.value for w in at.warning] + [s.value for s in at.success]
    )
    return "\n".join(str(p) for p in parts)


def start_battle(at, prompt="What is in this picture?"):
    at.file_uploader(key="image").set_value(("cat.png", png_bytes((64, 48)), "image/png"))
    at.run()
    at.chat_input(key="prompt").set_value(prompt).run()
    return at


def test_battle_vote_reveal_and_leaderboard(app_env):
    store = app_env
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    start_battle(at)
    assert not at.exception, at.exception
    battle = at.session_state.battle
    result_a, result_b = battle.results[0]
    assert result_a.ok and result_b.ok
    page = texts(at)
    assert result_a.answer.strip()[:20] in page and result_b.answer.strip()[:20] in page
    assert "first token" in page and "total" in page
    # anonymous: the page shows "Model A" / "Model B", never the names
    for spec in (battle.spec_a, battle.spec_b):
        assert spec.id not in page and spec.display_name not in page
    assert not at.button(key="vote_a").disabled

    at.button(key="vote_a").click().run()
    assert not at.exception
    with store.engine.connect() as conn:
        rows = list(
            conn.execute(
                select(votes.c.outcome, battles.c.model_a, battles.c.mode, votes.c.voter_id).join(
                    battles
                )
            )
        )
    assert rows == [("a", battle.spec_a.id, "anonymous", f"session:{at.session_state.session_id}")]
    page = texts(at)
    assert battle.spec_a.display_name in page and battle.spec_b.display_name in page  # revealed
    assert at.button(key="vote_b").disabled

    # A double click sends the second click before the page redraws with disabled buttons:
    # put the page back in that state; the database refuses the second vote.
    at.session_state.battle.outcome = None
    at.run()
    at.button(key="vote_b").click().run()
    assert "already has its vote" in texts(at)
    with store.engine.connect() as conn:
        assert conn.execute(select(votes.c.outcome)).scalars().all() == ["a"]

    at.switch_page("arena/ui/leaderboard_page.py").run()
    assert not at.exception
    frame = at.dataframe[0].value
    assert set(frame["model"]) == {battle.spec_a.id, battle.spec_b.id}
    assert frame["votes"].sum() == 2


def test_bad_upload_and_empty_prompt_store_nothing(app_env):
    store = app_env
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader(key="image").set_value(("notes.png", b"this is not an image", "image/png"))
    at.run()
    at.chat_input(key="prompt").set_value("What is it?").run()
    assert "not a supported image" in texts(at)
    at.file_uploader(key="image").set_value(("ok.png", png_bytes(), "image/png"))
    at.run()
    at.chat_input(key="prompt").set_value("   ").run()
    assert not at.exception
    with store.engine.connect() as conn:
        assert conn.execute(select(battles.c.id)).first() is None
    assert "battle" not in at.session_state


def test_named_mode_shows_names_and_follow_up(app_env):
    store = app_env
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.user = {
        "is_logged_in": True,
        "email": "ann@example.com",
    }  # Streamlit authentication configured
    at.run()
    at.radio(key="mode").set_value("named").run()
    at.selectbox(key="named_a").set_value("tiny-llava")
    at.selectbox(key="named_b").set_value("tiny-qwen2-vl").run()
    start_battle(at)
    assert not at.exception
    page = texts(at)
    assert "Tiny LLaVA" in page and "Tiny Qwen2-VL" in page
    at.chat_input(key="prompt").set_value("And the background?").run()
    battle = at.session_state.battle
    assert len(battle.results) == 2 and battle.last_ok
    at.button(key="vote_tie").click().run()
    row = stored_battle(store, battle.battle_id)
    assert row["mode"] == "named" and len(row["turns"]) == 2 and row["vote"]["outcome"] == "tie"
    assert row["vote"]["voter_id"] == "user:ann@example.com"
    at.button(key="new_battle").click().run()
    assert "battle" not in at.session_state


def test_broken_registry_is_one_line_in_the_page(tmp_path, monkeypatch):
    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  - id: a\n    backend: nope\n    model: x\n")
    monkeypatch.setenv("ARENA_MODELS", str(bad))
    monkeypatch.setenv("ARENA_DB_URL", f"sqlite:///{tmp_path / 'x.db'}")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "unknown backend 'nope'" in at.error[0].value


def test_local_model_against_served_model(
    demo_models_dir, serve_url, llava_spec, tmp_path, monkeypatch
):
    """A battle in the page between a local model and one behind `transformers serve`."""
    import yaml

    data = yaml.safe_load((demo_models_dir / "models.yaml").read_text())
    for entry in data["models"]:
        entry["model"] = str(demo_models_dir / entry["model"])
    data["models"].append(
        {"id": "served-llava", "name": "Served LLaVA", "backend": "openai", "base_url": serve_url,
         "model": llava_spec.model, "max_new_tokens": 24, "temperature": 0.0}
    )  # fmt: skip
    registry = tmp_path / "models.yaml"
    registry.write_text(yaml.safe_dump(data))
    db_url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("ARENA_MODELS", str(registry))
    monkeypatch.setenv("ARENA_DB_URL", db_url)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.radio(key="mode").set_value("named").run()
    at.selectbox(key="named_a").set_value("tiny-llava")
    at.selectbox(key="named_b").set_value("served-llava").run()
    start_battle(at)
    assert not at.exception
    battle = at.session_state.battle
    local, served = battle.results[0]
    assert local.ok and served.ok, (local.error, served.error)
    assert local.answer == served.answer  # same weights, greedy: the same text either way
    at.button(key="vote_b").click().run()
    row = stored_battle(Store.open(Settings(db_url=db_url)), battle.battle_id)
    assert (row["model_b"], row["vote"]["outcome"]) == ("served-llava", "b")


def test_sample_image_regenerate_and_rate_limit(app_env, monkeypatch):
    store = app_env
    monkeypatch.setenv("ARENA_BATTLES_PER_MINUTE", "1")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.button(key="sample_shapes.png").click().run()
    assert "How many red circles" in str([img.proto for img in at.image])  # the suggested prompt
    at.chat_input(key="prompt").set_value("How many red circles are there?").run()
    assert not at.exception
    battle = at.session_state.battle
    from arena.samples import SAMPLES_DIR

    assert battle.image.data == (SAMPLES_DIR / "shapes.png").read_bytes()
    first = battle.results[0]
    at.button(key="regenerate").click().run()
    assert not at.exception
    battle = at.session_state.battle
    assert len(battle.results) == 1 and battle.results[0][0].ok
    row = stored_battle(store, battle.battle_id)
    assert len(row["turns"]) == 1 and row["turns"][0]["answer_a"] == battle.results[0][0].answer
    assert first[0].answer == battle.results[0][0].answer  # greedy: the same text again
    at.button(key="new_battle").click().run()
    at.button(key="sample_landscape.png").click().run()
    at.chat_input(key="prompt").set_value("What colour is the door?").run()
    assert "at most 1 battle per minute" in texts(at)  # the second battle within a minute
    assert "battle" not in at.session_state


def test_boxes_in_an_answer_are_drawn_under_it():
    def page():
        from PIL import Image

        from arena.battle import SideResult
        from arena.ui.widgets import show_result

        answer = "The cat: <|box_start|>(100,200),(500,800)<|box_end|>"
        show_result(SideResult(answer=answer), Image.new("RGB", (200, 100), "white"))

    at = AppTest.from_function(page).run()
    assert not at.exception
    (image,) = at.image
    assert "1 box(es) found in this answer" in str(image.proto)


def test_first_load_shows_a_status_not_a_frozen_page():
    def page():
        import streamlit as st

        from arena.ui.widgets import waiting

        waiting(st.empty(), "a", loading=True)
        waiting(st.empty(), "b", loading=False)

    at = AppTest.from_function(page).run()
    assert not at.exception
    assert [s.label for s in at.status] == [
        "Loading Model A for the first time (downloading it if needed)…"
    ]
    assert at.markdown[0].value == "⏳ Model B is thinking…"


@pytest.mark.parametrize(
    "name,value,expected",
    [
        ("ARENA_MAX_UPLOAD_MB", "0", "expected a number above 0 and at most 2048 (megabytes)."),
        ("ARENA_MAX_IMAGE_SIDE", "nan", "expected a whole number of at least 64 (pixels)."),
    ],
)
def test_a_bad_setting_is_one_line_on_every_page(name, value, expected, tmp_path, monkeypatch):
    import os

    for var in [v for v in os.environ if v.startswith("ARENA_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("ARENA_DB_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv(name, value)
    message = f"Setting {name}={value!r} is invalid: {expected}"
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [message]
    assert not at.file_uploader and not at.button  # the page stopped there
    at.switch_page("arena/ui/leaderboard_page.py").run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [message]
    assert not at.dataframe


def test_a_sample_with_tiny_limits_works_or_says_why(app_env, monkeypatch):
    """ARENA_MAX_UPLOAD_MB does not apply to a shipped sample (it is no upload); a pixel limit
    below the sample's size is one line on the page, whatever the settings, never a traceback."""
    monkeypatch.setenv("ARENA_MAX_UPLOAD_MB", "0.001")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.button(key="sample_shapes.png").click().run()
    assert not at.exception, at.exception
    assert not at.error
    assert "How many red circles" in str([img.proto for img in at.image])  # its preview
    from arena.samples import SAMPLES_DIR

    same_file = (SAMPLES_DIR / "shapes.png").read_bytes()
    at.file_uploader(key="image").set_value(("shapes.png", same_file, "image/png")).run()
    assert not at.exception
    assert "KB, over the 0.001 MB limit" in at.error[0].value  # as an upload, it counts

    monkeypatch.setenv("ARENA_MAX_PIXELS", "4096")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.button(key="sample_shapes.png").click().run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [
        "shapes.png is 400x300 = 0.12 megapixels, over the 0.004096 megapixel limit: upload a "
        "smaller image (ARENA_MAX_PIXELS)."
    ]
    at.chat_input(key="prompt").set_value("How many?").run()
    assert "battle" not in at.session_state  # nothing to start from


def test_require_login_without_auth_configured_is_one_line(app_env, monkeypatch):
    monkeypatch.setenv("ARENA_REQUIRE_LOGIN", "true")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "ARENA_REQUIRE_LOGIN=true needs Streamlit authentication: add an [auth] section to "
        ".streamlit/secrets.toml (README: Admin and login), or set ARENA_REQUIRE_LOGIN=false."
    ]
    assert not at.chat_input


def test_require_login_offers_the_login_button_and_keys_on_the_user(app_env, monkeypatch):
    """An [auth] section cannot be exercised here (no OIDC provider): auth_configured is
    stubbed to say it exists; st.user is AppTest's own logged-out or logged-in user."""
    store = app_env
    monkeypatch.setenv("ARENA_REQUIRE_LOGIN", "true")
    monkeypatch.setattr("arena.ui.common.auth_configured", lambda: True)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert "log in before you battle or vote" in at.info[0].value
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.chat_input and not at.file_uploader  # nothing to battle with
    at.user = {"is_logged_in": True, "email": "ann@example.com"}
    at.run()
    start_battle(at)
    assert not at.exception
    battle = at.session_state.battle
    row = stored_battle(store, battle.battle_id)
    assert row["voter_id"] == "user:ann@example.com"
