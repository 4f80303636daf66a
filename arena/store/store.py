"""The reads and writes the app needs, behind one object. Every write is one guarded statement
(arena.store.statements) retried on transient errors; when the database refuses one, a read-only
query (arena.store.refusals) says why. The database itself enforces one vote per battle."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from arena.errors import RateLimited, StoreError
from arena.kinds import Mode, Outcome, Requester
from arena.store import (
    access,
    limits,
    maintained,
    model_stats,
    moderation,
    reads,
    refusals,
    screening,
    statements,
)
from arena.store import engine as eng
from arena.store.driver import Writer

if TYPE_CHECKING:  # the battle imports the store, not the other way round
    from arena.battle.sides import SideResult
    from arena.images import CheckedImage


_NOBODY = Requester()  # a request with no session, voter or client: no limit counts it


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
            if not eng.at_head(engine):  # at head: the common start-up, without Alembic
                if not settings.db_auto_upgrade:
                    raise StoreError(
                        f"The database at {engine.url.render_as_string(hide_password=True)} is not at "
                        "the latest schema: run `python -m arena db upgrade` (or set "
                        "ARENA_DB_AUTO_UPGRADE=true)."
                    )
                eng.upgrade(engine)
        except StoreError:
            raise
        except Exception as exc:  # any driver error at start-up becomes one line
            url = engine.url.render_as_string(hide_password=True)
            raise StoreError(f"Cannot open the database {url}: {_first_line(exc)}") from None
        return cls(engine, settings)

    # ----- writes -------------------------------------------------------------------------

    def start_battle(
        self,
        *,
        mode: Mode,
        model_a: str,
        model_b: str,
        image: CheckedImage,
        requester: Requester = _NOBODY,
    ) -> str:
        """A battle takes its slot when it starts, before any model runs: store the image (once
        per sha256) and the battle row, while every battle limit that applies to the requester
        has room (RateLimited, saying when the next one is possible, otherwise)."""
        mode = Mode(mode)
        battle_id = uuid.uuid4().hex
        applied = limits.applying(limits.BATTLE_LIMITS, self.settings, requester)
        stamp = now()
        params = dict(
            id=battle_id, created_at=stamp, mode=mode.value, model_a=model_a, model_b=model_b,
            session_id=requester.session_id, voter_id=requester.voter_id, client_key=requester.client_key,
            sha256=image.sha256, format=image.format, width=image.width, height=image.height, data=image.data,
        )  # fmt: skip
        for limit, _ in applied:
            params.update(limit.params(requester, stamp))
        dialect = self.engine.dialect.name
        key = ("start battle", tuple((limit.name, n) for limit, n in applied))
        if dialect == "postgresql":
            statement = self.writer.statement(
                key, lambda: statements.start_battle(dialect, applied)
            )
            written = eng.with_retries(
                "store the battle", lambda: self.writer.one(statement, params)
            )
        else:
            pair = [  # built and compiled on first use only, like every statement here
                self.writer.statement(
                    (*key, i), lambda i=i: statements.start_battle(dialect, applied)[i]
                )
                for i in range(2)
            ]
            written = self._write_or_refuse(
                "store the battle", [(s.sql, s.params(params)) for s in pair]
            )
        if written is None:
            with self.engine.connect() as conn:
                refusal = refusals.limit_refusal(conn, applied, requester, stamp)
            raise refusal or RateLimited(
                "This arena takes no more battles right now: try again in a moment."
            )
        return battle_id

    def _write_or_refuse(self, what: str, bound: list[tuple[str, object]]):
        """SQLite: statements in one transaction; the last one's RETURNING row, or None (and
        nothing written) when a guarded statement before or at it wrote nothing."""

        def write():
            with self.writer.transaction() as cursor:
                for sql, params in bound:
                    cursor.execute(sql, params)
                row = cursor.fetchone()  # the last statement's RETURNING row
                if row is None:
                    raise _Refused
                return row

        try:
            return eng.with_retries(what, write)
        except _Refused:  # rolled back: not even the image stays
            return None

    def add_turn(
        self, battle_id: str, prompt: str, result_a: SideResult, result_b: SideResult
    ) -> int:
        """Append the next turn (the first one too) to a battle that has no vote yet; its index."""
        statement = self.writer.statement("turn", statements.guarded_turn)
        params = dict(
            battle_id=battle_id,
            created_at=now(),
            prompt=prompt,
            **result_a.columns("a"),
            **result_b.columns("b"),
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
        except IntegrityError:
            row = None  # uq_turns_battle_idx: another turn of this battle at the same moment
        if row is not None:
            return row[0]
        with self.engine.connect() as conn:
            raise refusals.turn_refusal(conn, battle_id)

    def record_vote(self, battle_id: str, outcome: Outcome, requester: Requester = _NOBODY) -> None:
        """Store the one vote of a battle. Raises AlreadyVoted, VoteError or RateLimited.

        With requester.session_id set, only the session that started the battle may vote on it;
        every vote limit that applies to the requester must have room."""
        outcome = Outcome(outcome)
        owner = requester.session_id is not None
        applied = limits.applying(limits.VOTE_LIMITS, self.settings, requester)
        dialect = self.engine.dialect.name
        key = ("vote", dialect, owner, tuple((limit.name, n) for limit, n in applied))
        statement = self.writer.statement(
            key, lambda: statements.guarded_vote(dialect, owner, applied)
        )
        for _ in range(2):  # a second try only if no rule refused it (e.g. the hour just turned)
            stamp = now()
            params = dict(
                battle_id=battle_id, outcome=outcome.value, created_at=stamp, voter_id=requester.voter_id,
                session_id=requester.session_id, client_key=requester.client_key,
            )  # fmt: skip
            for limit, _ in applied:
                params.update(limit.params(requester, stamp))
            if (
                eng.with_retries("store the vote", lambda p=params: self.writer.one(statement, p))
                is not None
            ):
                return
            with self.engine.connect() as conn:
                refusal = refusals.vote_refusal(conn, battle_id, requester, owner, applied, stamp)
            if refusal is not None:
                raise refusal
        raise StoreError(
            f"The vote on battle {battle_id} was not stored. Nothing was lost; vote again."
        )

    # ----- reads for the leaderboard ------------------------------------------------------

    def scan_votes(
        self, which: reads.VoteFilter, exclude: np.ndarray | None = None
    ) -> tuple[list[tuple[str, str, Outcome]], np.ndarray]:
        """The filtered votes in time order (those with ids in `exclude` left out): distinct
        (model_a, model_b, outcome), one code per vote."""
        return reads.scan_votes(self.engine, which, exclude)

    def scan_style(
        self, which: reads.VoteFilter, exclude: np.ndarray | None = None
    ) -> tuple[list[tuple[str, str, Outcome]], np.ndarray, np.ndarray]:
        """The filtered votes with style counts, in time order: combinations, codes, and the
        style features (length, headers, lists, bold) per vote, shape (votes, 4)."""
        return reads.scan_style(self.engine, which, exclude)

    def has_style(self) -> bool:
        """Whether any stored vote carries style counts."""
        return reads.has_style(self.engine)

    def maintained(
        self, which: reads.VoteFilter, screened=None, replay: bool = True
    ) -> maintained.Maintained | None:
        """The counts and the online Elo state the database keeps, with the votes cast since
        (None for a date filter, which only a scan answers); with `screened`
        (arena.screened.Screened), less the votes it leaves out. `replay=False`: where the
        stored state no longer holds, no vote is read (Maintained.pending)."""
        return maintained.read(self.engine, which, screened, replay)

    def pair_counts(self, which: reads.VoteFilter) -> list[tuple[str, str, Outcome, int]] | None:
        """The maintained counts alone, without online Elo's votes (None for a date filter)."""
        return maintained.pair_counts(self.engine, which)

    def save_elo_state(self, kind: str, state: maintained.EloState) -> bool:
        """Keep online Elo for the next read under its elo_state row (Maintained.kind; a cache:
        False when it was not written)."""
        return maintained.save_state(self.engine, kind, state)

    def recount(self) -> int:
        """Rebuild vote_counts from the votes and drop the Elo states; the number of votes."""
        return maintained.recount(self.engine)

    # ----- screening (arena.screened) -------------------------------------------------------

    def screen_battle(
        self,
        battle_id: str,
        *,
        prompt_key: str | None,
        identity_leak: str | None,
        categories: list[tuple[str, str]],
    ) -> None:
        """Store a battle's prompt key, identity-leak verdict and categories (each turn)."""

        def write():
            with self.write_engine.begin() as conn:
                screening.screen_battle(
                    conn,
                    battle_id,
                    prompt_key=prompt_key,
                    identity_leak=identity_leak,
                    categories=categories,
                )

        eng.with_retries("store the battle's categories", write)

    def relabel(self, battle_id: str, categories: list[tuple[str, str]], keep: tuple) -> None:
        """Replace a battle's categories, keeping those named in `keep` (a classifier's labels)."""

        def write():
            with self.write_engine.begin() as conn:
                screening.replace_categories(conn, battle_id, categories, keep)

        eng.with_retries("store the battle's categories", write)

    def set_categories(self, labels: dict[str, list[tuple[str, str]]]) -> None:
        """Replace the categories of many battles at once ({battle id: [(category, source)]})."""

        def write():
            with self.write_engine.begin() as conn:
                for battle_id, categories in labels.items():
                    screening.set_categories(conn, battle_id, categories)

        eng.with_retries("store the categories", write)

    def set_identity_leaks(self, verdicts: dict[str, str | None]) -> int:
        """Store re-checked identity-leak verdicts; how many changed."""

        def write():
            with self.write_engine.begin() as conn:
                return screening.set_identity_leaks(conn, verdicts)

        return eng.with_retries("store the identity-leak verdicts", write)

    def _read(self, fn, *args):
        with self.engine.connect() as conn:
            return fn(conn, *args)

    def battles_after(self, after: str | None, limit: int, anonymous_only: bool = False):
        """Stored battles in id order after `after` (a walk over all of them, in pages)."""
        return self._read(screening.battles_after, after, limit, anonymous_only)

    def turn_texts(self, battle_ids) -> dict[str, list[tuple]]:
        return self._read(screening.turn_texts, battle_ids)

    def categories_of(self, battle_ids) -> dict[str, dict[str, str]]:
        return self._read(screening.categories_of, battle_ids)

    def image_data(self, sha256: str) -> bytes | None:
        return self._read(screening.image_data, sha256)

    def leak_votes(self, which: reads.VoteFilter):
        return self._read(screening.leak_votes, which)

    def hidden_votes(self, which: reads.VoteFilter):
        return self._read(screening.hidden_votes, which)

    def banned_votes(self, which: reads.VoteFilter):
        return self._read(screening.banned_votes, which)

    def sample_votes(self, which: reads.VoteFilter):
        return self._read(screening.sample_votes, which)

    def repeated_prompts(self, which: reads.VoteFilter, cap: int, counted: bool = True):
        return self._read(screening.repeated_prompts, which, cap, counted)

    def prompt_frequencies(self, which: reads.VoteFilter, counted: bool = True) -> list[int]:
        return self._read(screening.prompt_frequencies, which, counted)

    def decisive_shares(self, which: reads.VoteFilter):
        return self._read(screening.decisive_shares, which)

    def first_decisive(self, which: reads.VoteFilter, who: str, first: int):
        return self._read(screening.first_decisive, which, who, first)

    def votes_of(self, which: reads.VoteFilter, who: str, keys):
        return self._read(screening.votes_of, which, who, keys)

    def category_votes(self, which: reads.VoteFilter, counted: bool = True) -> dict[str, int]:
        return self._read(screening.category_votes, which, counted)

    def model_stats(self) -> dict[str, model_stats.ModelStats]:
        """Per model: answers served, median time to first token and tokens/s, votes."""
        return self._read(model_stats.read)

    def last_vote(self, which: reads.VoteFilter) -> datetime | None:
        return reads.last_vote(self.engine, which)

    # ----- moderation (arena.store.moderation: each action one transaction with its audit row) --

    def _moderate(self, what: str, fn, *args, **kwargs):
        def write():
            with self.write_engine.begin() as conn:
                return fn(conn, *args, **kwargs)

        return eng.with_retries(what, write)

    def hide(self, battle_id: str, reason: str, actor: str) -> bool:
        """Leave a battle out of every board and export; False if it was hidden already."""
        return self._moderate("hide the battle", moderation.hide, battle_id, reason, actor)

    def unhide(self, battle_id: str, actor: str, reason: str | None = None) -> bool:
        return self._moderate("show the battle", moderation.unhide, battle_id, actor, reason)

    def ban(self, voter_id: str, reason: str, actor: str) -> bool:
        """Leave a voter's votes out of every board, refuse new ones; False if banned already."""
        return self._moderate("ban the voter", moderation.ban, voter_id, reason, actor)

    def unban(self, voter_id: str, actor: str, reason: str | None = None) -> bool:
        return self._moderate("unban the voter", moderation.unban, voter_id, actor, reason)

    def erase(
        self, battle_id: str, image: bool, text: bool, actor: str, reason: str | None = None
    ) -> moderation.Erased:
        """Remove a battle's image bytes (every battle showing them) and/or its texts for good."""
        from dataclasses import replace

        from arena.samples import sample_shas

        erased = self._moderate(
            "erase the battle's data", moderation.erase, battle_id, image=image, text=text,
            actor=actor, reason=reason, samples=sample_shas(),
        )  # fmt: skip
        if self.engine.dialect.name == "sqlite" and (erased.turns or erased.image_sha256):
            erased = replace(erased, off_disk=moderation.checkpoint(self.engine))
        return erased

    def report(self, battle_id: str, reason: str, requester: Requester) -> bool:
        """A voter's report of a battle; False if they had reported it already."""
        return self._moderate("store the report", moderation.report, battle_id, reason, requester)

    def audit_log(self, limit: int = 50, offset: int = 0) -> list[moderation.AuditRow]:
        return self._read(moderation.audit_log, limit, offset)

    def reports(self, limit: int = 50, offset: int = 0) -> list[moderation.Report]:
        return self._read(moderation.reports, limit, offset)

    def banned_voters(self) -> dict[str, str]:
        return self._read(moderation.banned)

    def battles_page(
        self, limit: int = 50, offset: int = 0, **filters
    ) -> list[moderation.BattleRow]:
        """The admin's battle browser, most recent first; `filters` are BattleFilter's fields
        (model, mode, since, until, voted, flagged). No texts, no image bytes."""
        which = moderation.BattleFilter(**filters)
        return self._read(moderation.battles_page, which, limit, offset)

    def battles_count(self, **filters) -> int:
        return self._read(moderation.battles_count, moderation.BattleFilter(**filters))

    def battle_detail(self, battle_id: str) -> moderation.BattleDetail:
        """A battle with its turns, vote, reports and image metadata (InputError if unknown)."""
        return self._read(moderation.battle_detail, battle_id)

    # ----- admin token logins and accepted terms (arena.store.access; arena.admin's rules) ------

    def take_login_slot(self, actor: str, client_key: str | None, limit) -> int | None:
        """A try of the admin token, written as a failure while the limit has room; its audit
        row id, or None when the client or everyone has used up the limit."""
        return self._moderate(
            "check the admin token", access.take_login_slot, actor, client_key, now(), limit
        )

    def confirm_login(self, slot: int, actor: str, reason: str | None = None) -> None:
        self._moderate("store the admin login", access.confirm_login, slot, actor, reason)

    def login_failures(self, client_key: str | None, limit):
        return self._read(access.login_failures, client_key, now(), limit)

    def log_action(self, actor: str, action: str, target: str, reason: str | None = None) -> None:
        """An audit row for an action that changes nothing stored (a dataset download)."""
        self._moderate("store the audit row", access.log, actor, action, target, reason)

    def accept_terms(self, voter_id: str, sha256: str) -> None:
        self._moderate("store the accepted terms", access.accept_terms, voter_id, sha256, now())

    def accepted_terms(self, voter_id: str, sha256: str) -> bool:
        return self._read(access.accepted_terms, voter_id, sha256)

    def data_version(self) -> tuple[int, int | None, int]:
        """(votes, highest vote id, edits): changes with every new, deleted or changed vote, in
        constant time (a cache key)."""
        return reads.data_version(self.engine)


class _Refused(Exception):
    """A guarded write inside a transaction wrote nothing: roll it all back."""


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
