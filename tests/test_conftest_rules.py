"""The rule every test with a requirement follows: skip where it is missing, fail under CI=true."""

from __future__ import annotations

import pytest

from tests.conftest import skip_or_fail


def test_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no widget here"):
        skip_or_fail("no widget here")


@pytest.mark.parametrize("value", ["false", "1", ""])
def test_only_ci_true_turns_a_skip_into_a_failure(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception):
        skip_or_fail("no widget here")


def test_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no widget here .*CI=true") as failed:
        skip_or_fail("no widget here")
    assert failed.value.pytrace is False  # the reason alone, not this helper's traceback


def test_module_level_skip_is_allowed(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        skip_or_fail("no browser", allow_module_level=True)
    assert skipped.value.allow_module_level


def test_no_test_skips_on_its_own():
    """Every skip for a missing requirement goes through skip_or_fail; the one direct skip left
    is not a missing requirement (CUDA present, so the no-CUDA error cannot be provoked)."""
    from pathlib import Path

    direct = set()
    for path in Path(__file__).parent.glob("*.py"):
        if path.name == Path(__file__).name:
            continue
        direct |= {
            (path.name, line.strip())
            for line in path.read_text().splitlines()
            if "pytest.skip(" in line and "skip_or_fail" not in line
        }
    assert direct == {
        ("conftest.py", "pytest.skip(reason, allow_module_level=allow_module_level)"),
        ("test_demo_models.py", 'pytest.skip("CUDA is available here")'),
    }
