"""Storage on a real SQLite file and the real PostgreSQL server (the db_url fixture)."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, inspect, select, text

from arena.battle import SideResult, answer_finished
from arena.config import Settings
from arena.errors import AlreadyVoted, RateLimited, StoreError, VoteError
from arena.images import check_image
from arena.kinds import Outcome, Requester
from arena.store import Store, VoteFilter
from arena.store import engine as eng
from arena.store.schema import battles, images, metadata, turns, votes
from tests.conftest import png_bytes
from tests.stored import answered_battle, count_rows, image_data, stored_battle, write_at_0001

OK_A = SideResult("left answer", ttft=0.1, total=0.5, tokens=7)
OK_B = SideResult("right answer", ttft=0.2, total=0.6, tokens=9)


def _battle(store, settings, session="s1", a=OK_A, b=OK_B, image=None, mode="anonymous"):
    image = image or check_image(png_bytes(), settings)
    return answered_battle(
        store, mode=mode, model_a="m1", model_b="m2", image=image, prompt="what?", result_a=a, result_b=b,
        session_id=session, voter_id=f"session:{session}",
    )  # fmt: skip


def test_battle_row_holds_everything(store, settings):
    bid = _battle(store, settings)
    row = stored_battle(store, bid)
    assert (row["mode"], row["model_a"], row["model_b"], row["session_id"]) == (
        "anonymous",
        "m1",
        "m2",
        "s1",
    )
    turn = row["turns"][0]
    assert turn["prompt"] == "what?"
    assert (turn["answer_a"], turn["answer_b"], turn["tokens_a"], turn["tokens_b"]) == (
        "left answer",
        "right answer",
        7,
        9,
    )
    assert turn["ttft_a"] == pytest.approx(0.1) and turn["total_b"] == pytest.approx(0.6)
    assert row["vote"] is None
    with store.engine.connect() as conn:
        img = conn.execute(select(images)).mappings().one()
    assert (img["width"], img["height"], img["format"]) == (64, 48, "PNG")
    assert image_data(store, row["image_sha256"]) == png_bytes()


def test_image_stored_once_per_sha256(store, settings):
    _battle(store, settings)
    _battle(store, settings)
    assert count_rows(store, images) == 1 and count_rows(store, battles) == 2


def test_one_vote_per_battle(store, settings):
    bid = _battle(store, settings)
    store.record_vote(bid, Outcome.A, Requester(session_id="s1", voter_id="v"))
    with pytest.raises(AlreadyVoted, match="already has a vote"):
        store.record_vote(bid, Outcome.B, Requester(session_id="s1", voter_id="v"))
    assert stored_battle(store, bid)["vote"]["outcome"] == "a"
    assert count_rows(store, votes) == 1


def test_database_enforces_unique_vote(store, settings):
    """The unique constraint itself, not only the page, refuses a second vote row."""
    from sqlalchemy.exc import IntegrityError

    bid = _battle(store, settings)
    row = dict(
        battle_id=bid,
        outcome="a",
        created_at=datetime.now(UTC),
        voter_id=None,
        model_a="m1",
        model_b="m2",
        mode="anonymous",
    )
    with store.engine.begin() as conn:
        conn.execute(insert(votes).values(**row))
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(insert(votes).values(**row))


def test_many_threads_vote_on_one_battle(store, settings):
    bid = _battle(store, settings)
    results: list[str] = []
    barrier = threading.Barrier(12)

    def cast(i):
        barrier.wait()
        try:
            store.record_vote(bid, Outcome.TIE, Requester(session_id="s1", voter_id=f"v{i}"))
            results.append("stored")
        except AlreadyVoted:
            results.append("already voted")

    threads = [threading.Thread(target=cast, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["already voted"] * 11 + ["stored"]
    assert count_rows(store, votes) == 1


@pytest.mark.parametrize(
    "a,b",
    [
        (SideResult("", error="Model 'm1' failed: boom"), OK_B),
        (OK_A, SideResult("   ")),
        (OK_A, SideResult("partial", error="worker died")),
    ],
)
def test_no_vote_unless_both_answers_finished(store, settings, a, b):
    bid = _battle(store, settings, a=a, b=b)
    with pytest.raises(VoteError, match="Both answers"):
        store.record_vote(bid, Outcome.A, Requester(session_id="s1"))
    assert count_rows(store, votes) == 0


WHITESPACE = {
    "spaces": "   ",
    "tab": "\t",
    "newlines": "\n\n",
    "crlf": "\r\n",
    "nbsp": "\u00a0",
    "nbsp and newline": "\u00a0\n ",
    "em space": "\u2003",
    "ideographic space": "\u3000",
    "empty": "",
}


@pytest.mark.parametrize("blank", list(WHITESPACE.values()), ids=list(WHITESPACE))
def test_an_answer_of_only_whitespace_did_not_finish_anywhere(store, settings, blank):
    """One rule (arena.battle.sides.answer_finished): the Python verdict, the stored verdict and
    the database's vote statement agree, whatever the whitespace."""
    result = SideResult(blank, ttft=0.1, total=0.2, tokens=1)
    assert not answer_finished(blank, None) and not result.ok
    assert answer_finished(f"{blank}x{blank}", None) and not answer_finished("x", "an error")
    bid = _battle(store, settings, b=result)
    assert stored_battle(store, bid)["turns"][0]["ok_b"] is False
    with pytest.raises(VoteError, match="Both answers"):
        store.record_vote(bid, Outcome.A, Requester(session_id="s1"))
    fine = store.add_turn(bid, "again?", OK_A, SideResult(f"ok{blank}"))
    assert stored_battle(store, bid)["turns"][fine]["ok_b"] is True
    store.record_vote(bid, Outcome.A, Requester(session_id="s1"))  # the last turn decides
    assert count_rows(store, votes) == 1


