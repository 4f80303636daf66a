"""Where a model runs and in which precision: `device` and `dtype` of a models.yaml entry."""

from __future__ import annotations

import os


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available, else 'cpu'; others are checked. Raises ValueError."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device '{device}' asked for but CUDA is not available here; use device: cpu or auto"
            )
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device '{device}' asked for but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            "device 'mps' asked for but MPS is not available here; use device: cpu or auto"
        )
    return device


def cpu_threads() -> int:
    """Torch threads for one model on the CPU: half the cores, since a battle runs two workers at
    once and more threads than cores thrash. The decode benchmark gives plain `generate` the same."""
    return max(1, (os.cpu_count() or 2) // 2)


def resolve_dtype(dtype: str, device: str):
    """'auto' -> bfloat16 on CUDA, float32 elsewhere."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"unknown dtype '{dtype}'; use auto, float32, float16 or bfloat16")
    return getattr(torch, dtype)
