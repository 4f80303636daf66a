"""Votes that cannot be stuffed, in a real browser: limits that hold across reloads, separate
limits per client address, spoofed X-Forwarded-For ignored, a trusted proxy honoured, and no
client address in the database, an export or the page. On SQLite and PostgreSQL (the db_url
fixture).

A browser on this machine always connects from 127.0.0.1; the second client is a TCP relay (or
a reverse proxy) whose connections come from 127.0.0.2 (tests/relay.py).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from arena.clients import client_key, load_secret
from arena.config import LIMITS, Settings
from arena.store import Store
from arena.store.schema import metadata
from tests.conftest import png_bytes
from tests.streamlit_server import (
    REPO,
    ask,
    open_battle_page,
    require_browser,
    streamlit_server,
    tabs_for,
    vote,
    wait_answers,
    wait_idle,
)

require_browser()

from playwright.sync_api import expect  # noqa: E402

from tests.relay import PROXY_HOST, Relay  # noqa: E402

pytestmark = pytest.mark.browser

DEMO_MODELS = ("tiny-llava", "tiny-idefics3")  # two: one pair of model workers to start
SPOOF = "198.51.100.9"  # what a client claims to be
FORWARDED = "203.0.113.7"  # what the trusted proxy says the client is
ADDRESSES = ("127.0.0.1", PROXY_HOST, SPOOF, FORWARDED)
PROMPT = "What is in this picture?"


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "red.png"
    path.write_bytes(png_bytes((64, 48)))
    return path


@contextlib.contextmanager
def arena_server(demo_models_dir: Path, folder: Path, db_url: str, **settings: str):
    """The app on the two demo models, every rate limit set to 1 unless `settings` say otherwise."""
    demo = yaml.safe_load((demo_models_dir / "models.yaml").read_text())["models"]
    entries = [
        {**e, "model": str((demo_models_dir / e["model"]).resolve())}
        for e in demo
        if e["id"] in DEMO_MODELS
    ]
    models = folder / "models.yaml"
    models.write_text(yaml.safe_dump({"models": entries}, sort_keys=False))
    env = {"ARENA_MODELS": str(models), "ARENA_DB_URL": db_url}
    env.update({f"ARENA_{name.upper()}": "1" for name in LIMITS})
    env.update({f"ARENA_{name.upper()}": value for name, value in settings.items()})
    with streamlit_server(env, folder / "streamlit.log") as srv:
        yield srv


def reloaded(tabs, url: str, headers: dict | None = None):
    """A reload as the server sees it: a new tab (a new Streamlit session) on the battle page."""
    context = tabs.browser.new_context(viewport=tabs.viewport, extra_http_headers=headers or {})
    context.set_default_timeout(30_000)
    tabs.contexts.append(context)
    page = context.new_page()
    tabs.pages.append(page)
    page.goto(url + "/", wait_until="commit")
    page.get_by_test_id("stFileUploaderDropzoneInput").wait_for(state="attached")
    wait_idle(page)
    return page


def refused(page, text: str) -> None:
    alert = page.get_by_test_id("stAlert").filter(has_text=text)
    expect(alert).to_be_visible(timeout=60_000)
    expect(alert).to_contain_text("the next one is possible in")
    assert page.get_by_test_id("stException").count() == 0


def no_address_in_html(page, *urls: str) -> None:
    html = page.content()
    for url in urls:  # the servers' own origins are in their asset links
        html = html.replace(url, "")
    leaked = [a for a in ADDRESSES if a in html]
    assert not leaked, f"the page's HTML holds {leaked}"


def stored(db_url: str) -> dict[str, list[dict]]:
    store = Store.open(Settings(db_url=db_url))
    try:
        with store.engine.connect() as conn:
            return {
                t.name: [dict(r) for r in conn.execute(select(t)).mappings()]
                for t in metadata.sorted_tables
            }
    finally:
        store.engine.dispose()


def no_address_stored(db_url: str, tmp_path: Path) -> None:
    """Not in any row, not in the SQLite file's bytes, not in an export."""
    rows = str(stored(db_url))
    assert not [a for a in ADDRESSES if a in rows]
    if db_url.startswith("sqlite"):
        path = Path(db_url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())
        assert not [a for a in ADDRESSES if a.encode() in raw]
    out = tmp_path / "votes.jsonl"
    env = {"ARENA_DB_URL": db_url, "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "arena", "export", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not [a for a in ADDRESSES if a in out.read_text()]


def battle_and_vote(page, image: Path) -> None:
    ask(page, image, PROMPT)
    wait_answers(page)
    vote(page)


def test_reloads_and_spoofing_do_not_buy_another_battle(
    request, browser, demo_models_dir, db_url, image, tmp_path
):
    """Every limit at 1: one battle and one vote; each reload (a new tab, a new session), even
    with a spoofed X-Forwarded-For, is refused with the friendly line; a second client (from
    127.0.0.2) has limits of its own; a trusted proxy's X-Forwarded-For names the client."""
    folder = tmp_path / "app"
    folder.mkdir()
    trusted = {"trusted_proxies": f"{PROXY_HOST}/32"}
    with (
        arena_server(demo_models_dir, folder, db_url, **trusted) as srv,
        tabs_for(request, browser, srv) as tabs,
    ):
        first = tabs.new()
        open_battle_page(first, srv)
        battle_and_vote(first, image)
        for headers in (
            None,
            {"X-Forwarded-For": SPOOF},
            {"X-Forwarded-For": f"{SPOOF}, 127.0.0.1"},
        ):
            again = reloaded(tabs, srv.url, headers)
            ask(again, image, PROMPT)
            refused(again, "at most 1 battle per minute from your network address")
            no_address_in_html(again, srv.url)
        rows = stored(db_url)
        assert (len(rows["battles"]), len(rows["votes"])) == (1, 1)

        with Relay(srv.port) as relay:  # another client: its own limits
            other = reloaded(tabs, relay.url)
            battle_and_vote(other, image)
            no_address_in_html(other, srv.url, relay.url)
        with Relay(srv.port, forwarded_for=FORWARDED) as proxy:  # a trusted proxy names a third
            third = reloaded(tabs, proxy.url, {"X-Forwarded-For": SPOOF})
            battle_and_vote(third, image)
            no_address_in_html(third, srv.url, proxy.url)

    rows = stored(db_url)
    assert (len(rows["battles"]), len(rows["votes"])) == (3, 3)
    keys = [b["client_key"] for b in sorted(rows["battles"], key=lambda b: b["created_at"])]
    assert len(set(keys)) == 3 and all(keys)
    secret = load_secret(Settings(models=str(folder / "models.yaml")))
    assert keys[2] == client_key(FORWARDED, secret)  # the proxy's word, not the spoof
    assert {v["client_key"] for v in rows["votes"]} == set(keys)  # votes carry their client's key
    no_address_stored(db_url, tmp_path)


def test_a_reload_cannot_vote_past_the_clients_hourly_limit(
    request, browser, demo_models_dir, db_url, image, tmp_path
):
    """Battles allowed, one vote per hour everywhere: the reloaded tab's vote is refused by the
    client's limit, though the tab and its voter id are new."""
    folder = tmp_path / "app"
    folder.mkdir()
    roomy = {"battles_per_minute": "10", "client_battles_per_minute": "10"}
    with (
        arena_server(demo_models_dir, folder, db_url, **roomy) as srv,
        tabs_for(request, browser, srv) as tabs,
    ):
        first = tabs.new()
        open_battle_page(first, srv)
        battle_and_vote(first, image)
        again = reloaded(tabs, srv.url)
        ask(again, image, PROMPT)
        wait_answers(again)
        again.locator(".st-key-vote_b button").click()
        refused(again, "at most 1 vote per hour from your network address")
    rows = stored(db_url)
    assert (len(rows["battles"]), len(rows["votes"])) == (2, 1)
    assert rows["battles"][0]["client_key"] == rows["battles"][1]["client_key"]
    assert rows["battles"][0]["session_id"] != rows["battles"][1]["session_id"]
