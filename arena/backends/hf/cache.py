"""What of a model is on this machine: a local directory and its size, or whether a hub model
is in the local Hugging Face cache (HF_HOME / HF_HUB_CACHE) and how much of it.

Read in the server process for the models page, so it imports huggingface_hub only (never torch
or transformers) and reads the disk without any request to the hub.
"""

from __future__ import annotations

from pathlib import Path

from arena.backends.hf.hub import is_local_path
from arena.backends.status import Source, tree_bytes


def model_source(model: str, revision: str | None = None) -> Source:
    """A local directory with its size, or a hub id with whether its snapshot is cached."""
    if is_local_path(model):
        path = Path(model).expanduser()
        return Source(
            "local directory", str(path), size_bytes=tree_bytes(path) if path.is_dir() else None
        )
    location = f"{model}@{revision}" if revision else model
    snapshot = cached_snapshot(model, revision)
    if snapshot is None:
        return Source("hub", location, cached=False)
    return Source("hub", location, cached=True, size_bytes=tree_bytes(snapshot))


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The cached snapshot folder of a hub model at `revision` (default branch: main), found by
    its config.json; None when it is not there."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except HFValidationError:
        return None  # not a hub id: the loader says so when it tries
    return Path(found).parent if isinstance(found, str) else None
