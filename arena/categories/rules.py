"""Task categories from the prompts, by rules kept as data (rules.yaml beside this module, or
the file ARENA_CATEGORIES names; the format is described at the top of rules.yaml).

The rules run each time a turn is stored, so everything is compiled once, in load_rules: each
category's `any:` patterns become one alternation and its `unless:` patterns another, matched
against the lower-cased prompt. Measured against the shipped rules: about 26 microseconds for
a prompt of the labelled set (40 characters on average), 0.2 ms at 500 characters and 1.4 ms
at 4,000 (the prompt limit). A mistake in a user's file is a ConfigError of one line naming
the file, the category and the field, never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from arena.categories import OTHER, TAGS
from arena.errors import ConfigError

SHIPPED = Path(__file__).resolve().parent / "rules.yaml"
FIELDS = ("description", "any", "all", "unless")
_TOP_FIELDS = ("words", "categories")
_ID = re.compile(r"[a-z][a-z0-9_]*")
_RESERVED = (OTHER, *TAGS)  # names the store gives battles itself
_WORD_REF = re.compile(r"\{([a-z][a-z0-9_]*)\}")  # {image}; {2} and {1,3} stay quantifiers
# A match may not start or end inside a word: "cat" does not match "category". ASCII only,
# so a pattern in a script written without spaces (Chinese) still matches inside a sentence.
# (A pattern that ends in a space or a sign may be followed by anything.)
_BEFORE, _AFTER = r"(?<![a-z0-9])", r"(?!(?<=[a-z0-9])[a-z0-9])"
_NEVER = re.compile(r"(?!)")
_ESCAPE = re.compile(r"\\N\{[^}]*\}|\\.|[^\\]+", re.DOTALL)  # an escape, or other text
# PyYAML reads `[a, b?, c]` as a broken list: a ? before , or ] is common in patterns.
_FLOW_HINT = " (inside [...] quote a pattern with a ? in it, or list it on its own line after -)"
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})


@dataclass(frozen=True)
class Category:
    """One category's compiled rules."""

    id: str
    description: str
    any_of: re.Pattern  # the `any:` patterns as one alternation (_NEVER when there are none)
    all_of: tuple[tuple[re.Pattern, ...], ...]  # `all:` groups: every pattern of one must match
    unless: re.Pattern | None  # the `unless:` patterns as one alternation

    def matches(self, prompt: str) -> bool:
        """Whether this category applies to one normalised prompt."""
        hit = self.any_of.search(prompt) is not None or any(
            all(p.search(prompt) for p in group) for group in self.all_of
        )
        return hit and not (self.unless is not None and self.unless.search(prompt))


@dataclass(frozen=True)
class Rules:
    path: Path
    entries: tuple[Category, ...]

    @property
    def categories(self) -> tuple[str, ...]:
        """The category ids, in file order."""
        return tuple(c.id for c in self.entries)

    def describe(self, category: str) -> str:
        for entry in self.entries:
            if entry.id == category:
                return entry.description
        known = ", ".join(self.categories)
        raise ConfigError(f"{self.path}: no category '{category}' (known: {known}).")

    def classify(self, prompts: Sequence[str]) -> tuple[str, ...]:
        """The task categories of a battle with these prompts (the first question and its
        follow-ups): the union over the prompts, in file order. () means `other`."""
        texts = [t for t in map(normalise, prompts) if t]
        return tuple(c.id for c in self.entries if any(c.matches(t) for t in texts))


def normalise(prompt: str) -> str:
    """Lower case, one space between words and straight quotes, so that a pattern's space and '
    match them. Patterns are lower-cased too (_lower): measured three times faster than
    matching with re.IGNORECASE."""
    return " ".join(prompt.translate(_QUOTES).lower().split())


def load_rules(path: str | Path | None = None) -> Rules:
    """The rules in a YAML file (None: the shipped rules.yaml), checked and compiled."""
    path = SHIPPED if path is None else Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping with a 'categories:' key, found {_kind(data)}."
        )
    _no_unknown(f"{path}:", data, _TOP_FIELDS)
    words = _word_lists(path, data.get("words"))
    found = data.get("categories")
    if not isinstance(found, dict) or not found:
        raise ConfigError(
            f"{path}: field 'categories' must map each category id to its rules, "
            f"found {_kind(found)}."
        )
    return Rules(path, tuple(_category(path, key, body, words) for key, body in found.items()))


def _read_yaml(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: category rules not found; set ARENA_CATEGORIES to a rules file, "
            "or leave it empty for the shipped rules."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        cause = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"{path}: cannot read the category rules: {cause}.") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        hint = _FLOW_HINT if "expected ',' or ']'" in problem else ""
        raise ConfigError(f"{path}: YAML error{where}: {problem}{hint}.") from None


def _word_lists(path: Path, found) -> dict[str, str]:
    """`words:` name -> one alternation, which a pattern writes as {name}."""
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise ConfigError(f"{path}: field 'words' must map names to lists, found {_kind(found)}.")
    lists = {}
    for name, items in found.items():
        where = f"{path}: words: list {name!r}:"
        if not isinstance(name, str) or not _ID.fullmatch(name):
            raise ConfigError(f"{where} a name is lower-case letters, digits and _ only.")
        texts = _texts(where, "word", items)
        for i, text in enumerate(texts, start=1):
            if _WORD_REF.search(text):
                raise ConfigError(f"{where} word {i} uses {{...}}: a word list cannot use another.")
            _compile(f"{where} word {i}", text)
        lists[name] = "(?:" + "|".join(texts) + ")"
    return lists


