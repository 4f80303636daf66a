"""What a backend says about its model: whether it answers now, and the figures behind that.

A leaf module (no torch, no Streamlit, no client library): the backends build these, the
models page and the battle page show them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class State(StrEnum):
    READY = "ready"  # answers now
    LOADING = "loading"  # its worker is starting, downloading or loading it
    NOT_LOADED = "not loaded"  # loads on its first battle (or "Load now")
    ERROR = "error"  # its last load failed, or its endpoint cannot be reached: last_error says why


@dataclass(frozen=True)
class Download:
    """A model's first download from the hub: bytes fetched so far, of `total` (None: unknown)."""

    done: int
    total: int | None = None

    @property
    def fraction(self) -> float | None:
        """From 0 to 1; None while the total is unknown."""
        if not self.total:
            return None
        return min(1.0, max(0.0, self.done / self.total))


@dataclass(frozen=True)
class Source:
    """Where a model comes from: a hub id (in the local Hugging Face cache or not), a local
    directory, or an endpoint; with its size on this machine where there is one."""

    kind: str  # "hub", "local directory" or "endpoint"
    location: str  # hub id (and @revision), the directory, or the endpoint's base_url
    cached: bool | None = None  # a hub model: whether its files are in the local cache
    size_bytes: int | None = None


@dataclass(frozen=True)
class ModelStatus:
    state: State
    last_error: str | None = None  # the last load or answer that failed, one line
    load_seconds: float | None = None  # from starting its worker to ready
    pid: int | None = None  # its worker process, while it runs
    rss_bytes: int | None = None  # that process's resident memory, where it can be read
    reachable: bool | None = None  # an endpoint: whether it answered at all (None: no endpoint)
    download: Download | None = None  # while its first download runs

    @property
    def ready(self) -> bool:
        return self.state is State.READY


def rss_bytes(pid: int | None) -> int | None:
    """Resident memory of a process from /proc/<pid>/statm (Linux); None elsewhere or once it
    is gone. requirements.txt has no psutil, and the one number needs none."""
    if pid is None:
        return None
    try:
        resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def tree_bytes(path: Path) -> int:
    """Bytes of the files under `path`, links followed (a hub snapshot links to its blobs)."""
    total = 0
    for item in path.rglob("*"):
        try:
            if item.is_file():
                total += item.stat().st_size
        except OSError:
            continue  # removed while counting
    return total
