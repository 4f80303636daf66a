"""Who may open the admin pages, and how wrong tokens are slowed down. No Streamlit here.

Two ways in, either or both:
- ARENA_ADMINS: logged-in users (Streamlit authentication), by email, case-insensitive.
- ARENA_ADMIN_TOKEN: a Secret typed once per browser session. It is compared in constant time
  and never stored, logged, shown or pickled (arena.clients.Secret withholds itself).

Wrong tokens are counted in the database, so every replica sees them: each try first takes a slot,
an audit row "admin_login_failed" written only while the client (by its client key) and the arena
as a whole are under LOGIN_LIMIT; a right token turns its slot into "admin_login". A try without a
slot is refused before the token is even compared, so nobody can keep guessing past the limit.
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from arena.clients import Secret
from arena.errors import ConfigError

if TYPE_CHECKING:  # the store is handed in; arena.store imports this module's limit
    from arena.kinds import Requester
    from arena.store import Store

TOKEN_ACTOR = "admin:token"
EMAIL_ACTOR = "admin:"  # + the admin's email
MAX_TOKEN_CHARS = 512  # the token field's limit: no token is longer, and a megabyte is no guess
FAILED, SUCCEEDED = "admin_login_failed", "admin_login"  # audit actions of token logins
NO_CLIENT = "-"  # the audit target of a try whose client key is unknown

WRONG_TOKEN = "That is not the admin token. Check it and try again."


@dataclass(frozen=True)
class LoginLimit:
    """Wrong tokens allowed per window: from one client (its client key), and from everyone."""

    per_client: int = 5
    in_total: int = 50  # a guesser with many addresses; an admin with ARENA_ADMINS is never held up
    window: timedelta = timedelta(minutes=10)


LOGIN_LIMIT = LoginLimit()


@dataclass(frozen=True)
class Login:
    """The outcome of one typed token: the actor it logs in as, or the line that refuses it."""

    actor: str | None = None
    refusal: str | None = None


@dataclass(frozen=True)
class AdminAccess:
    admins: frozenset[str] = frozenset()  # lower-case emails
    token: Secret = field(default_factory=Secret, repr=False)

    @classmethod
    def from_settings(cls, settings) -> AdminAccess:
        return cls(parse_admins(settings.admins), settings.admin_token)

    @property
    def configured(self) -> bool:
        """Whether there is any way in: without one, there is no admin page at all."""
        return bool(self.admins) or bool(self.token)

    def email_actor(self, email: str | None) -> str | None:
        """The actor "admin:<email>" for a logged-in user listed in ARENA_ADMINS, else None."""
        if not email or email.strip().lower() not in self.admins:
            return None
        return EMAIL_ACTOR + email.strip().lower()

    def check_token(self, typed: str | None) -> bool:
        """Whether `typed` is the token: constant-time over the bytes (hmac.compare_digest)."""
        if not self.token or not typed or len(typed) > MAX_TOKEN_CHARS:
            return False
        return hmac.compare_digest(typed.encode("utf-8"), self.token.reveal())

    def log_in(
        self, store: Store, typed: str, requester: Requester, limit: LoginLimit = LOGIN_LIMIT
    ) -> Login:
        """Take a slot under the limit, then compare; the audit row says how it went (never
        what was typed)."""
        actor = requester.voter_id or "visitor"
        slot = store.take_login_slot(actor, requester.client_key, limit)
        if slot is None:
            return Login(refusal=limit_line(store.login_failures(requester.client_key, limit)))
        if not self.check_token(typed):
            return Login(refusal=WRONG_TOKEN)
        store.confirm_login(slot, TOKEN_ACTOR, f"token typed by {actor}")
        return Login(actor=TOKEN_ACTOR)


@dataclass(frozen=True)
class Failures:
    """Wrong tokens within the window: from this client and in total, with the oldest of each
    (when it leaves the window, a try passes again). `client` is None for an unknown client."""

    now: datetime
    limit: LoginLimit
    client: int | None
    total: int
    client_oldest: datetime | None
    total_oldest: datetime | None


def limit_line(failures: Failures) -> str:
    """The friendly line for a try the limit refused: whose tries, and when the next one passes."""
    limit = failures.limit
    window = _minutes(limit.window)
    if failures.client is not None and failures.client >= limit.per_client:
        wait = _minutes(failures.client_oldest + limit.window - failures.now)
        return (
            f"Too many wrong tokens from your network address ({limit.per_client} in {window} "
            f"minutes): try again in {_in(wait)}."
        )
    wait = _minutes(
        (failures.total_oldest or failures.now) + limit.window - failures.now
    )  # in total (or a slot taken by another tab a moment ago)
    return (
        f"Too many wrong admin tokens lately ({limit.in_total} in {window} minutes): the token "
        f"login is paused; try again in {_in(wait)}."
    )


def _minutes(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds() / 60))


def _in(minutes: int) -> str:
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def parse_admins(text: str, name: str = "ARENA_ADMINS") -> frozenset[str]:
    """Comma-separated emails, lower-cased; ConfigError naming the entry that is no email."""
    emails = [part.strip() for part in (text or "").split(",") if part.strip()]
    for email in emails:
        local, at, domain = email.partition("@")
        if not (local and at and domain) or any(c.isspace() for c in email) or "@" in domain:
            raise ConfigError(
                f"Setting {name}={text!r} is invalid: {email!r} is not an email address; expected "
                "comma-separated emails (ann@example.com, bob@example.com)."
            )
    return frozenset(email.lower() for email in emails)
