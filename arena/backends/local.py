"""Local transformers models, each in a worker process of its own.

On a GPU, two models decoding from two threads of one Python process fight over the GIL
(3.7x the slower model alone, NOTES.md); one process per model runs them side by side.
A worker is started on first use and loads its model once; requests from every session
wait their turn for it (one lock per worker). A worker that dies is restarted on the
next request, and the request it was serving gets a ModelError.

The worker reports its first download's progress (bytes from the hub's own progress bars) to
whichever request waits for it; a request still waiting for its turn hears it too. What the models
page shows (load time, last error, the download) is kept about the model, never about a request.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import sys
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager

from arena.backends.base import Backend, Finished, Stream
from arena.backends.status import Download, ModelStatus, Source, State, rss_bytes
from arena.errors import ModelError

_POLL_S = 0.2
_START_LOCK = threading.Lock()
_PLAIN_MAIN = types.ModuleType("__main__")


@contextmanager
def _plain_main():
    """Hide the parent's __main__ while a worker starts.

    spawn re-runs the parent's __main__ module in the child when it has a file: under
    Streamlit that is the page script being run, under AppTest a temporary script. A worker
    needs none of it (and must not run a page), so the child sees an empty __main__.
    """
    with _START_LOCK:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = _PLAIN_MAIN
        try:
            yield
        finally:
            if main is not None:
                sys.modules["__main__"] = main


class LocalBackend(Backend):
    def __init__(self, spec, settings):
        super().__init__(spec, settings)
        self._lock = threading.Lock()
        self._ctx = mp.get_context(
            "spawn"
        )  # a fresh interpreter: no forked torch or Streamlit state
        self._proc = None
        self._requests = self._responses = None
        self._cancel = self._ctx.Value("q", -1)  # id of the request the consumer gave up on
        self._next_id = 0
        self._loaded = False
        # about the model, for status(): set by whichever request reads the worker's replies
        self._started_at = 0.0
        self._load_seconds: float | None = None
        self._last_error: str | None = None
        self._load_failed = False
        self._download: Download | None = None
        self._stopping = False  # stop() killed the worker: the request it served says so
        self._loader: threading.Thread | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded

    def status(self) -> ModelStatus:
        proc = self._proc
        alive = proc is not None and proc.is_alive()
        loader = self._loader
        if alive:
            state = State.READY if self._loaded else State.LOADING
        elif loader is not None and loader.is_alive():
            state = State.LOADING  # load_in_background's thread is about to start the worker
        else:
            state = State.ERROR if self._load_failed else State.NOT_LOADED
        pid = proc.pid if alive else None
        return ModelStatus(
            state,
            last_error=self._last_error,
            load_seconds=self._load_seconds,
            pid=pid,
            rss_bytes=rss_bytes(pid),
            download=self._download if state is State.LOADING else None,
        )

    def source(self) -> Source:
        from arena.backends.hf.cache import model_source

        return model_source(str(self.spec.model), self.spec.revision)

    def load_in_background(self) -> None:
        loader = self._loader
        if (loader is not None and loader.is_alive()) or self.status().ready:
            return
        self._loader = threading.Thread(
            target=self._load_quietly, name=f"arena-load-{self.spec.id}", daemon=True
        )
        self._loader.start()

    def _load_quietly(self) -> None:
        try:
            for _ in self._request("check", None):
                pass
        except ModelError:
            pass  # kept as last_error: the models page shows it

    def stop(self) -> None:
        proc = self._proc
        if proc is None or not proc.is_alive():
            return
        self._stopping = True
        self._loaded = False
        proc.kill()  # a request reading its replies sees it gone and raises (see _died)
        proc.join(timeout=5)

    # ----- process management ---------------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._loaded = self._load_failed = self._stopping = False
        self._download = None
        self._started_at = time.monotonic()
        self._requests = self._ctx.Queue()
        self._responses = self._ctx.Queue()
        self._proc = self._ctx.Process(
            target=_worker_main,
            args=(self.spec, self.settings, self._requests, self._responses, self._cancel),
            name=f"arena-worker-{self.spec.id}",
            daemon=True,
        )
        with _plain_main():
            self._proc.start()

    def _died(self) -> ModelError:
        code = self._proc.exitcode if self._proc is not None else None
        self._proc = None
        self._loaded = False
        self._download = None
        if self._stopping:
            return self._failed(
                "its worker was stopped on the models page; it starts again on the next request"
            )
        return self._failed(
            f"its worker process died (exit code {code}); it restarts on the next request"
        )

    def _failed(self, cause: str) -> ModelError:
        self._last_error = cause
        return ModelError(self.spec.id, cause)

    def close(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.is_alive():
                self._requests.put(None)
                self._proc.join(timeout=5)
                if self._proc.is_alive():
                    self._proc.kill()
            self._proc = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    # ----- requests ---------------------------------------------------------------------------

    def check(self) -> str:
        start = time.monotonic()
        answer = "".join(Stream(self._request("check", None)))
        return f"loaded in {time.monotonic() - start:.1f} s ({answer})"

    def generate(self, messages: list[dict]) -> Iterator[str | Finished | Download]:
        return self._request("generate", messages)

    def _request(self, kind: str, payload) -> Iterator[str | Finished | Download]:
        shown = None
        while not self._lock.acquire(timeout=_POLL_S):
            # another request has the worker, perhaps while it downloads the model: show that
            if self._download is not None and self._download != shown:
                shown = self._download
                yield shown
        try:
            self._ensure_worker()
            self._next_id += 1
            rid = self._next_id
            self._requests.put((rid, kind, payload))
            finished = False
            try:
                yield from self._replies(rid)
                finished = True
            finally:
                if not finished:
                    self._cancel.value = rid  # the consumer stopped early: let the worker stop too
        finally:
            self._lock.release()

    def _replies(self, rid: int) -> Iterator[str | Finished | Download]:
        deadline = time.monotonic() + self.settings.generation_timeout_s
        while True:
            try:
                reply_id, kind, payload = self._responses.get(timeout=_POLL_S)
            except queue.Empty:
                if not self._proc.is_alive():
                    raise self._died() from None
                if time.monotonic() > deadline:
                    self._proc.kill()
                    self._proc.join(timeout=5)
                    self._proc = None
                    raise self._failed(
                        f"no answer within {self.settings.generation_timeout_s:g} s (ARENA_GENERATION_TIMEOUT_S); "
                        "its worker was stopped and restarts on the next request",
                    ) from None
                continue
            if kind == "loaded":
                self._loaded = True
                self._download = None
                self._load_seconds = time.monotonic() - self._started_at
                continue
            if kind == "progress":
                self._download = payload
                yield payload
                continue
            if reply_id != rid:
                continue  # left over from a request its consumer abandoned
            if kind == "chunk":
                yield payload
            elif kind == "done":
                yield Finished(tokens=payload)
                return
            elif kind == "error":
                self._load_failed = not self._loaded  # a worker that cannot load answers only this
                raise self._failed(payload)


def _worker_main(spec, settings, requests, responses, cancel) -> None:
    """The worker process: load once, then answer requests one at a time."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from arena.backends import hf

    if hf.resolve_device(spec.device) == "cpu":
        import torch

        torch.set_num_threads(hf.cpu_threads())

    def report(download: Download) -> None:
        responses.put((0, "progress", download))

    try:
        model = hf.load_model(spec, settings, on_progress=report)
    except ModelError as exc:
        load_error = exc.cause
        model = None
    except Exception as exc:  # noqa: BLE001 - any load failure is reported, not raised
        load_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        model = None
    else:
        load_error = None
        responses.put((0, "loaded", None))

    while True:
        request = requests.get()
        if request is None:
            return
        rid, kind, payload = request
        if model is None:
            responses.put((rid, "error", load_error))
            return  # exit: the next request starts a fresh worker that tries to load again
        if kind == "check":
            responses.put((rid, "chunk", "ok"))
            responses.put((rid, "done", 0))
            continue
        try:
            stream = model.stream(payload, spec)
            for piece in stream:
                if cancel.value == rid:
                    stream.close()  # stops the generation at the next token
                    break
                responses.put((rid, "chunk", piece))
            responses.put((rid, "done", stream.tokens))
        except ModelError as exc:
            responses.put((rid, "error", exc.cause))
        except Exception as exc:  # noqa: BLE001 - reported to that side of the battle
            responses.put((rid, "error", f"{type(exc).__name__}: {exc}".splitlines()[0]))
