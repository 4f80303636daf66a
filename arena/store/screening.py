"""The screening's queries (arena.screening decides; these read and write what it needs): a
battle's prompt key, identity-leak verdict and categories, and for a leaderboard the votes each
exclusion rule leaves out.

The reads answer from indexes or from aggregates the database computes: the flagged votes
(a partial index), the prompt keys asked more than the cap (ix_votes_prompt_key), each voter's
first decisive votes per (winner, loser) (a window function), so Python sees rows per group or
per excluded vote, not per stored vote.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, case, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection

from arena.kinds import Mode, Outcome
from arena.store.driver import DriverStatement
from arena.store.reads import VoteFilter, utc
from arena.store.schema import (
    banned_voters,
    battle_categories,
    battles,
    category_counts,
    images,
    prompt_counts,
    turns,
    votes,
)

WHO = {"voter": votes.c.voter_id, "client": votes.c.client_key}
# a or b, between two different models (a self-battle compares nothing)
_DECISIVE = votes.c.outcome.in_([Outcome.A.value, Outcome.B.value]) & (
    votes.c.model_a != votes.c.model_b
)
_WINNER = case((votes.c.outcome == Outcome.A.value, votes.c.model_a), else_=votes.c.model_b)
_LOSER = case((votes.c.outcome == Outcome.A.value, votes.c.model_b), else_=votes.c.model_a)


@dataclass(frozen=True)
class VoteRow:
    """One vote a rule leaves out: enough to take it off the counts and out of online Elo."""

    id: int
    created_at: datetime  # UTC
    model_a: str
    model_b: str
    outcome: Outcome


_ROW = (votes.c.id, votes.c.created_at, votes.c.model_a, votes.c.model_b, votes.c.outcome)


def vote_row(raw: tuple) -> VoteRow:
    """A VoteRow from the driver's (id, created_at, model_a, model_b, outcome, ...) row."""
    i, at, a, b, o = raw[:5]
    return VoteRow(
        i, utc(datetime.fromisoformat(at) if isinstance(at, str) else at), a, b, Outcome(o)
    )


def _driver_rows(conn: Connection, query, values: dict) -> list[tuple]:
    """The query's rows as the driver gives them (SQLite: times as ISO text), without
    SQLAlchemy's per-row result processing: several times cheaper per row, and a screening read
    may return one row per left-out vote."""
    statement = DriverStatement(query, conn.dialect)
    return conn.exec_driver_sql(statement.sql, statement.params(values)).all()


def _vote_rows(conn: Connection, query, values: dict) -> list[VoteRow]:
    return [vote_row(raw) for raw in _driver_rows(conn, query, values)]


# ----- writes ---------------------------------------------------------------------------------


def screen_battle(
    conn: Connection,
    battle_id: str,
    *,
    prompt_key: str | None,
    identity_leak: str | None,
    categories: Sequence[tuple[str, str]],
) -> None:
    """Store what the screening found for a battle when a turn is stored: its prompt key (kept
    once set: it is the first prompt's), the identity-leak verdict (NULL: none), and its
    categories as (category, source), replacing those it had."""
    values: dict = {"identity_leak": identity_leak}
    if prompt_key is not None:
        values["prompt_key"] = func.coalesce(battles.c.prompt_key, prompt_key)
    conn.execute(update(battles).where(battles.c.id == battle_id).values(values))
    set_categories(conn, battle_id, categories)


def set_categories(conn: Connection, battle_id: str, categories: Iterable[tuple[str, str]]):
    conn.execute(delete(battle_categories).where(battle_categories.c.battle_id == battle_id))
    rows = [{"battle_id": battle_id, "category": c, "source": s} for c, s in categories]
    if rows:
        conn.execute(insert(battle_categories), rows)


def replace_categories(
    conn: Connection, battle_id: str, categories: Iterable[tuple[str, str]], keep: Iterable[str]
) -> None:
    """Replace a battle's categories except those in `keep` (the automatic tags stay when a
    classifier model relabels the tasks)."""
    keep = tuple(keep)
    conn.execute(
        delete(battle_categories).where(
            battle_categories.c.battle_id == battle_id, battle_categories.c.category.not_in(keep)
        )
    )
    rows = [
        {"battle_id": battle_id, "category": c, "source": s} for c, s in categories if c not in keep
    ]
    if rows:
        conn.execute(insert(battle_categories), rows)


def set_identity_leaks(conn: Connection, verdicts: dict[str, str | None]) -> int:
    """Store re-checked verdicts (battle id -> reason or None) on battles and their votes; the
    number of battles whose verdict changed."""
    if not verdicts:
        return 0
    current = dict(
        conn.execute(
            select(battles.c.id, battles.c.identity_leak).where(battles.c.id.in_(list(verdicts)))
        ).all()
    )
    changed = {b: v for b, v in verdicts.items() if b in current and current[b] != v}
    if changed:
        conn.execute(
            update(battles)
            .where(battles.c.id == bindparam("b_id"))
            .values(identity_leak=bindparam("b_leak")),
            [{"b_id": b, "b_leak": v} for b, v in changed.items()],
        )
        conn.execute(
            update(votes)
            .where(votes.c.battle_id == bindparam("b_id"))
            .values(identity_leak=bindparam("b_flag")),
            [{"b_id": b, "b_flag": v is not None} for b, v in changed.items()],
        )
    return len(changed)


