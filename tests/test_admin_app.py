"""The admin gate and pages, the report button and the terms gate, headless (AppTest) on a real
SQLite file. tests/test_admin_browser.py checks in a real browser what AppTest cannot: the URLs."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from streamlit.testing.v1 import AppTest

from arena.admin import FAILED, LOGIN_LIMIT, WRONG_TOKEN
from arena.config import LIMITS, Settings
from arena.store import Store
from arena.store.schema import audit, battles, terms_accepted
from tests.admin_data import REGISTRY, secrets_of, seed

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
UI = ROOT / "arena" / "ui"
ADMIN_PAGES = ("admin_battles.py", "admin_audit.py", "admin_dataset.py")
TIMEOUT = 60
TOKEN = "correct-horse-battery-staple"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A registry of three OpenAI-backed models that are never asked (no battle runs here)."""
    import os

    for name in [v for v in os.environ if v.startswith("ARENA_")]:
        monkeypatch.delenv(name)
    models = tmp_path / "models.yaml"
    models.write_text(REGISTRY)
    db_url = f"sqlite:///{tmp_path / 'admin.db'}"
    monkeypatch.setenv("ARENA_MODELS", str(models))
    monkeypatch.setenv("ARENA_DB_URL", db_url)
    settings = Settings(db_url=db_url, models=str(models), **dict.fromkeys(LIMITS, 0))
    store = Store.open(settings)
    yield store, settings
    store.engine.dispose()


@pytest.fixture
def token(env, monkeypatch):
    monkeypatch.setenv("ARENA_ADMIN_TOKEN", TOKEN)
    return env


