"""A small exception hierarchy; each message is one line a user can act on."""


class ArenaError(Exception):
    """Base class: str(error) is the one-line message shown to the user."""


class ConfigError(ArenaError):
    """A setting (environment variable) is invalid."""


class RegistryError(ArenaError):
    """models.yaml is missing, malformed, or an entry is invalid."""


class InputError(ArenaError):
    """Bad user input: an image or a prompt that cannot be used."""


class ModelError(ArenaError):
    """A model could not load or answer. Names the model and the cause."""

    def __init__(self, model_id: str, cause: str):
        self.model_id = model_id
        self.cause = cause
        super().__init__(f"Model '{model_id}' failed: {cause}")


class StoreError(ArenaError):
    """The database could not be reached or refused a write after retries."""


class VoteError(ArenaError):
    """A vote that is not allowed (wrong battle, not finished, rate limited)."""


class AlreadyVoted(VoteError):
    """The battle already has its one vote."""

    def __init__(self, battle_id: str):
        self.battle_id = battle_id
        super().__init__(f"Battle {battle_id} already has a vote: each battle takes one vote.")


class RateLimited(VoteError):
    """Too many battles or votes from one session in the time window."""


class RatingsError(ArenaError):
    """Votes that cannot be rated (e.g. unknown winner labels)."""


class TransferError(ArenaError):
    """A votes file that cannot be imported (nothing from it was stored) or exported."""
