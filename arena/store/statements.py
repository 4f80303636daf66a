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
    Table,
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

from arena.store.schema import (
    VOTE_CARRIES,
    banned_voters,
    battles,
    elo_state,
    images,
    turns,
    votes,
)
from arena.style import COUNTS

_INSERT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
_SIDE_KINDS = {
    "answer": String,
    "error": String,
    "ttft": Float,
    "total": Float,
    "tokens": Integer,
    "ok": Boolean,
    **{f"style_{name}": Integer for name in COUNTS},  # arena.style.StyleCounts of the answer
}
SIDE_COLUMNS = [f"{name}_{side}" for side in ("a", "b") for name in _SIDE_KINDS]
STYLE_COLUMNS = [f"style_{name}_{side}" for side in ("a", "b") for name in COUNTS]


def _param(name: str, kind=String):
    return bindparam(name, type_=kind)


def _side_params():
    return [_param(c, _SIDE_KINDS[c.rsplit("_", 1)[0]]) for c in SIDE_COLUMNS]


_THE_BATTLE = battles.c.id == bindparam("battle_id")
_HAS_VOTE = exists(select(literal(1)).where(votes.c.battle_id == bindparam("battle_id")))
_LAST_IDX = (
    select(func.max(turns.c.idx))
    .where(turns.c.battle_id == bindparam("battle_id"))
    .scalar_subquery()
)


# the voter is banned (a NULL voter id matches no row)
_BANNED = exists(select(literal(1)).where(banned_voters.c.voter_id == bindparam("voter_id")))


def _under(applied) -> list:
    """One condition per rate limit that applies (arena.store.limits): under its number allowed."""
    return [limit.count().scalar_subquery() < allowed for limit, allowed in applied]


def guarded_vote(dialect: str, owner: bool, applied):
    """INSERT ... SELECT storing the vote only if every rule holds: the battle exists (and
    belongs to the session when `owner`), both answers of its last turn finished (the verdict
    stored with the turn), the voter is not banned (arena.store.moderation), every vote limit
    in `applied` has room, and the battle has no vote
    yet (ON CONFLICT DO NOTHING on the unique battle_id). The SELECT reads the battle row
    itself, which gives the vote its copies of the battle's columns (VOTE_CARRIES), whether it is
    flagged for an identity leak, and the sums of its
    turns' style counts: the style of the conversation the voter judged."""
    answered = exists(
        select(literal(1)).where(
            turns.c.battle_id == bindparam("battle_id"),
            turns.c.idx == _LAST_IDX,
            turns.c.ok_a.is_(True),
            turns.c.ok_b.is_(True),
        )
    )
    conditions = [_THE_BATTLE, answered, ~_BANNED, *_under(applied)]
    if owner:
        conditions.append(battles.c.session_id == bindparam("session_id"))
    totals = (
        select(*[func.sum(turns.c[name]).label(name) for name in STYLE_COLUMNS])
        .where(turns.c.battle_id == bindparam("battle_id"))
        .subquery("style_totals")
    )  # one row: an aggregate without GROUP BY
    row = (
        select(
            battles.c.id,
            _param("outcome"),
            _param("created_at", DateTime(timezone=True)),
            _param("voter_id"),
            _param("session_id"),
            _param("client_key"),
            *[battles.c[name] for name in VOTE_CARRIES],
            battles.c.identity_leak.is_not(None),
            *[totals.c[name] for name in STYLE_COLUMNS],
        )
        .select_from(battles.join(totals, literal(True)))
        .where(*conditions)
    )
    columns = [
        "battle_id",
        "outcome",
        "created_at",
        "voter_id",
        "session_id",
        "client_key",
        *VOTE_CARRIES,
        "identity_leak",
        *STYLE_COLUMNS,
    ]
    insert_vote = _INSERT[dialect](votes).from_select(columns, row)
    return insert_vote.on_conflict_do_nothing(index_elements=["battle_id"]).returning(votes.c.id)


