"""The few reads and writes the app needs. Every write is one transaction, retried on
transient errors; the database itself enforces one vote per battle."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from arena.errors import AlreadyVoted, RateLimited, StoreError, VoteError
from arena.outcome import Outcome
from arena.store import engine as eng
from arena.store import statements
from arena.store.driver import Writer
from arena.store.schema import VOTE_CARRIES, battles, images, turns, votes

MODES = ("anonymous", "named")

# Statements built once: building them per call cost more than running them.
_INSERT_TURN = insert(turns)
_INSERT_VOTE = insert(votes)


def _insert_every_column(insert_, table, but=()):
    """An INSERT naming every column (except `but`) as a bind parameter of the same name."""
    return insert_(table).values({c.name: bindparam(c.name, type_=c.type) for c in table.c if c.name not in but})


# SQLite's battle writes, run on the driver (arena.store.driver)
_SQLITE_INSERT_IMAGE = _insert_every_column(sqlite.insert, images).on_conflict_do_nothing()
_SQLITE_INSERT_BATTLE = _insert_every_column(sqlite.insert, battles)
_SQLITE_INSERT_TURN = _insert_every_column(sqlite.insert, turns, but=("id",))
# The battle's owner, the columns its vote carries and its last turn's answers, in one round trip.
_BATTLE_AND_LAST_TURN = (
    select(
        battles.c.session_id,
        *[battles.c[name] for name in VOTE_CARRIES],
        turns.c.answer_a, turns.c.error_a, turns.c.answer_b, turns.c.error_b,
    )  # fmt: skip
    .select_from(battles.outerjoin(turns, turns.c.battle_id == battles.c.id))
    .where(battles.c.id == bindparam("battle_id"))
    .order_by(turns.c.idx.desc())
    .limit(1)
)
_VOTE_OF = select(votes.c.id).where(votes.c.battle_id == bindparam("battle_id"))
_TURN_COUNT = select(func.count()).where(turns.c.battle_id == bindparam("battle_id"))
@dataclass(frozen=True)
class SideResult:
    """One model's answer to one prompt, with its timings."""

    answer: str = ""
    error: str | None = None
    ttft: float | None = None
    total: float | None = None
    tokens: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.answer.strip())

    def columns(self, side: str) -> dict:
        return {
            f"answer_{side}": self.answer,
            f"error_{side}": self.error,
            f"ttft_{side}": self.ttft,
            f"total_{side}": self.total,
            f"tokens_{side}": self.tokens,
        }


def now() -> datetime:
    return datetime.now(UTC)


