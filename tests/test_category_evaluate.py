"""Scoring category rules against labelled prompts: the counts behind precision, recall and F1,
the macro over the eight task categories, and reading a labelled file."""

from __future__ import annotations

import json

import pytest

from arena.categories import TASKS
from arena.categories.evaluate import Labelled, format_table, read_labelled, scores
from arena.categories.rules import load_rules
from arena.errors import InputError

RULES = """
categories:
  ocr:
    description: reading text
    any: [read]
  counting:
    description: counting
    any: [how many]
  pets:
    description: an extra category
    any: [dog]
"""


@pytest.fixture()
def rules(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return load_rules(path)


ROWS = [
    Labelled("read this", ("ocr",), "tune"),  # ocr tp
    Labelled("read how many", ("ocr",), "tune"),  # ocr tp, counting fp
    Labelled("how many", ("ocr", "counting"), "tune"),  # ocr fn, counting tp
    Labelled("hello", (), "tune"),  # other tp
    Labelled("read it", (), "tune"),  # ocr fp, other fn
    Labelled("a dog", ("counting",), "tune"),  # counting fn, pets fp, other fp
]


def test_counts_precision_recall_and_f1_per_category(rules):
    result = scores(rules, ROWS)
    ocr, counting, other = result.get("ocr"), result.get("counting"), result.get("other")
    assert (ocr.tp, ocr.fp, ocr.fn, ocr.support) == (2, 1, 1, 3)
    assert ocr.precision == pytest.approx(2 / 3) and ocr.recall == pytest.approx(2 / 3)
    assert ocr.f1 == pytest.approx(2 / 3)
    assert (counting.tp, counting.fp, counting.fn) == (1, 1, 1)
    assert (other.tp, other.fp, other.fn) == (1, 1, 1)  # "a dog": only an extra category
    assert result.get("pets").fp == 1


def test_macro_f1_is_over_the_eight_task_categories_only(rules):
    result = scores(rules, ROWS)
    assert [s.category for s in result.rows] == [*TASKS, "pets", "other"]
    expected = (result.get("ocr").f1 + result.get("counting").f1) / len(TASKS)
    assert result.macro_f1 == pytest.approx(expected)


def test_a_category_never_assigned_scores_zero_not_an_error(rules):
    never = scores(rules, [Labelled("look", ("charts",), "tune")]).get("charts")
    assert (never.precision, never.recall, never.f1, never.support) == (0.0, 0.0, 0.0, 1)


def test_the_table_has_one_fixed_width_line_per_category_and_the_macro(rules):
    table = format_table(scores(rules, ROWS))
    lines = table.splitlines()
    assert lines[0].split() == ["category", "precision", "recall", "f1", "support"]
    assert lines[2].startswith("ocr") and lines[2].split()[1:] == ["0.667", "0.667", "0.667", "3"]
    assert "other" in lines[-3] and "(not in macro)" in lines[-3]
    assert lines[-2].startswith("macro-F1 over the 8 task categories:")
    assert len({len(line) for line in lines[1:9]}) == 1


def test_reading_a_labelled_file_keeps_every_row_or_one_split(tmp_path):
    path = tmp_path / "labels.jsonl"
    rows = [
        {"prompt": "read it", "categories": ["ocr"], "split": "tune"},
        {"prompt": "hi", "categories": [], "split": "heldout"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    assert read_labelled(path) == [
        Labelled("read it", ("ocr",), "tune"),
        Labelled("hi", (), "heldout"),
    ]
    assert [r.prompt for r in read_labelled(path, split="heldout")] == ["hi"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ("[1, 2]", "line 2: expected an object"),
        ('{"prompt": 3, "categories": []}', "line 2: field 'prompt'"),
        ('{"prompt": "x", "categories": "ocr"}', "line 2: field 'categories'"),
    ],
)
def test_a_broken_labelled_line_is_one_input_error_naming_the_line(tmp_path, line, message):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"prompt": "ok", "categories": []}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=message) as caught:
        read_labelled(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
