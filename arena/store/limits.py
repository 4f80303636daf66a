"""The rate limits, as data: which rows count, over which window, under which setting.

Each limit is one row of BATTLE_LIMITS or VOTE_LIMITS. arena.store.statements turns them into
conditions of the guarded writes (the database enforces them, across replicas); arena.store.refusals
turns the one that refused a write into a friendly line that says when the next try will pass.
A limit applies to a request when its setting is above 0 and the request has that key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Table, bindparam, func, select

from arena.kinds import Requester
from arena.store.schema import battles, votes

MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


@dataclass(frozen=True)
class Limit:
    table: Table
    key: str  # the column counted: session_id, voter_id or client_key (also the Requester field)
    window: timedelta
    setting: str  # the Settings field holding the number allowed per window (0 = no limit)
    who: str  # how the refusal names the counted party

    @property
    def name(self) -> str:
        """Unique among the limits: the bind names of its key and window start."""
        return f"{self.table.name}_{self.key}_{int(self.window.total_seconds())}"

    def value(self, requester: Requester) -> str | None:
        return getattr(requester, self.key)

    def counted(self) -> list:
        """The conditions of the rows this limit counts (binds: <name>_key, <name>_since)."""
        return [
            self.table.c[self.key] == bindparam(f"{self.name}_key"),
            self.table.c.created_at
            >= bindparam(f"{self.name}_since", type_=self.table.c.created_at.type),
        ]

    def count(self):
        """How many rows this limit counts now."""
        return select(func.count()).where(*self.counted())

    def params(self, requester: Requester, at) -> dict:
        return {f"{self.name}_key": self.value(requester), f"{self.name}_since": at - self.window}


BATTLE_LIMITS = (
    Limit(battles, "session_id", MINUTE, "battles_per_minute", "this browser tab"),
    Limit(battles, "voter_id", MINUTE, "battles_per_minute", "you"),
    Limit(battles, "client_key", MINUTE, "client_battles_per_minute", "your network address"),
)
VOTE_LIMITS = (
    Limit(votes, "session_id", HOUR, "votes_per_hour", "this browser tab"),
    Limit(votes, "voter_id", HOUR, "votes_per_hour", "you"),
    Limit(votes, "voter_id", DAY, "votes_per_day", "you"),
    Limit(votes, "client_key", HOUR, "client_votes_per_hour", "your network address"),
    Limit(votes, "client_key", DAY, "client_votes_per_day", "your network address"),
)


def applying(limits, settings, requester: Requester) -> list[tuple[Limit, int]]:
    """(limit, allowed) for each limit that applies to this request."""
    if settings is None:
        return []
    found = []
    for limit in limits:
        allowed = getattr(settings, limit.setting)
        if allowed and limit.value(requester):
            found.append((limit, allowed))
    return found