def _category(path: Path, key, body, words: dict[str, str]) -> Category:
    where = f"{path}: category {key!r}:"
    if not isinstance(key, str) or not _ID.fullmatch(key):
        raise ConfigError(
            f"{where} an id is lower-case letters, digits and _, starting with a letter."
        )
    if key in _RESERVED:
        raise ConfigError(f"{where} the id is reserved (the arena assigns '{key}' itself).")
    if not isinstance(body, dict):
        raise ConfigError(
            f"{where} expected a mapping with 'description:' and 'any:', found {_kind(body)}."
        )
    _no_unknown(where, body, FIELDS)
    description = body.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(
            f"{where} field 'description' must be text saying what the category means, "
            f"found {_kind(description)}."
        )
    if "any" not in body and "all" not in body:
        raise ConfigError(f"{where} no patterns: give it 'any:' or 'all:'.")
    groups = body.get("all", [])
    if not isinstance(groups, list) or ("all" in body and not groups):
        raise ConfigError(
            f"{where} field 'all' must be a list of groups like [verb, object], "
            f"found {_kind(groups)}."
        )
    return Category(
        id=key,
        description=description.strip(),
        any_of=_alternation(where, "any", body, words) or _NEVER,
        all_of=tuple(_group(f"{where} all: group {i}:", g, words) for i, g in enumerate(groups, 1)),
        unless=_alternation(where, "unless", body, words),
    )


def _alternation(where: str, field: str, body: dict, words: dict[str, str]) -> re.Pattern | None:
    """The patterns of one field as one compiled alternation (None when the field is absent)."""
    if field not in body:
        return None
    texts = _texts(f"{where} {field}:", "pattern", body[field])
    parts = [_pattern(f"{where} {field}: pattern {i}", t, words) for i, t in enumerate(texts, 1)]
    # One word-start check for all the patterns, not one each: measured 3 to 4 times faster.
    return re.compile(_BEFORE + "(?:" + "|".join(parts) + ")")


def _group(where: str, group, words: dict[str, str]) -> tuple[re.Pattern, ...]:
    if not isinstance(group, list):
        raise ConfigError(f"{where} must be a list like [verb, object], found {_kind(group)}.")
    texts = _texts(where, "pattern", group)
    parts = [_pattern(f"{where} pattern {i}", t, words) for i, t in enumerate(texts, 1)]
    return tuple(re.compile(_BEFORE + part) for part in parts)


def _texts(where: str, item: str, found) -> list[str]:
    """A non-empty list of non-empty strings, or a ConfigError saying which item is wrong."""
    if not isinstance(found, list) or not found:
        raise ConfigError(
            f"{where} expected a list of {item}s (lines starting with '- '), found {_kind(found)}."
        )
    for i, text in enumerate(found, start=1):
        if isinstance(text, dict):  # YAML reads "a: b" (a colon and a space) as a mapping
            raise ConfigError(
                f"{where} {item} {i} has ': ' in it, so YAML read a mapping: quote it."
            )
        if not isinstance(text, str):
            raise ConfigError(f"{where} {item} {i} is {_kind(text)}, not text: put it in quotes.")
        if not text.strip():
            raise ConfigError(f"{where} {item} {i} is empty: remove it or write a {item}.")
    return [text.strip() for text in found]


def _pattern(where: str, text: str, words: dict[str, str]) -> str:
    """One pattern with its {word lists} expanded and checked, kept from ending mid-word (the
    caller adds the check that it does not start mid-word)."""

    def expand(ref: re.Match) -> str:
        if ref.group(1) not in words:
            raise ConfigError(
                f"{where} uses {{{ref.group(1)}}}, but 'words:' has no list of that name."
            )
        return words[ref.group(1)]

    part = f"(?:{_lower(_WORD_REF.sub(expand, text))}){_AFTER}"
    if _compile(where, _BEFORE + part).search("") is not None:
        raise ConfigError(f"{where} matches an empty prompt, so it would match every prompt.")
    return part


def _lower(pattern: str) -> str:
    r"""A pattern in lower case with its escapes (\W, \S, \N{...}) as they were: it is matched
    against a lower-cased prompt, which is what makes matching case-insensitive."""
    return _ESCAPE.sub(lambda m: m[0] if m[0].startswith("\\") else m[0].lower(), pattern)


def _compile(where: str, text: str) -> re.Pattern:
    try:
        return re.compile(text)
    except re.error as exc:
        raise ConfigError(
            f"{where} is not a valid regular expression ({exc.msg}): fix it, "
            "or put a backslash before a character meant literally."
        ) from None


def _no_unknown(where: str, found: dict, known: Sequence[str]) -> None:
    for name in found:
        if name not in known:
            raise ConfigError(f"{where} unknown field {name!r} (known fields: {', '.join(known)}).")


def _kind(value) -> str:
    """How YAML read a value, in words."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (yes/no)"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return "text" if value.strip() else "empty text"
    kind = "list" if isinstance(value, list) else "mapping"
    return f"a {kind}" if value else f"an empty {kind}"
