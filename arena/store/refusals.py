"""Why a guarded write (arena.store.statements) wrote nothing: read-only queries that name the
rule, as the error the user sees. They run only after a refusal and never write."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import bindparam, exists, func, literal, select
from sqlalchemy.engine import Connection

from arena.errors import AlreadyVoted, RateLimited, StoreError, VoteError
from arena.kinds import Requester
from arena.store.limits import DAY, HOUR, Limit
from arena.store.schema import banned_voters, battles, turns, votes

# The battle's owner, whether it has a vote, and its last turn's verdicts, in one round trip.
_VOTE_FACTS = (
    select(
        battles.c.session_id,
        exists(select(literal(1)).where(votes.c.battle_id == battles.c.id)).label("voted"),
        turns.c.ok_a,
        turns.c.ok_b,
    )
    .select_from(battles.outerjoin(turns, turns.c.battle_id == battles.c.id))
    .where(battles.c.id == bindparam("battle_id"))
    .order_by(turns.c.idx.desc())
    .limit(1)
)
_WINDOW_NAMES = {HOUR: "hour", DAY: "day"}
# the reason stays with the admins (arena.store.moderation): the voter is told the fact only
BANNED = "This voter can no longer vote here: an admin has suspended voting for this account."


def limit_refusal(
    conn: Connection, applied, requester: Requester, at: datetime
) -> RateLimited | None:
    """The first limit in `applied` that is full for this requester, as a friendly line saying
    when the next try passes; None if every one has room now."""
    for limit, allowed in applied:
        params = limit.params(requester, at)
        n = conn.execute(limit.count(), params).scalar_one()
        if n >= allowed:
            return RateLimited(
                _full(limit, allowed, _frees_at(conn, limit, params, n - allowed), at)
            )
    return None


def _frees_at(conn: Connection, limit: Limit, params: dict, skip: int) -> datetime | None:
    """When the counted row that must leave the window for a slot to open does leave it."""
    created = limit.table.c.created_at
    oldest = select(created).where(*limit.counted()).order_by(created).offset(skip).limit(1)
    moment = conn.execute(oldest, params).scalar()
    if moment is None:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment + limit.window


def _full(limit: Limit, allowed: int, frees: datetime | None, at: datetime) -> str:
    what = ("battle" if limit.table is battles else "vote") + ("" if allowed == 1 else "s")
    window = _WINDOW_NAMES.get(limit.window, "minute")
    head = f"This arena takes at most {allowed} {what} per {window} from {limit.who}"
    if frees is None:
        return f"{head}: try again in a moment."
    wait = max(1, int((frees - at).total_seconds() + 0.999))
    return f"{head}: the next one is possible {_in(wait)} (at {frees:%H:%M:%S} UTC). Thank you!"


def _in(seconds: int) -> str:
    if seconds < 120:
        return f"in {seconds} s"
    if seconds < 7200:
        return f"in {seconds // 60} min"
    return f"in {seconds // 3600} h {seconds % 3600 // 60} min"


def vote_refusal(
    conn: Connection, battle_id: str, requester: Requester, owner: bool, applied, at: datetime
) -> VoteError | None:
    """Which rule of statements.guarded_vote refused this vote; None if none does now."""
    facts = conn.execute(_VOTE_FACTS, {"battle_id": battle_id}).mappings().first()
    if facts is None:
        return VoteError(f"Battle {battle_id} does not exist: start a new battle.")
    if facts["voted"]:
        return AlreadyVoted(battle_id)
    if owner and facts["session_id"] != requester.session_id:
        return VoteError("Only the session that started a battle can vote on it.")
    if not (facts["ok_a"] and facts["ok_b"]):
        return VoteError("Both answers must finish without error before a vote.")
    banned = select(func.count()).where(banned_voters.c.voter_id == requester.voter_id)
    if requester.voter_id is not None and conn.execute(banned).scalar_one():
        return VoteError(BANNED)
    return limit_refusal(conn, applied, requester, at)


def turn_refusal(conn: Connection, battle_id: str) -> VoteError | StoreError:
    """Why a turn (the first, a follow-up or a regenerated one) was not stored."""
    found = conn.execute(select(func.count()).where(battles.c.id == battle_id)).scalar_one()
    if not found:
        return VoteError(f"Battle {battle_id} does not exist: start a new battle.")
    if conn.execute(select(func.count()).where(votes.c.battle_id == battle_id)).scalar_one():
        return AlreadyVoted(battle_id)
    return StoreError(
        f"Battle {battle_id} changed while its turn was stored. Nothing was lost; ask again."
    )
