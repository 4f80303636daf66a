"""The writes every battle makes, run on the driver's own connection.

Measured with benchmarks/concurrent_votes.py: for these small writes SQLAlchemy's execution
layer (events, execution context, result objects, isolation-level switching per checkout) cost
the client about as much CPU as the database spent on the statements, and the two share the
machine's cores. So the hot writes are compiled once by SQLAlchemy, from the same Core
statements, and run on a pooled DBAPI connection. Everything else goes through SQLAlchemy.

Errors come out as SQLAlchemy's DBAPIError subclasses (OperationalError, IntegrityError ...),
exactly as from Connection.execute, so engine.with_retries and the callers handle them the same.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

try:
    import fcntl
except ImportError:  # Windows: SQLite's own busy timeout alone serialises writers there
    fcntl = None


class DriverStatement:
    """A Core statement compiled once for one dialect, with its bind processors and literals."""

    def __init__(self, statement, dialect):
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        values = compiled.params  # values fixed in the statement, e.g. LIMIT 1; None for the rest
        self._literals = {
            k: v
            for k, v in values.items()
            if k in compiled.binds and not compiled.binds[k].required
        }
        self._order = compiled.positiontup  # qmark/numeric drivers (SQLite): names in order
        self._processors = {}
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self._processors[name] = process

    def params(self, values: dict):
        merged = {**self._literals, **values}
        for name, process in self._processors.items():
            if name in merged:
                merged[name] = process(merged[name])
        return tuple(merged[n] for n in self._order) if self._order else merged


class Writer:
    """Runs short write transactions on pooled driver connections of one engine.

    PostgreSQL: autocommit, so each statement is its own transaction with one round trip: use
    it for writes of one statement. SQLite: BEGIN IMMEDIATE ... COMMIT around the block; the
    processes writing one SQLite file on this machine queue on an OS file lock first, so a
    waiting writer wakes the moment the lock is free instead of sleeping in SQLite's busy
    handler (which backs off up to 100 ms per try)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.dialect = engine.dialect
        self.sqlite = engine.dialect.name == "sqlite"
        self._statements: dict = {}
        self._thread_lock = threading.Lock()
        self._lock_path = writers_lock_path(engine) if self.sqlite else None
        self._lock_fd: int | None = None

    def statement(self, key, build) -> DriverStatement:
        """The compiled statement for key, built by build() on first use."""
        found = self._statements.get(key)
        if found is None:
            found = self._statements[key] = DriverStatement(build(), self.dialect)
        return found

    @contextmanager
    def transaction(self) -> Iterator:
        """A DBAPI cursor for one write; commits at the end of the block, rolls back on error."""
        dbapi_error = self.dialect.loaded_dbapi.Error
        fairy = self.engine.raw_connection()
        driver = fairy.driver_connection
        cursor = None
        try:
            cursor = driver.cursor()
            scope = self._sqlite_scope if self.sqlite else self._autocommit_scope
            with scope(driver, cursor):
                yield cursor
        except dbapi_error as exc:
            gone = self.dialect.is_disconnect(exc, driver, cursor)
            if gone:
                fairy.invalidate(exc)
            raise DBAPIError.instance(
                None, None, exc, dbapi_error, connection_invalidated=gone, dialect=self.dialect
            ) from exc
        finally:
            if cursor is not None:
                cursor.close()
            fairy.close()

    @contextmanager
    def _sqlite_scope(self, driver, cursor):
        with self._sqlite_queue():
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield
                cursor.execute("COMMIT")
            except BaseException:
                if driver.in_transaction:
                    driver.rollback()
                raise

    @staticmethod
    @contextmanager
    def _autocommit_scope(driver, _cursor):
        driver.autocommit = True  # one round trip per statement: no BEGIN, no COMMIT
        try:
            yield
        finally:
            if not driver.closed:
                driver.autocommit = False  # as the pool hands connections to SQLAlchemy

    def one(self, statement: DriverStatement, values: dict):
        """Run one statement as its own write; its first row, or None."""
        params = statement.params(values)
        with self.transaction() as cursor:
            cursor.execute(statement.sql, params)
            return cursor.fetchone()

    @contextmanager
    def _sqlite_queue(self):
        if self._lock_path is None:
            yield
            return
        with self._thread_lock:  # flock does not exclude threads sharing one descriptor
            if self._lock_fd is None:
                try:
                    self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
                except OSError:  # e.g. a read-only folder: rely on the busy timeout alone
                    self._lock_path = None
                    yield
                    return
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)


def writers_lock_path(engine: Engine) -> str | None:
    """The OS lock file beside a SQLite database (`<db>-writers.lock`) that its writers queue on
    and a schema migration holds (arena.store.migrate); None where there is none to take."""
    database = engine.url.database
    if fcntl is None or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}-writers.lock"
