"""The admin token's login slots (audit rows, arena.admin has the rule) and the voters' accepted
terms (terms_accepted). Each function takes a connection; Store wraps them in transactions."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, String, func, insert, literal, null, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from arena.admin import FAILED, NO_CLIENT, SUCCEEDED, Failures, LoginLimit
from arena.store.reads import utc
from arena.store.schema import audit, terms_accepted

_INSERT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
_LOCK = "vlm-arena admin login"  # PostgreSQL: one slot taken at a time, so no limit overshoots


def _failed(since: datetime, client_key: str | None = None) -> list:
    conditions = [audit.c.action == FAILED, audit.c.at >= since]
    if client_key is not None:
        conditions.append(audit.c.target == client_key)
    return conditions


def take_login_slot(
    conn: Connection, actor: str, client_key: str | None, at: datetime, limit: LoginLimit
) -> int | None:
    """Write a "failed" login row while the client and everyone are under the limit, in one
    INSERT ... SELECT ... WHERE; its id, or None (nothing written) when a limit is full.

    SQLite runs it under the write lock (BEGIN IMMEDIATE); PostgreSQL under a transaction-scoped
    advisory lock, since two READ COMMITTED inserts could each count the other's slot as free."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": _LOCK})
    since = at - limit.window
    count = select(func.count()).select_from(audit)
    conditions = [count.where(*_failed(since)).scalar_subquery() < limit.in_total]
    if client_key is not None:
        per_client = count.where(*_failed(since, client_key)).scalar_subquery()
        conditions.append(per_client < limit.per_client)
    row = select(
        literal(at, DateTime(timezone=True)),
        literal(actor, String),
        literal(FAILED, String),
        literal(client_key or NO_CLIENT, String),
        null(),
    ).where(*conditions)
    columns = ["at", "actor", "action", "target", "reason"]
    statement = insert(audit).from_select(columns, row).returning(audit.c.id)
    return conn.execute(statement).scalar()


def confirm_login(conn: Connection, slot: int, actor: str, reason: str | None) -> None:
    """The slot's token was right: the row becomes the admin's login and counts no more."""
    values = {"action": SUCCEEDED, "actor": actor, "reason": reason}
    conn.execute(update(audit).where(audit.c.id == slot).values(**values))


def login_failures(
    conn: Connection, client_key: str | None, at: datetime, limit: LoginLimit
) -> Failures:
    """The wrong tokens within the window, for the refusal's line."""
    since = at - limit.window
    stats = select(func.count(), func.min(audit.c.at))
    total, total_oldest = conn.execute(stats.where(*_failed(since))).one()
    client, client_oldest = None, None
    if client_key is not None:
        client, client_oldest = conn.execute(stats.where(*_failed(since, client_key))).one()
    return Failures(at, limit, client, total, utc(client_oldest), utc(total_oldest))


def accept_terms(conn: Connection, voter_id: str, sha256: str, at: datetime) -> None:
    """Keep that this voter accepted these terms (the first acceptance stays)."""
    values = {"voter_id": voter_id, "terms_sha256": sha256, "accepted_at": at}
    statement = _INSERT[conn.dialect.name](terms_accepted).values(**values)
    conn.execute(statement.on_conflict_do_nothing(index_elements=["voter_id", "terms_sha256"]))


def accepted_terms(conn: Connection, voter_id: str, sha256: str) -> bool:
    query = select(terms_accepted.c.accepted_at).where(
        terms_accepted.c.voter_id == voter_id, terms_accepted.c.terms_sha256 == sha256
    )
    return conn.execute(query).first() is not None


def log(conn: Connection, actor: str, action: str, target: str, reason: str | None) -> None:
    """An audit row for an action that changes nothing stored (a dataset download)."""
    values = {"at": datetime.now(UTC), "actor": actor, "action": action, "target": target}
    conn.execute(insert(audit).values(**values, reason=reason))