def test_only_the_starting_session_votes(store, settings):
    bid = _battle(store, settings, session="owner")
    with pytest.raises(VoteError, match="session that started"):
        store.record_vote(bid, Outcome.A, Requester(session_id="someone-else"))
    with pytest.raises(VoteError, match="does not exist"):
        store.record_vote("nope", Outcome.A)


def test_follow_up_turns_and_regenerate(store, settings):
    bid = _battle(store, settings)
    assert store.add_turn(bid, "and then?", OK_A, OK_B) == 1
    store.replace_last_turn(bid, SideResult("new a"), SideResult("new b"))
    row = stored_battle(store, bid)
    assert [t["prompt"] for t in row["turns"]] == ["what?", "and then?"]
    assert (row["turns"][1]["answer_a"], row["turns"][0]["answer_a"]) == ("new a", "left answer")
    store.record_vote(bid, Outcome.B, Requester(session_id="s1"))
    with pytest.raises(AlreadyVoted):
        store.add_turn(bid, "more?", OK_A, OK_B)
    with pytest.raises(AlreadyVoted):
        store.replace_last_turn(bid, OK_A, OK_B)


def test_rate_limits_hold_in_the_database(db_url, tmp_path):
    settings = Settings(db_url=db_url, battles_per_minute=2, votes_per_hour=1)
    store = Store.open(settings)
    ids = [_battle(store, settings, session="fast") for _ in range(2)]
    with pytest.raises(
        RateLimited, match="at most 2 battles per minute from this browser tab"
    ) as refused:
        _battle(store, settings, session="fast")
    assert re.search(r"next one is possible in \d+ s \(at \d\d:\d\d:\d\d UTC\)", str(refused.value))
    _battle(store, settings, session="other")  # another session is not limited
    store.record_vote(ids[0], Outcome.A, Requester(session_id="fast", voter_id="voter"))
    with pytest.raises(RateLimited, match="at most 1 vote per hour from this browser tab"):
        store.record_vote(ids[1], Outcome.A, Requester(session_id="fast", voter_id="voter"))
    store.engine.dispose()


