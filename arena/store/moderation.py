"""Moderation's queries: hide a battle, ban a voter, erase a battle's text or image bytes, a
voter's report, the audit log, and the admin's battle browser.

Every action is one transaction that writes its change and its one audit row together, so the
log never misses an action nor names one that did not happen. A repeated action (hide a hidden
battle, ban a banned voter) changes nothing and says so in its audit row. What a hidden battle
or a banned voter's vote means for the boards lives in arena.screened (and the guarded vote,
arena.store.statements); this module only stores the facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import case, delete, func, insert, literal, or_, select, update
from sqlalchemy.engine import Connection, Engine

from arena.errors import InputError
from arena.kinds import Mode, Outcome, Requester
from arena.store.reads import utc
from arena.store.schema import audit, banned_voters, battle_reports, battles, images, turns, votes

REASON_MAX = 2000  # characters of a reason (a voter's report is free text)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime  # UTC
    actor: str  # "cli:<os user>", "admin:<email>", "admin:token" or "voter:<voter id>"
    action: str  # hide | unhide | ban | unban | erase | report
    target: str  # a battle id or a voter id
    reason: str | None


@dataclass(frozen=True)
class Report:
    id: int
    battle_id: str
    reason: str
    created_at: datetime  # UTC
    voter_id: str | None


@dataclass(frozen=True)
class Erased:
    """What one erase removed (the command line prints it)."""

    battle_id: str
    turns: int  # turns whose prompts and answers were cleared now (0: none, or erased before)
    image_sha256: str | None  # the image whose bytes were removed now
    image_battles: int  # battles showing that image (each now shows the placeholder)
    # the removed bytes have left the database's files too (SQLite: overwritten, and the WAL
    # checkpointed); False: they stay in free space until VACUUM (README, Moderation)
    off_disk: bool = False

    def describe(self) -> str:
        parts = []
        if self.turns:
            parts.append(f"the prompts and answers of {self.turns} turn(s)")
        if self.image_sha256:
            parts.append(
                f"the bytes of image {self.image_sha256[:12]} "
                f"(shown by {self.image_battles} battle(s))"
            )
        return " and ".join(parts) or "nothing (already erased)"


@dataclass(frozen=True)
class BattleRow:
    """One battle in the admin's browser: no texts, no image bytes."""

    id: str
    created_at: datetime  # UTC
    mode: Mode
    model_a: str
    model_b: str
    outcome: Outcome | None  # its vote, None when it has none
    reports: int
    hidden: bool
    identity_leak: bool
    text_erased: bool
    image_erased: bool

    @property
    def flagged(self) -> bool:
        return self.hidden or self.reports > 0 or self.identity_leak


@dataclass(frozen=True)
class ImageInfo:
    sha256: str
    format: str
    width: int
    height: int
    size: int | None  # bytes stored; None once erased
    erased_at: datetime | None


@dataclass(frozen=True)
class BattleDetail:
    """A battle for the admin's page: its row, turns (prompts, answers, errors, timings, tokens),
    vote, reports and image metadata. The bytes come from Store.image_data(sha256)."""

    battle: dict  # the battles row
    turns: list[dict]
    vote: dict | None  # outcome, voter_id, created_at
    voter_banned: bool  # the vote's voter is banned
    reports: list[Report]
    image: ImageInfo | None  # None: the battle has no image (an imported vote)


# ----- actions ----------------------------------------------------------------------------------


def hide(conn: Connection, battle_id: str, reason: str, actor: str) -> bool:
    """Hide a battle from every board and export (kept in the database); False when it was
    hidden already (its first reason and time stay)."""
    reason = _reason(reason, "hide")
    hidden = _battle(conn, battle_id)["hidden_reason"] is not None
    if not hidden:
        conn.execute(
            update(battles)
            .where(battles.c.id == battle_id)
            .values(hidden_reason=reason, hidden_at=now())
        )
    _log(conn, actor, "hide", battle_id, reason + (" (already hidden)" if hidden else ""))
    return not hidden


def unhide(conn: Connection, battle_id: str, actor: str, reason: str | None = None) -> bool:
    """Show a hidden battle again; False when it was not hidden."""
    reason = _optional(reason)
    hidden = _battle(conn, battle_id)["hidden_reason"] is not None
    if hidden:
        conn.execute(
            update(battles)
            .where(battles.c.id == battle_id)
            .values(hidden_reason=None, hidden_at=None)
        )
    _log(conn, actor, "unhide", battle_id, _note(reason, None if hidden else "was not hidden"))
    return hidden


