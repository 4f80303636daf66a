"""The reads the leaderboard needs: the filtered votes in time order, and cheap cache keys.

The scan runs on the DBAPI cursor and codes each vote as one small integer in Python:
SQLAlchemy row objects for a million votes cost more than the rating fits themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain

import numpy as np
from sqlalchemy import BigInteger, Float, and_, bindparam, cast, func, select
from sqlalchemy.engine import Engine

from arena.kinds import Mode, Outcome
from arena.store.driver import DriverStatement
from arena.store.schema import battle_categories, vote_counts, vote_edits, votes

_FETCH = 50_000


def utc(moment: datetime | None) -> datetime | None:
    """An aware UTC datetime (naive ones are taken as UTC, as SQLite hands them back)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class VoteFilter:
    """Which votes a leaderboard counts: anonymous battles only or all, cast in [since, until),
    of battles in one category (arena.categories) or any."""

    anonymous_only: bool = True
    since: datetime | None = None
    until: datetime | None = None
    category: str | None = None

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
        if self.category is not None:
            conds.append(
                votes.c.battle_id.in_(
                    select(battle_categories.c.battle_id).where(
                        battle_categories.c.category == bindparam("category")
                    )
                )
            )
        return and_(True, *conds)

    @property
    def counted(self) -> bool:
        """Whether the database keeps this filter's counts (arena.store.maintained): no dates and
        no category, so only the mode is filtered."""
        return self.since is None and self.until is None and self.category is None

    def values(self) -> dict:
        return {
            name: getattr(self, name)
            for name in ("since", "until", "category")
            if getattr(self, name) is not None
        }


class _Codes(dict):
    """(model_a, model_b, outcome) -> a small int, numbered in order of first appearance."""

    def __missing__(self, key):
        self[key] = code = len(self)
        return code


def _fetched(engine: Engine, query, values: dict) -> Iterator[list[tuple]]:
    """The query's rows in chunks of _FETCH, read on the DBAPI cursor of a pooled connection
    (returned to the pool, rolled back, afterwards)."""
    statement = DriverStatement(query, engine.dialect)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.execute(statement.sql, statement.params(values))
            while rows := cursor.fetchmany(_FETCH):
                yield rows
        finally:
            cursor.close()
    finally:
        raw.close()


def without(rows: list[tuple], exclude: np.ndarray) -> list[tuple]:
    """The rows whose last column, a vote id, is not in `exclude` (sorted ids), that column
    dropped: how every scan leaves out the votes a screening left out."""
    ids = np.fromiter((r[-1] for r in rows), np.int64, len(rows))
    kept = ~np.isin(ids, exclude)
    return [r[:-1] for r, keep in zip(rows, kept.tolist(), strict=True) if keep]


def scan_votes(
    engine: Engine, which: VoteFilter, exclude: np.ndarray | None = None
) -> tuple[list[tuple[str, str, Outcome]], np.ndarray]:
    """The filtered votes ordered by (created_at, id): the distinct (model_a, model_b, outcome)
    combinations, and one int64 code per vote indexing them. Votes whose id is in `exclude`
    (sorted ids) are left out."""
    ids = exclude is not None and len(exclude) > 0
    query = (
        select(votes.c.model_a, votes.c.model_b, votes.c.outcome, *([votes.c.id] if ids else []))
        .where(which.condition())
        .order_by(votes.c.created_at, votes.c.id)
    )
    codes = _Codes()
    chunks = []
    for rows in _fetched(engine, query, which.values()):
        if ids:
            rows = without(rows, exclude)
        chunks.append(np.fromiter(map(codes.__getitem__, rows), np.int64, len(rows)))
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
    """One side's total in 64-bit integers (PostgreSQL's int4 would overflow on a + b + 1 of two
    accepted token counts): one cast, and the rest of the sum follows it."""
    first, *rest = (votes.c[f"style_{part}_{side}"] for part in parts)
    total = cast(first, BigInteger)
    for column in rest:
        total = total + column
    return total


def _style_feature(parts: tuple[str, ...]):
    """(a - b) / (a + b + 1) of one style total, in double precision on both engines."""
    a, b = _style_total("a", parts), _style_total("b", parts)
    return cast(a - b, Float) / cast(a + b + 1, Float)


def scan_style(
    engine: Engine, which: VoteFilter, exclude: np.ndarray | None = None
) -> tuple[list[tuple[str, str, Outcome]], np.ndarray, np.ndarray]:
    """Like scan_votes, over the filtered votes that carry style counts but in no particular
    order: the combinations, one code per vote, and per vote the style features (length, headers, lists, bold), each
    (a - b) / (a + b + 1) computed in SQL, a float64 array of shape (votes, 4). Four floats a row
    rather than eight counts: the fetch creates half the Python objects."""
    features = [_style_feature(parts) for parts in _STYLE_TOTALS.values()]
    ids = exclude is not None and len(exclude) > 0
    extra = [votes.c.id] if ids else []
    query = select(*features, votes.c.model_a, votes.c.model_b, votes.c.outcome, *extra).where(
        which.condition(), votes.c.style_tokens_a.is_not(None)
    )  # no ORDER BY: the fit needs no order, and reading through the time index costs 40 % more
    codes = _Codes()
    code_chunks, feature_chunks = [], []
    for rows in _fetched(engine, query, which.values()):
        if ids:
            rows = without(rows, exclude)
        n = len(rows)
        numbers = chain.from_iterable(row[:4] for row in rows)
        feature_chunks.append(np.fromiter(numbers, np.float64, 4 * n).reshape(n, 4))
        triples = (row[4:7] for row in rows)
        code_chunks.append(np.fromiter(map(codes.__getitem__, triples), np.int64, n))
    combos = [(a, b, Outcome(o)) for a, b, o in codes]
    if not code_chunks:
        return combos, np.zeros(0, dtype=np.int64), np.zeros((0, 4))
    return combos, np.concatenate(code_chunks), np.concatenate(feature_chunks)


def has_style(engine: Engine) -> bool:
    """Whether any stored vote carries style counts (ix_votes_styled holds only those, so this
    reads no vote when none does)."""
    query = select(votes.c.id).where(votes.c.style_tokens_a.is_not(None)).limit(1)
    with engine.connect() as conn:
        return conn.execute(query).first() is not None


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


def data_version(engine: Engine) -> tuple[int, int | None, int]:
    """(number of votes, highest vote id, edits of stored votes): it changes with every new,
    deleted or changed vote, and costs no scan of the votes (the count comes from vote_counts,
    which triggers keep exact; the highest id from the primary key), so it is cheap enough to ask
    on every page run at any size (a cache key)."""
    counted = select(func.coalesce(func.sum(vote_counts.c.votes), 0)).scalar_subquery()
    highest = select(func.max(votes.c.id)).scalar_subquery()
    edits = select(func.coalesce(func.max(vote_edits.c.edits), 0)).scalar_subquery()
    with engine.connect() as conn:
        count, max_id, changed = conn.execute(select(counted, highest, edits)).one()
    return int(count), max_id, int(changed)
