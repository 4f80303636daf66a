"""The app in a real browser: `streamlit run` serving Debian's chromium, driven by Playwright.

What AppTest cannot see: the page as a browser draws it (side-by-side columns, the whole DOM that
the browser holds before the vote, charts that actually render, HTML in model answers staying
inert) and many tabs battling one server at once. One server, on the demo models, per module.
"""

from __future__ import annotations

import json
import re
import tempfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from arena.config import Settings
from arena.store import Store
from arena.store.schema import battles, turns, votes
from tests.conftest import png_bytes, serve_http, stream_chat
from tests.streamlit_server import (
    STEP_TIMEOUT_MS,
    ask,
    goto_battle_page,
    leaderboard_rows,
    open_battle_page,
    require_browser,
    send_prompt,
    streamlit_server,
    tabs_for,
    upload,
    vote,
    votes_metric,
    wait_answers,
    wait_idle,
    wait_ready,
    wait_uploaded,
)

require_browser()

from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser

DEMO_MODELS = ("tiny-llava", "tiny-idefics3", "tiny-qwen2-vl")  # three: the pair stays unknown
SCRIPTED_ID, SCRIPTED_NAME = "scripted-html", "Scripted HTML Provider"
FINAL_SHOTS = Path(tempfile.gettempdir()) / "vlm-arena-browser"
PROMPT = "What is in this picture?"
SESSIONS = 10

# Model output that would run script if the page rendered it as live HTML.
HOSTILE = [
    "Here is the answer. ",
    "<scr",
    "ipt>window.__pwned=1</script> and ",
    '<img src=x onerror="window.__pwned=2">',
    " and [click](javascript:window.__pwned=3)",
    " end of answer.",
]


# ----- a scripted OpenAI-compatible provider -----------------------------------------------------


class _HostileProvider(BaseHTTPRequestHandler):
    """Streams HOSTILE through the OpenAI chat-completions protocol (SSE chunks, then [DONE]).

    A real model cannot be made to emit this on cue, so this stands in for a provider whose
    model answers with HTML and a javascript: link (real HTTP, real OpenAI backend, real page).
    """

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        stream_chat(self, HOSTILE)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def provider():
    yield from serve_http(_HostileProvider, requests=[])


# ----- the server, the browser, the database ------------------------------------------------------


@pytest.fixture(scope="module")
def registry(demo_models_dir, provider) -> list[dict]:
    """Three demo models, and the scripted provider for named battles only (weight 0)."""
    demo = yaml.safe_load((demo_models_dir / "models.yaml").read_text())["models"]
    entries = [
        {**e, "model": str((demo_models_dir / e["model"]).resolve())}
        for e in demo
        if e["id"] in DEMO_MODELS
    ]
    assert [e["id"] for e in entries] == list(DEMO_MODELS)
    entries.append(
        {
            "id": SCRIPTED_ID,
            "name": SCRIPTED_NAME,
            "backend": "openai",
            "base_url": f"http://127.0.0.1:{provider.server_address[1]}/v1",
            "model": "scripted-html-model",
            "max_retries": 0,
            "weight": 0.0,
        }
    )
    return entries


@pytest.fixture(scope="module")
def db_url(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('browser_db') / 'arena.db'}"


@pytest.fixture(scope="module")
def server(registry, db_url, tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser_server")
    models = folder / "models.yaml"
    models.write_text(yaml.safe_dump({"models": registry}, sort_keys=False))
    env = {
        "ARENA_MODELS": str(models),
        "ARENA_DB_URL": db_url,
        "ARENA_BATTLES_PER_MINUTE": "1000",
        "ARENA_VOTES_PER_HOUR": "1000",
    }
    with streamlit_server(env, folder / "streamlit.log") as srv:
        yield srv


@pytest.fixture(scope="module")
def engine(db_url):
    """The test's own connection to the app's database (schema made by the same migrations)."""
    store = Store.open(Settings(db_url=db_url))
    yield store.engine
    store.engine.dispose()


@pytest.fixture
def tabs(request, browser, server):
    with tabs_for(request, browser, server) as t:
        yield t


@pytest.fixture
def page(tabs):
    return tabs.new()


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("images") / "red.png"
    path.write_bytes(png_bytes((64, 48)))
    return path


def final_shot(page, name: str) -> Path:
    """The last picture of a test, kept in the temp folder for a person to look at."""
    FINAL_SHOTS.mkdir(exist_ok=True)
    path = FINAL_SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def last_vote_id(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.coalesce(func.max(votes.c.id), 0))).scalar_one()


