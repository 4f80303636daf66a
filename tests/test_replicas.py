"""Two replicas of the app (two real `streamlit run` processes) on one PostgreSQL database:
a vote cast through one shows on the other's leaderboard."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from arena.config import Settings
from arena.store import Store
from arena.store.schema import battles, votes
from tests.conftest import png_bytes
from tests.streamlit_server import (
    ask,
    launch,
    leaderboard_rows,
    open_battle_page,
    require_browser,
    streamlit_server,
    tabs_for,
    vote,
    votes_metric,
    wait_answers,
    wait_idle,
)

require_browser()

from playwright.sync_api import expect, sync_playwright  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

DEMO_MODELS = ("tiny-llava", "tiny-idefics3")  # two: only one pair of model workers to start


def _registry(demo_models_dir: Path, out: Path) -> Path:
    demo = yaml.safe_load((demo_models_dir / "models.yaml").read_text())["models"]
    entries = [
        {**e, "model": str((demo_models_dir / e["model"]).resolve())}
        for e in demo
        if e["id"] in DEMO_MODELS
    ]
    out.write_text(yaml.safe_dump({"models": entries}, sort_keys=False))
    return out


def test_vote_on_one_replica_shows_on_the_other(request, pg_url, demo_models_dir, tmp_path):
    image = tmp_path / "red.png"
    image.write_bytes(png_bytes((64, 48)))
    env = {
        "ARENA_MODELS": str(_registry(demo_models_dir, tmp_path / "models.yaml")),
        "ARENA_DB_URL": pg_url,
    }
    with (
        streamlit_server(env, tmp_path / "replica1.log") as one,
        streamlit_server(env, tmp_path / "replica2.log") as two,
        sync_playwright() as playwright,
    ):
        assert one.proc.pid != two.proc.pid and one.port != two.port
        browser = launch(playwright)
        with tabs_for(request, browser, one, two) as tabs:
            on_two = tabs.new()
            on_two.goto(f"{two.url}/leaderboard")
            expect(on_two.get_by_text("No votes yet")).to_be_visible()
            tabs.shot(on_two, "replica2-empty")

            on_one = tabs.new()
            open_battle_page(on_one, one)
            ask(on_one, image, "What colour is this?")
            wait_answers(on_one)
            vote(on_one, "vote_b")
            tabs.shot(on_one, "replica1-voted")

            store = Store.open(Settings(db_url=pg_url))
            try:
                with store.engine.connect() as conn:
                    query = select(votes.c.outcome, battles.c.model_a, battles.c.model_b)
                    (stored,) = conn.execute(query.join_from(votes, battles)).all()
            finally:
                store.engine.dispose()
            assert stored.outcome == "b"

            on_two.reload()
            expect(votes_metric(on_two)).to_have_text("1")
            rows = {r["model"]: r for r in leaderboard_rows(on_two)}
            assert set(rows) == {stored.model_a, stored.model_b}
            assert (rows[stored.model_b]["wins"], rows[stored.model_a]["losses"]) == ("1", "1")
            wait_idle(on_two)
            tabs.shot(on_two, "replica2-counted")
        browser.close()