def ban(conn: Connection, voter_id: str, reason: str, actor: str) -> bool:
    """Leave a voter's votes out of every board and refuse their new ones; False when they were
    banned already (the first ban stays)."""
    reason = _reason(reason, "ban")
    banned = _banned(conn, voter_id)
    if not banned:
        _known_voter(conn, voter_id)
        conn.execute(
            insert(banned_voters).values(
                voter_id=voter_id, reason=reason, banned_at=now(), banned_by=actor
            )
        )
    _log(conn, actor, "ban", voter_id, reason + (" (already banned)" if banned else ""))
    return not banned


def unban(conn: Connection, voter_id: str, actor: str, reason: str | None = None) -> bool:
    """Count a voter's votes again and take new ones; False when they were not banned."""
    reason = _optional(reason)
    banned = _banned(conn, voter_id)
    if banned:
        conn.execute(delete(banned_voters).where(banned_voters.c.voter_id == voter_id))
    else:
        _known_voter(conn, voter_id)
    _log(conn, actor, "unban", voter_id, _note(reason, None if banned else "was not banned"))
    return banned


def erase(
    conn: Connection,
    battle_id: str,
    *,
    image: bool,
    text: bool,
    actor: str,
    reason: str | None,
    samples: frozenset[str],
) -> Erased:
    """A privacy request: remove for good the bytes of the battle's image (from every battle that
    shows it; a shipped sample, one of `samples`, cannot be erased) and/or the prompts, answers
    and error texts of its turns. The battle, its vote, and its turns' timings, token and style
    counts stay; the pages show a placeholder."""
    if not (image or text):
        raise InputError("Say what to erase: the image, the text (prompts and answers), or both.")
    reason = _optional(reason)
    row = _battle(conn, battle_id)
    sha = row["image_sha256"]
    if image and sha is None:
        raise InputError(f"Battle {battle_id} has no image (an imported vote): nothing to erase.")
    if image and sha in samples:
        raise InputError(
            f"Battle {battle_id} shows a shipped sample image, which cannot be erased "
            "(it ships with the arena); erase its text only, or hide the battle."
        )
    if conn.dialect.name == "sqlite":  # freed pages and cells are overwritten with zeros
        conn.exec_driver_sql("PRAGMA secure_delete = ON")  # this connection's, as it is pooled
    cleared = _erase_text(conn, battle_id) if text and row["text_erased_at"] is None else 0
    erased_sha, shown = None, 0
    if image:
        removed = conn.execute(
            update(images)
            .where(images.c.sha256 == sha, images.c.data.is_not(None))
            .values(data=None, erased_at=now())
        ).rowcount
        if removed:
            erased_sha = sha
            shown = conn.execute(
                select(func.count()).where(battles.c.image_sha256 == sha)
            ).scalar_one()
    done = Erased(battle_id, cleared, erased_sha, shown)
    asked = " and ".join(w for w, on in (("image", image), ("text", text)) if on)
    _log(conn, actor, "erase", battle_id, _note(reason, f"{asked}: removed {done.describe()}"))
    return done


def checkpoint(engine: Engine) -> bool:
    """SQLite: copy the WAL into the database file and truncate it (outside any transaction),
    so the pages an erase overwrote replace the old ones on disk; False when readers or a
    writer kept it from finishing (within the busy timeout)."""
    raw = engine.raw_connection()
    try:
        busy, _, _ = raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        raw.close()
    return busy == 0


def _erase_text(conn: Connection, battle_id: str) -> int:
    """Clear the turns' texts (an error text can quote a model's output too): '' where there
    was one; the number of turns."""
    cleared = {
        "prompt": "",
        **{f"answer_{s}": "" for s in "ab"},
        **{
            f"error_{s}": case((turns.c[f"error_{s}"].is_(None), None), else_=literal(""))
            for s in "ab"
        },
    }
    n = conn.execute(update(turns).where(turns.c.battle_id == battle_id).values(cleared)).rowcount
    conn.execute(update(battles).where(battles.c.id == battle_id).values(text_erased_at=now()))
    return n