def _limits(**limits) -> dict:
    every = dict.fromkeys(
        ["battles_per_minute", "votes_per_hour", "votes_per_day", "client_battles_per_minute",
         "client_votes_per_hour", "client_votes_per_day"], 0,
    )  # fmt: skip
    return {**every, **limits}


@pytest.mark.parametrize(
    ("limits", "first", "second", "refused"),
    [
        # a reload is a new tab: the client key still counts it
        (
            _limits(client_battles_per_minute=1),
            ("s1", "session:s1", "k1"),
            ("s2", "session:s2", "k1"),
            "your network address",
        ),
        (
            _limits(client_battles_per_minute=1),
            ("s1", "session:s1", "k1"),
            ("s2", "session:s2", "k2"),
            None,
        ),
        # a logged-in user in two tabs
        (
            _limits(battles_per_minute=1),
            ("s1", "user:a@x", "k1"),
            ("s2", "user:a@x", "k2"),
            "from you",
        ),
        (_limits(battles_per_minute=1), ("s1", "user:a@x", "k1"), ("s2", "user:b@x", "k1"), None),
    ],
)
def test_every_battle_limit_that_applies_must_have_room(db_url, limits, first, second, refused):
    settings = Settings(db_url=db_url, **limits)
    store = Store.open(settings)
    image = check_image(png_bytes(), settings)

    def start(who):
        session, voter, client = who
        requester = Requester(session_id=session, voter_id=voter, client_key=client)
        return store.start_battle(
            mode="anonymous", model_a="m1", model_b="m2", image=image, requester=requester
        )

    start(first)
    if refused is None:
        start(second)
        assert count_rows(store, battles) == 2
    else:
        with pytest.raises(RateLimited, match=refused):
            start(second)
        assert count_rows(store, battles) == 1
    store.engine.dispose()


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (_limits(votes_per_hour=2), "2 votes per hour from you"),
        (_limits(votes_per_day=2), "2 votes per day from you"),
        (_limits(client_votes_per_hour=2), "2 votes per hour from your network address"),
        (_limits(client_votes_per_day=2), "2 votes per day from your network address"),
    ],
)
def test_every_vote_limit_counts_across_tabs(db_url, limits, message):
    """Three tabs (a reload each time) of one voter on one address: the third vote is refused."""
    settings = Settings(db_url=db_url, **limits)
    store = Store.open(settings)
    tabs = [Requester(session_id=f"tab{i}", voter_id="user:a@x", client_key="k1") for i in range(3)]
    ids = [
        answered_battle(
            store,
            mode="anonymous",
            model_a="m1",
            model_b="m2",
            image=check_image(png_bytes(), settings),
            prompt="p",
            result_a=OK_A,
            result_b=OK_B,
            session_id=tab.session_id,
        )  # fmt: skip
        for tab in tabs
    ]
    for bid, tab in zip(ids[:2], tabs[:2], strict=True):
        store.record_vote(bid, Outcome.A, tab)
    with pytest.raises(RateLimited, match=message):
        store.record_vote(ids[2], Outcome.A, tabs[2])
    stored = [stored_battle(store, b)["vote"] for b in ids]
    assert [v["client_key"] if v else None for v in stored] == ["k1", "k1", None]
    assert [v["session_id"] if v else None for v in stored] == ["tab0", "tab1", None]
    store.engine.dispose()


def test_a_refused_battle_leaves_nothing_behind(db_url):
    settings = Settings(db_url=db_url, **_limits(battles_per_minute=1))
    store = Store.open(settings)
    me = Requester(session_id="s", voter_id="session:s")
    first = check_image(png_bytes(color=(1, 2, 3)), settings)
    second = check_image(png_bytes(color=(9, 9, 9)), settings)
    store.start_battle(mode="anonymous", model_a="m1", model_b="m2", image=first, requester=me)
    with pytest.raises(RateLimited):
        store.start_battle(mode="anonymous", model_a="m1", model_b="m2", image=second, requester=me)
    assert (count_rows(store, battles), count_rows(store, images)) == (1, 1)  # not even the image
    assert image_data(store, second.sha256) is None
    store.engine.dispose()