# ----- reads for the leaderboard -------------------------------------------------------------


# ix_votes_identity_leak's own WHERE: SQLite uses a partial index only for a term that is its
# expression, and SQLAlchemy writes `identity_leak = 1` or `IS 1` there (a scan of every vote).
_LEAKED = text("votes.identity_leak")


def leak_votes(conn: Connection, which: VoteFilter) -> list[VoteRow]:
    """The filtered votes of battles flagged for an identity leak (ix_votes_identity_leak holds
    only those)."""
    query = select(*_ROW).where(which.condition(), _LEAKED)
    return _vote_rows(conn, query, which.values())


def hidden_votes(conn: Connection, which: VoteFilter) -> list[VoteRow]:
    """The filtered votes of battles an admin hid: the hidden battles from ix_battles_hidden,
    which holds only those, then their votes by battle id (a join let SQLite scan every vote)."""
    hidden = select(battles.c.id).where(battles.c.hidden_reason.is_not(None))
    query = select(*_ROW).where(which.condition(), votes.c.battle_id.in_(hidden))
    return _vote_rows(conn, query, which.values())


def banned_votes(conn: Connection, which: VoteFilter) -> list[VoteRow]:
    """The filtered votes of banned voters (ix_votes_voter_created finds each one's)."""
    query = select(*_ROW).where(
        which.condition(), votes.c.voter_id.in_(select(banned_voters.c.voter_id))
    )
    return _vote_rows(conn, query, which.values())


def category_votes(conn: Connection, which: VoteFilter, counted: bool = True) -> dict[str, int]:
    """Votes per category over the filter ({category: votes}): from category_counts where the
    filter is one the database counts (and `counted`), else from the votes."""
    if counted and which.counted:
        query = _by_mode(
            select(category_counts.c.category, func.sum(category_counts.c.votes)), which
        ).group_by(category_counts.c.category)
        return {c: int(n) for c, n in conn.execute(query) if n}
    query = (
        select(battle_categories.c.category, func.count())
        .select_from(
            votes.join(battle_categories, battle_categories.c.battle_id == votes.c.battle_id)
        )
        .where(which.condition())
        .group_by(battle_categories.c.category)
    )
    return {c: int(n) for c, n in conn.execute(query, which.values())}


def sample_votes(conn: Connection, which: VoteFilter) -> list[VoteRow]:
    """The filtered votes of battles started from a shipped sample image."""
    on_sample = votes.c.battle_id.in_(
        select(battle_categories.c.battle_id).where(battle_categories.c.category == "sample_image")
    )
    return _vote_rows(conn, select(*_ROW).where(which.condition(), on_sample), which.values())


def _by_mode(query, which: VoteFilter, table=category_counts):
    return query.where(table.c.mode == Mode.ANONYMOUS.value) if which.anonymous_only else query


def _heavy_keys(which: VoteFilter, cap: int, counted: bool):
    """The prompt keys with more than `cap` filtered votes. From prompt_counts where the database
    counts the filter: ix_prompt_counts_votes (mode, votes) finds the keys over the cap (over
    all modes, a key over the cap has more than cap // 2 votes in one of them), so this reads
    no vote and no key under the cap."""
    if counted and which.counted:
        modes = [Mode.ANONYMOUS] if which.anonymous_only else list(Mode)
        # equalities, not IN: a driver statement cannot expand a list
        of_modes = or_(*(prompt_counts.c.mode == m.value for m in modes))
        over = cap if which.anonymous_only else cap // 2
        candidates = select(prompt_counts.c.prompt_key).where(
            of_modes, prompt_counts.c.votes > over
        )
        if which.anonymous_only:
            return candidates
        return (  # each candidate's rows of every mode, by the primary key (mode, prompt_key)
            select(prompt_counts.c.prompt_key)
            .where(of_modes, prompt_counts.c.prompt_key.in_(candidates))
            .group_by(prompt_counts.c.prompt_key)
            .having(func.sum(prompt_counts.c.votes) > cap)
        )
    return (
        select(votes.c.prompt_key)
        .where(which.condition(), votes.c.prompt_key.is_not(None))
        .group_by(votes.c.prompt_key)
        .having(func.count() > cap)
    )


def repeated_prompts(
    conn: Connection, which: VoteFilter, cap: int, counted: bool = True
) -> list[tuple]:
    """The filtered votes whose prompt key has more than `cap` of them, as the driver gives them:
    (id, created_at, model_a, model_b, outcome, battle id, key); vote_row() makes a VoteRow of
    one (only the left-out ones need it). `counted=False` finds the keys from the votes even
    where prompt_counts would do."""
    heavy = _heavy_keys(which, cap, counted)
    query = select(*_ROW, votes.c.battle_id, votes.c.prompt_key).where(
        which.condition(), votes.c.prompt_key.in_(heavy)
    )
    return _driver_rows(conn, query, which.values())


