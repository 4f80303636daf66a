"""The app's writes, each one statement whose conditions are the rules it must respect.

The database checks every rule and writes, or writes nothing (RETURNING tells which), so a rule
lives in exactly one place: its statement. When a write is refused, a read-only query in
arena.store.refusals says which rule it was; nothing re-checks the rules in Python and writes.
Each statement costs one round trip.
"""

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    String,
    bindparam,
    exists,
    func,
    insert,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from arena.store.schema import VOTE_CARRIES, battles, images, turns, votes

_INSERT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
_SIDE_KINDS = {"answer": String, "error": String, "ttft": Float, "total": Float, "tokens": Integer, "ok": Boolean}
SIDE_COLUMNS = [f"{name}_{side}" for side in ("a", "b") for name in _SIDE_KINDS]


def _param(name: str, kind=String):
    return bindparam(name, type_=kind)


def _side_params():
    return [_param(c, _SIDE_KINDS[c.rsplit("_", 1)[0]]) for c in SIDE_COLUMNS]


# Battles a session started since a time (the per-minute battle limit), and votes a voter cast
# since a time (the hourly vote limit).
RECENT_BATTLES = select(func.count()).where(
    battles.c.session_id == bindparam("session_id"), battles.c.created_at >= bindparam("since")
)
RECENT_VOTES = select(func.count()).where(
    votes.c.voter_id == bindparam("voter_id"), votes.c.created_at >= bindparam("since")
)
_THE_BATTLE = battles.c.id == bindparam("battle_id")
_HAS_VOTE = exists(select(literal(1)).where(votes.c.battle_id == bindparam("battle_id")))
_LAST_IDX = select(func.max(turns.c.idx)).where(turns.c.battle_id == bindparam("battle_id")).scalar_subquery()


def guarded_vote(dialect: str, owner: bool, rate_limit: int):
    """INSERT ... SELECT storing the vote only if every rule holds: the battle exists (and
    belongs to the session when `owner`), both answers of its last turn finished (the verdict
    stored with the turn), the voter is under the hourly limit, and the battle has no vote yet
    (ON CONFLICT DO NOTHING on the unique battle_id). The SELECT reads the battle row itself,
    which gives the vote its copies of model_a, model_b and mode."""
    answered = exists(
        select(literal(1)).where(
            turns.c.battle_id == bindparam("battle_id"),
            turns.c.idx == _LAST_IDX,
            turns.c.ok_a.is_(True),
            turns.c.ok_b.is_(True),
        )
    )
    conditions = [_THE_BATTLE, answered]
    if owner:
        conditions.append(battles.c.session_id == bindparam("session_id"))
    if rate_limit:
        conditions.append(RECENT_VOTES.scalar_subquery() < rate_limit)
    row = select(
        battles.c.id,
        _param("outcome"),
        _param("created_at", DateTime(timezone=True)),
        _param("voter_id"),
        *[battles.c[name] for name in VOTE_CARRIES],
    ).where(*conditions)
    columns = ["battle_id", "outcome", "created_at", "voter_id", *VOTE_CARRIES]
    insert_vote = _INSERT[dialect](votes).from_select(columns, row)
    return insert_vote.on_conflict_do_nothing(index_elements=["battle_id"]).returning(votes.c.id)


def _under_battle_limit(rate_limit: int) -> list:
    return [RECENT_BATTLES.scalar_subquery() < rate_limit] if rate_limit else []


_IMAGE_COLUMNS = ["sha256", "format", "width", "height", "data", "created_at"]
_BATTLE_COLUMNS = ["id", "created_at", "mode", "model_a", "model_b", "image_sha256", "session_id", "source", "question_id"]
_TURN_COLUMNS = ["battle_id", "idx", "created_at", "prompt", *SIDE_COLUMNS]


def _image_row(rate_limit: int):
    at = _param("created_at", DateTime(timezone=True))
    return select(
        _param("sha256"), _param("format"), _param("width", Integer), _param("height", Integer),
        _param("data", LargeBinary), at,
    ).where(*_under_battle_limit(rate_limit))  # fmt: skip


def _battle_row(rate_limit: int):
    at = _param("created_at", DateTime(timezone=True))
    return select(
        _param("id"), at, _param("mode"), _param("model_a"), _param("model_b"), _param("sha256"),
        _param("session_id"), literal("arena"), null(),
    ).where(*_under_battle_limit(rate_limit))  # fmt: skip


def battle_with_first_turn(rate_limit: int):
    """PostgreSQL: the image (once per sha256), the battle and its first turn in one INSERT with
    data-modifying CTEs, written only while the session is under its per-minute battle limit."""
    new_image = (
        postgresql.insert(images).from_select(_IMAGE_COLUMNS, _image_row(rate_limit)).on_conflict_do_nothing().cte("new_image")
    )
    new_battle = insert(battles).from_select(_BATTLE_COLUMNS, _battle_row(rate_limit)).returning(battles.c.id).cte("new_battle")
    at = _param("created_at", DateTime(timezone=True))
    turn_row = select(new_battle.c.id, literal(0), at, _param("prompt"), *_side_params()).select_from(new_battle)
    return insert(turns).from_select(_TURN_COLUMNS, turn_row).returning(turns.c.battle_id).add_cte(new_image)


def sqlite_battle_writes(rate_limit: int):
    """SQLite: the same writes as battle_with_first_turn, as three statements run in one
    transaction (SQLite has no data-modifying CTEs). The image and the battle carry the limit;
    RETURNING of the battle tells whether it was written."""
    at = _param("created_at", DateTime(timezone=True))
    return (
        sqlite.insert(images).from_select(_IMAGE_COLUMNS, _image_row(rate_limit)).on_conflict_do_nothing(),
        sqlite.insert(battles).from_select(_BATTLE_COLUMNS, _battle_row(rate_limit)).returning(battles.c.id),
        insert(turns).from_select(_TURN_COLUMNS, select(_param("id"), literal(0), at, _param("prompt"), *_side_params())),
    )


def guarded_follow_up():
    """A follow-up turn, appended after the battle's last turn only while it has no vote."""
    at = _param("created_at", DateTime(timezone=True))
    next_idx = (_LAST_IDX + 1).label("idx")
    row = select(battles.c.id, next_idx, at, _param("prompt"), *_side_params()).where(_THE_BATTLE, ~_HAS_VOTE)
    return insert(turns).from_select(_TURN_COLUMNS, row).returning(turns.c.idx)


def guarded_regenerate():
    """New answers for the battle's last turn, only while it has no vote."""
    # bind names differ from the column names, which SQLAlchemy reserves for a SET clause
    values = {c: _param(f"set_{c}", _SIDE_KINDS[c.rsplit("_", 1)[0]]) for c in SIDE_COLUMNS}
    return (
        update(turns)
        .where(turns.c.battle_id == bindparam("battle_id"), turns.c.idx == _LAST_IDX, ~_HAS_VOTE)
        .values(values)
        .returning(turns.c.idx)
    )
