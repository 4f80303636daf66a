"""A hub model's first download, with its progress.

transformers' from_pretrained fetches file by file and lets nobody hear the bytes, so before the
load the files it reads are fetched in one huggingface_hub.snapshot_download, with our own class
for its `tqdm_class=` hook: every update of snapshot_download's bar of bytes written becomes a
Download(done, total) for the page. The loader then reads them from the cache; a file it needs
that this listing did not pick, it fetches itself (without progress).
"""

from __future__ import annotations

import glob
import threading
from collections.abc import Callable, Mapping

from arena.backends.status import Download
from arena.errors import ModelError

# Files the loader reads, besides the weights: configs, tokenizers, processors, chat templates.
SMALL_SUFFIXES = (".json", ".txt", ".model", ".jinja", ".tiktoken")
# snapshot_download's bar of the bytes written to the cache (its group name for disabling bars)
BYTES_BAR = "huggingface_hub.snapshot_download"


def files_to_fetch(files: Mapping[str, int]) -> dict[str, int]:
    """{name: size} of the top-level files loading reads: the small ones (configs, tokenizer,
    processor, chat template) and the weights, safetensors, or the pytorch_model*.bin files
    only where there are none. Other formats (ONNX, GGUF, ...), folders and docs stay on the hub."""
    top = {name: size for name, size in files.items() if "/" not in name}
    weights = {n: s for n, s in top.items() if n.endswith(".safetensors")}
    if not weights:
        weights = {n: s for n, s in top.items() if n.startswith("pytorch_model") and n.endswith(".bin")}  # fmt: skip
    small = {n: s for n, s in top.items() if n.endswith(SMALL_SUFFIXES)}
    return {**small, **weights}


def download(
    model_id: str,
    source: str,
    revision: str | None,
    on_progress: Callable[[Download], None],
    timeout_s: float,
) -> None:
    """Fetch the files of `source` that loading reads into the Hugging Face cache, reporting
    Download(bytes done, bytes in all) from the start (files already cached count as done)."""
    from huggingface_hub import HfApi, snapshot_download, try_to_load_from_cache
    from huggingface_hub.hf_api import RepoFile

    try:
        listed = HfApi().list_repo_tree(source, revision=revision)  # the top level only
        wanted = files_to_fetch({f.path: f.size or 0 for f in listed if isinstance(f, RepoFile)})
        total = sum(wanted.values())
        cached = sum(
            size
            for name, size in wanted.items()
            if isinstance(try_to_load_from_cache(source, name, revision=revision), str)
        )
        on_progress(Download(cached, total))
        snapshot_download(
            source,
            revision=revision,
            allow_patterns=[glob.escape(name) for name in wanted],
            tqdm_class=reporting_bars(
                lambda n: on_progress(Download(min(total, cached + n), total))
            ),
            etag_timeout=timeout_s,
        )
    except Exception as exc:  # noqa: BLE001 - any failure of the download is one line on its side
        from arena.backends.hf.hub import is_not_cached, no_network

        if is_not_cached(exc):
            raise ModelError(model_id, no_network(source)) from None
        text = " ".join(str(exc).split())[:300]
        raise ModelError(
            model_id, f"downloading '{source}' from the hub failed: {type(exc).__name__}: {text}"
        ) from None


def reporting_bars(report: Callable[[int], None]) -> type:
    """A tqdm class for snapshot_download that prints nothing and calls report(bytes written so
    far) on each update of its bytes bar (huggingface_hub's own class, so it gets each bar's name)."""
    from huggingface_hub.utils import tqdm as hub_tqdm

    class Reporting(hub_tqdm):
        _count_lock = threading.Lock()  # files download in several threads at once

        def __init__(self, *args, **kwargs):
            self._reports = kwargs.get("name") == BYTES_BAR
            kwargs["disable"] = True  # the worker prints nothing: the page shows the bar
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> None:
            with self._count_lock:  # a disabled tqdm counts nothing itself
                self.n += n or 0
                done = int(self.n)
            if self._reports:
                report(done)

    return Reporting
