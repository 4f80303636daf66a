"""The reads the leaderboard needs: the filtered votes in time order, and cheap cache keys.

The scan runs on the DBAPI cursor and codes each vote as one small integer in Python:
SQLAlchemy row objects for a million votes cost more than the rating fits themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.engine import Engine

from arena.kinds import Mode, Outcome
from arena.store.driver import DriverStatement
from arena.store.schema import votes

_FETCH = 50_000


def utc(moment: datetime | None) -> datetime | None:
    """An aware UTC datetime (naive ones are taken as UTC, as SQLite hands them back)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class VoteFilter:
    """Which votes a leaderboard counts: anonymous battles only or all, cast in [since, until)."""

    anonymous_only: bool = True
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self):
        object.__setattr__(self, "since", utc(self.since))
        object.__setattr__(self, "until", utc(self.until))

    def condition(self):
        """Votes carry their battle's mode and models: the filter reads votes alone."""
        conds = [votes.c.mode == Mode.ANONYMOUS.value] if self.anonymous_only else []
        if self.since is not None:
            conds.append(votes.c.created_at >= bindparam("since", type_=votes.c.created_at.type))
        if self.until is not None:
            conds.append(votes.c.created_at < bindparam("until", type_=votes.c.created_at.type))
        return and_(True, *conds)

    def values(self) -> dict:
        return {
            name: getattr(self, name)
            for name in ("since", "until")
            if getattr(self, name) is not None
        }


class _Codes(dict):
    """(model_a, model_b, outcome) -> a small int, numbered in order of first appearance."""

    def __missing__(self, key):
        self[key] = code = len(self)
        return code


def scan_votes(
    engine: Engine, which: VoteFilter
) -> tuple[list[tuple[str, str, Outcome]], np.ndarray]:
    """The filtered votes ordered by (created_at, id): the distinct (model_a, model_b, outcome)
    combinations, and one int64 code per vote indexing them."""
    query = (
        select(votes.c.model_a, votes.c.model_b, votes.c.outcome)
        .where(which.condition())
        .order_by(votes.c.created_at, votes.c.id)
    )
    statement = DriverStatement(query, engine.dialect)
    codes = _Codes()
    chunks = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.execute(statement.sql, statement.params(which.values()))
            while rows := cursor.fetchmany(_FETCH):
                chunks.append(np.fromiter(map(codes.__getitem__, rows), np.int64, len(rows)))
        finally:
            cursor.close()
    finally:
        raw.close()  # back to the pool, rolled back
    combos = [(a, b, Outcome(o)) for a, b, o in codes]
    joined = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    return combos, joined


# The four style totals per side, summed in SQL from the stored breakdown (arena.style).
_STYLE_TOTALS = {
    "tokens": ("tokens",),
    "headers": ("h1", "h2", "h3", "h4", "h5", "h6"),
    "lists": ("ordered", "unordered"),
    "bold": ("bold_stars", "bold_underscores"),
}


def _style_total(side: str, parts: tuple[str, ...]):
    columns = [votes.c[f"style_{part}_{side}"] for part in parts]
    total = columns[0]
    for column in columns[1:]:
        total = total + column
    return total


def scan_style(
    engine: Engine, which: VoteFilter
) -> tuple[list[tuple[str, str, Outcome]], np.ndarray, np.ndarray]:
    """Like scan_votes, over the filtered votes that carry style counts: the combinations, one code
    per vote, and per vote the style totals (length, headers, lists, bold) of side a then side b,
    an int64 array of shape (votes, 8)."""
    totals = [_style_total(side, parts) for side in ("a", "b") for parts in _STYLE_TOTALS.values()]
    query = (
        select(*totals, votes.c.model_a, votes.c.model_b, votes.c.outcome)
        .where(which.condition(), votes.c.style_tokens_a.is_not(None))
        .order_by(votes.c.created_at, votes.c.id)
    )
    statement = DriverStatement(query, engine.dialect)
    codes = _Codes()
    code_chunks, count_chunks = [], []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.execute(statement.sql, statement.params(which.values()))
            while rows := cursor.fetchmany(_FETCH):
                columns = list(zip(*rows, strict=True))  # one tuple per column
                counts = np.empty((len(rows), 8), dtype=np.int64)
                for k in range(8):
                    counts[:, k] = columns[k]
                count_chunks.append(counts)
                triples = zip(columns[8], columns[9], columns[10], strict=True)
                code_chunks.append(
                    np.fromiter(map(codes.__getitem__, triples), np.int64, len(rows))
                )
        finally:
            cursor.close()
    finally:
        raw.close()
    combos = [(a, b, Outcome(o)) for a, b, o in codes]
    if not code_chunks:
        return combos, np.zeros(0, dtype=np.int64), np.zeros((0, 8), dtype=np.int64)
    return combos, np.concatenate(code_chunks), np.concatenate(count_chunks)


def has_style(engine: Engine) -> bool:
    """Whether any stored vote carries style counts."""
    query = select(votes.c.id).where(votes.c.style_tokens_a.is_not(None)).limit(1)
    with engine.connect() as conn:
        return conn.execute(query).first() is not None


def style_votes(engine: Engine, which: VoteFilter) -> tuple[int, int]:
    """(votes that pass the filter, of which carry style counts)."""
    query = select(func.count(), func.count(votes.c.style_tokens_a)).where(which.condition())
    with engine.connect() as conn:
        total, styled = conn.execute(query, which.values()).one()
    return int(total), int(styled)


def last_vote(engine: Engine, which: VoteFilter) -> datetime | None:
    """When the newest vote that passes the filter was cast (UTC)."""
    query = (
        select(votes.c.created_at)
        .where(which.condition())
        .order_by(votes.c.created_at.desc(), votes.c.id.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        return utc(conn.execute(query, which.values()).scalar())


def data_version(engine: Engine) -> tuple[int, int | None]:
    """(number of votes, highest vote id) over the whole votes table: it changes with every new
    vote and needs no join or filter, so it is cheap enough to ask on every page run (a cache key)."""
    with engine.connect() as conn:
        count, max_id = conn.execute(select(func.count(), func.max(votes.c.id))).one()
    return int(count), max_id
