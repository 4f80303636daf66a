"""The reads and writes the app needs, behind one object. Every write is one guarded statement
(arena.store.statements) retried on transient errors; when the database refuses one, a read-only
query (arena.store.refusals) says why. The database itself enforces one vote per battle."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from arena.errors import RateLimited, StoreError
from arena.kinds import Mode, Outcome
from arena.store import engine as eng
from arena.store import reads, refusals, statements
from arena.store.driver import Writer

if TYPE_CHECKING:  # the battle imports the store, not the other way round
    from arena.battle.sides import SideResult
    from arena.images import CheckedImage


def now() -> datetime:
    return datetime.now(UTC)


class Store:
    def __init__(self, engine: Engine, settings=None):
        self.engine = engine
        self.write_engine = eng.write_engine(engine)  # SQLAlchemy transactions that write (imports)
        self.writer = Writer(engine)  # the app's hot writes, on the driver's connection
        self.settings = settings

    @classmethod
    def open(cls, settings) -> Store:
        engine = eng.make_engine(settings.db_url)
        try:
            if settings.db_auto_upgrade:
                eng.upgrade(engine)
            elif eng.current_revision(engine) != eng.head_revision():
                raise StoreError(
                    f"The database at {engine.url.render_as_string(hide_password=True)} is not at the "
                    "latest schema: run `python -m arena db upgrade` (or set ARENA_DB_AUTO_UPGRADE=true)."
                )
        except StoreError:
            raise
        except Exception as exc:  # any driver error at start-up becomes one line
            url = engine.url.render_as_string(hide_password=True)
            raise StoreError(f"Cannot open the database {url}: {_first_line(exc)}") from None
        return cls(engine, settings)

    def _limit(self, name: str) -> int:
        """A rate limit of the settings (0 = none; a Store made without settings has none)."""
        return 0 if self.settings is None else getattr(self.settings, name)

    # ----- writes -------------------------------------------------------------------------

    def save_battle(
        self,
        *,
        mode: Mode,
        model_a: str,
        model_b: str,
        image: CheckedImage,
        prompt: str,
        result_a: SideResult,
        result_b: SideResult,
        session_id: str | None = None,
    ) -> str:
        """Store a finished first turn: the image (once per sha256), the battle and turn 0,
        while the session is under its per-minute battle limit (RateLimited otherwise)."""
        mode = Mode(mode)
        battle_id = uuid.uuid4().hex
        limit = self._limit("battles_per_minute") if session_id else 0
        stamp = now()
        params = dict(
            id=battle_id, created_at=stamp, mode=mode.value, model_a=model_a, model_b=model_b,
            session_id=session_id, since=stamp - timedelta(minutes=1), sha256=image.sha256,
            format=image.format, width=image.width, height=image.height, data=image.data,
            prompt=prompt, **result_a.columns("a"), **result_b.columns("b"),
        )  # fmt: skip
        if self.engine.dialect.name == "postgresql":
            statement = self.writer.statement(("battle", limit), lambda: statements.battle_with_first_turn(limit))
            written = eng.with_retries("store the battle", lambda: self.writer.one(statement, params))
        else:
            written = self._save_battle_sqlite(limit, params)
        if written is None:
            with self.engine.connect() as conn:
                raise refusals.battle_limit(conn, session_id, limit, stamp) or RateLimited(
                    f"You reached the limit of {limit} battles a minute: wait a moment."
                )
        return battle_id

    def _save_battle_sqlite(self, limit: int, params: dict):
        """The three statements of statements.sqlite_battle_writes in one transaction; the
        battle's RETURNING row, or None (and nothing written) when the limit refused it."""
        built = statements.sqlite_battle_writes(limit)
        compiled = [self.writer.statement(("sqlite battle", limit, i), lambda s=s: s) for i, s in enumerate(built)]
        bound = [(s.sql, s.params(params)) for s in compiled]  # before the write lock: held for less time
        (image_sql, image_params), (battle_sql, battle_params), (turn_sql, turn_params) = bound

        def write():
            with self.writer.transaction() as cursor:
                cursor.execute(image_sql, image_params)
                cursor.execute(battle_sql, battle_params)
                row = cursor.fetchone()
                if row is None:
                    raise _Refused
                cursor.execute(turn_sql, turn_params)
                return row

        try:
            return eng.with_retries("store the battle", write)
        except _Refused:  # rolled back: not even the image stays
            return None

    def add_turn(self, battle_id: str, prompt: str, result_a: SideResult, result_b: SideResult) -> int:
        """Append a follow-up turn to a battle that has no vote yet; returns its index."""
        statement = self.writer.statement("follow-up", statements.guarded_follow_up)
        params = dict(
            battle_id=battle_id, created_at=now(), prompt=prompt, **result_a.columns("a"), **result_b.columns("b")
        )
        return self._turn_write("store the turn", battle_id, statement, params)

    def replace_last_turn(self, battle_id: str, result_a: SideResult, result_b: SideResult) -> int:
        """Regenerate: overwrite the answers of the last turn (before the vote only)."""
        statement = self.writer.statement("regenerate", statements.guarded_regenerate)
        sides = {**result_a.columns("a"), **result_b.columns("b")}
        params = {"battle_id": battle_id, **{f"set_{k}": v for k, v in sides.items()}}
        return self._turn_write("store the regenerated answers", battle_id, statement, params)

    def _turn_write(self, what: str, battle_id: str, statement, params: dict) -> int:
        try:
            row = eng.with_retries(what, lambda: self.writer.one(statement, params))
        except IntegrityError:  # uq_turns_battle_idx: another turn of this battle at the same moment
            row = None
        if row is not None:
            return row[0]
        with self.engine.connect() as conn:
            raise refusals.turn_refusal(conn, battle_id)

    def record_vote(
        self,
        battle_id: str,
        outcome: Outcome,
        voter_id: str | None = None,
        session_id: str | None = None,
    ) -> None:
        """Store the one vote of a battle. Raises AlreadyVoted, VoteError or RateLimited.

        With session_id given, only the session that started the battle may vote on it.
        """
        outcome = Outcome(outcome)
        limit = self._limit("votes_per_hour") if voter_id else 0
        key = (self.engine.dialect.name, session_id is not None, limit)
        statement = self.writer.statement(key, lambda: statements.guarded_vote(*key))
        for _ in range(2):  # a second try only if no rule refused it (e.g. the hour just turned)
            stamp = now()
            params = dict(
                battle_id=battle_id, outcome=outcome.value, created_at=stamp, voter_id=voter_id,
                session_id=session_id, since=stamp - timedelta(hours=1),
            )  # fmt: skip
            if eng.with_retries("store the vote", lambda p=params: self.writer.one(statement, p)) is not None:
                return
            with self.engine.connect() as conn:
                refusal = refusals.vote_refusal(conn, battle_id, session_id, voter_id, limit, stamp)
            if refusal is not None:
                raise refusal
        raise StoreError(f"The vote on battle {battle_id} was not stored. Nothing was lost; vote again.")

    # ----- rate limits (in the database, so they hold across app replicas) ----------------

    def check_battle_rate(self, session_id: str | None) -> None:
        """Raise RateLimited before any model runs if this session started too many battles.
        Read-only: the battle's own write is what enforces the limit."""
        with self.engine.connect() as conn:
            refusal = refusals.battle_limit(conn, session_id, self._limit("battles_per_minute"), now())
        if refusal is not None:
            raise refusal

    # ----- reads for the leaderboard ------------------------------------------------------

    def scan_votes(self, which: reads.VoteFilter) -> tuple[list[tuple[str, str, Outcome]], np.ndarray]:
        """The filtered votes in time order: distinct (model_a, model_b, outcome), one code per vote."""
        return reads.scan_votes(self.engine, which)

    def last_vote(self, which: reads.VoteFilter) -> datetime | None:
        return reads.last_vote(self.engine, which)

    def data_version(self) -> tuple[int, int | None]:
        """(number of votes, highest vote id): changes with every new vote (a cache key)."""
        return reads.data_version(self.engine)


class _Refused(Exception):
    """A guarded write inside a transaction wrote nothing: roll it all back."""


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
