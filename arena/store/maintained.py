"""The leaderboard's reads from what the database keeps up to date (migration 0007): the pair
counts from vote_counts (triggers on votes keep it exact) and online Elo resumed from elo_state,
reading only the votes cast after the state's last_at.

One board's reads run in one snapshot (a repeatable-read transaction on PostgreSQL, one read
transaction on SQLite's WAL), so the counts, the edit counter, the stored state and the new votes
agree. The stored state still holds when no stored vote was deleted or changed since it was
computed (vote_edits unchanged) and the votes it applied plus those cast after its last_at are
every vote of the filter (vote_counts' total): a vote added at or before last_at (an import of
past votes, a vote whose transaction committed late) breaks that sum. Otherwise every filtered vote
is read again, in the same snapshot. Only filters without dates are kept: the anonymous battles
and all battles.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.engine import Engine

from arena.kinds import Mode, Outcome
from arena.store import engine as eng
from arena.store import statements
from arena.store.driver import DriverStatement
from arena.store.reads import _FETCH, VoteFilter, _Codes, utc, without
from arena.store.schema import (
    battle_categories,
    category_counts,
    elo_state,
    prompt_counts,
    vote_counts,
    vote_edits,
    votes,
)

log = logging.getLogger(__name__)
SAVE_WAIT_MS = 200  # SQLite: how long saving a state waits for the write lock before giving up


def kind(which: VoteFilter, screened=None) -> str | None:
    """The elo_state row of a filter, or None where nothing is maintained (a date or category
    filter). A screened board that leaves votes out (arena.screened.Screened) has its own row
    per screening options."""
    if not which.counted:
        return None
    base = "anonymous" if which.anonymous_only else "all"
    return f"{base}:{screened.key}" if _leaves_out(screened) else base


def _leaves_out(screened) -> bool:
    return screened is not None and bool(screened.rows)


@dataclass(frozen=True)
class EloState:
    """Online Elo after every vote of a filter cast at or before last_at (`applied` votes), as
    computed when vote_edits stood at `edits`."""

    ratings: dict[str, float]
    last_at: datetime | None
    applied: int
    edits: int
    screen: str | None = None  # a screened board's Screened.fingerprint(last_at)


@dataclass(frozen=True)
class Maintained:
    """One board's reads: the counts, and the votes online Elo still has to apply, in time order
    (coded as in reads.scan_votes), after `state` (None: all of them, from 1000)."""

    rows: list[tuple[str, str, Outcome, int]]  # (model_a, model_b, outcome, votes) with votes > 0
    votes: int
    last_at: datetime | None  # the newest filtered vote (UTC)
    edits: int
    state: EloState | None
    combos: list[tuple[str, str, Outcome]]
    codes: np.ndarray
    kind: str = ""  # the elo_state row (kind())
    screened: object = None  # arena.screened.Screened whose votes are left out, or None
    pending: bool = False  # read with replay=False where online Elo needs every vote again

    def resumed(self, ratings: dict[str, float]) -> EloState:
        """The state after applying the new votes: what save_state stores."""
        screen = self.screened.fingerprint(self.last_at) if _leaves_out(self.screened) else None
        return EloState(ratings, self.last_at, self.votes, self.edits, screen)


def _filtered(query, table, which: VoteFilter):
    return query.where(table.c.mode == Mode.ANONYMOUS.value) if which.anonymous_only else query


_AT = votes.c.created_at.type


def _queries(which: VoteFilter) -> dict[str, select]:
    return {
        "counts": _filtered(
            select(
                vote_counts.c.model_a,
                vote_counts.c.model_b,
                vote_counts.c.outcome,
                func.sum(vote_counts.c.votes),
            ),
            vote_counts,
            which,
        ).group_by(vote_counts.c.model_a, vote_counts.c.model_b, vote_counts.c.outcome),
        "edits": select(vote_edits.c.edits).where(vote_edits.c.id == 1),
        "state": select(
            elo_state.c.ratings,
            elo_state.c.last_at,
            elo_state.c.applied,
            elo_state.c.edits,
            elo_state.c.screen,
        ).where(elo_state.c.kind == bindparam("kind")),
        "last": _filtered(select(votes.c.created_at), votes, which)
        .order_by(votes.c.created_at.desc(), votes.c.id.desc())
        .limit(1),
        "after": _filtered(_TRIPLE, votes, which)
        .where(votes.c.created_at > bindparam("after", type_=_AT))
        .order_by(votes.c.created_at, votes.c.id),
        "all": _filtered(_TRIPLE, votes, which).order_by(votes.c.created_at, votes.c.id),
        "after_ids": _filtered(_TRIPLE.add_columns(votes.c.id), votes, which)
        .where(votes.c.created_at > bindparam("after", type_=_AT))
        .order_by(votes.c.created_at, votes.c.id),
        "all_ids": _filtered(_TRIPLE.add_columns(votes.c.id), votes, which).order_by(
            votes.c.created_at, votes.c.id
        ),
    }


_TRIPLE = select(votes.c.model_a, votes.c.model_b, votes.c.outcome)


_COMPILED: dict = {}


def _statement(engine: Engine, which: VoteFilter, name: str) -> DriverStatement:
    key = (engine.dialect.name, which.anonymous_only, name)
    found = _COMPILED.get(key)
    if found is None:
        found = _COMPILED[key] = DriverStatement(_queries(which)[name], engine.dialect)
    return found


@contextmanager
def _snapshot(engine: Engine) -> Iterator:
    """A DBAPI cursor whose queries all read one snapshot of the database."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            if engine.dialect.name == "postgresql":
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            else:
                cursor.execute("BEGIN")  # the connection is in autocommit mode (engine.py)
            yield cursor
        finally:
            cursor.close()
    finally:
        raw.close()  # back to the pool, rolled back


