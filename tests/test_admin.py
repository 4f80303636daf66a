"""Admin access (arena/admin.py, arena/store/access.py): the token compare, the settings' one-line
errors, the token never showing itself (repr, logs, pickles, cache keys, the audit rows), and the
wrong-token limit counted in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import hmac
import logging
import pickle
from datetime import UTC, datetime, timedelta
from multiprocessing.reduction import ForkingPickler

import pytest
from sqlalchemy import insert, select

from arena.admin import (
    FAILED,
    SUCCEEDED,
    TOKEN_ACTOR,
    WRONG_TOKEN,
    AdminAccess,
    Failures,
    LoginLimit,
    limit_line,
    parse_admins,
)
from arena.config import Settings
from arena.errors import ConfigError
from arena.kinds import Requester
from arena.terms import load_terms

TOKEN = "open-sesame-0123456789"
ACCESS = AdminAccess(frozenset({"ann@example.com"}), Settings(admin_token=TOKEN).admin_token)


def tab(n: int, client: str | None = "client-1") -> Requester:
    return Requester(session_id=f"s{n}", voter_id=f"session:s{n}", client_key=client)


# ----- the token and the emails -------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed,right",
    [
        (TOKEN, True),
        (TOKEN + " ", False),
        (TOKEN[:-1], False),
        (TOKEN.upper(), False),
        ("", False),
        (None, False),
        ("x" * 10_000, False),  # longer than any token: refused before the compare
        ("öpen-sesame-0123456789", False),
    ],
)
def test_only_the_exact_token_opens(typed, right):
    assert ACCESS.check_token(typed) is right


def test_the_token_is_compared_in_constant_time_over_bytes(monkeypatch):
    seen, real = [], hmac.compare_digest

    def compare(a, b):
        seen.append((type(a), type(b)))
        return real(a, b)

    monkeypatch.setattr("arena.admin.hmac.compare_digest", compare)
    assert ACCESS.check_token(TOKEN) and not ACCESS.check_token("wrong")
    assert seen == [(bytes, bytes), (bytes, bytes)]


def test_without_a_token_nothing_opens_and_without_either_there_is_no_admin():
    assert not AdminAccess().configured
    assert not AdminAccess().check_token("")
    assert AdminAccess(admins=frozenset({"a@b.c"})).configured
    assert not AdminAccess(admins=frozenset({"a@b.c"})).check_token("anything")


@pytest.mark.parametrize(
    "email,actor",
    [
        ("ann@example.com", "admin:ann@example.com"),
        ("Ann@Example.COM", "admin:ann@example.com"),
        ("bob@example.com", None),
        ("", None),
        (None, None),
    ],
)
def test_admins_are_matched_by_email_case_insensitively(email, actor):
    assert ACCESS.email_actor(email) == actor


@pytest.mark.parametrize(
    "text,emails",
    [
        ("", frozenset()),
        ("Ann@Example.com", {"ann@example.com"}),
        (" ann@example.com , bob@example.org,", {"ann@example.com", "bob@example.org"}),
    ],
)
def test_admin_emails_are_parsed(text, emails):
    assert parse_admins(text) == emails
    assert Settings.from_env({"ARENA_ADMINS": text}).admins == text


@pytest.mark.parametrize("text", ["ann", "ann@", "@example.com", "ann bob@example.com", "a@b@c"])
def test_an_admin_entry_that_is_no_email_is_one_line(text):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"ARENA_ADMINS": text})
    message = str(error.value)
    assert message.startswith(f"Setting ARENA_ADMINS={text!r} is invalid: ") and "\n" not in message
    assert "comma-separated emails" in message


@pytest.mark.parametrize("token", ["short", "x" * 15])
def test_a_short_token_is_one_line_that_does_not_show_it(token):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"ARENA_ADMIN_TOKEN": token})
    assert str(error.value) == (
        "Setting ARENA_ADMIN_TOKEN='<redacted>' is invalid: expected a text of at least 16 "
        "characters, or empty."
    )


# ----- the token never shows itself --------------------------------------------------------------


def test_the_token_is_in_no_repr_str_or_log(caplog):
    settings = Settings(admin_token=TOKEN, secret="another-secret-0123456789")
    access = AdminAccess.from_settings(settings)
    shown = [repr(settings), str(settings), f"{settings}", repr(access), str(access)]
    shown += [repr(settings.admin_token), str(settings.admin_token), f"{settings.admin_token}"]
    assert not [text for text in shown if TOKEN in text]
    assert "admin_token" not in repr(settings)  # field(repr=False)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("%s %r %s", settings, access, settings.admin_token)
    assert TOKEN not in caplog.text


def test_a_worker_gets_the_settings_without_the_token():
    """arena/backends/local.py spawns each model worker with (spec, settings, ...): multiprocessing
    pickles them with ForkingPickler."""
    settings = Settings(admin_token=TOKEN)
    for data in (bytes(ForkingPickler.dumps((settings, 1))), pickle.dumps(settings)):
        assert TOKEN.encode() not in data
    copy = pickle.loads(pickle.dumps(settings))
    assert copy.admin_token.withheld and copy.admin_token == settings.admin_token


def test_streamlit_cache_hashing_never_sees_the_token(cache_hashes):
    """st.cache_resource hashes _resources' arguments (Settings among them): record every byte
    string its hashers are fed; none holds the token, and another token is another entry."""

    def cache_key(settings):
        return cache_hashes.cache_key(settings, 0.0, 0.0)

    fed = cache_hashes.fed
    one = cache_key(Settings(admin_token=TOKEN))
    assert fed and not any(TOKEN.encode() in chunk for chunk in fed)
    assert one == cache_key(Settings(admin_token=TOKEN))
    assert one != cache_key(Settings(admin_token=TOKEN + "!"))


def test_a_withheld_token_cannot_be_checked():
    withheld = pickle.loads(pickle.dumps(Settings(admin_token=TOKEN))).admin_token
    with pytest.raises(ConfigError):
        AdminAccess(token=withheld).check_token(TOKEN)


# ----- the wrong-token limit, in the database -----------------------------------------------------

SMALL = LoginLimit(per_client=3, in_total=5, window=timedelta(minutes=10))


def audit_rows(store) -> list:
    from arena.store.schema import audit

    with store.engine.connect() as conn:
        query = select(audit.c.actor, audit.c.action, audit.c.target, audit.c.reason)
        return conn.execute(query.order_by(audit.c.id)).all()


def test_wrong_tokens_are_refused_then_limited_per_client(store):
    refusals = [ACCESS.log_in(store, "wrong", tab(i), SMALL).refusal for i in range(3)]
    assert refusals == [WRONG_TOKEN] * 3
    limited = ACCESS.log_in(store, TOKEN, tab(9), SMALL)  # even the right token: no slot left
    assert limited.actor is None
    assert limited.refusal == (
        "Too many wrong tokens from your network address (3 in 10 minutes): try again in "
        "10 minutes."
    )
    other = ACCESS.log_in(store, TOKEN, tab(10, client="client-2"), SMALL)
    assert other.actor == TOKEN_ACTOR
    assert audit_rows(store) == [
        *[(f"session:s{i}", FAILED, "client-1", None) for i in range(3)],
        (TOKEN_ACTOR, SUCCEEDED, "client-2", "token typed by session:s10"),
    ]  # the limited try wrote nothing; no row holds the token
    assert not [row for row in audit_rows(store) if TOKEN in repr(row)]


def test_wrong_tokens_are_limited_in_total_across_clients(store):
    clients = ["c1", "c2", None, "c3", None]
    for i, client in enumerate(clients):
        assert ACCESS.log_in(store, "wrong", tab(i, client), SMALL).refusal == WRONG_TOKEN
    for client in ("c9", None):
        login = ACCESS.log_in(store, TOKEN, tab(20, client), SMALL)
        assert login.actor is None and "token login is paused" in login.refusal
    assert [row.target for row in audit_rows(store)] == ["c1", "c2", "-", "c3", "-"]


def test_a_right_token_does_not_count_and_old_failures_expire(store):
    from arena.store.schema import audit

    old = datetime.now(UTC) - timedelta(minutes=11)
    with store.write_engine.begin() as conn:
        for _ in range(10):
            row = dict(at=old, actor="session:old", action=FAILED, target="client-1", reason=None)
            conn.execute(insert(audit).values(**row))
    for _ in range(4):  # more than the per-client limit of successes
        assert ACCESS.log_in(store, TOKEN, tab(1), SMALL).actor == TOKEN_ACTOR
    failures = store.login_failures("client-1", SMALL)
    assert (failures.client, failures.total) == (0, 0)
    for _ in range(3):
        ACCESS.log_in(store, "wrong", tab(1), SMALL)
    failures = store.login_failures("client-1", SMALL)
    assert (failures.client, failures.total) == (3, 3)
    assert failures.client_oldest is not None and failures.client_oldest.tzinfo is not None


@pytest.mark.parametrize(
    "client,total,oldest_ago,expected",
    [
        (3, 3, 1, "from your network address (3 in 10 minutes): try again in 9 minutes."),
        (3, 5, 9.5, "from your network address (3 in 10 minutes): try again in 1 minute."),
        (0, 5, 4, "lately (5 in 10 minutes): the token login is paused; try again in 6 minutes."),
        (
            None,
            5,
            0,
            "lately (5 in 10 minutes): the token login is paused; try again in 10 minutes.",
        ),
    ],
)
def test_the_limit_line_says_when_to_try_again(client, total, oldest_ago, expected):
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    oldest = now - timedelta(minutes=oldest_ago)
    failures = Failures(now, SMALL, client, total, oldest if client else None, oldest)
    assert limit_line(failures).endswith(expected)


# ----- the terms file ------------------------------------------------------------------------------


def test_terms_are_read_with_their_sha256(tmp_path):
    import hashlib

    path = tmp_path / "terms.md"
    path.write_text("# Terms\n\nYour prompts may be published.\n")
    terms = load_terms(str(path))
    assert terms.text.startswith("# Terms")
    assert terms.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_terms("") is None


@pytest.mark.parametrize(
    "content,expected",
    [
        (None, "cannot read the terms file (No such file or directory)"),
        (b"\xff\xfe\x00", "is not UTF-8 text"),
        (b"  \n", "is empty"),
    ],
)
def test_unreadable_terms_are_one_line(tmp_path, content, expected):
    path = tmp_path / "terms.md"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as error:
        load_terms(str(path))
    assert str(error.value).startswith(f"ARENA_TERMS={str(path)!r}")
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_accepted_terms_are_kept_per_voter_and_sha(store):
    assert not store.accepted_terms("session:a", "1" * 64)
    store.accept_terms("session:a", "1" * 64)
    store.accept_terms("session:a", "1" * 64)  # twice: the first stays, no error
    assert store.accepted_terms("session:a", "1" * 64)
    assert not store.accepted_terms("session:a", "2" * 64)  # edited terms: accept again
    assert not store.accepted_terms("session:b", "1" * 64)
