"""The terms a voter accepts before their first upload (ARENA_TERMS, a markdown file).

Prompts and images may be published as a dataset (python -m arena export-dataset), so a voter
agrees to that once. What they agreed to is the text's sha256: an edited file is new terms, and
every voter accepts again (the store keeps one row per voter id and sha256).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from arena.errors import ConfigError


@dataclass(frozen=True)
class Terms:
    text: str  # markdown
    sha256: str  # of the file's bytes


def load_terms(path: str) -> Terms | None:
    """The terms in `path`, None for an empty setting; ConfigError (one line) when the file
    cannot be read, is not UTF-8 text or is empty."""
    if not path:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"ARENA_TERMS={path!r}: cannot read the terms file ({exc.strerror or exc}); "
            "point it at a readable markdown file, or leave it empty for no terms."
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"ARENA_TERMS={path!r} is not UTF-8 text: save the terms as a UTF-8 markdown file."
        ) from None
    if not text.strip():
        raise ConfigError(
            f"ARENA_TERMS={path!r} is empty: write the terms in it, or leave ARENA_TERMS empty."
        )
    return Terms(text, hashlib.sha256(data).hexdigest())
