"""The style of an answer, counted as LMArena counts it for style control (its `conv_metadata`).

After code blocks (```...```) are removed: markdown headers per level (lines matching `^#{k}\\s`),
list items (ordered `^\\s*\\d+\\.\\s`, unordered `^\\s*[-*+]\\s`) and bold spans (`**...**` and
`__...__` on one line). The length is the model's own token count of the answer; an answer stored
without one (a server that sent no usage, an error) counts the word and punctuation pieces of its
text instead (`\\w+` runs and single other non-space characters, close to a BPE token count for
English prose). A battle's style is the sum over its turns, per side.

A leaf module: the battle, the store and the migrations import it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

_CODE_BLOCK = re.compile(r"```[^`]*```")
_HEADERS = tuple(re.compile(rf"^#{{{k}}}\s", re.MULTILINE) for k in range(1, 7))
_ORDERED = re.compile(r"^\s*\d+\.\s", re.MULTILINE)
_UNORDERED = re.compile(r"^\s*[-*+]\s", re.MULTILINE)
_BOLD_STARS = re.compile(r"\*\*[^*\n]+\*\*")
_BOLD_UNDERSCORES = re.compile(r"__[^_\n]+__")
_TOKEN_PIECES = re.compile(r"\w+|[^\w\s]")


class StyleCounts(NamedTuple):
    """One side's counts; the field names are the stored columns' (`style_<field>_<side>`). A
    named tuple: a million of them are built by an import, and a dataclass costs 20x more."""

    tokens: int = 0
    h1: int = 0
    h2: int = 0
    h3: int = 0
    h4: int = 0
    h5: int = 0
    h6: int = 0
    ordered: int = 0
    unordered: int = 0
    bold_stars: int = 0  # **...**
    bold_underscores: int = 0  # __...__

    def __add__(self, other: StyleCounts) -> StyleCounts:  # per count, not tuple concatenation
        return StyleCounts(*map(operator.add, self, other))

    @property
    def totals(self) -> tuple[int, int, int, int]:
        """(length, headers, lists, bold): the four features of style control."""
        headers = self.h1 + self.h2 + self.h3 + self.h4 + self.h5 + self.h6
        return (
            self.tokens,
            headers,
            self.ordered + self.unordered,
            self.bold_stars + self.bold_underscores,
        )

    def columns(self, side: str) -> dict[str, int]:
        return dict(zip(_COLUMN_NAMES[side], self, strict=True))

    @classmethod
    def from_columns(cls, row: Mapping, side: str) -> StyleCounts | None:
        """From stored columns; None when the row has no style data (NULL)."""
        values = [row[f"style_{name}_{side}"] for name in COUNTS]
        if any(v is None for v in values):
            return None
        return cls(*map(int, values))


COUNTS = StyleCounts._fields
_COLUMN_NAMES = {side: tuple(f"style_{name}_{side}" for name in COUNTS) for side in ("a", "b")}


def count_style(answer: str | None, tokens: int | None = None) -> StyleCounts:
    """The counts of one answer; `tokens` is the model's own count when it gave one."""
    text = answer or ""
    if tokens is None:
        tokens = len(_TOKEN_PIECES.findall(text))
    prose = _CODE_BLOCK.sub("", text)
    return StyleCounts(
        int(tokens),
        *(len(h.findall(prose)) for h in _HEADERS),
        len(_ORDERED.findall(prose)),
        len(_UNORDERED.findall(prose)),
        len(_BOLD_STARS.findall(prose)),
        len(_BOLD_UNDERSCORES.findall(prose)),
    )


def battle_style(counts: Iterable[StyleCounts]) -> StyleCounts:
    """The sum over a battle's turns of one side's counts."""
    total = StyleCounts()
    for turn in counts:
        total = total + turn
    return total


# LMArena's conv_metadata layout
_HEADER_KEYS = ("h1", "h2", "h3", "h4", "h5", "h6")
_LIST_KEYS = ("ordered", "unordered")
_BOLD_KEYS = ("**", "__")


def conv_metadata(a: StyleCounts, b: StyleCounts) -> dict:
    """The battle's counts in the layout of LMArena's public datasets."""
    out: dict = {"sum_assistant_a_tokens": a.tokens, "sum_assistant_b_tokens": b.tokens}
    for side, c in (("a", a), ("b", b)):
        out[f"header_count_{side}"] = dict(
            zip(_HEADER_KEYS, (c.h1, c.h2, c.h3, c.h4, c.h5, c.h6), strict=True)
        )
        out[f"list_count_{side}"] = {"ordered": c.ordered, "unordered": c.unordered}
        out[f"bold_count_{side}"] = {"**": c.bold_stars, "__": c.bold_underscores}
    return out