def test_leaderboard_reads_filter_votes_by_mode_and_time(store, settings):
    for outcome, mode in [
        ("a", "anonymous"),
        ("a", "anonymous"),
        ("tie", "anonymous"),
        ("b", "named"),
    ]:
        bid = _battle(store, settings, mode=mode)
        store.record_vote(bid, Outcome(outcome), Requester(session_id="s1"))
    combos, codes = store.scan_votes(VoteFilter())
    assert [combos[c] for c in codes] == [("m1", "m2", Outcome.A)] * 2 + [("m1", "m2", Outcome.TIE)]
    combos, codes = store.scan_votes(VoteFilter(anonymous_only=False))
    assert [combos[c][2] for c in codes] == [Outcome.A, Outcome.A, Outcome.TIE, Outcome.B]
    future = datetime.now(UTC) + timedelta(days=1)
    assert len(store.scan_votes(VoteFilter(since=future))[1]) == 0
    assert len(store.scan_votes(VoteFilter(anonymous_only=False, until=future))[1]) == 4
    assert store.last_vote(VoteFilter(since=future)) is None
    assert store.last_vote(VoteFilter()) <= store.last_vote(VoteFilter(anonymous_only=False))
    count, max_id, edits = store.data_version()
    assert count == 4 and max_id is not None and edits == 0
    with store.engine.begin() as conn:  # a changed vote changes the cache key too
        conn.execute(text("UPDATE votes SET outcome = 'a' WHERE id = :id"), {"id": max_id})
    assert store.data_version() == (4, max_id, 1)


def test_schema_matches_latest_migration(store):
    """create_all is never used: the migrations alone must produce the tables in schema.py."""
    found = inspect(store.engine)
    for table in metadata.sorted_tables:
        assert {c["name"] for c in found.get_columns(table.name)} == set(table.columns.keys())
        expected_indexes = {i.name for i in table.indexes}
        assert expected_indexes <= {i["name"] for i in found.get_indexes(table.name)}
    assert eng.current_revision(store.engine) == eng.head_revision()


def test_upgrade_from_first_migration_keeps_votes(db_url, settings):
    """Data written at 0001 survives the upgrade: votes get their battle's model_a, model_b and
    mode (0003), and every turn its answer verdicts by the Python rule (0004)."""
    engine = eng.make_engine(db_url)
    eng.upgrade(engine, "0001")
    assert eng.current_revision(engine) == "0001"
    carried = [("m1", "m2", "anonymous"), ("m2", "m3", "named"), ("m3", "m1", "anonymous")]
    answers = ["fine", "\n\n", "also fine"]  # a newline-only answer did not finish
    expected = write_at_0001(engine, carried, answers)
    eng.upgrade(engine, "head")
    assert eng.current_revision(engine) == eng.head_revision()
    upgraded = Store(engine, settings)
    assert count_rows(upgraded, votes) == 3 and count_rows(upgraded, turns) == 3
    rows = _all(engine, votes)
    assert {r["battle_id"]: (r["model_a"], r["model_b"], r["mode"]) for r in rows} == expected
    verdicts = {t["battle_id"]: (t["ok_a"], t["ok_b"]) for t in _all(engine, turns)}
    assert sorted(verdicts.values()) == [(False, True), (True, True), (True, True)]
    combos, codes = upgraded.scan_votes(VoteFilter())
    assert [combos[c][0] for c in codes] == ["m1", "m3"]
    engine.dispose()


