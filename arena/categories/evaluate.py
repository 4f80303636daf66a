"""How well a set of category rules agrees with labelled prompts: precision, recall and F1
per category, and the macro-F1 over the eight task categories.

The labelled file is JSON lines {"prompt", "categories", "split"} (tests/data/README.md); an
empty list of categories means `other`. `other` is scored too, as an extra row, but it is not in
the macro-F1: it is the complement of the eight, so it would count their mistakes twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from arena.categories import OTHER, TASKS
from arena.categories.rules import Rules
from arena.errors import InputError


@dataclass(frozen=True)
class Labelled:
    prompt: str
    categories: tuple[str, ...]  # () means other
    split: str


@dataclass(frozen=True)
class Score:
    category: str
    tp: int
    fp: int
    fn: int

    @property
    def support(self) -> int:
        """How many prompts carry this label."""
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        """0.0 when the rules never assign the category (no answer is not a right answer)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.support if self.support else 0.0

    @property
    def f1(self) -> float:
        both = self.precision + self.recall
        return 2 * self.precision * self.recall / both if both else 0.0


@dataclass(frozen=True)
class Scores:
    rows: tuple[Score, ...]  # the eight task categories, then any others, then `other`
    prompts: int

    @property
    def macro_f1(self) -> float:
        """The mean F1 over the eight task categories (`other` and extra categories left out)."""
        return sum(s.f1 for s in self.rows if s.category in TASKS) / len(TASKS)

    def get(self, category: str) -> Score:
        return next(s for s in self.rows if s.category == category)


def read_labelled(path: str | Path, split: str | None = None) -> list[Labelled]:
    """The labelled prompts of a JSON-lines file (only those of `split` when given)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the labelled prompts: {exc.strerror}.") from None
    rows = [_row(path, n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    return [r for r in rows if split is None or r.split == split]


def _row(path: Path, lineno: int, line: str) -> Labelled:
    where = f"{path}: line {lineno}:"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where} not valid JSON ({exc.msg}).") from None
    if not isinstance(data, dict):
        raise InputError(f"{where} expected an object with prompt, categories and split.")
    prompt, categories = data.get("prompt"), data.get("categories", [])
    if not isinstance(prompt, str):
        raise InputError(f"{where} field 'prompt' must be text.")
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise InputError(f"{where} field 'categories' must be a list of category ids.")
    return Labelled(prompt, tuple(categories), str(data.get("split", "")))


def scores(rules: Rules, rows: Sequence[Labelled]) -> Scores:
    """Each row is one battle of one prompt: the rules' categories against its labels."""
    extra = {c for c in rules.categories if c not in TASKS}
    extra |= {c for r in rows for c in r.categories if c not in TASKS and c != OTHER}
    names = (*TASKS, *sorted(extra), OTHER)
    counts = {name: [0, 0, 0] for name in names}
    for row in rows:
        found = _with_other(set(rules.classify([row.prompt])))
        wanted = _with_other(set(row.categories))
        for name in names:
            tally = counts[name]
            if name in found and name in wanted:
                tally[0] += 1
            elif name in found:
                tally[1] += 1
            elif name in wanted:
                tally[2] += 1
    return Scores(tuple(Score(n, *counts[n]) for n in names), len(rows))


def _with_other(categories: set[str]) -> set[str]:
    """`other` added when none of the eight task categories is there, as on the boards."""
    return categories | {OTHER} if categories.isdisjoint(TASKS) else categories


def format_table(result: Scores) -> str:
    """A small fixed-width table: one row per category, then the macro-F1."""
    lines = [f"{'category':<14}{'precision':>10}{'recall':>8}{'f1':>7}{'support':>9}"]
    for s in result.rows:
        note = "" if s.category in TASKS else "  (not in macro)"
        lines.append(
            f"{s.category:<14}{s.precision:>10.3f}{s.recall:>8.3f}{s.f1:>7.3f}{s.support:>9}{note}"
        )
    lines.append(f"macro-F1 over the {len(TASKS)} task categories: {result.macro_f1:.3f}")
    lines.append(f"({result.prompts} prompts)")
    return "\n".join(lines)
