"""Processors without torchvision.

Without torchvision, `AutoProcessor` cannot build the processors of video-capable models
(Qwen2-VL, SmolVLM, LLaVA-OneVision, ...) because their video sub-processor requires it.
`load_processor` then retries with `processor_without_video(cls)`, a subclass of the model's own
processor class that has no video sub-processor; images work as usual. With torchvision
installed, or for any other error, the normal path and its error stand.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any


class NoVideoProcessor:
    """Stands in for the video sub-processor that needs torchvision.

    Some processors read `self.video_processor.num_frames` / `.fps` even for images (SmolVLM's
    apply_chat_template): those read None, the processor's "not set". Videos raise.
    """

    num_frames = None
    fps = None

    def __call__(self, *args, **kwargs):
        raise ValueError("video input needs torchvision, which is not installed; images work")

    def __repr__(self) -> str:
        return "NoVideoProcessor()"


def processor_without_video(processor_cls: type) -> type:
    """A subclass of `processor_cls` without the `video_processor` sub-processor.

    `ProcessorMixin` finds a processor's sub-processors from the parameter names of its
    `__init__`, and `from_pretrained` picks the keyword arguments to pass from the argument names
    of its code object. So the subclass gets a real `__init__` with the parent's parameters less
    `video_processor`, which calls the parent's with `video_processor=None` and then puts a
    `NoVideoProcessor` stand-in (not a sub-processor: never saved) in its place. It keeps the
    parent's name, so `save_pretrained` still records the real processor class.
    Returns `processor_cls` itself when it has no video sub-processor.
    """
    params = list(inspect.signature(processor_cls.__init__).parameters.values())[1:]  # no self
    if not any(p.name == "video_processor" for p in params):
        return processor_cls
    names: list[str] = []
    defaults: list[Any] = []
    for p in params:
        if p.name == "video_processor" or p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        if not p.name.isidentifier():  # pragma: no cover - signatures hold identifiers
            raise TypeError(f"unexpected parameter {p.name!r} in {processor_cls.__name__}.__init__")
        names.append(p.name)
        if p.default is not p.empty:
            defaults.append(p.default)
        elif defaults:  # a parameter without a default after one with a default
            defaults.append(None)
    source = (
        f"def __init__(self, {', '.join(names)}, **kwargs):\n"
        f"    _parent_init(self, {', '.join(f'{n}={n}' for n in names)}, video_processor=None, **kwargs)\n"
        "    self.video_processor = _NoVideoProcessor()\n"
    )
    namespace: dict[str, Any] = {
        "_parent_init": processor_cls.__init__,
        "_NoVideoProcessor": NoVideoProcessor,
    }
    exec(source, namespace)  # only identifiers taken from the parent's signature
    new_init = namespace["__init__"]
    new_init.__defaults__ = tuple(defaults) or None
    new_init.__qualname__ = f"{processor_cls.__name__}.__init__"
    return type(
        processor_cls.__name__,
        (processor_cls,),
        {"__init__": new_init, "__module__": processor_cls.__module__, "arena_without_video": True},
    )


def load_processor(source: str, config, **kwargs):
    """AutoProcessor, or (no torchvision, video-capable model) the processor without video.

    Returns (processor, used_fallback). kwargs go to `from_pretrained` (revision,
    local_files_only, ...).
    """
    from transformers import AutoProcessor
    from transformers.utils import is_torchvision_available

    try:
        return AutoProcessor.from_pretrained(source, **kwargs), False
    except Exception as exc:
        if is_torchvision_available() or not _needs_torchvision(exc):
            raise
        cls = processor_class(source, config, kwargs)
        if cls is None:
            raise
        fallback = processor_without_video(cls)
        if fallback is cls:
            raise
        return fallback.from_pretrained(source, **kwargs), True


def _needs_torchvision(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "torchvision" in text or "video processor" in text or "video_processor" in text


def processor_class(source: str, config, kwargs) -> type | None:
    """The processor class named by processor_config.json, else by the model type."""
    import transformers
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES
    from transformers.utils import cached_file

    name = None
    try:
        path = cached_file(
            source,
            "processor_config.json",
            _raise_exceptions_for_missing_entries=False,
            **{
                k: v
                for k, v in kwargs.items()
                if k in ("revision", "local_files_only", "token", "cache_dir")
            },
        )
        if path:
            name = json.loads(Path(path).read_text(encoding="utf-8")).get("processor_class")
    except (OSError, ValueError):
        name = None
    if not name:
        name = PROCESSOR_MAPPING_NAMES.get(getattr(config, "model_type", ""))
    cls = getattr(transformers, name, None) if isinstance(name, str) else None
    return cls if isinstance(cls, type) else None
