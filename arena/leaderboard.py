"""The leaderboard that the page and the command line show: votes from the store, ratings from
arena.ratings. No Streamlit.

One time-ordered scan of the filtered votes feeds both fits: its pair counts (what
`Store.pair_counts` returns through a SQL GROUP BY) go to the Bradley-Terry fit, and the battles in
vote order go to online Elo. The scan runs on the DBAPI cursor and codes each vote as one integer in
Python; SQLAlchemy row objects for a million votes would cost more than the fits themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import and_, func, select

from arena.errors import InputError
from arena.outcome import Outcome
from arena.ratings import Leaderboard, aggregate, compute_leaderboard, elo_loop
from arena.store.schema import votes

_FETCH = 50_000
_LEFT_SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5, "bothbad": 0.5}  # model_a's score per Outcome value


@dataclass(frozen=True)
class Board:
    """A Leaderboard (online Elo filled in) with the votes it was computed from."""

    leaderboard: Leaderboard
    votes: int
    last_vote: datetime | None  # UTC
    anonymous_only: bool = True
    since: datetime | None = None
    until: datetime | None = None

    @property
    def empty(self) -> bool:
        return not self.leaderboard.rows

    def to_dict(self) -> dict:
        """Every figure of the page, JSON-ready (the `leaderboard --json` interface)."""
        return {
            **self.leaderboard.to_dict(),
            "votes": self.votes,
            "last_vote": _iso(self.last_vote),
            "filters": {
                "anonymous_only": self.anonymous_only,
                "since": _iso(self.since),
                "until": _iso(self.until),
            },
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def data_version(store) -> tuple[int, int | None]:
    """(number of votes, highest vote id) over the whole votes table: changes with every new vote.

    No join and no filter, so it is cheap enough to ask on every page run (a cache key).
    """
    with store.engine.connect() as conn:
        count, max_id = conn.execute(select(func.count(), func.max(votes.c.id))).one()
    return int(count), max_id


def parse_anchor(text: str) -> tuple[str, float]:
    """'MODEL=RATING' -> (model, rating); InputError naming what is wrong."""
    model, sep, rating = text.rpartition("=")
    if not sep or not model.strip():
        raise InputError(f"--anchor {text!r}: expected MODEL=RATING, e.g. gpt-4o=1000.")
    try:
        value = float(rating)
    except ValueError:
        raise InputError(f"--anchor {text!r}: {rating!r} is not a number.") from None
    if not math.isfinite(value):
        raise InputError(f"--anchor {text!r}: the rating must be a finite number.")
    return model.strip(), value


def leaderboard_for(
    store,
    anonymous_only: bool = True,
    since: datetime | None = None,
    until: datetime | None = None,
    bootstrap_rounds: int = 100,
    seed: int = 0,
    anchor: tuple[str, float] | None = None,
) -> Board:
    """The board over the votes that pass the filters (votes.created_at in [since, until)).

    An anchor whose model has no votes under these filters is an InputError.
    """
    since, until = _utc(since), _utc(until)
    scan = scan_votes(store, anonymous_only, since, until)
    if anchor is not None and anchor[0] not in scan.models:
        models = sorted(scan.models)
        known = ", ".join(models[:10]) + (
            f" and {len(models) - 10} more" if len(models) > 10 else ""
        )
        raise InputError(
            f"Anchor model {anchor[0]!r} has no votes here; models with votes: {known or 'none'}."
        )
    board = compute_leaderboard(
        scan.pair_counts(), bootstrap_rounds=bootstrap_rounds, seed=seed, anchor=anchor
    )
    elo = scan.online_elo()
    board = replace(board, rows=[replace(row, elo=elo.get(row.model)) for row in board.rows])
    last = _last_vote(store, anonymous_only, since, until) if scan.votes else None
    return Board(board, scan.votes, last, anonymous_only, since, until)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _filter(anonymous_only: bool, since: datetime | None, until: datetime | None):
    """Votes carry their battle's mode and models: the filters and the scan read votes alone."""
    conds = [votes.c.mode == "anonymous"] if anonymous_only else []
    if since is not None:
        conds.append(votes.c.created_at >= since)
    if until is not None:
        conds.append(votes.c.created_at < until)
    return and_(True, *conds)


