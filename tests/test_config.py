"""Settings: every value is checked at start-up, from the environment and from code alike; a bad
one is one line naming the variable, the value and what is expected (the page shows it, the
command line prints it and exits 1)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from PIL import Image

from arena.config import LIMITS, PILLOW_MAX_PIXELS, Settings, describe, env_name
from arena.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
NUMERIC = [f.name for f in fields(Settings) if type(f.default) in (int, float)]
NO_LIMIT_AT_ZERO = {*LIMITS, "dedup_cap"}  # README: 0 = no limit (no cap)
ONE_LINE = r"Setting ARENA_[A-Z_]+=\S+ is invalid: expected [^\n]+\.$"


def test_every_numeric_setting_has_a_range():
    assert set(NUMERIC) == {
        "max_upload_mb", "max_pixels", "max_image_side", "max_prompt_chars", "max_turns",
        "hub_timeout_s", "generation_timeout_s", *LIMITS, "min_category_votes", "dedup_cap",
    }  # fmt: skip
    for f in fields(Settings):
        assert (f.metadata["range"] is not None) == (f.name in NUMERIC), f.name


def test_settings_from_environment():
    s = Settings.from_env(
        {"ARENA_MAX_TURNS": "3", "ARENA_DB_AUTO_UPGRADE": "no", "ARENA_MODELS": "x.yaml"}
    )
    assert (s.max_turns, s.db_auto_upgrade, s.models) == (3, False, "x.yaml")
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({"ARENA_MAX_TURNS": ""}).max_turns == 5  # empty = unset


@pytest.mark.parametrize("field", NUMERIC)
@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "-inf", "1e999", "abc"])
def test_bad_numbers_from_the_environment(field, raw):
    name = env_name(field)
    if raw == "0" and field in NO_LIMIT_AT_ZERO:
        assert getattr(Settings.from_env({name: raw}), field) == 0
        return
    with pytest.raises(ConfigError) as error:
        Settings.from_env({name: raw})
    message = str(error.value)
    assert message.startswith(f"Setting {name}={raw!r} is invalid: expected "), message
    assert re.fullmatch(ONE_LINE, message), message


@pytest.mark.parametrize("field", NUMERIC)
@pytest.mark.parametrize(
    "value", [0, -1, math.nan, math.inf, -math.inf, 1e999, "abc", "10", True, None]
)
def test_bad_numbers_in_code(field, value):
    if value == 0 and field in NO_LIMIT_AT_ZERO and not isinstance(value, bool):
        assert getattr(Settings(**{field: value}), field) == 0
        return
    with pytest.raises(ConfigError) as error:
        Settings(**{field: value})
    message = str(error.value)
    assert message.startswith(f"Setting {env_name(field)}={value!r} is invalid: expected "), message
    assert re.fullmatch(ONE_LINE, message), message


@pytest.mark.parametrize("field", [f for f in NUMERIC if isinstance(getattr(Settings(), f), float)])
def test_an_int_too_big_for_a_float_is_refused_not_an_overflow(field):
    with pytest.raises(ConfigError, match=f"Setting {env_name(field)}=1000"):
        Settings(**{field: 10**400})


def test_the_issue_message():
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"ARENA_MAX_UPLOAD_MB": "0"})
    assert str(error.value) == (
        "Setting ARENA_MAX_UPLOAD_MB='0' is invalid: expected a number above 0 and at most 2048"
        " (megabytes)."
    )


# (setting, lowest allowed, highest allowed or None, just below, just above or None)
EDGES = [
    ("max_upload_mb", "0.001", "2048", "0", "2048.5"),
    ("max_pixels", "4096", str(PILLOW_MAX_PIXELS), "4095", str(PILLOW_MAX_PIXELS + 1)),
    ("max_image_side", "64", "100000", "63", None),
    ("max_prompt_chars", "1", "1000000", "0", None),
    ("max_turns", "1", "1000", "0", None),
    ("hub_timeout_s", "0.1", "3600", "0", "3601"),
    ("generation_timeout_s", "0.5", "86400", "0", "86401"),
    ("battles_per_minute", "0", "1000000", "-1", "1000001"),
    ("votes_per_hour", "1", "1000000", "-1", "1000001"),
]


@pytest.mark.parametrize("field,low,high,below,above", EDGES)
def test_range_edges(field, low, high, below, above):
    name = env_name(field)
    kind = type(getattr(Settings(), field))
    for ok in (low, high):
        assert getattr(Settings.from_env({name: ok}), field) == kind(ok)
    for bad in (below, above):
        if bad is not None:
            with pytest.raises(ConfigError, match=re.escape(f"{name}={bad!r} is invalid")):
                Settings.from_env({name: bad})


@pytest.mark.parametrize("raw", ["1.5", "5.0", "1_000x", " "])
def test_whole_numbers_only(raw):
    with pytest.raises(ConfigError, match="expected a whole number of at least 1"):
        Settings.from_env({"ARENA_MAX_TURNS": raw})


def test_ints_for_a_float_setting_become_floats():
    s = Settings(max_upload_mb=3, hub_timeout_s=2)
    assert (s.max_upload_mb, s.hub_timeout_s) == (3.0, 2.0)
    assert isinstance(s.max_upload_mb, float)


@pytest.mark.parametrize(
    "env,message",
    [
        ({"ARENA_MAX_TURNS": "many"}, "ARENA_MAX_TURNS='many' is invalid: expected a whole number"),
        ({"ARENA_DB_AUTO_UPGRADE": "maybe"}, "expected true or false"),
        ({"ARENA_MAX_UPLOAD_MB": "-1"}, "expected a number above 0"),
        ({"ARENA_DB_URL": "   "}, "ARENA_DB_URL='   ' is invalid: expected a non-empty text"),
        ({"ARENA_VOTES_PER_HOUR": "-1"}, r"or 0 for no limit \(votes per hour\)"),
    ],
)
def test_bad_settings(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "kwargs",
    [{"db_auto_upgrade": "yes"}, {"db_auto_upgrade": 1}, {"db_url": ""}, {"models": None}],
)
def test_bad_text_and_flags_in_code(kwargs):
    with pytest.raises(ConfigError, match=r"^Setting ARENA_\w+=.* is invalid: expected "):
        Settings(**kwargs)


def test_a_path_is_text():
    assert Settings(models=Path("reg/models.yaml")).models == "reg/models.yaml"


def test_pillow_limit_is_pillows():
    assert PILLOW_MAX_PIXELS == Image.MAX_IMAGE_PIXELS


def test_defaults_are_allowed_and_readme_lists_every_setting():
    for f in fields(Settings):
        if f.metadata["range"] is not None:
            assert f.metadata["range"].allows(f.default), f.name
    readme = (ROOT / "README.md").read_text()
    for name, default, _help in describe():
        row = re.search(rf"^\| `{name}` \| (.+?) \|", readme, re.MULTILINE)
        assert row, f"README's settings table lacks {name}"
        assert row.group(1).strip("`") == {"True": "true", "False": "false"}.get(
            default, default
        ), name


def cli(*args, env):
    """python -m arena in a subprocess, with only the given ARENA_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
    return subprocess.run(
        [sys.executable, "-m", "arena", *args],
        cwd=ROOT,
        env={**clean, "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["leaderboard"],
        ["db", "current"],
        ["check-models"],
        ["ask", "--model", "m", "--image", "x.png", "--prompt", "p"],
    ],
    ids=lambda args: args[0],
)
def test_a_bad_setting_is_one_line_and_exit_1_on_the_command_line(args, tmp_path):
    out = cli(*args, env={"ARENA_MAX_TURNS": "0", "ARENA_DB_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert out.returncode == 1, out
    assert out.stderr.splitlines() == [
        "error: Setting ARENA_MAX_TURNS='0' is invalid: expected a whole number of at least 1"
        " (prompts per battle)."
    ], out.stderr
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened


def test_the_settings_command_prints_the_table_even_with_a_bad_setting():
    out = cli("settings", env={"ARENA_MAX_TURNS": "0"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [name for name, _, _ in describe()]
    upload = next(line for line in lines if line.startswith("ARENA_MAX_UPLOAD_MB"))
    assert "above 0, at most 2048" in upload
    limit = next(line for line in lines if line.startswith("ARENA_VOTES_PER_HOUR"))
    assert "0 = no limit" in limit


@pytest.mark.parametrize(
    ("name", "value"), [("ARENA_DEDUP_RULE", "often"), ("ARENA_PAIR_SAMPLING", "smart")]
)
def test_settings_with_choices_refuse_anything_else_in_one_line(name, value):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({name: value})
    assert re.fullmatch(ONE_LINE, str(error.value)) and "expected one of" in str(error.value)
