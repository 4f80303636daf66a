"""Writes as single statements, so each costs one round trip.

Every rule a write must respect is a condition of the statement itself: the database checks
it and writes, or writes nothing (RETURNING tells which). The slower multi-statement paths in
store.py then say which rule refused it.
"""

from sqlalchemy import (
    DateTime,
    Float,
    Integer,
    LargeBinary,
    String,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    null,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from arena.store.schema import VOTE_CARRIES, battles, images, turns, votes

_INSERT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
DIALECTS = tuple(_INSERT)


def guarded_vote(dialect: str, owner: bool, rate_limit: int):
    """One INSERT ... SELECT that stores the vote only if every rule holds: the battle exists
    (and belongs to the session when `owner`), its last turn has two answers without error, the
    voter is under the hourly limit, and the battle has no vote yet (ON CONFLICT DO NOTHING).
    The SELECT reads the battle row itself, which gives the vote its copies of model_a, model_b
    and mode. One round trip instead of a read, checks in Python, and a write."""
    last = (
        select(turns.c.answer_a, turns.c.error_a, turns.c.answer_b, turns.c.error_b)
        .where(turns.c.battle_id == bindparam("battle_id"))
        .order_by(turns.c.idx.desc())
        .limit(1)
        .subquery()
    )
    answered = exists(
        select(literal(1))
        .select_from(last)
        .where(
            last.c.error_a.is_(None),
            last.c.error_b.is_(None),
            func.trim(last.c.answer_a) != "",
            func.trim(last.c.answer_b) != "",
        )
    )
    battle = battles.c.id == bindparam("battle_id")
    if owner:
        battle = and_(battle, battles.c.session_id == bindparam("session_id"))
    conditions = [battle, answered]
    if rate_limit:
        recent = (
            select(func.count())
            .where(
                votes.c.voter_id == bindparam("voter_id"), votes.c.created_at >= bindparam("since")
            )
            .scalar_subquery()
        )
        conditions.append(recent < rate_limit)
    row = select(
        battles.c.id,
        bindparam("outcome", type_=String),
        bindparam("created_at", type_=DateTime(timezone=True)),
        bindparam("voter_id", type_=String),
        *[battles.c[name] for name in VOTE_CARRIES],
    ).where(*conditions)
    columns = ["battle_id", "outcome", "created_at", "voter_id", *VOTE_CARRIES]
    insert_vote = _INSERT[dialect](votes).from_select(columns, row)
    return insert_vote.on_conflict_do_nothing(index_elements=["battle_id"]).returning(votes.c.id)


# Battles a session started since a time (the per-minute battle limit).
RECENT_BATTLES = select(func.count()).where(
    battles.c.session_id == bindparam("session_id"), battles.c.created_at >= bindparam("since")
)


def _param(name: str, kind):
    return bindparam(name, type_=kind)


def battle_with_first_turn(rate_limit: int):
    """PostgreSQL: the image (once per sha256), the battle and its first turn in one INSERT with
    data-modifying CTEs, written only while the session is under its per-minute battle limit."""
    under_limit = [RECENT_BATTLES.scalar_subquery() < rate_limit] if rate_limit else []
    at = _param("created_at", DateTime(timezone=True))
    image_row = select(
        _param("sha256", String), _param("format", String), _param("width", Integer),
        _param("height", Integer), _param("data", LargeBinary), at,
    ).where(*under_limit)  # fmt: skip
    new_image = (
        postgresql.insert(images)
        .from_select(["sha256", "format", "width", "height", "data", "created_at"], image_row)
        .on_conflict_do_nothing()
        .cte("new_image")
    )
    battle_row = select(
        _param("id", String), at, _param("mode", String), _param("model_a", String), _param("model_b", String),
        _param("sha256", String), _param("session_id", String), literal("arena"), null(),
    ).where(*under_limit)  # fmt: skip
    battle_columns = [
        "id",
        "created_at",
        "mode",
        "model_a",
        "model_b",
        "image_sha256",
        "session_id",
        "source",
        "question_id",
    ]
    new_battle = (
        insert(battles)
        .from_select(battle_columns, battle_row)
        .returning(battles.c.id)
        .cte("new_battle")
    )
    side_columns = [
        f"{name}_{side}"
        for side in ("a", "b")
        for name in ("answer", "error", "ttft", "total", "tokens")
    ]
    kinds = {"answer": String, "error": String, "ttft": Float, "total": Float, "tokens": Integer}
    turn_row = select(
        new_battle.c.id, literal(0), at, _param("prompt", String),
        *[_param(c, kinds[c.rsplit("_", 1)[0]]) for c in side_columns],
    ).select_from(new_battle)  # fmt: skip
    return (
        insert(turns)
        .from_select(["battle_id", "idx", "created_at", "prompt", *side_columns], turn_row)
        .returning(turns.c.battle_id)
        .add_cte(new_image)
    )
