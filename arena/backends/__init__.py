"""One small module per way of running a model, looked up by the registry's `backend`."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from arena.backends.base import Backend, chat_messages
from arena.backends.status import ModelStatus

# backend name -> "module:Class"; imported on first use so the openai client is optional
BACKEND_CLASSES = {
    "transformers": "arena.backends.local:LocalBackend",
    "openai": "arena.backends.openai_backend:OpenAIBackend",
}


def backend_class(name: str) -> type[Backend]:
    module, cls = BACKEND_CLASSES[name].split(":")
    return getattr(importlib.import_module(module), cls)


class Backends:
    """One backend per model id, shared by every session (the UI keeps it in st.cache_resource)."""

    def __init__(self, registry, settings):
        self.registry = registry
        self.settings = settings
        self._lock = threading.Lock()
        self._by_id: dict[str, Backend] = {}
        # Threads that wait on the two sides of battles; reused, since starting two threads per
        # battle cost more than storing it. Each running battle holds two of them.
        self.side_threads = ThreadPoolExecutor(max_workers=512, thread_name_prefix="arena-side")

    def get(self, model_id: str) -> Backend:
        with self._lock:
            if model_id not in self._by_id:
                spec = self.registry.get(model_id)
                self._by_id[model_id] = backend_class(spec.backend)(spec, self.settings)
            return self._by_id[model_id]

    def preload(self, model_ids: Iterable[str]) -> None:
        """Start loading these models in the background (ARENA_PRELOAD); returns at once."""
        for model_id in model_ids:
            self.get(model_id).load_in_background()

    def statuses(self, model_ids: Iterable[str]) -> dict[str, ModelStatus]:
        """Every model's status at once: an endpoint's may wait for its reply (a short timeout),
        so they are asked side by side."""
        ids = list(model_ids)
        return dict(
            zip(ids, self.side_threads.map(lambda i: self.get(i).status(), ids), strict=True)
        )

    def close(self) -> None:
        with self._lock:
            for backend in self._by_id.values():
                backend.close()
            self._by_id.clear()
        self.side_threads.shutdown(wait=False, cancel_futures=True)


__all__ = ["Backend", "Backends", "backend_class", "chat_messages"]
