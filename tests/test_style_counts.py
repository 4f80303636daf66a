"""Style counts (arena.style): LMArena's patterns one by one, its conv_metadata layout in and out,
and the command line's style-controlled leaderboard on imported battles (a real SQLite file and
the real PostgreSQL server, the real CLI in-process through main() and as a subprocess)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from arena.cli import main
from arena.style import (
    COUNTS,
    FLAT_FIELDS,
    StyleCounts,
    battle_style,
    conv_metadata,
    count_style,
    flat_conv_metadata,
    parse_conv_metadata,
)

ROOT = Path(__file__).resolve().parents[1]
ZERO = StyleCounts()


def only(**counts) -> StyleCounts:
    """The counts of an answer given tokens=0: zero everywhere but `counts`."""
    return StyleCounts(**counts)


# --- count_style: LMArena's patterns -------------------------------------------------------------


def test_each_header_level_counts_once_and_only_at_its_own_level():
    text = "# a\n## b\n### c\n#### d\n##### e\n###### f\n"
    assert count_style(text, 0) == only(h1=1, h2=1, h3=1, h4=1, h5=1, h6=1)
    assert count_style("### only three\n### and again", 0) == only(h3=2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("####### seven", ZERO),  # ^#{6}\s does not match a 7th '#': no level at all
        ("#tag and #another", ZERO),  # no space after '#': a hashtag, not a header
        ("##no space", ZERO),
        ("  # indented", ZERO),  # a header starts its line
        ("text # not at the start", ZERO),
        ("#\ttab", only(h1=1)),  # any whitespace after the '#'s
        ("#\nnext line", only(h1=1)),  # '#' then the newline: LMArena's \s matches it
        ("a\n# b\nc\n## d", only(h1=1, h2=1)),  # MULTILINE: every line is a start
    ],
)
def test_header_edge_cases(text, expected):
    assert count_style(text, 0) == expected


def test_markdown_inside_code_blocks_is_not_counted():
    code = "```python\n# comment\n## h2\n- item\n* item\n1. item\n**bold** __bold__\n```"
    assert count_style(code, 0) == ZERO
    assert count_style(f"# Title\n{code}\n- after\n**b**", 0) == only(
        h1=1, unordered=1, bold_stars=1
    )


def test_several_code_blocks_each_removed_and_the_text_between_counted():
    text = "```\n# in one\n```\n## between\n- between\n```sh\n- in two\n**x**\n```\n### after"
    assert count_style(text, 0) == only(h2=1, h3=1, unordered=1)
    inline = "x ```# a``` - y ```b```\n- item"  # blocks on one line, then a real list item
    assert count_style(inline, 0) == only(unordered=1)


def test_an_unclosed_fence_removes_nothing():
    assert count_style("```\n# open\n- item", 0) == only(h1=1, unordered=1)


@pytest.mark.parametrize(
    ("text", "ordered"),
    [
        ("1. x", 1),
        ("  12. y", 1),  # indented, two digits
        ("1. a\n2. b\n   3. c\n10.\td", 4),
        ("3.x", 0),  # no whitespace after the dot
        ("1) z", 0),  # only the dot form
        ("step 1. not at the start", 0),
        ("a. b", 0),
        ("\n\n1. after blank lines", 1),  # \s* spans the blank lines: still one item
    ],
)
def test_ordered_list_items(text, ordered):
    assert count_style(text, 0) == only(ordered=ordered)


@pytest.mark.parametrize(
    ("text", "unordered"),
    [
        ("- a", 1),
        ("* b", 1),
        ("+ c", 1),
        ("- a\n  * b\n\t+ c\n    - d", 4),  # indented by spaces and by a tab
        ("-no space", 0),
        ("*emphasis*", 0),
        ("a - b * c + d", 0),  # not at a line's start
        ("* * *", 1),  # a thematic break looks like an item to LMArena's pattern too
    ],
)
def test_unordered_list_items(text, unordered):
    assert count_style(text, 0) == only(unordered=unordered)


@pytest.mark.parametrize(
    ("text", "stars", "underscores"),
    [
        ("**bold**", 1, 0),
        ("__bold__", 0, 1),
        ("**one** and **two** and __three__", 2, 1),
        ("**across\na line**", 0, 0),  # a bold span stays on one line
        ("__across\na line__", 0, 0),
        ("****", 0, 0),  # nothing between the markers
        ("**a*b**", 0, 0),  # no single '*' inside
        ("__a_b__", 0, 0),
        ("*italic* and _italic_", 0, 0),
    ],
)
def test_bold_spans(text, stars, underscores):
    assert count_style(text, 0) == only(bold_stars=stars, bold_underscores=underscores)


def test_a_list_item_with_bold_counts_both():
    assert count_style("- **Name**: value\n1. __x__", 0) == only(
        unordered=1, ordered=1, bold_stars=1, bold_underscores=1
    )


def test_the_models_token_count_is_kept_and_the_fallback_only_replaces_none():
    text = "Hello, world! 42 tokens\n```\ncode here\n```"
    assert count_style(text, 7).tokens == 7
    assert count_style(text, 0).tokens == 0  # a count of 0 is a count, not "unknown"
    # None: \w+ runs and single other non-space characters, over the whole text (code included):
    # Hello , world ! 42 tokens ` ` ` code here ` ` `
    assert count_style(text, None).tokens == 14
    assert count_style(text).tokens == 14
    assert count_style("", None).tokens == 0


def test_no_answer_counts_nothing():
    assert count_style(None) == ZERO
    assert count_style(None, None) == ZERO
    assert count_style(None, 5) == only(tokens=5)


def test_totals_sums_and_stored_columns():
    a = StyleCounts(10, 1, 2, 0, 0, 0, 1, 3, 4, 5, 6)
    b = StyleCounts(5, 0, 0, 1, 0, 0, 0, 0, 1, 0, 2)
    assert a.totals == (10, 4, 7, 11)
    assert a + b == StyleCounts(15, 1, 2, 1, 0, 0, 1, 3, 5, 5, 8)
    assert battle_style([a, b, b]) == a + b + b and battle_style([]) == ZERO
    columns = a.columns("b")
    assert list(columns) == [f"style_{name}_b" for name in COUNTS]
    assert StyleCounts.from_columns(columns, "b") == a
    assert StyleCounts.from_columns({**columns, "style_h3_b": None}, "b") is None


# --- conv_metadata: LMArena's layout ---------------------------------------------------------------

A = StyleCounts(120, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
B = StyleCounts(33, 0, 1, 0, 0, 0, 0, 2, 0, 1, 0)


def test_conv_metadata_has_lmarenas_layout():
    meta = conv_metadata(A, B)
    assert meta == {
        "sum_assistant_a_tokens": 120,
        "sum_assistant_b_tokens": 33,
        "header_count_a": {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6},
        "list_count_a": {"ordered": 7, "unordered": 8},
        "bold_count_a": {"**": 9, "__": 10},
        "header_count_b": {"h1": 0, "h2": 1, "h3": 0, "h4": 0, "h5": 0, "h6": 0},
        "list_count_b": {"ordered": 2, "unordered": 0},
        "bold_count_b": {"**": 1, "__": 0},
    }
    flat = flat_conv_metadata(A, B)
    assert tuple(flat) == FLAT_FIELDS and len(FLAT_FIELDS) == 22
    assert flat["header_count_a.h6"] == 6 and flat["bold_count_b.**"] == 1
    assert flat["list_count_b.ordered"] == 2 and flat["bold_count_a.__"] == 10


@pytest.mark.parametrize(
    "row",
    [
        pytest.param({"conv_metadata": conv_metadata(A, B)}, id="object"),
        pytest.param({"conv_metadata": json.dumps(conv_metadata(A, B))}, id="json-string"),
        pytest.param(flat_conv_metadata(A, B), id="flat"),
        pytest.param(
            {f"conv_metadata.{k}": v for k, v in flat_conv_metadata(A, B).items()},
            id="flat-prefixed",
        ),
        pytest.param(
            {k: str(v) for k, v in flat_conv_metadata(A, B).items()}, id="flat-csv-strings"
        ),
        pytest.param(
            {k: float(v) for k, v in flat_conv_metadata(A, B).items()}, id="flat-whole-floats"
        ),
        pytest.param(
            {"model_a": "x", "winner": "tie", "conv_metadata": None, **flat_conv_metadata(A, B)},
            id="flat-beside-empty-object",
        ),
    ],
)
def test_every_form_parses_back_to_the_same_counts(row):
    assert parse_conv_metadata(row) == (A, B)


def test_lmarenas_other_conv_metadata_keys_are_ignored():
    meta = {**conv_metadata(A, B), "sum_user_tokens": 40, "turns": 2, "context_a_tokens": 99}
    assert parse_conv_metadata({"conv_metadata": meta}) == (A, B)
    flat = {**flat_conv_metadata(A, B), "sum_user_tokens": "40", "turns": "2"}
    assert parse_conv_metadata(flat) == (A, B)


def test_a_plain_integer_is_the_total_kept_under_the_first_key():
    meta = {
        "sum_assistant_a_tokens": 5,
        "sum_assistant_b_tokens": 6,
        "header_count_a": 3,
        "list_count_a": 4,
        "bold_count_a": 2,
        "header_count_b": {"h2": 1},
        "list_count_b": {"unordered": 2},
        "bold_count_b": {"__": 1},
    }
    a, b = parse_conv_metadata({"conv_metadata": meta})
    assert a == StyleCounts(5, h1=3, ordered=4, bold_stars=2)
    assert b == StyleCounts(6, h2=1, unordered=2, bold_underscores=1)
    assert a.totals == (5, 3, 4, 2)
    flat = parse_conv_metadata({"header_count_b": "7", "sum_assistant_a_tokens": "1"})
    assert flat == (StyleCounts(1), StyleCounts(h1=7))


@pytest.mark.parametrize(
    "row",
    [
        {},
        {"model_a": "m1", "model_b": "m2", "winner": "tie"},
        {"conv_metadata": None},
        {"conv_metadata": ""},
        {"conv_metadata": float("nan")},
        {"sum_assistant_a_tokens": "", "header_count_a.h1": None, "bold_count_b.**": math.nan},
    ],
)
def test_no_style_data_is_none(row):
    assert parse_conv_metadata(row) is None


def _with(field: str, value) -> dict:
    meta = conv_metadata(A, B)
    outer, _, inner = field.partition(".")
    if inner:
        meta[outer] = {**meta[outer], inner: value}
    else:
        meta[outer] = value
    return meta


@pytest.mark.parametrize(
    ("meta", "field"),
    [
        (_with("sum_assistant_a_tokens", -1), "sum_assistant_a_tokens"),
        (_with("sum_assistant_b_tokens", 1.5), "sum_assistant_b_tokens"),
        (_with("sum_assistant_a_tokens", "x"), "sum_assistant_a_tokens"),
        (_with("sum_assistant_a_tokens", True), "sum_assistant_a_tokens"),
        (_with("sum_assistant_b_tokens", float("inf")), "sum_assistant_b_tokens"),
        (_with("sum_assistant_a_tokens", 2**31), "sum_assistant_a_tokens"),
        (_with("header_count_a.h7", 1), "header_count_a"),
        (_with("header_count_b.h3", -2), "header_count_b.h3"),
        (_with("list_count_b.ordered", 0.5), "list_count_b.ordered"),
        (_with("list_count_a.nested", 1), "list_count_a"),
        (_with("bold_count_a.**", "2.5"), "bold_count_a.**"),
        (_with("bold_count_b.__", False), "bold_count_b.__"),
        (_with("header_count_a", True), "header_count_a"),
        (_with("list_count_b", [1, 2]), "list_count_b"),
        (_with("bold_count_a", -3), "bold_count_a"),
    ],
)
def test_a_bad_value_is_a_value_error_naming_its_field(meta, field):
    with pytest.raises(ValueError) as info:
        parse_conv_metadata({"conv_metadata": meta})
    assert field in str(info.value)
    if "unknown keys" in str(info.value):
        return  # flat columns with unknown keys: see test_unknown_flat_columns_are_refused
    flat = {}
    for key, value in meta.items():  # the same value as a flat (CSV) column
        if isinstance(value, dict):
            flat.update({f"{key}.{inner}": v for inner, v in value.items()})
        else:
            flat[key] = value
    with pytest.raises(ValueError, match=re.escape(field)):
        parse_conv_metadata(flat)


def test_h7_is_named_as_the_unknown_key():
    with pytest.raises(ValueError, match=r"header_count_a has unknown keys h7"):
        parse_conv_metadata({"conv_metadata": {"header_count_a": {"h1": 1, "h7": 1}}})


@pytest.mark.parametrize(
    "row",
    [
        {"header_count_a.h7": 1},
        {"sum_assistant_a_tokens": 3, "conv_metadata.header_count_a.h7": 1},
        {"sum_assistant_a_tokens": 3, "list_count_b.nested": 2},
    ],
)
def test_unknown_flat_columns_are_refused(row):
    with pytest.raises(ValueError, match="unknown keys"):
        parse_conv_metadata(row)


def test_a_total_and_a_breakdown_of_the_same_group_are_refused_in_either_order():
    with pytest.raises(ValueError, match="header_count_a is given both"):
        parse_conv_metadata({"header_count_a": 3, "conv_metadata.header_count_a.h2": 1})
    with pytest.raises(ValueError, match="header_count_a is given both"):
        parse_conv_metadata({"header_count_a": 3, "header_count_a.h2": 1})


@pytest.mark.parametrize("meta", ["not json", "[1, 2]", "42", [1, 2], 7])
def test_conv_metadata_that_is_no_object_is_a_value_error(meta):
    with pytest.raises(ValueError, match="conv_metadata"):
        parse_conv_metadata({"conv_metadata": meta})


# --- the command line: leaderboard --style-control ------------------------------------------------

HABITS = {"short": 150, "medium": 300, "long": 600, "verbose": 900}  # typical answer lengths
STYLED, UNSTYLED = 1200, 20
FIRST_UNSTYLED = 1700100000  # tstamp of the first vote without style counts (after every other)
STYLED_UNTIL = "2023-11-15T00:00:00"  # 1700006400: after the styled votes, before the rest
NEW_KEYS = {"ci", "style_control", "style_coefficients", "style_reg", "style_battles"}


@pytest.fixture(scope="module")
def votes_file(tmp_path_factory) -> Path:
    """Equally strong models whose battles the longer answer wins (logit 6 * the length feature),
    with conv_metadata; then UNSTYLED votes without it."""
    rng = np.random.default_rng(7)
    models = list(HABITS)
    rows = []
    for i in range(STYLED):
        a, b = rng.choice(len(models), 2, replace=False)
        counts = []
        for m in (models[a], models[b]):
            tokens = int(HABITS[m] * rng.lognormal(0, 0.5))
            extra = rng.integers(0, 4, 3)
            counts.append(StyleCounts(tokens, h1=extra[0], ordered=extra[1], bold_stars=extra[2]))
        ta, tb = counts[0].tokens, counts[1].tokens
        p_left = 1 / (1 + math.exp(-6 * (ta - tb) / (ta + tb + 1)))
        rows.append({
            "model_a": models[a], "model_b": models[b],
            "winner": "model_a" if rng.random() < p_left else "model_b",
            "tstamp": 1700000000 + i, "conv_metadata": conv_metadata(*counts),
        })  # fmt: skip
    for i in range(UNSTYLED):
        rows.append(
            {"model_a": "short", "model_b": "long", "winner": "tie", "tstamp": FIRST_UNSTYLED + i}
        )
    path = tmp_path_factory.mktemp("style_votes") / "votes.jsonl"
    path.write_text("".join(json.dumps(r, default=int) + "\n" for r in rows))
    return path


def cli(monkeypatch, capsys, db_url: str, *args: str) -> tuple[int, str, str]:
    """arena.cli.main in this process, on db_url: (exit status, stdout, stderr)."""
    monkeypatch.setenv("ARENA_DB_URL", db_url)
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def imported(monkeypatch, capsys, db_url: str, path: Path) -> None:
    rc, out, err = cli(monkeypatch, capsys, db_url, "import", str(path))
    assert rc == 0 and out.startswith(f"imported {STYLED + UNSTYLED} votes"), err


def board(monkeypatch, capsys, db_url: str, *args: str) -> dict:
    rc, out, err = cli(monkeypatch, capsys, db_url, "leaderboard", "--json", *args)
    assert rc == 0, err
    return json.loads(out)


def check_ranks(models: list[dict], symmetric: bool = True) -> None:
    """Sorted by rating; rank = 1 + the models whose interval lies wholly above this one's;
    `symmetric` (sandwich) intervals are centred on the rating."""
    ratings = [m["rating"] for m in models]
    assert ratings == sorted(ratings, reverse=True)
    for m in models:
        above = sum(o["ci_lower"] > m["ci_upper"] for o in models if o is not m)
        assert m["rank"] == 1 + above, m
        if symmetric:
            centre = (m["ci_lower"] + m["ci_upper"]) / 2
            assert m["ci_lower"] < m["ci_upper"] and centre == pytest.approx(m["rating"])


def test_style_controlled_json_finds_the_length_effect(monkeypatch, capsys, db_url, votes_file):
    imported(monkeypatch, capsys, db_url, votes_file)
    out = board(monkeypatch, capsys, db_url, "--style-control")
    assert out["style_control"] is True and out["ci"] == "sandwich"
    assert out["style_reg"] == 0.5 and out["style_battles"] == STYLED
    coefficients = out["style_coefficients"]
    assert set(coefficients) == {"length", "headers", "lists", "bold"}
    length = coefficients["length"]
    assert length["coefficient"] > 1 and 0 < length["ci_lower"] < length["coefficient"]
    assert length["ci_upper"] > length["coefficient"]
    for name in ("headers", "lists", "bold"):  # no effect in the simulation: intervals hold 0
        c = coefficients[name]
        assert c["ci_lower"] < 0 < c["ci_upper"], (name, c)
        assert abs(c["coefficient"]) < length["coefficient"] / 5
    models = out["models"]
    assert {m["model"] for m in models} == set(HABITS)
    assert sum(m["votes"] for m in models) == 2 * STYLED  # the unstyled votes are left out
    check_ranks(models)
    raw = {m["model"]: m["rating_raw"] for m in models}
    assert all(isinstance(v, float) and math.isfinite(v) for v in raw.values())
    # raw ratings follow the lengths; controlling for length pulls equal models together
    assert sorted(raw, key=raw.get) == ["short", "medium", "long", "verbose"]
    spread = max(m["rating"] for m in models) - min(m["rating"] for m in models)
    assert spread < (max(raw.values()) - min(raw.values())) / 4
    warning = f"{UNSTYLED} of {STYLED + UNSTYLED} votes carry no style counts"
    assert any(warning in w for w in out["warnings"]), out["warnings"]
    # rating_raw: the plain fit of the same (styled) votes, which --until selects here
    plain = board(monkeypatch, capsys, db_url, "--until", STYLED_UNTIL, "--bootstrap", "0")
    assert plain["votes"] == STYLED
    for m in plain["models"]:
        assert m["rating"] == pytest.approx(raw[m["model"]], abs=1e-6)


def test_plain_json_has_none_of_the_new_keys(monkeypatch, capsys, tmp_path, votes_file):
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    imported(monkeypatch, capsys, url, votes_file)
    out = board(monkeypatch, capsys, url, "--bootstrap", "5")
    assert not NEW_KEYS & set(out), set(out)
    assert all("rating_raw" not in m for m in out["models"])
    assert not any("style" in w for w in out["warnings"])
    assert out["votes"] == STYLED + UNSTYLED
    check_ranks(out["models"], symmetric=False)
    sandwich = board(monkeypatch, capsys, url, "--ci", "sandwich")
    assert sandwich["ci"] == "sandwich"
    assert not (NEW_KEYS - {"ci"}) & set(sandwich)
    assert all("rating_raw" not in m for m in sandwich["models"])
    check_ranks(sandwich["models"])
    boot = board(
        monkeypatch, capsys, url, "--style-control", "--ci", "bootstrap", "--bootstrap", "20"
    )
    assert boot["style_control"] is True and "ci" not in boot  # bootstrap is the old default
    assert boot["bootstrap_rounds"] == 20
    assert boot["style_coefficients"]["length"]["ci_lower"] > 0
    check_ranks(boot["models"], symmetric=False)


def test_style_reg_changes_the_fit(monkeypatch, capsys, tmp_path, votes_file):
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    imported(monkeypatch, capsys, url, votes_file)
    default = board(monkeypatch, capsys, url, "--style-control")
    strong = board(monkeypatch, capsys, url, "--style-control", "--style-reg", "5000")
    assert strong["style_reg"] == 5000
    weak, heavy = (b["style_coefficients"]["length"]["coefficient"] for b in (default, strong))
    assert 0 < heavy < weak  # a larger penalty shrinks the coefficient
    zero = board(monkeypatch, capsys, url, "--style-control", "--style-reg", "0")
    assert zero["style_reg"] == 0
    assert zero["style_coefficients"]["length"]["coefficient"] >= weak


def arena(db_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARENA_DB_URL": db_url, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "arena", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "-0.5"])
def test_a_bad_style_reg_is_one_line_and_exit_status_1(monkeypatch, capsys, tmp_path, value):
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    rc, out, err = cli(
        monkeypatch, capsys, url, "leaderboard", "--style-control", "--style-reg", value
    )
    assert rc == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --style-reg"), err
    assert "must be a number >= 0" in lines[0]


def test_a_bad_style_reg_exits_1_from_the_real_command(tmp_path):
    done = arena(f"sqlite:///{tmp_path / 'bad.db'}", "leaderboard", "--style-reg", "-1")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --style-reg"), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_text_table_shows_raw_ratings_and_changes(monkeypatch, capsys, tmp_path, votes_file):
    url = f"sqlite:///{tmp_path / 'text.db'}"
    imported(monkeypatch, capsys, url, votes_file)
    rc, text, err = cli(monkeypatch, capsys, url, "leaderboard", "--style-control")
    assert rc == 0, err
    lines = text.splitlines()
    assert lines[0].startswith(f"{STYLED:,} votes (anonymous battles only) among 4 models")
    assert lines[1].startswith(f"style controlled over {STYLED:,} battles (penalty 0.5)")
    assert "length +" in lines[1]
    header = lines[3].split()
    assert header[:7] == ["rank", "model", "rating", "95%", "CI", "rating_raw", "change"]
    json_models = {
        m["model"]: m for m in board(monkeypatch, capsys, url, "--style-control")["models"]
    }
    rows = [line.split() for line in lines[4:8]]
    assert {r[1] for r in rows} == set(HABITS)
    for rank, model, rating, _ci, raw, change, *_ in rows:
        m = json_models[model]
        assert int(rank) == m["rank"]
        assert float(rating) == pytest.approx(m["rating"], abs=0.051)
        assert float(raw) == pytest.approx(m["rating_raw"], abs=0.051)
        assert change[0] in "+-"
        assert float(change) == pytest.approx(m["rating"] - m["rating_raw"], abs=0.051)
    assert any(
        line.startswith(f"warning: {UNSTYLED} of {STYLED + UNSTYLED} votes carry no style counts")
        for line in lines
    )
    rc, plain, err = cli(monkeypatch, capsys, url, "leaderboard", "--bootstrap", "5")
    assert rc == 0, err
    assert "rating_raw" not in plain and "change" not in plain
    assert "style controlled" not in plain and "style counts" not in plain


def test_style_control_without_any_style_data_says_why(monkeypatch, capsys, tmp_path):
    path = tmp_path / "bare.jsonl"
    path.write_text(json.dumps({"model_a": "m1", "model_b": "m2", "winner": "model_a"}) + "\n")
    url = f"sqlite:///{tmp_path / 'bare.db'}"
    assert cli(monkeypatch, capsys, url, "import", str(path))[0] == 0
    out = board(monkeypatch, capsys, url, "--style-control")
    assert any("1 of 1 votes carry no style counts" in w for w in out["warnings"])
    rc, text, _ = cli(monkeypatch, capsys, url, "leaderboard", "--style-control")
    assert rc == 0
    assert "carry no style counts" in text
