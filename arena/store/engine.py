"""The engine and bounded retries of transient write errors. The schema migrations run in
arena.store.migrate (one process at a time); upgrade() here is kept for its callers.

Alembic is imported only where a migration runs or a revision is asked for: at_head() answers
the start-up's question from the alembic_version table and arena.store.schema.REVISION (loading
Alembic and every migration script took about 1 s of each command's start-up).
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from arena.errors import ConfigError, StoreError
from arena.store.schema import REVISION

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
T = TypeVar("T")
# SQLite: how long a statement waits for a lock before it fails with "database is locked"
BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            # no pre-ping round trip per checkout: a dropped connection fails the transaction,
            # which with_retries runs again on a fresh one
            engine = create_engine(url, pool_size=10, max_overflow=20)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise ConfigError(f"ARENA_DB_URL={url!r} is not usable: {exc}.") from None
    if engine.dialect.name not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"ARENA_DB_URL={url!r}: the arena stores votes in SQLite (sqlite:///arena.db) or "
            "PostgreSQL (postgresql+psycopg://user@host/db); use one of those."
        )
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (see _sqlite_begin)
    cur = dbapi_conn.cursor()
    _journal_mode_wal(cur)
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _journal_mode_wal(cursor, wait_s: float = 30.0) -> None:
    """PRAGMA journal_mode=WAL, retried while the file is locked: when several processes open a
    brand-new file at once, SQLite can answer 'database is locked' at once, without its busy
    handler, to a connection that comes while another turns the file into WAL (measured: 8
    connections at once, one of them failed in one start in ten to twenty). The mode is stored
    in the file, so a retry soon finds it set."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                raise
        time.sleep(0.005 + 0.02 * random.random())


def _sqlite_begin(conn) -> None:
    """Writes take the write lock up front (BEGIN IMMEDIATE), so a read-then-write transaction
    waits for the busy timeout instead of failing at once with 'database is locked'."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")


WRITE = "arena_write"


def write_engine(engine: Engine) -> Engine:
    """The engine for write transactions (BEGIN IMMEDIATE on SQLite; the same engine elsewhere)."""
    return engine.execution_options(**{WRITE: True})


def alembic_config():
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head", **options) -> None:
    """Bring the schema to `revision`, one process at a time: arena.store.migrate.upgrade."""
    from arena.store import migrate  # it imports this module

    migrate.upgrade(engine, revision, **options)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def at_head(engine: Engine) -> bool:
    """Whether the database is at the latest migration (arena.store.schema.REVISION, which a test
    keeps equal to Alembic's head), read from alembic_version without loading Alembic."""
    try:
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:  # no alembic_version table: an empty database
        return False
    return stored == [REVISION]


def is_transient(exc: BaseException) -> bool:
    """SQLite 'database is locked', PostgreSQL serialization failures and dropped connections."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        text = str(exc.orig).lower()
        return any(
            s in text for s in ("locked", "busy", "could not serialize", "deadlock", "connection")
        )
    if isinstance(exc, DBAPIError):
        code = getattr(exc.orig, "sqlstate", None)
        return code in ("40001", "40P01")
    return False


def with_retries(what: str, fn: Callable[[], T], attempts: int = 6) -> T:
    """Run fn, retrying transient database errors a bounded number of times, then StoreError."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except DBAPIError as exc:
            if not is_transient(exc):
                raise
            if attempt == attempts:
                raise StoreError(
                    f"Could not {what}: the database stayed busy or unreachable after {attempts} tries "
                    f"({type(exc.orig).__name__}). Nothing was lost; try again."
                ) from None
            delay = min(2.0, 0.05 * 2 ** (attempt - 1)) * (0.5 + random.random())
            log.warning(
                "transient database error (%s), retry %d in %.2fs", exc.orig, attempt, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")