def read(
    engine: Engine, which: VoteFilter, screened=None, replay: bool = True
) -> Maintained | None:
    """The board's counts and the votes its Elo still needs; None for a date filter, or where
    vote_counts disagrees with the votes (then only the scan gives the right board). With
    `screened` (arena.screened.Screened), the votes it leaves out are taken off the counts and
    out of online Elo; its state holds while the left-out votes up to its last_at stay the same.
    Where no stored state holds, online Elo needs every vote again: `replay=False` reads none
    and says so (`pending`), for a caller that replays them in the background."""
    name = kind(which, screened)
    if name is None:
        return None
    at = _AT.dialect_impl(engine.dialect).result_processor(engine.dialect, None)
    screening = _leaves_out(screened)
    suffix = "_ids" if screening else ""
    left_out = screened.counts() if screening else {}
    exclude = screened.ids if screening else None

    def run(cursor, query: str, values: dict | None = None):
        statement = _statement(engine, which, query)
        cursor.execute(statement.sql, statement.params(values or {}))
        return cursor

    with _snapshot(engine) as cursor:
        stored_rows = [
            (a, b, Outcome(o), int(n)) for a, b, o, n in run(cursor, "counts").fetchall()
        ]
        counted = sum(n for *_, n in stored_rows)
        rows = [
            (a, b, o, n - left_out.get((a, b, o), 0))
            for a, b, o, n in stored_rows
            if n > left_out.get((a, b, o), 0)
        ]
        total = sum(n for *_, n in rows)
        (edits,) = run(cursor, "edits").fetchone()
        stored = run(cursor, "state", {"kind": name}).fetchone()
        last = run(cursor, "last").fetchone()
        last_at = utc(at(last[0]) if at else last[0]) if last else None
        state = _state(stored, at) if stored is not None else None
        if state is not None and not _holds(state, edits, screened):
            state = None
        if state is not None:
            combos, codes, seen = _coded(
                run(cursor, f"after{suffix}", {"after": state.last_at}), exclude
            )
            if state.applied + len(codes) != total:
                state = None  # a vote was added at or before the state's last vote
        if state is None and not replay and total:
            return Maintained(
                rows, total, last_at, int(edits), None, [], np.zeros(0, dtype=np.int64), name,
                screened if screening else None, pending=True,
            )  # fmt: skip
        if state is None:
            combos, codes, seen = _coded(run(cursor, f"all{suffix}"), exclude)
            if seen != counted:
                log.warning(
                    "vote_counts says %d votes, the votes table has %d: the counts were changed "
                    "outside the triggers; run `python -m arena db recount` (until then the "
                    "leaderboard scans every vote)",
                    counted,
                    seen,
                )
                return None
    return Maintained(
        rows,
        total,
        last_at,
        int(edits),
        state,
        combos,
        codes,
        name,
        screened if screening else None,
    )