def flat_conv_metadata(a: StyleCounts, b: StyleCounts) -> dict[str, int]:
    """conv_metadata as flat columns (CSV): `sum_assistant_a_tokens`, `header_count_a.h1`, ..."""
    flat = {}
    for key, value in conv_metadata(a, b).items():
        if isinstance(value, dict):
            flat.update({f"{key}.{inner}": n for inner, n in value.items()})
        else:
            flat[key] = value
    return flat


FLAT_FIELDS = tuple(flat_conv_metadata(StyleCounts(), StyleCounts()))
_GROUPS = {f"{kind}_count_{side}" for kind in ("header", "list", "bold") for side in ("a", "b")}
# every flat column an import reads -> (conv_metadata key, inner key or None for a plain total)
_FLAT_KEYS = {
    f"{prefix}{name}": (name.partition(".")[0], name.partition(".")[2] or None)
    for prefix in ("", "conv_metadata.")
    for name in (
        *FLAT_FIELDS,
        *(f"{kind}_count_{side}" for kind in ("header", "list", "bold") for side in ("a", "b")),
    )
}


def parse_conv_metadata(row: Mapping) -> tuple[StyleCounts, StyleCounts] | None:
    """Both sides' counts from a row that has a `conv_metadata` object (or its flat columns, with
    or without a `conv_metadata.` prefix); None when the row has none. A plain integer where a dict
    is expected is taken as that count's total and kept under its first key (h1, ordered, **).
    ValueError names a bad field."""
    meta = row.get("conv_metadata")
    if _missing(meta):
        meta = _unflatten(row)
        if meta is None:
            return None
    if isinstance(meta, str):
        import json

        try:
            meta = json.loads(meta)
        except json.JSONDecodeError:
            raise ValueError("conv_metadata is not a JSON object") from None
    if not isinstance(meta, Mapping):
        raise ValueError("conv_metadata must be an object")
    return _side(meta, "a"), _side(meta, "b")


_SIDE_KEYS = {
    side: (
        f"sum_assistant_{side}_tokens",
        (f"header_count_{side}", _HEADER_KEYS),
        (f"list_count_{side}", _LIST_KEYS),
        (f"bold_count_{side}", _BOLD_KEYS),
    )
    for side in ("a", "b")
}
_MAX = 2**31 - 1


def _side(meta: Mapping, side: str) -> StyleCounts:
    tokens_key, *groups = _SIDE_KEYS[side]
    counts = [_count(meta.get(tokens_key), tokens_key)]
    for name, keys in groups:
        counts += _breakdown(meta.get(name), keys, name)
    return StyleCounts(*counts)


def _breakdown(value, keys: tuple[str, ...], name: str) -> list[int]:
    if isinstance(value, Mapping):
        if not value.keys() <= set(keys):
            unknown = ", ".join(sorted(map(str, set(value) - set(keys))))
            raise ValueError(f"{name} has unknown keys {unknown}")
        return [_count(value.get(k), name, k) for k in keys]
    if _missing(value):
        return [0] * len(keys)
    return [_count(value, name)] + [0] * (len(keys) - 1)


def _count(value, name: str, inner: str | None = None) -> int:
    """A whole number >= 0 (0 when missing); ValueError naming the field otherwise."""
    if type(value) is int and 0 <= value <= _MAX:  # the common case, fast
        return value
    if _missing(value):
        return 0
    field = name if inner is None else f"{name}.{inner}"
    if isinstance(value, bool):
        raise ValueError(f"{field} must be a count, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field} {value!r} is not a count") from None
    if not number.is_integer() or number < 0 or number > _MAX:
        raise ValueError(f"{field} {value!r} is not a whole number >= 0")
    return int(number)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value == ""


def _unflatten(row: Mapping) -> dict | None:
    meta: dict = {}
    for key, (outer, inner) in _FLAT_KEYS.items():
        value = row.get(key)
        if value is None or (type(value) is not int and _missing(value)):
            continue
        known = meta.get(outer)
        if inner is None:
            if known is not None:
                raise ValueError(f"{outer} is given both as a number and with its breakdown")
            meta[outer] = value
        elif known is None or isinstance(known, dict):
            meta.setdefault(outer, {})[inner] = value
        else:
            raise ValueError(f"{outer} is given both as a number and with its breakdown")
    for key in row:  # a breakdown column we do not know is a mistake, not something to drop
        name = key.removeprefix("conv_metadata.") if isinstance(key, str) else ""
        outer, dot, inner = name.partition(".")
        if dot and outer in _GROUPS and key not in _FLAT_KEYS:
            raise ValueError(f"{outer} has unknown keys {inner}")
    return meta or None