def _last_vote(store, anonymous_only, since, until) -> datetime | None:
    query = (
        select(votes.c.created_at)
        .where(_filter(anonymous_only, since, until))
        .order_by(votes.c.created_at.desc(), votes.c.id.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        return _utc(conn.execute(query).scalar())


# --- the scan ------------------------------------------------------------------------------------


class _Codes(dict):
    """(model_a, model_b, outcome) -> a small int, numbered in order of first appearance."""

    def __missing__(self, key):
        self[key] = code = len(self)
        return code


@dataclass(frozen=True)
class VoteScan:
    """The filtered votes in time order, each coded as an index into `combos`."""

    combos: list[tuple[str, str, str]]  # (model_a, model_b, outcome value)
    codes: np.ndarray  # int64, one per vote, in vote order

    @property
    def votes(self) -> int:
        return len(self.codes)

    @property
    def models(self) -> set[str]:
        return {m for a, b, _ in self.combos for m in (a, b)}

    def count_rows(self) -> list[tuple[str, str, str, int]]:
        """(model_a, model_b, winner label, count): the rows of Store.pair_counts."""
        counts = np.bincount(self.codes, minlength=len(self.combos)).tolist()
        return [
            (a, b, Outcome(o).winner_label, n)
            for (a, b, o), n in zip(self.combos, counts, strict=True)
        ]

    def pair_counts(self):
        return aggregate(self.count_rows())

    def online_elo(self) -> dict[str, float]:
        """arena.ratings.online_elo over these battles, float for float, on integer codes."""
        ids: dict[str, int] = {}
        left = np.array([ids.setdefault(a, len(ids)) for a, _, _ in self.combos], dtype=np.int64)
        right = np.array([ids.setdefault(b, len(ids)) for _, b, _ in self.combos], dtype=np.int64)
        score = np.array([_LEFT_SCORE[o] for _, _, o in self.combos])
        codes = self.codes
        rating = elo_loop(
            left[codes].tolist(), right[codes].tolist(), score[codes].tolist(), len(ids)
        )
        return {name: rating[i] for name, i in ids.items()}


def scan_votes(
    store, anonymous_only: bool = True, since: datetime | None = None, until: datetime | None = None
) -> VoteScan:
    """(model_a, model_b, outcome) of every filtered vote, ordered by (created_at, id) as
    Store.ordered_battles is, fetched on the DBAPI cursor in chunks."""
    query = (
        select(votes.c.model_a, votes.c.model_b, votes.c.outcome)
        .where(_filter(anonymous_only, _utc(since), _utc(until)))
        .order_by(votes.c.created_at, votes.c.id)
    )
    codes = _Codes()
    chunks = []
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            sql, params = _compile(query, store.engine.dialect)
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(_FETCH):
                chunks.append(np.fromiter(map(codes.__getitem__, rows), np.int64, len(rows)))
        finally:
            cursor.close()
    finally:
        raw.close()  # back to the pool, rolled back
    combos = [(a, b, Outcome(o).value) for a, b, o in codes]
    joined = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    return VoteScan(combos, joined)


def _compile(query, dialect) -> tuple[str, list | dict]:
    """SQL text and parameters for the DBAPI cursor, bind values converted as SQLAlchemy would
    (SQLite stores DateTime as text in its own format)."""
    compiled = query.compile(dialect=dialect)
    params = compiled.construct_params()
    for name, bind in compiled.binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None and name in params:
            params[name] = process(params[name])
    if compiled.positional:
        return str(compiled), [params[name] for name in compiled.positiontup]
    return str(compiled), params
