"""Load a model of a models.yaml entry (hub id or local directory) into a LoadedModel.

`spec.model` is a hub id ("org/name") or a local directory (what `save_pretrained` wrote; the
registry has already made relative paths absolute). Every failure is a ModelError(spec.id,
cause) whose cause is one line saying what to do. Nothing here imports transformers at module
level: `load_model` sets the hub's environment first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from arena.backends.hf.devices import resolve_device, resolve_dtype
from arena.backends.hf.download import download
from arena.backends.hf.hub import (
    NotCached,
    configure_hub,
    hub_offline,
    is_local_path,
    is_not_cached,
    no_network,
    probe_hub,
)
from arena.backends.hf.loaded import LoadedModel
from arena.backends.hf.processors import load_processor
from arena.backends.status import Download
from arena.errors import ModelError


def load_model(
    spec, settings, on_progress: Callable[[Download], None] | None = None
) -> LoadedModel:
    """Load spec.model (hub id or local directory) into an image-text-to-text pipeline.

    Honours spec.revision, spec.device ("auto", "cpu", "cuda[:N]", "mps") and spec.dtype
    ("auto" = bfloat16 on CUDA, else float32). A hub model not in the cache is downloaded
    first, its progress told to `on_progress`. Any failure raises ModelError(spec.id, cause)
    with a one-line cause.
    """
    configure_hub(getattr(settings, "hub_timeout_s", 10.0))
    model_id = spec.id
    source = str(spec.model)
    try:
        device = resolve_device(spec.device)
        dtype = resolve_dtype(spec.dtype, device)
    except ValueError as exc:
        raise ModelError(model_id, str(exc)) from None

    if is_local_path(source):
        path = Path(source).expanduser()
        if not path.is_dir():
            raise ModelError(
                model_id,
                f"local model directory '{source}' not found; build or download it, or fix 'model' in models.yaml",
            )
        if not (path / "config.json").is_file():
            raise ModelError(
                model_id, f"'{source}' has no config.json; it is not a saved transformers model"
            )
        return _load_or_explain(spec, settings, str(path), device, dtype, local_files_only=True)

    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(source)
    except HFValidationError:
        raise ModelError(
            model_id,
            f"'{source}' is neither a local directory nor a Hugging Face hub id ('org/name')",
        ) from None
    try:
        return _load_or_explain(spec, settings, source, device, dtype, local_files_only=True)
    except NotCached:
        pass
    if hub_offline():
        raise ModelError(
            model_id,
            f"'{source}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
            "download it first or point 'model' at a local directory",
        )
    probe_hub(model_id, source, spec.revision, settings)
    timeout_s = getattr(settings, "hub_timeout_s", 10.0)
    download(model_id, source, spec.revision, on_progress or (lambda _: None), timeout_s)
    try:
        return _load_or_explain(spec, settings, source, device, dtype, local_files_only=True)
    except NotCached:
        pass  # a file the download did not pick: the loader fetches what it misses itself
    try:
        return _load_or_explain(spec, settings, source, device, dtype, local_files_only=False)
    except NotCached:
        raise ModelError(model_id, no_network(source)) from None


def _load_or_explain(
    spec, settings, source, device, dtype, *, local_files_only: bool
) -> LoadedModel:
    try:
        return _load(spec, settings, source, device, dtype, local_files_only=local_files_only)
    except ModelError:
        raise
    except Exception as exc:
        if is_not_cached(exc) and not is_local_path(source):
            raise NotCached() from exc
        raise ModelError(spec.id, _load_error(exc, source, device)) from exc


def _load_error(exc: BaseException, source: str, device: str) -> str:
    """A one-line cause for a load failure."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError) or isinstance(exc, MemoryError):
        return f"out of memory loading '{source}' on {device}; use a smaller model, dtype bfloat16 or another device"
    text = " ".join(str(exc).split())
    lowered = text.lower()
    if (
        "does not recognize this architecture" in lowered
        or "unrecognized configuration class" in lowered
    ):
        return f"unsupported architecture in '{source}' for this transformers version: {text[:300]}"
    if "out of memory" in lowered:
        return f"out of memory loading '{source}' on {device}; use a smaller model, dtype bfloat16 or another device"
    if "torchvision" in lowered:
        return (
            f"the processor of '{source}' needs torchvision, which is not installed: {text[:200]}"
        )
    if isinstance(exc, OSError) and ("connect" in lowered or "network" in lowered):
        return no_network(source)
    return f"cannot load '{source}': {type(exc).__name__}: {text[:300]}"


def _load(
    spec, settings, source: str, device: str, dtype, *, local_files_only: bool
) -> LoadedModel:
    from transformers import AutoConfig, AutoModelForImageTextToText, pipeline
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    common = {"revision": spec.revision, "local_files_only": local_files_only}
    config = AutoConfig.from_pretrained(source, **common)
    model_type = getattr(config, "model_type", "?")
    if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        archs = ", ".join(getattr(config, "architectures", None) or []) or model_type
        raise ModelError(
            spec.id,
            f"'{source}' is a {archs} model (model_type '{model_type}'), not an image-text-to-text model "
            "that this transformers version can run",
        )
    processor, without_video = load_processor(source, config, **common)
    load_kwargs: dict[str, Any] = {"config": config, "dtype": dtype, **common}
    if device.startswith("cuda"):
        load_kwargs["device_map"] = device
    model = AutoModelForImageTextToText.from_pretrained(source, **load_kwargs)
    if not device.startswith("cuda"):
        model = model.to(device)
    model.eval()
    pipe = pipeline(
        "image-text-to-text",
        model=model,
        processor=processor,
        tokenizer=processor.tokenizer,
        image_processor=getattr(processor, "image_processor", None),
    )
    return LoadedModel(
        model_id=spec.id,
        source=source,
        pipe=pipe,
        processor=processor,
        device=device,
        dtype=dtype,
        generation_timeout_s=getattr(settings, "generation_timeout_s", None),
        processor_without_video=without_video,
    )
