"""Schema migrations, one process at a time.

Every process that opens the store (each app replica, each command) upgrades an old schema at
start-up, and Alembic has no lock of its own: processes starting together on an empty database
would all create the same tables. So the upgrade runs under a lock that every process takes:

- PostgreSQL: a session-level advisory lock (pg_advisory_lock) on a connection of its own,
  keyed on LOCK_NAME and the schema the tables live in (current_schema()), so arenas in
  different schemas of one database never wait for each other;
- SQLite: flock on the writers' lock file beside the database (arena.store.driver), so the
  processes writing the file also wait while a migration runs.

The process holding the lock reads the revision again and upgrades only when it is still
behind; the others log that they wait, for at most `wait_s` (MIGRATION_WAIT_S), then give up
with a StoreError. The whole upgrade is one transaction (both databases roll back DDL), so no
reader ever sees a half-migrated schema: the revision moves from old to new at the commit.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from arena.errors import StoreError
from arena.store import engine as eng
from arena.store.driver import fcntl, writers_lock_path

log = logging.getLogger(__name__)

# How long a process waits for another one's migration before giving up. Generous: a migration
# that backfills a million battles takes minutes.
MIGRATION_WAIT_S = 900.0
# The PostgreSQL advisory lock's key is derived from this name and the schema (lock_key).
LOCK_NAME = "vlm-arena: schema migration"
SQLITE_POLL_S = 0.05  # how often a waiting process tries the SQLite lock file again
PG_WAIT_CHUNK_S = 10.0  # PostgreSQL: one blocking wait (lock_timeout) at most this long
STILL_WAITING_EVERY_S = 60.0


@dataclass(frozen=True)
class Step:
    """One applied migration, as upgrade() reports it to its on_step callback."""

    revision: str
    previous: tuple[str, ...]
    description: str
    seconds: float


def upgrade(
    engine: Engine,
    revision: str = "head",
    *,
    wait_s: float | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> None:
    """Bring the schema to `revision`. If another process is migrating the same database, wait
    for it (at most wait_s, default MIGRATION_WAIT_S), then upgrade only what is still missing.
    on_step(step) runs after each migration, inside the transaction and holding the lock."""
    wait_s = MIGRATION_WAIT_S if wait_s is None else wait_s
    target = _resolve(revision)
    if target is not None and eng.current_revision(engine) == target:
        return  # the common start-up: nothing to do, no lock taken
    with migration_lock(engine, wait_s):
        current = eng.current_revision(engine)  # again: the process before us may have done it
        if target is not None and current == target:
            log.info("database schema already at %s: another process upgraded it", current)
            return
        _run(engine, revision, current, on_step)


def _resolve(revision: str) -> str | None:
    """The revision id `revision` names, or None where that takes the database to know."""
    try:
        script = ScriptDirectory.from_config(eng.alembic_config())
        if revision == "head":
            return script.get_current_head()
        found = script.get_revision(revision)
        return found.revision if found is not None else None
    except Exception:  # noqa: BLE001 - relative or unknown revisions: Alembic itself will say
        return None


def _run(engine: Engine, revision: str, current: str | None, on_step) -> None:
    url = _url(engine)
    cfg = eng.alembic_config()
    last = [time.monotonic()]

    def applied(*, step, **_):
        script = step.up_revision
        doc = _summary(script.doc if script is not None else "")
        done = Step(
            step.up_revision_id, tuple(step.down_revision_ids), doc, time.monotonic() - last[0]
        )
        log.info("migration %s applied in %.1f s: %s", done.revision, done.seconds, doc)
        if on_step is not None:
            on_step(done)
        last[0] = time.monotonic()

    cfg.attributes["on_version_apply"] = applied  # arena/migrations/env.py hands it to Alembic
    log.info(
        "upgrading the database schema of %s from %s to %s",
        url,
        current or "an empty database",
        revision,
    )
    started = time.monotonic()
    # one transaction; on SQLite BEGIN IMMEDIATE, so it waits out a writer instead of failing
    with engine.execution_options(**{eng.WRITE: True}).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    log.info("database schema at %s after %.1f s", revision, time.monotonic() - started)


def _summary(doc: str | None, limit: int = 120) -> str:
    """A migration's docstring, its first sentence, on one line."""
    first = " ".join((doc or "").split()).split(". ")[0].rstrip(".")
    return first if len(first) <= limit else first[: limit - 3] + "..."


