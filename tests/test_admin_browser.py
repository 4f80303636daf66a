"""The admin pages in a real browser (`streamlit run` and Debian's chromium): what a visitor who
is not an admin can reach by typing URLs, the token refused and then rate-limited, and the right
token opening the admin pages. One server for the module, with battles stored beforehand (their
prompts, answers, voters, models and images are what must never reach a non-admin's DOM)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from arena.admin import WRONG_TOKEN
from arena.config import LIMITS, Settings
from arena.store import Store
from tests.admin_data import REGISTRY, secrets_of, seed
from tests.streamlit_server import require_browser, streamlit_server, tabs_for, wait_idle

require_browser()

from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser

TOKEN = "browser-admin-token-0123456789"
# every admin address, those of the pages and the names a visitor might guess
ADMIN_URLS = ("/admin", "/admin-audit", "/admin-dataset", "/admin_battles", "/admin_audit",
              "/admin_dataset", "/admin_gate", "/admin_battle_view", "/admin?battle=1")  # fmt: skip


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("admin_browser")
    models = folder / "models.yaml"
    models.write_text(REGISTRY)
    db_url = f"sqlite:///{folder / 'arena.db'}"
    settings = Settings(db_url=db_url, models=str(models), **dict.fromkeys(LIMITS, 0))
    store = Store.open(settings)
    battles = seed(store, settings, 4)
    store.report(battles[0].battle_id, "report-reason-okapi", _reporter())
    store.engine.dispose()
    return folder, models, db_url, battles


def _reporter():
    from arena.kinds import Requester

    return Requester(session_id="reporter", voter_id="session:reporter")


@pytest.fixture(scope="module")
def server(seeded):
    folder, models, db_url, _ = seeded
    env = {"ARENA_MODELS": str(models), "ARENA_DB_URL": db_url, "ARENA_ADMIN_TOKEN": TOKEN}
    with streamlit_server(env, folder / "streamlit.log") as srv:
        yield srv


@pytest.fixture
def tabs(request, browser, server):
    with tabs_for(request, browser, server) as t:
        yield t


def hidden_from_visitors(seeded) -> list[str]:
    """Texts only an admin may see: ids, prompts, answers, voters, models, the report's reason,
    and the images as base64 and as their sha256."""
    battles = seeded[3]
    texts = [*secrets_of(battles), "report-reason-okapi"]
    for b in battles:
        texts += [base64.b64encode(b.image).decode()[:40], hashlib.sha256(b.image).hexdigest()]
    return texts


def leaks(page, seeded) -> list[str]:
    """What the whole DOM (page.content()) and every image it shows give away."""
    html = page.content()
    found = [text for text in hidden_from_visitors(seeded) if text in html]
    images = {b.image for b in seeded[3]}
    for src in page.locator("img").evaluate_all("els => els.map(e => e.src)"):
        if src.startswith("http") and page.request.get(src).body() in images:
            found.append(f"image {src}")
    return found


def type_token(page, token: str) -> None:
    field = page.get_by_label("Admin token")
    field.fill(token)
    page.locator(".st-key-admin_token_go button").click()
    wait_idle(page)


def open_gate(page, server) -> None:
    page.goto(server.url + "/admin")
    page.get_by_label("Admin token").wait_for()
    wait_idle(page)


def test_a_visitor_who_types_admin_urls_sees_nothing_of_the_battles(server, seeded, tabs):
    page = tabs.new()
    for url in ADMIN_URLS:
        page.goto(server.url + url)
        page.get_by_test_id("stSidebarNav").wait_for()
        wait_idle(page)
        found = leaks(page, seeded)
        assert not found, f"{url} shows a visitor {found}"
        assert page.get_by_test_id("stDataFrame").count() == 0, url
    tabs.shot(page, "last-url")
    open_gate(page, server)
    expect(page.get_by_role("heading", name="Admin")).to_be_visible()
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav.get_by_role("link", name="Admin")).to_be_visible()
    expect(nav.get_by_role("link", name="Battles (admin)")).to_have_count(0)
    assert not leaks(page, seeded)


def test_the_right_token_opens_the_admin_pages_for_that_tab_only(server, seeded, tabs, tmp_path):
    import pyarrow.parquet as pq

    admin, visitor = tabs.new(), tabs.new()
    open_gate(admin, server)
    type_token(admin, TOKEN)
    expect(admin.get_by_role("heading", name="Battles")).to_be_visible()
    newest = seeded[3][-1]
    admin.get_by_test_id("stDataFrame").locator("table").wait_for(state="attached")
    html = admin.content()
    assert newest.battle_id in html and TOKEN not in html  # the check above can see a leak
    admin.get_by_label("…or type a battle id").fill(newest.battle_id)
    admin.get_by_label("…or type a battle id").press("Enter")
    expect(admin.get_by_text(newest.prompt)).to_be_visible()
    expect(admin.get_by_test_id("stImage")).to_have_count(1)
    tabs.shot(admin, "one-battle")
    admin.get_by_test_id("stSidebarNav").get_by_role("link", name="Audit log (admin)").click()
    expect(admin.get_by_role("heading", name="Audit log")).to_be_visible()
    wait_idle(admin)
    reports = admin.get_by_test_id("stDataFrame").nth(1).locator("table tbody td")
    expect(reports.filter(has_text="report-reason-okapi")).to_have_count(1)
    tabs.shot(admin, "audit")
    admin.get_by_test_id("stSidebarNav").get_by_role("link", name="Dataset (admin)").click()
    with admin.expect_download() as download:
        admin.get_by_role("button", name="Download the dataset (parquet)").click()
    saved = tmp_path / "dataset.parquet"
    download.value.save_as(saved)
    voted = [b.battle_id for b in seeded[3] if b.voted]
    assert sorted(pq.read_table(saved)["question_id"].to_pylist()) == sorted(voted)
    for url in ("/admin", "/admin-audit", "/admin-dataset"):  # another tab is no admin
        visitor.goto(server.url + url)
        visitor.get_by_test_id("stSidebarNav").wait_for()
        wait_idle(visitor)
        assert not leaks(visitor, seeded), url


def test_an_admin_hides_a_battle_and_erases_its_text_with_the_buttons(server, seeded, tabs):
    """Moderation through the page itself: the hide and erase forms of one battle write the
    change (read back from the database) and their audit rows (shown on the audit page), and
    the erased prompt leaves the admin's page for its placeholder."""
    folder, models, db_url, battles = seeded
    target = battles[1]
    admin = tabs.new()
    open_gate(admin, server)
    type_token(admin, TOKEN)
    expect(admin.get_by_role("heading", name="Battles")).to_be_visible()
    admin.get_by_label("…or type a battle id").fill(target.battle_id)
    admin.get_by_label("…or type a battle id").press("Enter")
    expect(admin.get_by_text(target.prompt)).to_be_visible()

    admin.locator(".st-key-admin_hide_reason input").fill("reason-hide-quokka")
    admin.locator(".st-key-admin_hide_go button").click()
    wait_idle(admin)
    expect(admin.get_by_text("Hide: done.")).to_be_visible()
    admin.get_by_text("the prompts and answers").click()
    admin.locator(".st-key-admin_erase_reason input").fill("reason-erase-numbat")
    admin.locator(".st-key-admin_erase_go button").click()
    wait_idle(admin)
    expect(admin.get_by_text("Erased", exact=False).first).to_be_visible()
    assert target.prompt not in admin.content()
    expect(admin.get_by_text("(erased)").first).to_be_visible()
    tabs.shot(admin, "moderated")

    store = Store.open(Settings(db_url=db_url, models=str(models), **dict.fromkeys(LIMITS, 0)))
    try:
        detail = store.battle_detail(target.battle_id)
        assert detail.battle["hidden_reason"] == "reason-hide-quokka"
        assert detail.battle["text_erased_at"] is not None
        assert all(turn["prompt"] == "" for turn in detail.turns)
    finally:
        store.engine.dispose()
    admin.get_by_test_id("stSidebarNav").get_by_role("link", name="Audit log (admin)").click()
    expect(admin.get_by_role("heading", name="Audit log")).to_be_visible()
    wait_idle(admin)
    audit = admin.get_by_test_id("stDataFrame").first.locator("table tbody")
    expect(audit.filter(has_text="reason-hide-quokka")).to_have_count(1)
    expect(audit.filter(has_text="reason-erase-numbat")).to_have_count(1)


def test_wrong_tokens_are_refused_then_rate_limited(server, seeded, tabs):
    """Every tab of this browser comes from 127.0.0.1: one client key, 5 wrong tokens per 10
    minutes (arena.admin.LOGIN_LIMIT); a reload does not reset it."""
    page = tabs.new()
    open_gate(page, server)
    for i in range(5):
        if i == 3:
            open_gate(page, server)  # a reload: a new session, the same client
        type_token(page, f"wrong-token-{i}")
        expect(page.get_by_test_id("stAlert")).to_have_text(WRONG_TOKEN)
        assert f"wrong-token-{i}" not in page.content()  # never echoed; the field is cleared
    type_token(page, TOKEN)  # even the right one, now
    expect(page.get_by_test_id("stAlert")).to_contain_text(
        "Too many wrong tokens from your network address (5 in 10 minutes): try again in"
    )
    expect(page.get_by_role("heading", name="Battles")).to_have_count(0)
    assert not leaks(page, seeded)
    tabs.shot(page, "limited")
