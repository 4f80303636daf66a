"""Schema migrations when many processes start at once (arena.store.migrate): exactly one
upgrades, the others wait for it and go on; nobody errors, no vote is lost. On a real SQLite
file and the real PostgreSQL server (each test in its own schema) through the db_url fixture."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from arena.config import Settings
from arena.errors import StoreError
from arena.store import engine as eng
from arena.store import migrate
from arena.store.driver import Writer
from arena.store.schema import REVISION

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = 8
VOTES_EACH = 50
WAITING = "waiting for another process's migration"
GAVE_UP = "another process has been upgrading the database schema for"
TIMEOUT_S = 300

# Process 1 of test_import_waits_for_a_migration_in_progress: upgrades to head and, after its
# first migration step (holding the lock, inside the transaction), says so in a file and waits
# for the test's go-ahead file.
PAUSING_UPGRADE = r"""
import sys, time
from pathlib import Path
from arena.store import engine as eng, migrate
url, mid, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
def pause(step):
    if mid.exists():
        return
    mid.write_text(step.revision)
    deadline = time.monotonic() + 120
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("never told to go on")
        time.sleep(0.05)
migrate.upgrade(eng.make_engine(url), on_step=pause)
print("upgraded")
"""


def _revisions() -> list[str]:
    """Every migration, oldest first."""
    script = ScriptDirectory.from_config(eng.alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _votes_file(path: Path, tag: str, n: int = VOTES_EACH) -> set[str]:
    """n distinct votes in JSON lines; returns their question ids."""
    winners = ("model_a", "model_b", "tie", "tie (bothbad)")
    ids = set()
    with path.open("w") as f:
        for i in range(n):
            qid = f"{tag}-{i}"
            row = {
                "model_a": f"m{i % 3}",
                "model_b": f"m{i % 3 + 1}",
                "winner": winners[i % 4],
                "judge": f"voter-{tag}",
                "question_id": qid,
            }
            f.write(json.dumps(row) + "\n")
            ids.add(qid)
    return ids


def _arena(*args, db_url: str, stderr=subprocess.PIPE) -> subprocess.Popen:
    env = {**os.environ, "ARENA_DB_URL": db_url, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "arena", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error") or "Traceback" in line]


def _stored_question_ids(engine) -> list[str]:
    with engine.connect() as conn:
        query = "SELECT b.question_id FROM votes v JOIN battles b ON b.id = v.battle_id"
        return list(conn.execute(sa.text(query)).scalars())


def _finish(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    """(exit status, stdout, stderr) of each process, once all have ended."""
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=TIMEOUT_S)
            results.append((p.returncode, out, err))
        return results
    finally:
        _kill(procs)


def _kill(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture
def engine(db_url):
    e = eng.make_engine(db_url)
    yield e
    e.dispose()


@pytest.mark.slow
def test_eight_imports_at_once_on_an_empty_database(db_url, engine, tmp_path):
    expected = set()
    files = []
    for i in range(PROCESSES):
        path = tmp_path / f"votes-{i}.jsonl"
        expected |= _votes_file(path, f"p{i}")
        files.append(path)
    procs = [_arena("import", str(path), db_url=db_url) for path in files]
    results = _finish(procs)
    for (_, out, err), proc in zip(results, procs, strict=True):
        assert proc.returncode == 0, err
        assert not _error_lines(err), err
        assert out.startswith(f"imported {VOTES_EACH} votes"), out
    stored = _stored_question_ids(engine)
    assert len(stored) == PROCESSES * VOTES_EACH and set(stored) == expected
    assert eng.current_revision(engine) == eng.head_revision()


# the tables as migration 0001 made them: the columns that version's code wrote
OLD_BATTLES = sa.table(
    "battles", sa.column("id"), sa.column("created_at", sa.DateTime(timezone=True)), sa.column("mode"),
    sa.column("model_a"), sa.column("model_b"), sa.column("source"),
)  # fmt: skip
OLD_VOTES = sa.table(
    "votes", sa.column("battle_id"), sa.column("outcome"), sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("voter_id"),
)  # fmt: skip


@pytest.mark.slow
def test_import_waits_for_a_migration_in_progress(db_url, engine, tmp_path):
    migrate.upgrade(engine, "0001")
    old = {
        f"{i:032x}": (f"old{i}", f"old{i + 1}", mode)
        for i, mode in enumerate(["anonymous", "named", "anonymous"])
    }
    stamp = datetime(2024, 5, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(sa.insert(OLD_BATTLES), [
            dict(id=bid, created_at=stamp, mode=mode, model_a=a, model_b=b, source="arena")
            for bid, (a, b, mode) in old.items()
        ])  # fmt: skip
        conn.execute(sa.insert(OLD_VOTES), [
            dict(battle_id=bid, outcome=o, created_at=stamp, voter_id=None) for bid, o in zip(old, ["a", "b", "tie"], strict=True)
        ])  # fmt: skip
    mid, go = tmp_path / "mid-upgrade", tmp_path / "go-on"
    upgrader = subprocess.Popen(
        [sys.executable, "-c", PAUSING_UPGRADE, db_url, str(mid), str(go)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    new = _votes_file(tmp_path / "new.jsonl", "new")
    importer_log = tmp_path / "importer.stderr"
    procs = [upgrader]
    try:
        _wait_until(lambda: mid.exists(), upgrader, "process 1 to be mid-upgrade")
        assert mid.read_text() == _revisions()[1]  # paused after its first step, 0001 -> 0002
        # meanwhile others see the old revision, never a half-migrated schema as the latest
        assert eng.current_revision(engine) == "0001"
        with pytest.raises(StoreError, match="python -m arena db upgrade"):
            from arena.store import Store

            Store.open(Settings(db_url=db_url, db_auto_upgrade=False))
        with importer_log.open("w") as log:
            importer = _arena("import", str(tmp_path / "new.jsonl"), db_url=db_url, stderr=log)
            procs.append(importer)
            _wait_until(lambda: WAITING in importer_log.read_text(), importer, "process 2 to wait")
            assert upgrader.poll() is None and importer.poll() is None
            go.write_text("")
            (up_rc, up_out, up_err), (imp_rc, imp_out, _) = _finish(procs)
    finally:
        _kill(procs)
    assert up_rc == 0 and up_out.strip() == "upgraded", up_err
    err = importer_log.read_text()
    assert imp_rc == 0 and not _error_lines(err), err
    assert imp_out.startswith(f"imported {len(new)} votes")
    assert eng.current_revision(engine) == eng.head_revision()
    with engine.connect() as conn:
        carried = conn.execute(sa.text("SELECT battle_id, model_a, model_b, mode FROM votes")).all()
    by_battle = {bid: (a, b, mode) for bid, a, b, mode in carried}
    assert len(carried) == len(old) + len(new)
    assert {bid: by_battle[bid] for bid in old} == old  # migration 0003's backfill
    assert set(_stored_question_ids(engine)) >= new


def _wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(
                f"exited with {proc.returncode} while the test waited for {what}: {out} {err}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_held_lock_is_waited_for_a_bounded_time(db_url, engine, settings, monkeypatch):
    holder = eng.make_engine(
        db_url
    )  # another connection (PostgreSQL) or lock-file descriptor (SQLite)
    try:
        with migrate.migration_lock(holder, wait_s=1):
            started = time.monotonic()
            with pytest.raises(StoreError) as raised:
                migrate.upgrade(engine, wait_s=0.5)
            waited = time.monotonic() - started
            monkeypatch.setattr(
                migrate, "MIGRATION_WAIT_S", 0.3
            )  # as the app and the commands open it
            with pytest.raises(StoreError, match=GAVE_UP):
                from arena.store import Store

                Store.open(settings)
    finally:
        holder.dispose()
    message = str(raised.value)
    assert "\n" not in message
    assert f"{GAVE_UP} 0.5 s" in message and message.endswith(
        "wait for it or check for a stuck process."
    )
    if engine.dialect.name == "sqlite":
        assert "arena.db-writers.lock" in message
    else:
        assert "held by server process" in message
    assert 0.5 <= waited < 5
    assert eng.current_revision(engine) is None and sa.inspect(engine).get_table_names() == []
    migrate.upgrade(engine, wait_s=0.5)  # the lock is free again
    assert eng.current_revision(engine) == eng.head_revision()


def test_each_migration_step_is_logged(engine, caplog):
    caplog.set_level(logging.INFO, logger=migrate.__name__)
    steps = []
    migrate.upgrade(engine, on_step=steps.append)
    revisions = _revisions()
    assert [s.revision for s in steps] == revisions
    assert [s.previous for s in steps] == [()] + [(r,) for r in revisions[:-1]]
    applied = [
        r.getMessage()
        for r in caplog.records
        if r.name == migrate.__name__ and " applied " in r.getMessage()
    ]
    assert len(applied) == len(revisions)
    for message, step in zip(applied, steps, strict=True):
        assert (
            message.startswith(f"migration {step.revision} applied in ")
            and step.description in message
        )
    assert steps[0].description.startswith("Initial schema")
    caplog.clear()
    migrate.upgrade(engine, on_step=steps.append)  # at head already: nothing to do or log
    assert len(steps) == len(revisions)
    assert not [r for r in caplog.records if r.name == migrate.__name__]


def test_only_one_of_two_upgrades_runs_the_steps(db_url, engine):
    """Two upgrades at once (threads, each with its own engine): the second waits for the lock,
    then finds the schema at head and runs nothing."""
    other = eng.make_engine(db_url)
    paused, go = threading.Event(), threading.Event()
    second_steps, errors = [], []

    def pause(_step):
        if not paused.is_set():
            paused.set()
            go.wait(30)

    def run(target_engine, **kwargs):
        try:
            migrate.upgrade(target_engine, wait_s=30, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    first = threading.Thread(target=run, args=(engine,), kwargs={"on_step": pause})
    second = threading.Thread(target=run, args=(other,), kwargs={"on_step": second_steps.append})
    try:
        first.start()
        assert paused.wait(30)
        second.start()
        time.sleep(0.5)
        assert second.is_alive()  # waiting for the first
        go.set()
        first.join(30)
        second.join(30)
    finally:
        go.set()
        other.dispose()
    assert not errors and not first.is_alive() and not second.is_alive()
    assert second_steps == []
    assert eng.current_revision(engine) == eng.head_revision()


def test_sqlite_writers_wait_while_a_migration_holds_the_lock(tmp_path):
    url = f"sqlite:///{tmp_path / 'arena.db'}"
    engine, holder = eng.make_engine(url), eng.make_engine(url)
    migrate.upgrade(engine)
    wrote = threading.Event()

    def write():
        with Writer(engine).transaction() as cursor:
            cursor.execute("SELECT count(*) FROM votes")
        wrote.set()

    try:
        with migrate.migration_lock(holder, wait_s=1):
            writer = threading.Thread(target=write)
            writer.start()
            assert not wrote.wait(0.5)
        assert wrote.wait(10)
        writer.join(10)
    finally:
        engine.dispose()
        holder.dispose()


@pytest.mark.slow
def test_sqlite_wal_on_a_new_file_opened_by_many_at_once(tmp_path):
    """PRAGMA journal_mode=WAL on a brand-new file from 8 connections at once: SQLite answered
    'database is locked' at once, without its busy handler, to some of them (measured: one
    round in twenty). Each connection runs the engine's connect hook, as the pool does."""
    failures = []

    def open_(path, start):
        start.wait()
        try:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            eng._sqlite_pragmas(conn, None)
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            conn.close()
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            failures.append(repr(exc))

    for n in range(100):
        start = threading.Barrier(PROCESSES)
        args = (tmp_path / f"new-{n}.db", start)
        threads = [threading.Thread(target=open_, args=args) for _ in range(PROCESSES)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert failures == []


def test_journal_mode_wal_is_retried_while_locked_for_a_bounded_time():
    class Cursor:
        def __init__(self, fails: int, error: str = "database is locked"):
            self.fails, self.error, self.calls = fails, error, 0

        def execute(self, _sql):
            self.calls += 1
            if self.calls <= self.fails:
                raise sqlite3.OperationalError(self.error)

    cursor = Cursor(fails=3)
    eng._journal_mode_wal(cursor)
    assert cursor.calls == 4
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        eng._journal_mode_wal(Cursor(fails=10**9), wait_s=0.2)
    assert time.monotonic() - started < 2
    other = Cursor(fails=1, error="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk"):
        eng._journal_mode_wal(other)
    assert other.calls == 1


def test_lock_keys_differ_per_schema():
    assert migrate.lock_key("public") != migrate.lock_key("t_other")
    assert migrate.lock_key("public") == migrate.lock_key("public")
    assert -(2**63) <= migrate.lock_key("public") < 2**63


def test_the_start_up_check_reads_the_same_head_as_alembic(db_url, engine):
    """Store.open asks eng.at_head, which compares alembic_version with schema.REVISION (no
    Alembic): the same head Alembic finds, and False until the database is there."""
    assert REVISION == eng.head_revision()  # a new migration must move schema.REVISION too
    assert not eng.at_head(engine)  # empty: no alembic_version table yet
    eng.upgrade(engine, "0006")
    assert not eng.at_head(engine)
    eng.upgrade(engine, "head")
    assert eng.at_head(engine)