def app(**state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def page_text(at) -> str:
    """Everything the page drew: the protobuf message of every element, as text (a table's
    Arrow bytes too, where ids and names are plain ASCII)."""
    parts = []

    def walk(node) -> None:
        if getattr(node, "proto", None) is not None:
            parts.append(str(node.proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


def has_button(at, key: str) -> bool:
    return any(b.key == key for b in at.button)


def admin_pages(at) -> list[str]:
    """The admin pages of the navigation for this session: those AppTest.switch_page can open
    (its registry of the last run's st.navigation; a page not in it cannot be switched to)."""
    names = [Path(info["script_path"]).name for info in at._registered_pages.values()]
    assert "battle_page.py" in names
    return sorted(name for name in names if name.startswith("admin"))


def as_admin(page: str = "admin_battles.py") -> AppTest:
    """A session that typed the token (its session state says so), on an admin page."""
    at = app(admin="token")
    at.switch_page(f"arena/ui/{page}").run()
    assert not at.exception, at.exception
    return at


def audited(store) -> list[tuple]:
    with store.engine.connect() as conn:
        query = select(audit.c.actor, audit.c.action, audit.c.target, audit.c.reason)
        return conn.execute(query.order_by(audit.c.id)).all()


# ----- access -------------------------------------------------------------------------------------


def test_without_admin_settings_there_is_no_admin_page(env):
    at = app()
    assert not at.exception
    assert admin_pages(at) == []


def test_the_gate_refuses_a_wrong_token_then_opens_the_admin_pages(token):
    store, settings = token
    seeded = seed(store, settings, 2)
    at = app()
    assert admin_pages(at) == ["admin_gate.py"]
    at.switch_page("arena/ui/admin_gate.py").run()
    assert [t.value for t in at.title] == ["Admin"]
    assert not at.dataframe and not [s for s in secrets_of(seeded) if s in page_text(at)]
    at.text_input(key="admin_token_typed").input("not the token")
    at.button(key="admin_token_go").click().run()
    assert [e.value for e in at.error] == [WRONG_TOKEN]
    assert "admin" not in at.session_state
    at.text_input(key="admin_token_typed").input(TOKEN)
    at.button(key="admin_token_go").click().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Battles"]  # the same URL, now the browser
    assert admin_pages(at) == sorted(ADMIN_PAGES)
    assert TOKEN not in repr(at.session_state)  # the field went with the gate
    session = at.session_state.session_id
    assert audited(store) == [
        (f"session:{session}", FAILED, "-", None),
        ("admin:token", "admin_login", "-", f"token typed by session:{session}"),
    ]  # no client key under AppTest; no row holds what was typed
    at.button(key="admin_leave").click().run()
    assert admin_pages(at) == ["admin_gate.py"]


def test_wrong_tokens_in_total_pause_the_token_login(token):
    store, _ = token
    now = datetime.now(UTC)
    with store.write_engine.begin() as conn:
        for i in range(LOGIN_LIMIT.in_total):
            row = dict(at=now, actor=f"session:{i}", action=FAILED, target=f"{i:032x}")
            conn.execute(insert(audit).values(**row, reason=None))
    at = app()
    at.switch_page("arena/ui/admin_gate.py").run()
    at.text_input(key="admin_token_typed").input(TOKEN)
    at.button(key="admin_token_go").click().run()
    assert [e.value for e in at.error] == [
        "Too many wrong admin tokens lately (50 in 10 minutes): the token login is paused; try "
        "again in 10 minutes."
    ]
    assert admin_pages(at) == ["admin_gate.py"]


def test_admins_without_authentication_is_one_line(env, monkeypatch):
    monkeypatch.setenv("ARENA_ADMINS", "ann@example.com")
    at = app()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "ARENA_ADMINS needs Streamlit authentication to know who is logged in: add an [auth] "
        "section to .streamlit/secrets.toml (README: Admin and login), or use ARENA_ADMIN_TOKEN "
        "instead."
    ]
    assert not at.file_uploader


@pytest.mark.parametrize(
    "user,admin",
    [
        ({"is_logged_in": True, "email": "Ann@Example.com"}, True),
        ({"is_logged_in": True, "email": "ann@example.com", "email_verified": False}, False),
        ({"is_logged_in": True, "email": "bob@example.com"}, False),
        ({"is_logged_in": False}, False),
    ],
)
def test_logged_in_admins_get_the_admin_pages_and_nobody_else(env, monkeypatch, user, admin):
    """No OIDC provider here: auth_configured is stubbed to say the [auth] section exists;
    st.user is AppTest's own user."""
    monkeypatch.setenv("ARENA_ADMINS", "ann@example.com")
    monkeypatch.setattr("arena.ui.common.auth_configured", lambda: True)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.user = user
    at.run()
    assert not at.exception
    pages = admin_pages(at)
    assert ("admin_battles.py" in pages) is admin and ("admin_gate.py" in pages) is not admin
    if not admin:
        at.switch_page("arena/ui/admin_gate.py").run()
        labels = [b.label for b in at.button]
        assert labels == (["Log in"] if not user["is_logged_in"] else [])
        assert bool(at.info) is user["is_logged_in"]  # "This account is not an admin…"
        assert not at.text_input  # no token configured: no token field


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_an_admin_page_draws_nothing_for_a_non_admin(token, page):
    """Defence in depth: run as a script of its own, outside the navigation."""
    store, settings = token
    seeded = seed(store, settings, 3)
    at = AppTest.from_file(str(UI / page), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert not at.title and not at.dataframe and not at.markdown and not at.button
    assert not [s for s in secrets_of(seeded) if s in page_text(at)]
    at.session_state["admin"] = "token"  # the same script for an admin session does draw
    at.run()
    assert not at.exception and len(at.title) == 1


# ----- the battle browser -------------------------------------------------------------------------


def rows_shown(at) -> list[str]:
    return list(at.dataframe[0].value["battle"]) if len(at.dataframe[0].value) else []


def test_the_browser_paginates_most_recent_first(token):
    store, settings = token
    ids = [s.battle_id for s in seed(store, settings, 30)][::-1]
    at = as_admin()
    assert rows_shown(at) == ids[:25]
    assert "30 battles match; page 1 of 2" in page_text(at)
    at.button(key="admin_older").click().run()
    assert rows_shown(at) == ids[25:]
    assert at.button(key="admin_older").disabled
    at.button(key="admin_newer").click().run()
    assert rows_shown(at) == ids[:25]


def test_the_browser_filters(token):
    store, settings = token
    seeded = seed(store, settings, 9)
    store.report(seeded[3].battle_id, "a face in the picture", _requester())
    store.hide(seeded[5].battle_id, "spam", "admin:token")
    at = as_admin()

    def shown() -> set[str]:
        return set(rows_shown(at))

    def ids(keep) -> set[str]:
        return {s.battle_id for s in seeded if keep(s)}

    at.selectbox(key="admin_f_model").set_value("secret-model-two").run()
    assert shown() == ids(lambda s: "secret-model-two" in (s.model_a, s.model_b))
    at.selectbox(key="admin_f_mode").set_value("named").run()
    assert shown() == ids(
        lambda s: "secret-model-two" in (s.model_a, s.model_b) and s.mode == "named"
    )
    at.selectbox(key="admin_f_model").set_value("any")
    at.selectbox(key="admin_f_mode").set_value("any")
    at.selectbox(key="admin_f_voted").set_value("no").run()
    assert shown() == ids(lambda s: not s.voted)
    at.selectbox(key="admin_f_voted").set_value("any")
    at.selectbox(key="admin_f_flagged").set_value("yes").run()
    assert shown() == {seeded[3].battle_id, seeded[5].battle_id}
    at.selectbox(key="admin_f_flagged").set_value("any")
    yesterday = date.today() - timedelta(days=2)
    at.date_input(key="admin_f_dates").set_value((yesterday, yesterday)).run()
    assert shown() == set()
    at.date_input(key="admin_f_dates").set_value((yesterday, date.today() + timedelta(1))).run()
    assert shown() == ids(lambda s: True)


def _requester():
    from arena.kinds import Requester

    return Requester(session_id="reporter", voter_id="session:reporter")


# ----- one battle and its actions -----------------------------------------------------------------


def open_battle(at, battle_id: str) -> AppTest:
    at.text_input(key="admin_battle_id").input(battle_id).run()
    assert not at.exception, at.exception
    return at


def test_one_battle_in_full(token):
    store, settings = token
    seeded = seed(store, settings, 3)
    hostile = "see ![pixel](http://tracker.example/p.png)"
    store.report(seeded[1].battle_id, hostile, _requester())
    at = as_admin()
    failed = open_battle(at, seeded[1].battle_id)  # its right side failed
    assert hostile in [t.value for t in at.text]  # what a voter typed: plain text, no markdown
    assert not [m.value for m in at.markdown if "tracker.example" in m.value]
    assert seeded[1].prompt in [t.value for t in at.text]
    text = page_text(failed)
    for expected in (seeded[1].prompt, seeded[1].answer_a, "side B timed out", "no vote"):
        assert expected in text
    assert "first token 0.25 s" in text and "total 1.50 s" in text and "12 tokens" in text
    assert "user:voter1@example.com" in text and f"{1:032x}" in text  # voter, client key
    assert len(at.image) == 1  # the battle's image
    voted = open_battle(as_admin(), seeded[0].battle_id)
    assert "vote **a** by `user:voter0@example.com`" in page_text(voted)
    unknown = open_battle(as_admin(), "0" * 32)
    assert "No battle '00000000000000000000000000000000' is stored" in unknown.error[0].value


def act(at, key: str, reason: str, **checks) -> AppTest:
    for name, value in checks.items():
        at.checkbox(key=f"admin_erase_{name}").set_value(value)
    at.text_input(key=f"admin_{key}_reason").input(reason)
    at.button(key=f"admin_{key}_go").click().run()
    assert not at.exception, at.exception
    return at


def test_each_action_button_writes_its_audit_row(token):
    store, settings = token
    target = seed(store, settings, 1)[0]
    bid, voter = target.battle_id, target.voter_id
    at = open_battle(as_admin(), bid)
    act(at, "hide", "spam image")
    assert "Hide: done." in [s.value for s in at.success]
    assert "hidden since" in page_text(at) and has_button(at, "admin_unhide_go")
    act(at, "unhide", "a mistake")
    act(at, "ban", "stuffing votes")
    assert f"by `{voter}` (banned)" in page_text(at)
    act(at, "unban", "")
    act(at, "erase", "privacy request", text=True)
    assert "_(erased)_" in page_text(at) and target.prompt not in page_text(at)
    act(at, "erase", "the picture too", image=True)
    assert "The image was erased." in page_text(at) and not at.image
    act(at, "hide", "")  # a reason is required
    assert [e.value for e in at.error] == ["Give a reason to hide (a few words are enough)."]
    rows = [(a, action, t) for a, action, t, _ in audited(store)]
    assert rows == [
        ("admin:token", "hide", bid), ("admin:token", "unhide", bid),
        ("admin:token", "ban", voter), ("admin:token", "unban", voter),
        ("admin:token", "erase", bid), ("admin:token", "erase", bid),
    ]  # fmt: skip
    assert audited(store)[0][3] == "spam image"
    audit_page = as_admin("admin_audit.py")
    assert list(audit_page.dataframe[0].value["what"]) == [
        "erase", "erase", "unban", "ban", "unhide", "hide",
    ]  # fmt: skip


def test_the_dataset_is_built_on_click_and_audited(token, tmp_path):
    import pyarrow.parquet as pq

    from arena.ui.admin_dataset import dataset_file
    from arena.ui.client import client_secret

    store, settings = token
    seeded = seed(store, settings, 4)
    at = as_admin("admin_dataset.py")
    assert [t.value for t in at.title] == ["Dataset"]
    assert audited(store) == []  # drawing the button built nothing
    build = dataset_file(store, client_secret(settings), "admin:token", include_unvoted=True)
    (tmp_path / "d.parquet").write_bytes(build())
    table = pq.read_table(tmp_path / "d.parquet")
    assert table.num_rows == len(seeded)
    assert audited(store) == [("admin:token", "download_dataset", "dataset", "4 battles")]


# ----- the voter's side: the terms and the report button ------------------------------------------


@pytest.fixture
def terms(env, tmp_path, monkeypatch):
    path = tmp_path / "terms.md"
    path.write_text("# Terms\n\nYour prompts and images may be published as a dataset.\n")
    monkeypatch.setenv("ARENA_TERMS", str(path))
    return path


def test_a_voter_accepts_the_terms_once_before_the_first_upload(env, terms):
    store, _ = env
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.user = {"is_logged_in": True, "email": "cat@example.com"}
    at.run()
    assert not at.exception
    assert "may be published as a dataset" in page_text(at)
    assert not at.file_uploader and not at.chat_input
    at.button(key="accept_terms").click().run()
    assert at.file_uploader and not has_button(at, "accept_terms")
    with store.engine.connect() as conn:
        rows = conn.execute(select(terms_accepted.c.voter_id, terms_accepted.c.terms_sha256)).all()
    assert rows == [("user:cat@example.com", hashlib.sha256(terms.read_bytes()).hexdigest())]
    again = AppTest.from_file(APP, default_timeout=TIMEOUT)
    again.user = {"is_logged_in": True, "email": "cat@example.com"}
    again.run()
    assert again.file_uploader  # the same voter, another tab: accepted already
    terms.write_text("# Terms, version 2\n")
    again.run()
    assert not again.file_uploader and has_button(again, "accept_terms")  # new terms


def test_a_missing_terms_file_is_one_line(env, tmp_path, monkeypatch):
    monkeypatch.setenv("ARENA_TERMS", str(tmp_path / "nowhere.md"))
    at = app()
    assert [e.value for e in at.error] == [
        f"ARENA_TERMS={str(tmp_path / 'nowhere.md')!r}: cannot read the terms file (No such file "
        "or directory); point it at a readable markdown file, or leave it empty for no terms."
    ]
    assert not at.file_uploader


def test_the_report_button_flags_the_battle(env):
    """A battle in the page's state as it is after its answers (the turn stored, the battle in
    session_state), without running models: the OpenAI models of this registry are never asked."""
    from arena.battle import Battle, SideResult, save_turn, start
    from arena.images import check_image
    from arena.kinds import Requester
    from arena.registry import load_registry
    from tests.conftest import png_bytes

    store, settings = env
    registry = load_registry(settings.models)
    session = "tab-of-the-reporter"
    at = app(session_id=session)
    battle = Battle(
        mode="anonymous", spec_a=registry.get("secret-model-one"),
        spec_b=registry.get("secret-model-two"), image=check_image(png_bytes(), settings),
    )  # fmt: skip
    start(store, battle, Requester(session_id=session, voter_id=f"session:{session}"))
    battle.prompts.append("what is this?")
    battle.results.append((SideResult("a cat", tokens=2), SideResult("a dog", tokens=2)))
    battle.unsaved = True
    save_turn(store, battle)
    at.session_state["battle"] = battle
    at.run()
    assert not at.exception, at.exception
    at.text_input(key="report_reason").input("a stranger's face").run()
    at.button(key="report_send").click().run()
    assert "Thanks for the report" in [s.value for s in at.success][0]
    flagged = store.battles_page(flagged=True)
    assert [(r.id, r.reports) for r in flagged] == [(battle.battle_id, 1)]
    (report,) = store.reports()
    assert (report.reason, report.voter_id) == ("a stranger's face", f"session:{session}")
    at.run()
    assert not has_button(at, "report_send")  # reported: the thanks stays, no second button
    with store.engine.connect() as conn:
        assert conn.execute(select(battles.c.hidden_reason)).scalar_one() is None
