"""The small types the battle, the store and the ratings share: how a battle was run (and how its
pair was drawn), how a vote went, and who asked.

A leaf module (it imports nothing from arena), so every layer can use it without an import circle.
"""

from dataclasses import dataclass
from enum import StrEnum

USER_PREFIX = "user:"  # voter ids of logged-in users; others are "session:<id>"


@dataclass(frozen=True)
class Requester:
    """Who starts a battle or casts a vote; the rate limits apply to each key that is set.

    session_id: the browser tab's random id. voter_id: "user:<email>" when logged in, else
    "session:<session id>". client_key: a keyed hash of the client's network address (never the
    address itself; arena.clients), None when unknown."""

    session_id: str | None = None
    voter_id: str | None = None
    client_key: str | None = None

    @property
    def logged_in(self) -> bool:
        return bool(self.voter_id) and self.voter_id.startswith(USER_PREFIX)


class Mode(StrEnum):
    ANONYMOUS = "anonymous"  # two models drawn at random, names hidden until the vote
    NAMED = "named"  # the user picked both models, names shown


class PairSampling(StrEnum):
    """How an anonymous battle draws its two models (ARENA_PAIR_SAMPLING; arena.pairing)."""

    WEIGHTED = "weighted"  # by models.yaml weight alone (Registry.draw_pair)
    ACTIVE = "active"  # toward the pairs whose next vote narrows the intervals most


class Outcome(StrEnum):
    A = "a"  # the left answer (model_a) is better
    B = "b"
    TIE = "tie"
    BOTH_BAD = "bothbad"

    @property
    def winner_label(self) -> str:
        """The label LMSYS Chatbot Arena datasets use in their `winner` field."""
        return _LABELS[self]

    @classmethod
    def from_label(cls, label: str) -> "Outcome":
        for outcome, name in _LABELS.items():
            if name == label or outcome.value == label:
                return outcome
        raise ValueError(f"unknown winner {label!r}; expected one of {', '.join(_LABELS.values())}")


_LABELS = {
    Outcome.A: "model_a",
    Outcome.B: "model_b",
    Outcome.TIE: "tie",
    Outcome.BOTH_BAD: "tie (bothbad)",
}
