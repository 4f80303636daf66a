"""Which votes a leaderboard leaves out, and why: the screening rules (arena.screening) applied
to what the store reads. No Streamlit, no SQL.

The rules, each over the board's filtered votes and independent of the others (a vote left out
for two reasons counts under both; `total` counts it once):
- hidden: battles an admin hid (arena.store.moderation; always, whatever the Screen says);
- banned_voters: votes of voters an admin banned (always);
- identity_leak: the battle's answers gave a model away (flagged when stored; on by default);
- flagged_voters: votes of voters, or client keys, that Chatbot Arena's sequential test flags
  (the test runs on request, as it reads each voter's first decisive votes: about 4 s at a
  million votes on SQLite; it lists the flagged voters, and leaves their votes out on request);
- duplicates: battles of one normalised prompt on one image beyond the cap (on by default);
- sample_images: battles started from a shipped sample (left out on request).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from datetime import datetime

import numpy as np

from arena.screening import duplicates, voters
from arena.store import Store, VoteFilter
from arena.store.screening import VoteRow, vote_row

DEDUP_RULES = ("cap", "percentile")


@dataclass(frozen=True)
class Screen:
    """What a board leaves out. The defaults are the anonymous ranking's."""

    identity_leaks: bool = True  # leave out battles whose answers gave a model away
    flagged_voters: bool = False  # leave out the votes of flagged voters and client keys
    voter_test: bool = False  # run the sequential test and list the flagged (implied by the above)
    dedup_cap: int = 10  # 0: no cap
    dedup_rule: str = "cap"  # or "percentile": FastChat's 99.99th percentile of frequency
    sample_images: bool = False  # leave out battles started from a shipped sample
    seed: int = 0  # of the duplicates' choice

    @classmethod
    def from_settings(cls, settings, **changes) -> Screen:
        return replace(cls(dedup_cap=settings.dedup_cap, dedup_rule=settings.dedup_rule), **changes)

    @classmethod
    def none(cls) -> Screen:
        """Every vote counts, but those that moderation always leaves out (hidden battles,
        banned voters)."""
        return cls(identity_leaks=False, dedup_cap=0)

    def key(self) -> str:
        """Six hex digits naming these options (the online Elo state of a screened board)."""
        text = "|".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))
        return hashlib.sha256(text.encode()).hexdigest()[:6]


@dataclass(frozen=True)
class Screened:
    """The votes a board leaves out (by vote id) and what the rules found."""

    rows: dict[int, VoteRow] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)  # rule -> votes it leaves out
    flagged_voters: tuple[str, ...] | None = None  # None: the test did not run
    flagged_clients: tuple[str, ...] | None = None
    dedup_cap: int | None = None  # the cap applied (the percentile rule's, when it is used)
    key: str = ""  # Screen.key() of the options

    @property
    def ids(self) -> np.ndarray:
        return np.fromiter(sorted(self.rows), np.int64, len(self.rows))

    def counts(self) -> Counter:
        """Votes left out per (model_a, model_b, outcome)."""
        return Counter((r.model_a, r.model_b, r.outcome) for r in self.rows.values())

    def fingerprint(self, until: datetime | None) -> str:
        """Names the left-out votes cast at or before `until`: an online Elo state computed
        over the others still holds while this stays the same."""
        ids = sorted(i for i, r in self.rows.items() if until is not None and r.created_at <= until)
        digest = hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()
        return f"{len(ids)}:{digest[:40]}"

    def summary(self) -> str:
        """One line on what was left out and why (the page and the command line show it)."""
        if not self.rows:
            return "No votes were left out."
        parts = [
            f"{n:,} {_REASONS[rule]}" for rule, n in self.excluded.items() if n and rule in _REASONS
        ]
        return f"{len(self.rows):,} votes left out: " + "; ".join(parts) + "."

    def to_dict(self) -> dict:
        return {
            "excluded": {**self.excluded, "total": len(self.rows)},
            "flagged_voters": _listed(self.flagged_voters),
            "flagged_clients": _listed(self.flagged_clients),
            "dedup_cap": self.dedup_cap,
        }