def report(conn: Connection, battle_id: str, reason: str, requester: Requester) -> bool:
    """A voter's "Report this battle": flags it for the admin. False (nothing stored) when this
    voter (or session) already reported it."""
    reason = _reason(reason, "report")
    _battle(conn, battle_id)
    same = [
        battle_reports.c[key] == value
        for key, value in (("voter_id", requester.voter_id), ("session_id", requester.session_id))
        if value is not None
    ]
    if same:
        query = select(func.count()).where(battle_reports.c.battle_id == battle_id, or_(*same))
        if conn.execute(query).scalar_one():
            return False
    conn.execute(
        insert(battle_reports).values(
            battle_id=battle_id,
            reason=reason,
            created_at=now(),
            voter_id=requester.voter_id,
            session_id=requester.session_id,
            client_key=requester.client_key,
        )
    )
    _log(conn, f"voter:{requester.voter_id or 'unknown'}", "report", battle_id, reason)
    return True


# ----- reads ------------------------------------------------------------------------------------


def audit_log(conn: Connection, limit: int, offset: int = 0) -> list[AuditRow]:
    """The audit rows, newest first."""
    query = select(audit).order_by(audit.c.at.desc(), audit.c.id.desc()).limit(limit)
    rows = conn.execute(query.offset(offset)).mappings()
    return [AuditRow(**{**r, "at": utc(r["at"])}) for r in rows]


def reports(
    conn: Connection, limit: int, offset: int = 0, battle_id: str | None = None
) -> list[Report]:
    """Voters' reports, newest first (of one battle, with `battle_id`)."""
    query = select(
        battle_reports.c.id, battle_reports.c.battle_id, battle_reports.c.reason,
        battle_reports.c.created_at, battle_reports.c.voter_id,
    )  # fmt: skip
    if battle_id is not None:
        query = query.where(battle_reports.c.battle_id == battle_id)
    query = query.order_by(battle_reports.c.created_at.desc(), battle_reports.c.id.desc())
    rows = conn.execute(query.limit(limit).offset(offset)).all()
    return [Report(i, b, r, utc(at), v) for i, b, r, at, v in rows]


def banned(conn: Connection) -> dict[str, str]:
    """The banned voters and why: {voter id: reason}."""
    return dict(conn.execute(select(banned_voters.c.voter_id, banned_voters.c.reason)).all())


@dataclass(frozen=True)
class BattleFilter:
    """Which battles the browser lists; None: no condition."""

    model: str | None = None  # on either side
    mode: Mode | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    voted: bool | None = None
    flagged: bool | None = None  # hidden, reported, or flagged for an identity leak

    def conditions(self) -> list:
        found = []
        if self.model is not None:
            found.append(or_(battles.c.model_a == self.model, battles.c.model_b == self.model))
        if self.mode is not None:
            found.append(battles.c.mode == Mode(self.mode).value)
        if self.since is not None:
            found.append(battles.c.created_at >= self.since)
        if self.until is not None:
            found.append(battles.c.created_at < self.until)
        if self.voted is not None:
            found.append(_VOTED if self.voted else ~_VOTED)
        if self.flagged is not None:
            found.append(_FLAGGED if self.flagged else ~_FLAGGED)
        return found


# correlated on battles alone: the page's query joins votes too
_VOTED = select(literal(1)).where(votes.c.battle_id == battles.c.id).correlate(battles).exists()
_REPORTED = (
    select(literal(1)).where(battle_reports.c.battle_id == battles.c.id).correlate(battles).exists()
)
_FLAGGED = or_(
    battles.c.hidden_reason.is_not(None), battles.c.identity_leak.is_not(None), _REPORTED
)
_REPORTS = (
    select(func.count())
    .where(battle_reports.c.battle_id == battles.c.id)
    .correlate(battles)
    .scalar_subquery()
)