def _holds(state: EloState, edits: int, screened) -> bool:
    """Whether a stored state can be resumed: no stored vote changed since, and (a screened
    board) the same votes up to its last_at are left out."""
    if state.edits != edits or state.last_at is None:
        return False
    if not _leaves_out(screened):
        return state.screen is None
    return state.screen == screened.fingerprint(state.last_at)


def pair_counts(engine: Engine, which: VoteFilter) -> list[tuple[str, str, Outcome, int]] | None:
    """vote_counts alone, (model_a, model_b, outcome, votes) with votes > 0: no vote is read, so
    it costs the same at any number of votes (pair sampling asks it). None where nothing is
    maintained (a date or category filter)."""
    if kind(which) is None:
        return None
    statement = _statement(engine, which, "counts")
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.execute(statement.sql, statement.params({}))
            return [(a, b, Outcome(o), int(n)) for a, b, o, n in cursor.fetchall()]
        finally:
            cursor.close()
    finally:
        raw.close()


def _state(row, at) -> EloState:
    ratings, last_at, applied, edits, screen = row
    return EloState(
        json.loads(ratings), utc(at(last_at) if at else last_at), int(applied), int(edits), screen
    )


def _coded(
    cursor, exclude: np.ndarray | None = None
) -> tuple[list[tuple[str, str, Outcome]], np.ndarray, int]:
    """The cursor's (model_a, model_b, outcome[, id]) rows coded as in reads.scan_votes, those
    whose id is in `exclude` left out; and how many rows it read."""
    codes = _Codes()
    chunks = []
    seen = 0
    while rows := cursor.fetchmany(_FETCH):
        seen += len(rows)
        if exclude is not None:
            rows = without(rows, exclude)
        chunks.append(np.fromiter(map(codes.__getitem__, rows), np.int64, len(rows)))
    combos = [(a, b, Outcome(o)) for a, b, o in codes]
    return combos, (np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)), seen


def save_state(engine: Engine, name: str | None, state: EloState) -> bool:
    """Store the state under its elo_state row `name` (Maintained.kind) for the next read, unless
    a state at least as new is there already (the statement's guard). A cache: where the
    database is busy or read-only it is not saved, and the next read applies the same votes
    again. True when it was written."""
    if name is None or state.last_at is None:
        return False
    statement = _save_statement(engine)
    params = statement.params(
        {
            "kind": name,
            "ratings": json.dumps(state.ratings),  # repr of each float: read back bit for bit
            "last_at": state.last_at,
            "applied": state.applied,
            "edits": state.edits,
            "screen": state.screen,
        }
    )
    sqlite = engine.dialect.name == "sqlite"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            if sqlite:  # wait for voters (a millisecond each), not for an import
                cursor.execute(f"PRAGMA busy_timeout={SAVE_WAIT_MS}")
                cursor.execute("BEGIN IMMEDIATE")
            cursor.execute(statement.sql, params)
            written = cursor.rowcount != 0
            raw.driver_connection.commit()
            return written
        finally:
            if sqlite:
                cursor.execute(f"PRAGMA busy_timeout={eng.BUSY_TIMEOUT_MS}")
            cursor.close()
    except engine.dialect.loaded_dbapi.Error as exc:
        log.info("online Elo state not saved (%s): the next read applies the votes again", exc)
        return False
    finally:
        raw.close()  # rolled back if it did not commit


_SAVE: dict = {}


def _save_statement(engine: Engine) -> DriverStatement:
    name = engine.dialect.name
    if name not in _SAVE:
        _SAVE[name] = DriverStatement(statements.save_elo_state(name), engine.dialect)
    return _SAVE[name]


DEFER_SETTING = "arena.defer_vote_counts"  # migrations 0007's and 0010's insert triggers skip


