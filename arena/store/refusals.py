"""Why a guarded write (arena.store.statements) wrote nothing: read-only queries that name the
rule, as the error the user sees. They run only after a refusal and never write."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, exists, func, literal, select
from sqlalchemy.engine import Connection

from arena.errors import AlreadyVoted, RateLimited, StoreError, VoteError
from arena.store.schema import battles, turns, votes
from arena.store.statements import RECENT_BATTLES, RECENT_VOTES

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


def battle_limit(conn: Connection, session_id: str | None, limit: int, at: datetime) -> RateLimited | None:
    """The per-minute battle limit's refusal for this session, if it has reached it."""
    if not limit or not session_id:
        return None
    n = conn.execute(RECENT_BATTLES, dict(session_id=session_id, since=at - timedelta(minutes=1))).scalar_one()
    if n < limit:
        return None
    return RateLimited(f"You started {n} battles in the last minute (limit {limit}): wait a moment.")


def vote_refusal(
    conn: Connection, battle_id: str, session_id: str | None, voter_id: str | None, limit: int, at: datetime
) -> VoteError | None:
    """Which rule of statements.guarded_vote refused this vote; None if none does now."""
    facts = conn.execute(_VOTE_FACTS, {"battle_id": battle_id}).mappings().first()
    if facts is None:
        return VoteError(f"Battle {battle_id} does not exist: start a new battle.")
    if facts["voted"]:
        return AlreadyVoted(battle_id)
    if session_id is not None and facts["session_id"] != session_id:
        return VoteError("Only the session that started a battle can vote on it.")
    if not (facts["ok_a"] and facts["ok_b"]):
        return VoteError("Both answers must finish without error before a vote.")
    if limit and voter_id:
        n = conn.execute(RECENT_VOTES, dict(voter_id=voter_id, since=at - timedelta(hours=1))).scalar_one()
        if n >= limit:
            return RateLimited(f"You cast {n} votes in the last hour (limit {limit}): thank you! Come back later.")
    return None


def turn_refusal(conn: Connection, battle_id: str) -> VoteError | StoreError:
    """Why a follow-up or a regenerated turn was not stored."""
    found = conn.execute(select(func.count()).where(battles.c.id == battle_id)).scalar_one()
    if not found:
        return VoteError(f"Battle {battle_id} does not exist: start a new battle.")
    if conn.execute(select(func.count()).where(votes.c.battle_id == battle_id)).scalar_one():
        return AlreadyVoted(battle_id)
    return StoreError(f"Battle {battle_id} changed while its turn was stored. Nothing was lost; ask again.")
