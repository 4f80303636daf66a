"""The leaderboard that the page and the command line show: votes from the store, ratings from
arena.ratings. No Streamlit, no SQL.

The plain boards without dates read what the database maintains (Store.maintained): the pair
counts for the Bradley-Terry fit, and online Elo resumed from its stored state with the votes cast
since, so their cost does not grow with the votes. Date-filtered and style-controlled boards scan
the filtered votes in time order (Store.scan_votes): its pair counts go to the fit, the battles in
vote order to online Elo. Category boards scan too.

Every board first asks arena.screened which votes it leaves out (identity leaks, duplicates
beyond the cap, and on request flagged voters and sample images); those are taken off the
maintained counts (online Elo resumes from a state kept per screening) or skipped by the scan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from arena.categories import OTHER, TAGS, TASKS
from arena.errors import InputError
from arena.kinds import Outcome
from arena.ratings import (
    DEFAULT_LAMBDA,
    Leaderboard,
    StyleBattles,
    aggregate,
    compute_leaderboard,
    elo_loop,
)
from arena.screened import Screen, Screened, screen_votes
from arena.store import Store, VoteFilter
from arena.store.maintained import Maintained

KNOWN = (*TASKS, OTHER, *TAGS)  # the shipped category ids (a user's rules may add more)
_LEFT_SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5, "bothbad": 0.5}  # model_a's score per Outcome value


@dataclass(frozen=True)
class Board:
    """A Leaderboard (online Elo filled in) with the votes it was computed from."""

    leaderboard: Leaderboard
    votes: int
    last_vote: datetime | None  # UTC
    anonymous_only: bool = True
    since: datetime | None = None
    until: datetime | None = None
    category: str | None = None
    screened: Screened = field(default_factory=Screened)
    category_votes: dict[str, int] = field(default_factory=dict)
    elo_pending: bool = False  # leaderboard_for(replay=False) left online Elo out: see there

    @property
    def empty(self) -> bool:
        return not self.leaderboard.rows

    def to_dict(self) -> dict:
        """Every figure of the page, JSON-ready (the `leaderboard --json` interface)."""
        return {
            **self.leaderboard.to_dict(),
            "votes": self.votes,
            "last_vote": _iso(self.last_vote),
            "filters": {
                "anonymous_only": self.anonymous_only,
                "since": _iso(self.since),
                "until": _iso(self.until),
                "category": self.category,
            },
            "category_votes": dict(self.category_votes),
            **self.screened.to_dict(),
            **({"elo_pending": True} if self.elo_pending else {}),
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _rule_categories(store) -> tuple[str, ...]:
    """The categories of the rules in use (ARENA_CATEGORIES may add to the shipped ones)."""
    from arena.categories.labeller import Labeller

    settings = getattr(store, "settings", None)
    return Labeller.from_settings(settings).rules.categories if settings is not None else ()


def parse_anchor(text: str) -> tuple[str, float]:
    """'MODEL=RATING' -> (model, rating); InputError naming what is wrong."""
    model, sep, rating = text.rpartition("=")
    if not sep or not model.strip():
        raise InputError(f"--anchor {text!r}: expected MODEL=RATING, e.g. gpt-4o=1000.")
    try:
        value = float(rating)
    except ValueError:
        raise InputError(f"--anchor {text!r}: {rating!r} is not a number.") from None
    if not math.isfinite(value):
        raise InputError(f"--anchor {text!r}: the rating must be a finite number.")
    return model.strip(), value


def leaderboard_for(
    store,
    anonymous_only: bool = True,
    since: datetime | None = None,
    until: datetime | None = None,
    bootstrap_rounds: int = 100,
    seed: int = 0,
    anchor: tuple[str, float] | None = None,
    *,
    style_control: bool = False,
    ci: str | None = None,
    style_reg: float = DEFAULT_LAMBDA,
    maintained: bool = True,
    category: str | None = None,
    screen: Screen | None = None,
    replay: bool = True,
) -> Board:
    """The board over the votes that pass the filters (votes.created_at in [since, until)).

    `style_control` rates the votes that carry style counts with the style-controlled fit
    (sandwich intervals unless `ci` says "bootstrap"); the plain board's intervals are bootstrap
    unless `ci` says "sandwich". Online Elo is over every vote of the filter in time order on
    both (the style scan reads its votes in no particular order: 30 % faster at a million). An anchor whose model has no votes here is an InputError.
    `maintained=False` scans every vote even where the maintained counts would do (the same
    board, for comparison), the screening's and the category counts' too. `category` keeps the battles of one category; `screen` says which
    votes the screening leaves out (arena.screened; default: the settings' anonymous ranking).
    `replay=False`: where the stored online Elo no longer holds (after an import of past votes or
    a moderation that changes which votes count), the board comes without online Elo
    (`elo_pending`, every row's elo None) instead of reading every vote to replay it; the page
    then replays it in the background.
    """
    categories = store.category_votes(VoteFilter(anonymous_only, since, until), maintained)
    if category is not None:
        known = {*KNOWN, *categories, *_rule_categories(store)}
        if category not in known:
            names = ", ".join(sorted(known))
            raise InputError(f"--category: no category {category!r}; known: {names}.")
    which = VoteFilter(anonymous_only, since, until, category)
    if not (math.isfinite(style_reg) and style_reg >= 0):
        raise InputError(f"--style-reg {style_reg!r}: the style penalty must be a number >= 0.")
    if screen is None:
        settings = getattr(store, "settings", None)
        screen = Screen.from_settings(settings) if settings is not None else Screen()
    screened = screen_votes(store, which, screen, maintained)
    exclude = screened.ids
    # every vote of the filter, in time order: the plain board, and online Elo on any board
    kept = store.maintained(which, screened, replay) if maintained else None
    plain = scan_votes(store, which, exclude) if kept is None else KeptVotes(kept)
    if style_control:
        scan, style, note = _style_scan(store, which, plain.votes, exclude)
    else:
        scan, style, note = plain, None, None
    if anchor is not None and anchor[0] not in scan.models:
        models = sorted(scan.models)
        known = ", ".join(models[:10]) + (
            f" and {len(models) - 10} more" if len(models) > 10 else ""
        )
        raise InputError(
            f"Anchor model {anchor[0]!r} has no votes here; models with votes: {known or 'none'}."
        )
    ci = ci or ("sandwich" if style_control else "bootstrap")
    board = compute_leaderboard(
        scan.pair_counts(),
        bootstrap_rounds=bootstrap_rounds,
        seed=seed,
        anchor=anchor,
        ci=ci,
        style=style,
        style_reg=style_reg,
    )
    elo = plain.online_elo()
    rows = [replace(row, elo=elo.get(row.model)) for row in board.rows]
    board = replace(board, rows=rows, warnings=board.warnings + ([note] if note else []))
    pending = isinstance(plain, KeptVotes) and plain.kept.pending
    if isinstance(plain, KeptVotes):
        last = plain.kept.last_at
        if not pending and (plain.kept.state is None or len(plain.kept.codes)):
            store.save_elo_state(plain.kept.kind, plain.kept.resumed(elo))
    else:
        last = store.last_vote(which) if plain.votes else None
    return Board(
        board,
        scan.votes,
        last,
        anonymous_only,
        which.since,
        which.until,
        category,
        screened,
        categories,
        elo_pending=pending,
    )


@dataclass(frozen=True)
class VoteScan:
    """The filtered votes in time order, each coded as an index into `combos`."""

    combos: list[tuple[str, str, str]]  # (model_a, model_b, outcome value)
    codes: np.ndarray  # int64, one per vote, in vote order

    @property
    def votes(self) -> int:
        return len(self.codes)

    @property
    def models(self) -> set[str]:
        return {m for a, b, _ in self.combos for m in (a, b)}

    def models_voted(self) -> set[str]:
        """The models of the combinations that have at least one vote (not self-battles)."""
        used = np.bincount(self.codes, minlength=len(self.combos)) > 0
        return {
            m
            for (a, b, _), u in zip(self.combos, used, strict=True)
            if u and a != b
            for m in (a, b)
        }

    def count_rows(self) -> list[tuple[str, str, str, int]]:
        """(model_a, model_b, winner label, count) for each combination that has votes."""
        counts = np.bincount(self.codes, minlength=len(self.combos)).tolist()
        return [
            (a, b, Outcome(o).winner_label, n)
            for (a, b, o), n in zip(self.combos, counts, strict=True)
        ]

    def pair_counts(self):
        return aggregate(self.count_rows())

    def online_elo(self) -> dict[str, float]:
        """arena.ratings.online_elo over these battles, float for float, on integer codes."""
        ids: dict[str, int] = {}
        left = np.array([ids.setdefault(a, len(ids)) for a, _, _ in self.combos], dtype=np.int64)
        right = np.array([ids.setdefault(b, len(ids)) for _, b, _ in self.combos], dtype=np.int64)
        score = np.array([_LEFT_SCORE[o] for _, _, o in self.combos])
        codes = self.codes
        rating = elo_loop(
            left[codes].tolist(), right[codes].tolist(), score[codes].tolist(), len(ids)
        )
        return {name: rating[i] for name, i in ids.items()}


@dataclass(frozen=True)
class KeptVotes:
    """The maintained path: the counts from vote_counts, online Elo resumed from its state."""

    kept: Maintained

    @property
    def votes(self) -> int:
        return self.kept.votes

    @property
    def models(self) -> set[str]:
        return {m for a, b, _, _ in self.kept.rows for m in (a, b)}

    def pair_counts(self):
        return aggregate((a, b, o.winner_label, n) for a, b, o, n in self.kept.rows)

    def online_elo(self) -> dict[str, float]:
        if self.kept.pending:
            return {}  # not read: see leaderboard_for(replay=False)
        state = self.kept.state
        return resume_elo(state.ratings if state else {}, self.kept.combos, self.kept.codes)


def resume_elo(start: dict[str, float], combos, codes: np.ndarray) -> dict[str, float]:
    """Online Elo continued from `start` over coded battles (VoteScan's coding), float for float
    what arena.ratings.elo_loop gives over all the battles from the beginning: the same loop on
    the same values (a model first seen here starts at 1000, as it would there)."""
    ids = {name: i for i, name in enumerate(start)}
    left = np.array([ids.setdefault(a, len(ids)) for a, _, _ in combos], dtype=np.int64)
    right = np.array([ids.setdefault(b, len(ids)) for _, b, _ in combos], dtype=np.int64)
    score = np.array([_LEFT_SCORE[o] for _, _, o in combos])
    rating = elo_loop(
        left[codes].tolist(),
        right[codes].tolist(),
        score[codes].tolist(),
        len(ids),
        start=list(start.values()),
    )
    return {name: rating[i] for name, i in ids.items()}


def _style_scan(
    store: Store, which: VoteFilter, total: int, exclude: np.ndarray
) -> tuple[VoteScan, StyleBattles | None, str]:
    """The filtered votes that carry style counts (self-battles dropped), as a VoteScan for the
    plain figures (not in time order: no online Elo from it) and StyleBattles for the style fit
    over the same votes; and a note on the votes left out of the `total` the filter has."""
    combos, codes, features = store.scan_style(which, exclude)
    styled = len(codes)
    keep = np.array([a != b for a, b, _ in combos], dtype=bool)
    if len(codes):
        mask = keep[codes]
        codes, features = codes[mask], features[mask]
    scan = VoteScan([(a, b, o.value) for a, b, o in combos], codes)
    note = None
    if total > styled:
        note = (
            f"{total - styled} of {total} votes carry no style counts (imported without "
            "conv_metadata) and are left out of the style-controlled ratings."
        )
    models = tuple(sorted(scan.models_voted()))
    if not models:
        return scan, None, note
    index = {m: i for i, m in enumerate(models)}
    left = np.array([index.get(a, -1) for a, _, _ in scan.combos], dtype=np.int64)[codes]
    right = np.array([index.get(b, -1) for _, b, _ in scan.combos], dtype=np.int64)[codes]
    score = np.array([_LEFT_SCORE[o] for _, _, o in scan.combos])[codes]
    return scan, StyleBattles(models, left, right, score, features), note


def scan_votes(store: Store, which: VoteFilter, exclude: np.ndarray | None = None) -> VoteScan:
    """The votes that pass the filter, in time order, from the store (those with ids in
    `exclude` left out)."""
    combos, codes = store.scan_votes(which, exclude)
    return VoteScan([(a, b, o.value) for a, b, o in combos], codes)
