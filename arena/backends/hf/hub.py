"""The Hugging Face hub: short timeouts, the offline switch, a quick probe, hub id or directory.

A hub id is looked up in the local cache first and only then downloaded. `probe_hub` makes one
short request before a download so that a machine without network fails in about a second.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from arena.errors import ModelError


def configure_hub(timeout_s: float) -> None:
    """Short hub timeouts and no telemetry, for this process.

    huggingface_hub reads HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT (whole seconds) into
    `huggingface_hub.constants` when it is first imported, so the environment is set for a later
    import and the constants are patched in case it was imported already.
    """
    seconds = max(1, math.ceil(timeout_s)) if timeout_s > 0 else 10
    os.environ["HF_HUB_ETAG_TIMEOUT"] = str(seconds)
    os.environ["HF_HUB_DOWNLOAD_TIMEOUT"] = str(seconds)
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_ETAG_TIMEOUT = seconds
        constants.HF_HUB_DOWNLOAD_TIMEOUT = seconds
        constants.HF_HUB_DISABLE_TELEMETRY = True


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE is set: nothing may be downloaded."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def is_local_path(model: str) -> bool:
    """True when `model` names a directory rather than a hub id."""
    return (
        Path(model).is_absolute()
        or model.startswith(("./", "../", "~", ".\\", "..\\"))
        or model in (".", "..")
        or os.path.isdir(model)
    )


class NotCached(Exception):
    """A hub model (or part of it) is not in the local cache."""


def is_not_cached(exc: BaseException) -> bool:
    """True when `exc` says a file is missing from the local cache (or could not be fetched)."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        return True
    text = str(exc)
    return isinstance(exc, OSError) and (
        "couldn't find them in the cached files" in text
        or "local_files_only" in text
        or "couldn't connect to" in text.lower()
        or "offline mode" in text.lower()
    )


def no_network(source: str) -> str:
    return (
        f"cannot download '{source}' from the Hugging Face hub (no network?); "
        "download it first or point 'model' at a local directory"
    )


def probe_hub(model_id: str, source: str, revision: str | None, settings) -> None:
    """One short request before a download, so a missing network or repo fails at once."""
    from huggingface_hub import model_info
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        model_info(
            source, revision=revision, timeout=getattr(settings, "hub_timeout_s", 10.0) or None
        )
    except GatedRepoError:
        raise ModelError(
            model_id,
            f"'{source}' is a gated model; accept its licence on the hub and log in (hf auth login)",
        ) from None
    except RevisionNotFoundError:
        raise ModelError(
            model_id, f"revision '{revision}' of '{source}' does not exist on the hub"
        ) from None
    except RepositoryNotFoundError:
        raise ModelError(
            model_id,
            f"'{source}' does not exist on the Hugging Face hub (or is private); check 'model'",
        ) from None
    except Exception:
        raise ModelError(model_id, no_network(source)) from None