class Store:
    def __init__(self, engine: Engine, settings=None):
        self.engine = engine
        self.writer = eng.writer(engine)
        self.driver = Writer(engine)
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

    # ----- writes -------------------------------------------------------------------------

    def save_battle(
        self,
        *,
        mode: str,
        model_a: str,
        model_b: str,
        image,
        prompt: str,
        result_a: SideResult,
        result_b: SideResult,
        session_id: str | None = None,
    ) -> str:
        """Store a finished first turn: the image (once per sha256), the battle and turn 0."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        battle_id = uuid.uuid4().hex
        if self.engine.dialect.name == "postgresql":
            return self._save_battle_one_statement(
                battle_id, mode, model_a, model_b, image, prompt, result_a, result_b, session_id
            )
        stamp = now()
        limit = getattr(self.settings, "battles_per_minute", 0) if session_id else 0
        battle = dict(
            id=battle_id, created_at=stamp, mode=mode, model_a=model_a, model_b=model_b,
            image_sha256=image.sha256, session_id=session_id, source="arena", question_id=None,
        )  # fmt: skip
        driver = self.driver

        def bound(name, insert_, values):  # bound before the write lock is taken: it is held for less time
            statement = driver.statement(name, lambda: insert_)
            return statement.sql, statement.params(values)

        writes = [
            bound("image", _SQLITE_INSERT_IMAGE, _image_row(image, stamp)),
            bound("battle", _SQLITE_INSERT_BATTLE, battle),
            bound("turn", _SQLITE_INSERT_TURN, _turn_row(battle_id, 0, prompt, result_a, result_b, stamp)),
        ]
        if limit:
            recent = driver.statement("recent battles", lambda: statements.RECENT_BATTLES)
            recent_params = recent.params(dict(session_id=session_id, since=stamp - timedelta(minutes=1)))

        def write():
            with driver.transaction() as cursor:
                if limit:
                    cursor.execute(recent.sql, recent_params)
                    n = cursor.fetchone()[0]
                    if n >= limit:
                        raise _battle_rate_error(n, limit)
                for sql, params in writes:
                    cursor.execute(sql, params)

        eng.with_retries("store the battle", write)
        return battle_id

    def _save_battle_one_statement(self, battle_id, mode, model_a, model_b, image, prompt, a, b, session_id) -> str:
        """PostgreSQL: the same writes as save_battle, as one autocommitted statement."""
        limit = getattr(self.settings, "battles_per_minute", 0) if session_id else 0
        statement = self.driver.statement(("battle", limit), lambda: statements.battle_with_first_turn(limit))
        stamp = now()
        params = dict(
            id=battle_id, created_at=stamp, mode=mode, model_a=model_a, model_b=model_b, session_id=session_id,
            since=stamp - timedelta(minutes=1), sha256=image.sha256, format=image.format, width=image.width,
            height=image.height, data=image.data, prompt=prompt, **a.columns("a"), **b.columns("b"),
        )  # fmt: skip
        if eng.with_retries("store the battle", lambda: self.driver.one(statement, params)) is None:
            raise _battle_rate_error(limit, limit)
        return battle_id

    def add_turn(self, battle_id: str, prompt: str, result_a: SideResult, result_b: SideResult) -> int:
        """Append a follow-up turn to a battle that has no vote yet; returns its index."""

        def write():
            with self.writer.begin() as conn:
                self._refuse_if_voted(conn, battle_id)
                idx = conn.execute(_TURN_COUNT, {"battle_id": battle_id}).scalar_one()
                conn.execute(_INSERT_TURN, _turn_row(battle_id, idx, prompt, result_a, result_b))
                return idx

        return eng.with_retries("store the turn", write)

    def replace_last_turn(self, battle_id: str, result_a: SideResult, result_b: SideResult) -> None:
        """Regenerate: overwrite the answers of the last turn (before the vote only)."""

        def write():
            with self.writer.begin() as conn:
                self._refuse_if_voted(conn, battle_id)
                last = conn.execute(
                    select(func.max(turns.c.idx)).where(turns.c.battle_id == battle_id)
                ).scalar_one()
                if last is None:
                    raise VoteError(f"Battle {battle_id} does not exist.")
                conn.execute(
                    update(turns)
                    .where(and_(turns.c.battle_id == battle_id, turns.c.idx == last))
                    .values(**result_a.columns("a"), **result_b.columns("b"))
                )

        eng.with_retries("store the regenerated answers", write)

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
        limit = getattr(self.settings, "votes_per_hour", 0) if voter_id else 0
        dialect = self.engine.dialect.name
        if dialect in statements.DIALECTS:
            key = (dialect, session_id is not None, limit)
            statement = self.driver.statement(key, lambda: statements.guarded_vote(*key))
            stamp = now()
            params = dict(
                battle_id=battle_id,
                outcome=outcome.value,
                created_at=stamp,
                voter_id=voter_id,
                session_id=session_id,
                since=stamp - timedelta(hours=1),
            )
            if eng.with_retries("store the vote", lambda: self.driver.one(statement, params)) is not None:
                return
        # Not stored: find which rule refused it and say so.

        def write():
            with self.writer.begin() as conn:
                last = conn.execute(_BATTLE_AND_LAST_TURN, {"battle_id": battle_id}).mappings().first()
                if last is None:
                    raise VoteError(f"Battle {battle_id} does not exist: start a new battle.")
                if session_id is not None and last["session_id"] != session_id:
                    raise VoteError("Only the session that started a battle can vote on it.")
                if not _answered(last, "a") or not _answered(last, "b"):
                    raise VoteError("Both answers must finish without error before a vote.")
                self._check_vote_rate(conn, voter_id)
                carried = {name: last[name] for name in VOTE_CARRIES}
                row = dict(battle_id=battle_id, outcome=outcome.value, created_at=now(), voter_id=voter_id, **carried)
                try:
                    conn.execute(_INSERT_VOTE, row)
                except IntegrityError:  # the unique constraint on votes.battle_id
                    raise AlreadyVoted(battle_id) from None

        eng.with_retries("store the vote", write)

    # ----- rate limits (in the database, so they hold across app replicas) ----------------

    def check_battle_rate(self, session_id: str | None) -> None:
        """Raise RateLimited before any model runs if this session started too many battles."""
        with self.engine.connect() as conn:
            self._check_battle_rate(conn, session_id)

    def _check_battle_rate(self, conn: Connection, session_id: str | None) -> None:
        limit = getattr(self.settings, "battles_per_minute", 0)
        if not limit or not session_id:
            return
        since = now() - timedelta(minutes=1)
        n = conn.execute(statements.RECENT_BATTLES, dict(session_id=session_id, since=since)).scalar_one()
        if n >= limit:
            raise _battle_rate_error(n, limit)

    def _check_vote_rate(self, conn: Connection, voter_id: str | None) -> None:
        limit = getattr(self.settings, "votes_per_hour", 0)
        if not limit or not voter_id:
            return
        since = now() - timedelta(hours=1)
        n = conn.execute(
            select(func.count()).where(and_(votes.c.voter_id == voter_id, votes.c.created_at >= since))
        ).scalar_one()
        if n >= limit:
            raise RateLimited(f"You cast {n} votes in the last hour (limit {limit}): thank you! Come back later.")

    @staticmethod
    def _refuse_if_voted(conn: Connection, battle_id: str) -> None:
        if conn.execute(_VOTE_OF, {"battle_id": battle_id}).first() is not None:
            raise AlreadyVoted(battle_id)

    # ----- reads --------------------------------------------------------------------------

    def battle(self, battle_id: str) -> dict | None:
        """The battle with its turns and vote (None if unknown)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(battles).where(battles.c.id == battle_id)).mappings().first()
            if row is None:
                return None
            result = dict(row)
            result["turns"] = [
                dict(t)
                for t in conn.execute(
                    select(turns).where(turns.c.battle_id == battle_id).order_by(turns.c.idx)
                ).mappings()
            ]
            vote = conn.execute(select(votes).where(votes.c.battle_id == battle_id)).mappings().first()
            result["vote"] = dict(vote) if vote else None
            return result

    def image_data(self, sha256: str) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.execute(select(images.c.data).where(images.c.sha256 == sha256)).scalar()

    def count(self, table) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(table)).scalar_one()

    def _vote_filter(self, anonymous_only: bool, since: datetime | None, until: datetime | None):
        conds = []
        if anonymous_only:
            conds.append(votes.c.mode == "anonymous")
        if since is not None:
            conds.append(votes.c.created_at >= since)
        if until is not None:
            conds.append(votes.c.created_at < until)
        return and_(True, *conds)

    def pair_counts(
        self, anonymous_only: bool = True, since: datetime | None = None, until: datetime | None = None
    ) -> list[tuple[str, str, str, int]]:
        """(model_a, model_b, winner label, count), aggregated by the database (GROUP BY)."""
        n = func.count().label("n")
        query = (
            select(votes.c.model_a, votes.c.model_b, votes.c.outcome, n)
            .where(self._vote_filter(anonymous_only, since, until))
            .group_by(votes.c.model_a, votes.c.model_b, votes.c.outcome)
        )
        with self.engine.connect() as conn:
            return [(a, b, Outcome(o).winner_label, int(c)) for a, b, o, c in conn.execute(query)]

    def ordered_battles(
        self, anonymous_only: bool = True, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[tuple[str, str, str]]:
        """(model_a, model_b, winner label) in vote-time order, for online Elo."""
        labels = {o.value: o.winner_label for o in Outcome}
        query = (
            select(votes.c.model_a, votes.c.model_b, votes.c.outcome)
            .where(self._vote_filter(anonymous_only, since, until))
            .order_by(votes.c.created_at, votes.c.id)
        )
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=50_000).execute(query)
            for a, b, o in result:
                yield a, b, labels[o]

    def vote_stats(
        self, anonymous_only: bool = True, since: datetime | None = None, until: datetime | None = None
    ) -> dict:
        """Number of votes, last vote time and the highest vote id (the leaderboard's cache key)."""
        query = (
            select(func.count(), func.max(votes.c.created_at), func.max(votes.c.id))
            .where(self._vote_filter(anonymous_only, since, until))
        )
        with self.engine.connect() as conn:
            n, last, max_id = conn.execute(query).one()
        return {"votes": int(n), "last_vote": last, "max_vote_id": max_id}


def _battle_rate_error(n: int, limit: int) -> RateLimited:
    return RateLimited(f"You started {n} battles in the last minute (limit {limit}): wait a moment.")


def _turn_row(battle_id: str, idx: int, prompt: str, a: SideResult, b: SideResult, at: datetime | None = None) -> dict:
    return dict(battle_id=battle_id, idx=idx, created_at=at or now(), prompt=prompt, **a.columns("a"), **b.columns("b"))


def _image_row(image, at: datetime) -> dict:
    return dict(
        sha256=image.sha256, format=image.format, width=image.width, height=image.height, data=image.data, created_at=at
    )


def _answered(turn, side: str) -> bool:
    return turn[f"error_{side}"] is None and bool((turn[f"answer_{side}"] or "").strip())


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