def test_votes_carry_their_battles_models_and_mode(store, settings):
    """The vote copies model_a, model_b and mode from the battle row."""
    bid = answered_battle(store,
        mode="named", model_a="left", model_b="right", image=check_image(png_bytes(), settings),
        prompt="what?", result_a=OK_A, result_b=OK_B, session_id="s1",
    )  # fmt: skip
    store.record_vote(bid, Outcome.B, Requester(session_id="s1", voter_id="v"))
    vote = stored_battle(store, bid)["vote"]
    assert (vote["model_a"], vote["model_b"], vote["mode"], vote["outcome"]) == (
        "left",
        "right",
        "named",
        "b",
    )
    with pytest.raises(AlreadyVoted):
        store.record_vote(bid, Outcome.A, Requester(session_id="s1", voter_id="v"))


def _all(engine, table):
    with engine.connect() as conn:
        return list(conn.execute(select(table)).mappings())


def test_no_auto_upgrade_refuses_old_schema(db_url):
    engine = eng.make_engine(db_url)
    eng.upgrade(engine, "0001")
    with pytest.raises(StoreError, match="python -m arena db upgrade"):
        Store.open(Settings(db_url=db_url, db_auto_upgrade=False))
    engine.dispose()


def test_unreachable_database_is_one_line(tmp_path):
    with pytest.raises(StoreError, match="Cannot open the database"):
        Store.open(
            Settings(db_url="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
        )
    with pytest.raises(StoreError, match="Cannot open the database"):
        Store.open(Settings(db_url=f"sqlite:///{tmp_path}/missing-dir/x.db"))


def test_sqlite_is_wal_with_busy_timeout(tmp_path):
    store = Store.open(Settings(db_url=f"sqlite:///{tmp_path / 'w.db'}"))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_locked_sqlite_is_waited_out(tmp_path):
    """Another writer holds the SQLite write lock for a second: the vote waits, then lands."""
    import sqlite3

    path = tmp_path / "locked.db"
    settings = Settings(db_url=f"sqlite:///{path}", votes_per_hour=0, battles_per_minute=0)
    store = Store.open(settings)
    bid = _battle(store, settings)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(1.0, lambda: other.execute("COMMIT"))
    timer.start()
    store.record_vote(bid, Outcome.A, Requester(session_id="s1"))
    timer.join()
    assert count_rows(store, votes) == 1


def test_transient_errors_are_retried_a_bounded_number_of_times(monkeypatch):
    from sqlalchemy.exc import IntegrityError, OperationalError

    monkeypatch.setattr(eng.time, "sleep", lambda s: None)
    calls = []

    def locked():
        calls.append(1)
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    with pytest.raises(StoreError, match="after 4 tries"):
        eng.with_retries("store the vote", locked, attempts=4)
    assert len(calls) == 4  # bounded, and reported, never silently dropped

    outcomes = iter([OperationalError("x", {}, Exception("could not serialize access")), "stored"])

    def flaky():
        value = next(outcomes)
        if isinstance(value, Exception):
            raise value
        return value

    assert eng.with_retries("store the vote", flaky) == "stored"
    calls.clear()

    def duplicate():
        calls.append(1)
        raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))

    with pytest.raises(IntegrityError):
        eng.with_retries("store the vote", duplicate)
    assert len(calls) == 1  # not transient: no retry


@pytest.mark.postgres
def test_dropped_postgresql_connection_is_retried(pg_url):
    """The server ends the pooled connection (a restart or failover would): the next write
    fails on it, is retried on a fresh connection, and lands."""
    from sqlalchemy import text

    url = f"{pg_url}&application_name=arena_drop_test"
    settings = Settings(db_url=url, votes_per_hour=0, battles_per_minute=0)
    store = Store.open(settings)
    bid = _battle(store, settings)
    admin = eng.make_engine(pg_url)
    with admin.begin() as conn:
        ended = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'arena_drop_test'"
            )
        ).scalar_one()
    assert ended >= 1
    store.record_vote(bid, Outcome.B, Requester(session_id="s1"))
    assert stored_battle(store, bid)["vote"]["outcome"] == "b"
    store.engine.dispose()
    admin.dispose()
