"""Results that take too long for a page open, computed in a background thread and kept.

A page asks `latest(key, version, compute)`: it gets the newest finished result for `key` at
once (or None before the first one is done), and when that result was computed for an older
`version` (the data changed since) one thread recomputes it. At most one computation per key runs
at a time; a failure is kept as one line and retried on the next ask. Shared by every session of
a server process, so it holds no per-request state: only results and their versions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Finished:
    """One computed result, with the data version it saw and when it finished."""

    value: Any
    version: Hashable
    computed_at: datetime
    seconds: float


@dataclass(frozen=True)
class Latest:
    """What a page shows: the newest result (or None), whether a newer one is being computed,
    and the last failure's message (or None)."""

    result: Finished | None
    running: bool
    error: str | None


class BackgroundResults:
    def __init__(self, max_keys: int = 32):
        self._lock = threading.Lock()
        self._results: dict[Hashable, Finished] = {}
        self._running: dict[Hashable, threading.Thread] = {}
        self._errors: dict[Hashable, str] = {}
        self._max_keys = max_keys

    def latest(self, key: Hashable, version: Hashable, compute: Callable[[], Any]) -> Latest:
        """The newest result for `key`; starts a recomputation when it is missing or older than
        `version` and none runs yet. Never waits for a computation."""
        with self._lock:
            result = self._results.get(key)
            stale = result is None or result.version != version
            if stale and key not in self._running:
                thread = threading.Thread(
                    target=self._run,
                    args=(key, version, compute),
                    name="arena-background",
                    daemon=True,
                )
                self._running[key] = thread
                thread.start()
            return Latest(result, key in self._running, self._errors.get(key))

    def wait(self, key: Hashable, timeout: float | None = None) -> bool:
        """Wait for the computation of `key` (tests, command-line use); True when none runs."""
        with self._lock:
            thread = self._running.get(key)
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            return key not in self._running

    def _run(self, key: Hashable, version: Hashable, compute: Callable[[], Any]) -> None:
        started = time.perf_counter()
        try:
            value = compute()
        except Exception as exc:  # kept as one line for the page; retried on the next ask
            with self._lock:
                self._errors[key] = (
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                )
                del self._running[key]
            return
        finished = Finished(value, version, datetime.now(UTC), time.perf_counter() - started)
        with self._lock:
            self._results[key] = finished
            self._errors.pop(key, None)
            del self._running[key]
            while len(self._results) > self._max_keys:  # forget the oldest filters first
                oldest = min(self._results, key=lambda k: self._results[k].computed_at)
                del self._results[oldest]