def _listed(found: tuple[str, ...] | None) -> list[str] | None:
    return None if found is None else list(found)


_REASONS = {
    "hidden": "of battles an admin hid",
    "banned_voters": "from voters an admin banned",
    "identity_leak": "whose answers gave a model away",
    "flagged_voters": "from voters the sequential test flags",
    "duplicates": "repeating a prompt on an image beyond the cap",
    "sample_images": "on shipped sample images",
}


def screen_votes(store: Store, which: VoteFilter, screen: Screen, counted: bool = True) -> Screened:
    """Apply the screening rules to the votes that pass the filter. `counted=False` reads the
    prompt keys' frequencies from the votes even where the database counts them (the same
    result, for comparison)."""
    rows: dict[int, VoteRow] = {}
    excluded: dict[str, int] = {}

    def leave_out(rule: str, found: list[VoteRow]) -> None:
        excluded[rule] = len(found)
        rows.update((r.id, r) for r in found)

    leave_out("hidden", store.hidden_votes(which))  # moderation: always, on every board
    leave_out("banned_voters", store.banned_votes(which))
    if screen.identity_leaks:
        leave_out("identity_leak", store.leak_votes(which))
    flagged = {"voter": None, "client": None}
    if screen.voter_test or screen.flagged_voters:
        flagged = {who: tuple(_flagged(store, which, who)) for who in flagged}
    if screen.flagged_voters:
        found = {r.id: r for who, keys in flagged.items() for r in store.votes_of(which, who, keys)}
        leave_out("flagged_voters", list(found.values()))
    cap = _cap(store, which, screen, counted)
    if cap:
        leave_out("duplicates", _duplicates(store, which, cap, screen.seed, counted))
    if screen.sample_images:
        leave_out("sample_images", store.sample_votes(which))
    return Screened(rows, excluded, flagged["voter"], flagged["client"], cap or None, screen.key())


def _flagged(store: Store, which: VoteFilter, who: str) -> list[str]:
    """The voters (or client keys) the sequential test flags, in name order."""
    grouped = store.first_decisive(which, who, voters.FIRST)
    if not grouped:
        return []
    shares = {(w, lo): n for w, lo, n in store.decisive_shares(which)}
    names = sorted({g[0] for g in grouped})
    code = {name: i for i, name in enumerate(names)}
    same = np.array([shares.get((w, lo), 0) for _, w, lo, _ in grouped], dtype=np.float64)
    other = np.array([shares.get((lo, w), 0) for _, w, lo, _ in grouped], dtype=np.float64)
    test = voters.grouped_test(
        np.array([code[g[0]] for g in grouped], dtype=np.int64),
        np.array([g[3] for g in grouped], dtype=np.int64),
        same / (same + other),
        voters=len(names),
    )
    return [names[i] for i in test.flagged_codes()]


def _cap(store: Store, which: VoteFilter, screen: Screen, counted: bool) -> int:
    if screen.dedup_rule == "percentile":
        frequencies = store.prompt_frequencies(which, counted)
        return duplicates.percentile_cap(np.asarray(frequencies, dtype=np.int64))
    return max(screen.dedup_cap, 0)


def _duplicates(
    store: Store, which: VoteFilter, cap: int, seed: int, counted: bool
) -> list[VoteRow]:
    """The votes beyond the cap of each prompt key (a seeded, stable choice of which stay)."""
    found = store.repeated_prompts(which, cap, counted)
    if not found:
        return []
    keys: dict[str, int] = {}
    codes = np.array([keys.setdefault(row[6], len(keys)) for row in found], dtype=np.int64)
    kept = duplicates.kept(codes, [row[5] for row in found], cap, seed)
    return [vote_row(row) for row, keep in zip(found, kept.tolist(), strict=True) if not keep]