def battles_page(
    conn: Connection, which: BattleFilter, limit: int, offset: int = 0
) -> list[BattleRow]:
    """The battles that pass the filter, most recent first."""
    query = (
        select(
            battles.c.id,
            battles.c.created_at,
            battles.c.mode,
            battles.c.model_a,
            battles.c.model_b,
            votes.c.outcome,
            _REPORTS.label("reports"),
            battles.c.hidden_reason.is_not(None),
            battles.c.identity_leak.is_not(None),
            battles.c.text_erased_at.is_not(None),
            images.c.erased_at.is_not(None),
        )
        .select_from(
            battles.outerjoin(votes, votes.c.battle_id == battles.c.id).outerjoin(
                images, images.c.sha256 == battles.c.image_sha256
            )
        )
        .where(*which.conditions())
        .order_by(battles.c.created_at.desc(), battles.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [
        BattleRow(bid, utc(at), Mode(mode), a, b, Outcome(o) if o else None, n, *map(bool, flags))
        for bid, at, mode, a, b, o, n, *flags in conn.execute(query)
    ]


def battles_count(conn: Connection, which: BattleFilter) -> int:
    """How many battles pass the filter (the browser's page count)."""
    query = select(func.count()).select_from(battles).where(*which.conditions())
    return conn.execute(query).scalar_one()


_TURN_COLUMNS = ("idx", "created_at", "prompt") + tuple(
    f"{name}_{side}"
    for side in "ab"
    for name in ("answer", "error", "ttft", "total", "tokens", "ok")
)


def battle_detail(conn: Connection, battle_id: str) -> BattleDetail:
    row = _battle(conn, battle_id)
    query = (
        select(*[turns.c[c] for c in _TURN_COLUMNS])
        .where(turns.c.battle_id == battle_id)
        .order_by(turns.c.idx)
    )
    turn_rows = [dict(t) for t in conn.execute(query).mappings()]
    vote = (
        conn.execute(
            select(votes.c.outcome, votes.c.voter_id, votes.c.created_at).where(
                votes.c.battle_id == battle_id
            )
        )
        .mappings()
        .first()
    )
    voter = vote["voter_id"] if vote else None
    return BattleDetail(
        battle=row,
        turns=turn_rows,
        vote=dict(vote) if vote else None,
        voter_banned=voter is not None and _banned(conn, voter),
        reports=reports(conn, 1000, battle_id=battle_id),
        image=_image_info(conn, row["image_sha256"]),
    )


def _image_info(conn: Connection, sha: str | None) -> ImageInfo | None:
    if sha is None:
        return None
    query = select(
        images.c.sha256, images.c.format, images.c.width, images.c.height,
        func.length(images.c.data), images.c.erased_at,
    ).where(images.c.sha256 == sha)  # fmt: skip
    found = conn.execute(query).first()
    if found is None:
        return None
    sha, fmt, width, height, size, erased = found
    return ImageInfo(sha, fmt, width, height, size, utc(erased) if erased else None)


# ----- helpers ----------------------------------------------------------------------------------


def _battle(conn: Connection, battle_id: str) -> dict:
    row = conn.execute(select(battles).where(battles.c.id == battle_id)).mappings().first()
    if row is None:
        raise InputError(
            f"No battle {battle_id!r} is stored: check the id (the admin page lists them)."
        )
    return dict(row)


def _banned(conn: Connection, voter_id: str) -> bool:
    query = select(func.count()).where(banned_voters.c.voter_id == voter_id)
    return bool(conn.execute(query).scalar_one())


def _known_voter(conn: Connection, voter_id: str) -> None:
    """A voter the arena has seen: one vote or battle of theirs is stored (both indexed)."""
    for column in (votes.c.voter_id, battles.c.voter_id):
        if conn.execute(select(literal(1)).where(column == voter_id).limit(1)).first():
            return
    raise InputError(
        f"No vote or battle is stored from voter {voter_id!r}: check the id (votes show it)."
    )


def _reason(reason: str | None, what: str) -> str:
    reason = _optional(reason)
    if reason is None:
        raise InputError(f"Give a reason to {what} (a few words are enough).")
    return reason


def _optional(reason: str | None) -> str | None:
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX:
        raise InputError(f"The reason is {len(reason):,} characters: keep it under {REASON_MAX:,}.")
    return reason or None


def _note(reason: str | None, note: str | None) -> str | None:
    parts = [p for p in (reason, f"({note})" if note else None) if p]
    return " ".join(parts) or None


def _log(conn: Connection, actor: str, action: str, target: str, reason: str | None) -> None:
    conn.execute(
        insert(audit).values(at=now(), actor=actor, action=action, target=target, reason=reason)
    )