def votes_since(engine, vote_id: int) -> list:
    columns = [votes.c.battle_id, votes.c.outcome, votes.c.voter_id, battles.c.session_id]
    columns += [battles.c.mode, battles.c.model_a, battles.c.model_b]
    query = select(*columns).join_from(votes, battles).where(votes.c.id > vote_id)
    with engine.connect() as conn:
        return conn.execute(query).all()


def anonymous_votes(engine) -> int:
    query = (
        select(func.count()).select_from(votes.join(battles)).where(battles.c.mode == "anonymous")
    )
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def answer_columns(page):
    """The two answer columns: the first two columns of the page, whose labels say Model A / B."""
    columns = page.get_by_test_id("stColumn")
    left, right = columns.nth(0), columns.nth(1)
    expect(left).to_contain_text("Model A")
    expect(right).to_contain_text("Model B")
    return left, right


def stored_answers(engine, battle_id: str) -> tuple[str, str]:
    with engine.connect() as conn:
        query = select(turns.c.answer_a, turns.c.answer_b).where(turns.c.battle_id == battle_id)
        return tuple(conn.execute(query).one())


def plain_part(answer: str) -> str:
    """The longest run of letters, digits and single spaces in an answer: text that markdown
    shows as it is (the demo models answer gibberish that may hold markdown syntax)."""
    runs = re.findall(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*", answer)
    assert runs, f"nothing plain in the answer {answer!r}"
    return max(runs, key=len)


def secrets(registry) -> list[str]:
    """Every id, display name and model path of the registry: none may show before the vote."""
    return sorted({v for e in registry for v in (e["id"], e.get("name") or e["id"], e["model"])})


# ----- tests --------------------------------------------------------------------------------------


def test_battle_vote_reveal_and_leaderboard(page, server, engine, registry, image, tabs):
    """A user's whole battle: upload, ask, two answers side by side, vote, names, leaderboard."""
    names = {e["id"]: e.get("name") or e["id"] for e in registry}
    before = last_vote_id(engine)
    open_battle_page(page, server)
    tabs.shot(page, "opened")
    ask(page, image, PROMPT)
    wait_answers(page)
    tabs.shot(page, "answered")

    left, right = answer_columns(page)
    box_a, box_b = left.bounding_box(), right.bounding_box()
    assert box_a["x"] + box_a["width"] <= box_b["x"], "the answers are not side by side"
    assert abs(box_a["y"] - box_b["y"]) < 5, "the answers do not start at the same height"
    body = page.locator("body").inner_text()
    assert not [n for n in names.values() if n in body], "a name shows before the vote"

    vote(page, "vote_a")
    tabs.shot(page, "voted")
    (row,) = votes_since(engine, before)
    assert (row.outcome, row.mode) == ("a", "anonymous")
    assert row.voter_id == f"session:{row.session_id}"
    expect(left).to_contain_text(f"Model A: {names[row.model_a]}")
    expect(right).to_contain_text(f"Model B: {names[row.model_b]}")
    thanks = page.get_by_test_id("stAlert").filter(has_text="Thanks for voting")
    expect(thanks).to_contain_text(names[row.model_a])
    expect(thanks).to_contain_text(names[row.model_b])
    expect(page.locator(".st-key-vote_b button")).to_be_disabled()  # one vote per battle
    for column, answer in zip((left, right), stored_answers(engine, row.battle_id), strict=True):
        expect(column).to_contain_text(plain_part(answer))
        expect(column).to_contain_text("tokens")  # the timing caption

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Leaderboard").click()
    expect(page).to_have_url(f"{server.url}/leaderboard")
    counted = anonymous_votes(engine)
    expect(votes_metric(page)).to_have_text(str(counted))
    rows = {r["model"]: r for r in leaderboard_rows(page)}
    assert {row.model_a, row.model_b} <= set(rows), f"the battle's models are missing: {rows}"
    assert int(rows[row.model_a]["wins"]) >= 1
    assert sum(int(r["votes"]) for r in rows.values()) == 2 * counted  # two models per vote
    drawn = page.get_by_test_id("stVegaLiteChart").first.locator("canvas, svg").first
    expect(drawn).to_be_visible()
    box = drawn.bounding_box()
    assert box["width"] > 100 and box["height"] > 50, f"the chart is not drawn: {box}"
    wait_idle(page)
    assert page.get_by_test_id("stException").count() == 0
    tabs.shot(page, "leaderboard")
    final_shot(page, "battle_and_leaderboard")


def test_no_model_name_in_the_dom_before_the_vote(page, server, registry, image):
    """Whatever the browser holds (hidden elements, attributes, tooltips) counts: the pair is
    unknown to the test, so no id, name or model path of the registry may be in the DOM."""
    open_battle_page(page, server)
    ask(page, image, PROMPT)
    wait_answers(page)
    html = page.content()
    leaked = [s for s in secrets(registry) if s in html]
    assert not leaked, f"the page's DOM names the models before the vote: {leaked}"

    vote(page, "vote_tie")
    html = page.content()
    revealed = [e.get("name") for e in registry if e.get("name") in html]
    assert len(revealed) == 2, f"the vote should reveal exactly the two names, got {revealed}"


def test_html_in_an_answer_stays_inert(page, server, provider, image, tabs):
    """A named battle of the scripted provider (HOSTILE) against a demo model."""
    open_battle_page(page, server)
    page.locator(".st-key-mode").get_by_text("Named battle").click()
    for key, name in (("named_a", SCRIPTED_NAME), ("named_b", "Tiny LLaVA (Qwen2 + SigLIP)")):
        box = page.locator(f".st-key-{key}").get_by_role("combobox")
        box.click()
        page.get_by_role("option", name=name).click()
        expect(box).to_have_value(name)
    wait_idle(page)
    tabs.shot(page, "named")
    requests_before = len(provider.requests)
    ask(page, image, PROMPT)
    wait_answers(page)
    tabs.shot(page, "answered")
    assert len(provider.requests) == requests_before + 1, "the scripted provider was not asked"

    left, _ = answer_columns(page)
    expect(left).to_contain_text(f"Model A: {SCRIPTED_NAME}")
    expect(left).to_contain_text("end of answer.")  # the hostile answer was rendered
    assert page.evaluate("window.__pwned") is None
    dom = page.evaluate(
        """() => ({
            scripts: [...document.scripts].filter(s => s.textContent.includes('__pwned')).length,
            onerror: document.querySelectorAll('img[onerror]').length,
            attributes: [...document.querySelectorAll('*')].flatMap(e => [...e.attributes])
                .filter(a => a.value.includes('__pwned')).map(a => a.name + '=' + a.value),
        })"""
    )
    assert dom == {"scripts": 0, "onerror": 0, "attributes": []}

    links = left.get_by_role("link", name="click")
    if links.count():
        links.first.click()
        page.wait_for_timeout(500)  # a javascript: URL would run at once; nothing to wait for
    for tab in page.context.pages:
        assert tab.evaluate("window.__pwned") is None, f"script ran in {tab.url}"
    tabs.shot(page, "clicked")
    final_shot(page, "html_inert")


def test_concurrent_sessions_each_vote_once(server, engine, image, tabs):
    """Ten tabs, each its own browser context and Streamlit session, battle and vote at once."""
    outcomes = ["vote_a", "vote_b", "vote_tie", "vote_bothbad"]
    before = last_vote_id(engine)
    pages = [tabs.new() for _ in range(SESSIONS)]
    # Each step is started in every tab before any tab is awaited, so the ten sessions overlap.
    for pg in pages:
        goto_battle_page(pg, server)
    for pg in pages:
        wait_ready(pg)
        upload(pg, image)
    for i, pg in enumerate(pages):
        wait_uploaded(pg, image)
        send_prompt(pg, f"{PROMPT} (tab {i})")
    for pg in pages:
        wait_answers(pg)
    for i, pg in enumerate(pages):  # clicked without waiting: the votes arrive together
        pg.locator(f".st-key-{outcomes[i % 4]} button").click()
    for pg in pages:  # ten reruns at once on two shared cores: more than expect's default 5 s
        thanks = pg.get_by_test_id("stAlert").filter(has_text="Thanks for voting")
        expect(thanks).to_be_visible(timeout=STEP_TIMEOUT_MS)
    tabs.shot(pages[-1], "last-tab-voted")

    rows = votes_since(engine, before)
    assert len(rows) == SESSIONS, f"{len(rows)} votes stored for {SESSIONS} sessions"
    assert len({r.battle_id for r in rows}) == SESSIONS
    assert len({r.session_id for r in rows}) == SESSIONS
    assert len({r.voter_id for r in rows}) == SESSIONS
    expected = sorted(outcomes[i % 4].removeprefix("vote_") for i in range(SESSIONS))
    assert sorted(r.outcome for r in rows) == expected
    assert all(r.mode == "anonymous" and r.model_a != r.model_b for r in rows)
