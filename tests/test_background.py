"""arena.background: results computed in a thread, the latest one served at once."""

import threading

from arena.background import BackgroundResults


def test_first_ask_starts_the_computation_and_returns_at_once():
    results, gate, calls = BackgroundResults(), threading.Event(), []

    def slow():
        calls.append(1)
        gate.wait(10)
        return "board v1"

    first = results.latest("k", 1, slow)
    assert first.result is None and first.running
    again = results.latest("k", 1, slow)  # still running: no second computation
    assert again.result is None and again.running and len(calls) == 1
    gate.set()
    assert results.wait("k", 10)
    done = results.latest("k", 1, slow)
    assert done.result.value == "board v1" and done.result.version == 1 and not done.running
    assert len(calls) == 1 and done.result.seconds >= 0


def test_a_new_version_recomputes_while_the_old_result_is_served():
    results, gate = BackgroundResults(), threading.Event()
    results.latest("k", 1, lambda: "v1")
    results.wait("k", 10)

    def newer():
        gate.wait(10)
        return "v2"

    stale = results.latest("k", 2, newer)
    assert stale.result.value == "v1" and stale.running  # the old board meanwhile
    gate.set()
    results.wait("k", 10)
    assert results.latest("k", 2, newer).result.value == "v2"


def test_a_failure_is_one_line_and_retried_on_the_next_ask():
    results, attempts = BackgroundResults(), []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("database is locked\nTraceback details")
        return "ok"

    results.latest("k", 1, flaky)
    results.wait("k", 10)
    failed = results.latest("k", 1, flaky)  # starts the retry
    assert failed.error == "database is locked" and failed.result is None
    results.wait("k", 10)
    assert results.latest("k", 1, flaky).result.value == "ok" and len(attempts) == 2


def test_keys_are_independent_and_old_ones_are_forgotten():
    results = BackgroundResults(max_keys=2)
    for key in ("a", "b", "c"):
        results.latest(key, 1, lambda key=key: key.upper())
        results.wait(key, 10)
    assert results.latest("c", 1, lambda: "C").result.value == "C"
    assert results.latest("b", 1, lambda: "B").result.value == "B"
    assert results.latest("a", 1, lambda: "A").result is None  # forgotten, recomputing
    results.wait("a", 10)
