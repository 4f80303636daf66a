"""Settings, read from the environment in one place only.

Each setting has a name, a default and help text; README.md lists them all
(`python -m arena settings` prints the same table).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from dataclasses import field as dc_field

from arena.errors import ConfigError


def _setting(default, help: str):
    return dc_field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    db_url: str = _setting("sqlite:///arena.db", "SQLAlchemy URL of the vote database")
    models: str = _setting("models.yaml", "path of the model registry (models.yaml)")
    db_auto_upgrade: bool = _setting(True, "run Alembic migrations to the latest schema at start-up")
    max_upload_mb: float = _setting(20.0, "largest accepted image file, in MB")
    max_pixels: int = _setting(40_000_000, "largest accepted image, in pixels (decompression-bomb guard)")
    max_image_side: int = _setting(1536, "images with a longer side are downscaled before the models see them")
    max_prompt_chars: int = _setting(4000, "longest accepted prompt, in characters")
    max_turns: int = _setting(5, "most prompts (first question plus follow-ups) in one battle")
    hub_timeout_s: float = _setting(10.0, "Hugging Face hub request timeout, in seconds")
    generation_timeout_s: float = _setting(300.0, "longest wait for one answer before that side errors")
    battles_per_minute: int = _setting(10, "battles one browser session may start per minute (0 = no limit)")
    votes_per_hour: int = _setting(120, "votes one voter may cast per hour (0 = no limit)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            name = env_name(f.name)
            if name not in environ or environ[name] == "":
                continue
            values[f.name] = _parse(name, environ[name], type(f.default))
        return cls(**values)


def env_name(field_name: str) -> str:
    return "ARENA_" + field_name.upper()


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting."""
    return [(env_name(f.name), str(f.default), f.metadata["help"]) for f in fields(Settings)]


def _parse(name: str, raw: str, kind: type):
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        value = kind(raw)
    except ValueError:
        expected = "true or false" if kind is bool else f"a {kind.__name__}"
        raise ConfigError(f"Setting {name}={raw!r} is invalid: expected {expected}.") from None
    if kind in (int, float) and value < 0:
        raise ConfigError(f"Setting {name}={raw!r} is invalid: it must not be negative.")
    return value