def prompt_frequencies(conn: Connection, which: VoteFilter, counted: bool = True) -> list[int]:
    """How many filtered votes each prompt key has (FastChat's percentile rule reads these):
    from prompt_counts where the database counts the filter (a row per key, not per vote)."""
    if counted and which.counted:
        total = func.sum(prompt_counts.c.votes)
        query = _by_mode(select(total), which, prompt_counts).group_by(prompt_counts.c.prompt_key)
        return [int(n) for (n,) in conn.execute(query)]
    query = (
        select(func.count())
        .where(which.condition(), votes.c.prompt_key.is_not(None))
        .group_by(votes.c.prompt_key)
    )
    return [int(n) for (n,) in conn.execute(query, which.values())]


def decisive_shares(conn: Connection, which: VoteFilter) -> list[tuple[str, str, int]]:
    """Everyone's decisive filtered votes per (winner, loser)."""
    query = (
        select(_WINNER, _LOSER, func.count())
        .where(which.condition(), _DECISIVE)
        .group_by(_WINNER, _LOSER)
    )
    return [(w, lo, int(n)) for w, lo, n in conn.execute(query, which.values())]


def first_decisive(
    conn: Connection, which: VoteFilter, who: str, first: int
) -> list[tuple[str, str, str, int]]:
    """Each voter's (or client key's) first `first` decisive filtered votes, counted per
    (winner, loser): rows (who, winner, loser, votes)."""
    column = WHO[who]
    ranked = (
        select(
            column.label("who"),
            _WINNER.label("winner"),
            _LOSER.label("loser"),
            func.row_number()
            .over(partition_by=column, order_by=(votes.c.created_at, votes.c.id))
            .label("k"),
        )
        .where(which.condition(), _DECISIVE, column.is_not(None))
        .subquery()
    )
    query = (
        select(ranked.c.who, ranked.c.winner, ranked.c.loser, func.count())
        .where(ranked.c.k <= first)
        .group_by(ranked.c.who, ranked.c.winner, ranked.c.loser)
    )
    return [(v, w, lo, int(n)) for v, w, lo, n in conn.execute(query, which.values())]


def votes_of(conn: Connection, which: VoteFilter, who: str, keys: Sequence[str]) -> list[VoteRow]:
    """The filtered votes cast by these voters (or client keys)."""
    if not keys:
        return []
    query = select(*_ROW).where(which.condition(), WHO[who].in_(bindparam("keys", expanding=True)))
    # an expanding IN is rendered per call by SQLAlchemy: not a driver statement
    found = conn.execute(query, {**which.values(), "keys": list(keys)})
    return [VoteRow(i, utc(at), a, b, Outcome(o)) for i, at, a, b, o in found]


def battles_after(conn: Connection, after: str | None, limit: int, anonymous_only: bool):
    """Stored battles in id order after `after`: (id, mode, model_a, model_b, image sha256)."""
    query = select(
        battles.c.id, battles.c.mode, battles.c.model_a, battles.c.model_b, battles.c.image_sha256
    )
    if anonymous_only:
        query = query.where(battles.c.mode == "anonymous")
    if after is not None:
        query = query.where(battles.c.id > after)
    return conn.execute(query.order_by(battles.c.id).limit(limit)).all()


def turn_texts(conn: Connection, battle_ids: Sequence[str]) -> dict[str, list[tuple]]:
    """Each battle's turns in order: (prompt, answer_a, answer_b)."""
    query = (
        select(turns.c.battle_id, turns.c.prompt, turns.c.answer_a, turns.c.answer_b)
        .where(turns.c.battle_id.in_(bindparam("ids", expanding=True)))
        .order_by(turns.c.battle_id, turns.c.idx)
    )
    found: dict[str, list[tuple]] = {b: [] for b in battle_ids}
    for battle, prompt, answer_a, answer_b in conn.execute(query, {"ids": list(battle_ids)}):
        found[battle].append((prompt, answer_a or "", answer_b or ""))
    return found


def categories_of(conn: Connection, battle_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """Each battle's stored categories: {battle id: {category: source}}."""
    query = select(
        battle_categories.c.battle_id, battle_categories.c.category, battle_categories.c.source
    ).where(battle_categories.c.battle_id.in_(bindparam("ids", expanding=True)))
    found: dict[str, dict[str, str]] = {b: {} for b in battle_ids}
    for battle, category, source in conn.execute(query, {"ids": list(battle_ids)}):
        found[battle][category] = source
    return found


def image_data(conn: Connection, sha256: str) -> bytes | None:
    """A stored image's bytes, or None."""
    return conn.execute(select(images.c.data).where(images.c.sha256 == sha256)).scalar()