@contextmanager
def migration_lock(engine: Engine, wait_s: float) -> Iterator[None]:
    """Hold the schema-migration lock of engine's database (see the module docstring)."""
    if engine.dialect.name == "postgresql":
        with _postgresql_lock(engine, wait_s):
            yield
    elif engine.dialect.name == "sqlite":
        with _sqlite_lock(engine, wait_s):
            yield
    else:
        yield


def lock_key(schema: str | None) -> int:
    """The 64-bit PostgreSQL advisory-lock key of the migrations in one schema."""
    digest = hashlib.sha256(f"{LOCK_NAME}\0{schema or ''}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _postgresql_lock(engine: Engine, wait_s: float) -> Iterator[None]:
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar()
        key = lock_key(schema)
        conn.commit()

        def take(timeout: float) -> bool:
            if timeout <= 0:
                taken = conn.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": key}
                ).scalar()
                conn.commit()
                return bool(taken)
            # lock_timeout is set for this transaction only; the session's lock outlives it
            try:
                with conn.begin():
                    ms = f"{max(1, int(timeout * 1000))}ms"
                    conn.execute(text("SELECT set_config('lock_timeout', :ms, true)"), {"ms": ms})
                    conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                return True
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                    return False
                raise

        _wait_for(engine, take, wait_s, lambda: _pg_holder(engine, key))
        try:
            yield
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
            except DBAPIError:
                conn.invalidate()  # closing the session releases the lock


def _pg_holder(engine: Engine, key: int) -> str:
    """Where the stuck lock is, for the error message: the server process that holds it."""
    where = f"PostgreSQL advisory lock {key}"
    try:
        with engine.connect() as conn:
            pids = (
                conn.execute(
                    text(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                        " AND classid = :hi AND objid = :lo AND objsubid = 1"
                    ),
                    {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
                )
                .scalars()
                .all()
            )
    except DBAPIError:
        return where
    return f"{where}, held by server process {pids[0]} (pg_stat_activity)" if pids else where


@contextmanager
def _sqlite_lock(engine: Engine, wait_s: float) -> Iterator[None]:
    path = writers_lock_path(engine)
    fd = None
    if path is not None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # e.g. a read-only folder: migrate without the lock
            log.warning(
                "cannot open the lock file %s (%s): upgrading the schema without it",
                path,
                exc.strerror,
            )
    if fd is None:
        yield
        return
    try:

        def take(timeout: float) -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if timeout > 0:
                    time.sleep(min(timeout, SQLITE_POLL_S))
                return False

        _wait_for(engine, take, wait_s, lambda: f"the lock file {path}")
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _wait_for(
    engine: Engine, take: Callable[[float], bool], wait_s: float, holder: Callable[[], str]
) -> None:
    """take(0) tries the lock once; take(t) waits for it up to about t seconds. Waits at most
    wait_s in all, logging while it waits, then raises StoreError."""
    if take(0):
        return
    url = _url(engine)
    started = time.monotonic()
    deadline = started + wait_s
    log.warning(
        "waiting for another process's migration of the database schema of %s (up to %g s)",
        url,
        wait_s,
    )
    next_note = started + STILL_WAITING_EVERY_S
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StoreError(
                f"The database {url} is not ready: another process has been upgrading the database "
                f"schema for {wait_s:g} s ({holder()}); wait for it or check for a stuck process."
            )
        if take(min(remaining, PG_WAIT_CHUNK_S)):
            log.info("the other process's migration ended after %.1f s", time.monotonic() - started)
            return
        if time.monotonic() >= next_note:
            log.warning(
                "still waiting for another process's migration of %s: %.0f s so far",
                url,
                time.monotonic() - started,
            )
            next_note += STILL_WAITING_EVERY_S


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
