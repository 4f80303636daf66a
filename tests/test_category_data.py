"""Sanity checks over the labelled prompt-category evaluation set (tests/data/category_prompts.jsonl):
well-formed lines, known labels, no duplicate prompts, and enough positives in each split."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from arena.categories import TASKS

DATA = Path(__file__).resolve().parent / "data" / "category_prompts.jsonl"
CATEGORIES = TASKS  # the definitions the prompts were labelled by
SPLITS = ("tune", "heldout")
MIN_PER_CATEGORY_PER_SPLIT = 10
MIN_TOTAL = 150


def load_rows() -> list[dict]:
    rows = []
    for lineno, line in enumerate(DATA.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            pytest.fail(f"line {lineno}: not valid JSON: {exc}")
        assert isinstance(row, dict), f"line {lineno}: not a JSON object"
        row["_line"] = lineno
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return load_rows()


def test_every_line_is_a_well_formed_object(rows):
    for row in rows:
        line = row["_line"]
        assert set(row) == {"prompt", "categories", "split", "_line"}, f"line {line}: keys"
        assert isinstance(row["prompt"], str) and row["prompt"].strip(), f"line {line}: prompt"
        assert isinstance(row["categories"], list), f"line {line}: categories must be a list"


def test_categories_are_known_and_not_repeated(rows):
    for row in rows:
        cats = row["categories"]
        unknown = [c for c in cats if c not in CATEGORIES]
        assert not unknown, f"line {row['_line']}: unknown categories {unknown}"
        assert len(set(cats)) == len(cats), f"line {row['_line']}: repeated category"


def test_split_values_are_valid(rows):
    for row in rows:
        assert row["split"] in SPLITS, f"line {row['_line']}: split {row['split']!r}"


def test_no_duplicate_prompts(rows):
    seen: dict[str, int] = {}
    for row in rows:
        key = re.sub(r"\s+", " ", row["prompt"].strip()).casefold()
        assert key not in seen, (
            f"line {row['_line']} duplicates line {seen[key]}: {row['prompt']!r}"
        )
        seen[key] = row["_line"]


def test_enough_prompts(rows):
    assert len(rows) >= MIN_TOTAL


@pytest.mark.parametrize("split", SPLITS)
def test_each_category_has_positives_in_each_split(rows, split):
    counts = Counter(c for row in rows if row["split"] == split for c in row["categories"])
    short = {c: counts[c] for c in CATEGORIES if counts[c] < MIN_PER_CATEGORY_PER_SPLIT}
    assert not short, f"{split}: categories with < {MIN_PER_CATEGORY_PER_SPLIT} positives: {short}"
    others = sum(1 for row in rows if row["split"] == split and not row["categories"])
    assert others >= MIN_PER_CATEGORY_PER_SPLIT, f"{split}: only {others} `other` prompts"
