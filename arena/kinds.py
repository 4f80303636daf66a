"""The enums the battle, the store and the ratings share: how a battle was run, how a vote went.

A leaf module (it imports nothing from arena), so every layer can use it without an import circle.
"""

from enum import StrEnum


class Mode(StrEnum):
    ANONYMOUS = "anonymous"  # two models drawn at random, names hidden until the vote
    NAMED = "named"  # the user picked both models, names shown


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