_IMAGE_COLUMNS = ["sha256", "format", "width", "height", "data", "created_at"]
_BATTLE_COLUMNS = [
    "id", "created_at", "mode", "model_a", "model_b", "image_sha256", "session_id", "source",
    "question_id", "voter_id", "client_key",
]  # fmt: skip
_TURN_COLUMNS = ["battle_id", "idx", "created_at", "prompt", *SIDE_COLUMNS]


def _image_row(applied):
    at = _param("created_at", DateTime(timezone=True))
    return select(
        _param("sha256"), _param("format"), _param("width", Integer), _param("height", Integer),
        _param("data", LargeBinary), at,
    ).where(*_under(applied))  # fmt: skip


def _battle_row(applied):
    at = _param("created_at", DateTime(timezone=True))
    return select(
        _param("id"), at, _param("mode"), _param("model_a"), _param("model_b"), _param("sha256"),
        _param("session_id"), literal("arena"), null(), _param("voter_id"), _param("client_key"),
    ).where(*_under(applied))  # fmt: skip


def start_battle(dialect: str, applied):
    """A battle takes its slot when it starts, before any model runs: the image (once per
    sha256) and the battle row, written only while every battle limit in `applied` has room.
    PostgreSQL: one INSERT with a data-modifying CTE, RETURNING the battle id. SQLite (no such
    CTEs): two statements for one transaction, the second RETURNING the battle id."""
    if dialect == "postgresql":
        new_image = (
            postgresql.insert(images)
            .from_select(_IMAGE_COLUMNS, _image_row(applied))
            .on_conflict_do_nothing()
        ).cte("new_image")
        return (
            insert(battles)
            .from_select(_BATTLE_COLUMNS, _battle_row(applied))
            .returning(battles.c.id)
            .add_cte(new_image)
        )
    return (
        sqlite.insert(images)
        .from_select(_IMAGE_COLUMNS, _image_row(applied))
        .on_conflict_do_nothing(),
        sqlite.insert(battles)
        .from_select(_BATTLE_COLUMNS, _battle_row(applied))
        .returning(battles.c.id),
    )


def guarded_turn():
    """A battle's next turn (the first one too), appended only while the battle has no vote."""
    at = _param("created_at", DateTime(timezone=True))
    next_idx = (func.coalesce(_LAST_IDX, -1) + 1).label("idx")
    row = select(battles.c.id, next_idx, at, _param("prompt"), *_side_params()).where(
        _THE_BATTLE, ~_HAS_VOTE
    )
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


def save_elo_state(dialect: str):
    """Store one filter's online Elo state (arena.store.maintained), unless the stored one is at
    least as new: computed after more edits of stored votes, or after as many with as many votes
    applied (without edits, votes are only ever added, so more votes applied is a later read),
    or for a screened board with other votes left out."""
    row = {
        "kind": _param("kind"),
        "ratings": _param("ratings"),
        "last_at": _param("last_at", DateTime(timezone=True)),
        "applied": _param("applied", Integer),
        "edits": _param("edits", Integer),
        "screen": _param("screen"),
    }
    upsert = _INSERT[dialect](elo_state).values(row)
    newer = (
        (upsert.excluded.edits > elo_state.c.edits)
        | (
            (upsert.excluded.edits == elo_state.c.edits)
            & (upsert.excluded.applied > elo_state.c.applied)
        )
        # a screened board whose left-out votes changed: the stored state no longer holds
        | upsert.excluded.screen.is_distinct_from(elo_state.c.screen)
    )
    return upsert.on_conflict_do_update(
        index_elements=["kind"],
        set_={name: upsert.excluded[name] for name in row if name != "kind"},
        where=newer,
    )


def add_counts(table: Table):
    """PostgreSQL: add `votes` to a row of a maintained count table (vote_counts, category_counts,
    prompt_counts): an import's own counts, arena.store.maintained.deferred_counts."""
    key = [c.name for c in table.primary_key.columns]
    upsert = postgresql.insert(table).values({c: bindparam(c) for c in (*key, "votes")})
    return upsert.on_conflict_do_update(
        index_elements=key, set_={"votes": table.c.votes + upsert.excluded.votes}
    )