@dataclass
class Deferred:
    """A bulk writer's own votes, counted as it writes them (deferred_counts adds them up)."""

    votes: Counter = field(default_factory=Counter)  # (mode, model_a, model_b, outcome)
    categories: Counter = field(default_factory=Counter)  # (mode, category)
    prompts: Counter = field(default_factory=Counter)  # (mode, prompt key)

    def add(self, vote: dict, categories: Iterable[str] = ()) -> None:
        """One vote row as written (mode, model_a, model_b, outcome, prompt_key) and the
        categories its battle is written with."""
        mode = vote["mode"]
        self.votes[mode, vote["model_a"], vote["model_b"], vote["outcome"]] += 1
        for category in categories:
            self.categories[mode, category] += 1
        if vote.get("prompt_key") is not None:
            self.prompts[mode, vote["prompt_key"]] += 1


@contextmanager
def deferred_counts(conn) -> Iterator[Deferred]:
    """PostgreSQL, inside a bulk writer's transaction: the insert triggers stop counting what
    this transaction inserts (its votes, and its battles' categories); the caller adds each vote
    to the Deferred it gets, and the counts are upserted at the end, a statement per table in key
    order, so the count rows stay locked for a moment rather than the whole import. The writer
    must insert only new battles (their categories have no vote but its own). SQLite (one writer
    at a time anyway) keeps counting in its triggers; the Deferred is ignored there."""
    counted = Deferred()
    postgres = (
        conn.dialect.name == "postgresql"
        and conn.execute(
            text("SELECT to_regclass('vote_counts') IS NOT NULL")  # before 0007: no counts
        ).scalar_one()
    )
    if postgres:
        conn.execute(text(f"SELECT set_config('{DEFER_SETTING}', 'on', true)"))
    yield counted
    if not postgres:
        return
    conn.execute(text(f"SELECT set_config('{DEFER_SETTING}', 'off', true)"))
    screening = conn.execute(text("SELECT to_regclass('category_counts') IS NOT NULL")).scalar()
    tables = [(vote_counts, counted.votes)]
    if screening:  # 0010's tables
        tables += [(category_counts, counted.categories), (prompt_counts, counted.prompts)]
    for table, found in tables:
        if found:
            key = [c.name for c in table.primary_key.columns]
            conn.execute(
                statements.add_counts(table),
                [{**dict(zip(key, k, strict=True)), "votes": n} for k, n in sorted(found.items())],
            )


def recount(engine: Engine) -> int:
    """Count vote_counts, category_counts and prompt_counts again from the votes and their
    battles' categories (after an edit that bypassed the triggers, such as a TRUNCATE or a
    restore with triggers off) and drop every Elo state; the number of votes. Writers wait
    meanwhile (PostgreSQL: SHARE locks on votes and battle_categories; SQLite: the write lock)."""
    key = [vote_counts.c[name] for name in ("mode", "model_a", "model_b", "outcome")]
    counted = select(*[votes.c[c.name] for c in key], func.count()).group_by(
        *[votes.c[c.name] for c in key]
    )
    with eng.write_engine(engine).begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE votes, battle_categories IN SHARE MODE"))
        conn.execute(delete(vote_counts))
        conn.execute(insert(vote_counts).from_select([*key, vote_counts.c.votes], counted))
        conn.execute(delete(category_counts))
        conn.execute(
            insert(category_counts).from_select(["mode", "category", "votes"], _category_recount())
        )
        conn.execute(delete(prompt_counts))
        conn.execute(
            insert(prompt_counts).from_select(["mode", "prompt_key", "votes"], _prompt_recount())
        )
        conn.execute(update(vote_edits).values(edits=vote_edits.c.edits + 1))
        conn.execute(delete(elo_state))
        return int(conn.execute(select(func.coalesce(func.sum(vote_counts.c.votes), 0))).scalar())


def _category_recount():
    """The votes per (mode, category) of their battles, from the votes."""
    return (
        select(votes.c.mode, battle_categories.c.category, func.count())
        .select_from(
            votes.join(battle_categories, battle_categories.c.battle_id == votes.c.battle_id)
        )
        .group_by(votes.c.mode, battle_categories.c.category)
    )


def _prompt_recount():
    """The votes per (mode, prompt key), from the votes."""
    return (
        select(votes.c.mode, votes.c.prompt_key, func.count())
        .where(votes.c.prompt_key.is_not(None))
        .group_by(votes.c.mode, votes.c.prompt_key)
    )
