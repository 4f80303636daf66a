"""A loaded model behind a transformers image-text-to-text pipeline, streaming its answers.

    stream = model.stream(messages, spec)   # a Stream for this one request
    for piece in stream:                    # text pieces as they are generated
        ...
    stream.tokens                           # tokens it generated (None if closed early)

Nothing about a request is kept on the model: each stream carries its own result.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from arena.backends.base import Finished, Stream
from arena.backends.hf.streaming import PieceStreamer, StreamStalled
from arena.errors import ModelError


@dataclass
class LoadedModel:
    """A loaded model behind a transformers image-text-to-text pipeline.

    `stream()` / `generate()` serialise calls on one instance (a lock held until the generator
    finishes or is closed; do not interleave two streams of one model in one thread). Run one
    process per model to answer in parallel.
    """

    model_id: str
    source: str
    pipe: Any
    processor: Any
    device: str
    dtype: Any
    generation_timeout_s: float | None = None
    processor_without_video: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def model(self):
        return self.pipe.model

    def describe(self) -> str:
        arch = type(self.model).__name__
        dtype = str(self.dtype).removeprefix("torch.")
        extra = ", images only (no torchvision)" if self.processor_without_video else ""
        return f"{arch} from {self.source} on {self.device} ({dtype}{extra})"

    def generation_kwargs(self, spec) -> dict:
        """max_new_tokens, and greedy or sampling as the models.yaml entry says.

        Sampling uses the entry's temperature and top_p only: the model's own top_k (from its
        generation_config.json) is switched off, since Qwen2-VL-2B-Instruct ships top_k=1,
        which made every "sampled" answer the greedy one.
        """
        kwargs: dict[str, Any] = {"max_new_tokens": int(spec.max_new_tokens)}
        if spec.temperature and spec.temperature > 0:
            kwargs.update(
                do_sample=True,
                temperature=float(spec.temperature),
                top_p=float(spec.top_p),
                top_k=0,
            )
        else:
            kwargs["do_sample"] = False
        return kwargs

    def stream(self, messages: list[dict], spec) -> Stream:
        """The answer to `messages`, streaming; its `tokens` once it has ended."""
        return Stream(self.generate(messages, spec))

    def generate(self, messages: list[dict], spec) -> Iterator[str | Finished]:
        """Yield the answer's text in pieces as it is generated, then one Finished.

        Finished.tokens counts the generated tokens (special tokens included, prompt
        excluded). `spec` supplies max_new_tokens, temperature (0 = greedy) and top_p. Closing
        the generator early stops the generation at the next token. ModelError on failure.
        """
        from transformers import StoppingCriteria, StoppingCriteriaList

        cancel = threading.Event()

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return cancel.is_set()

        streamer = PieceStreamer(
            self.processor.tokenizer,
            skip_special_tokens=True,
            timeout_s=self.generation_timeout_s or None,
        )
        generate_kwargs = self.generation_kwargs(spec)
        generate_kwargs["streamer"] = streamer
        generate_kwargs["stopping_criteria"] = StoppingCriteriaList([_Cancelled()])
        failure: list[BaseException] = []

        def run() -> None:
            try:
                torch_threads_as_set()
                self.pipe(text=messages, generate_kwargs=generate_kwargs, return_full_text=False)
            except BaseException as exc:  # handed to the consumer below
                failure.append(exc)
            finally:
                streamer.end()  # wakes the consumer after a failure too

        with self._lock:
            thread = threading.Thread(target=run, name=f"generate-{self.model_id}", daemon=True)
            thread.start()
            try:
                for piece in _iterate(streamer, self.model_id, self.generation_timeout_s):
                    if failure:
                        break
                    if piece:
                        yield piece
                thread.join()
            finally:
                cancel.set()
                if thread.is_alive():
                    thread.join(timeout=5)
            if failure:
                raise generation_error(self.model_id, failure[0], self.device)
        yield Finished(tokens=streamer.token_count)

    def close(self) -> None:
        """Drop the model; frees GPU memory once nothing else holds it."""
        self.pipe = None
        self.processor = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # pragma: no cover - best effort
            pass


def torch_threads_as_set() -> None:
    """Give the calling thread the torch thread count of the process (hf.cpu_threads() in a worker).

    With OpenMP the count is per thread: a new thread runs MKL's and oneDNN's kernels with
    OpenMP's default, every core, until torch sets it up, whatever `torch.set_num_threads` said
    in the main thread: the two workers of a battle each used every core. Measured on the 2-core
    build machine while busy: 256x256 matmuls 6.8x slower in a fresh thread than after this
    call, and the tiny LLaVA's first piece through a worker 40-52 ms before, 14-18 ms after
    (benchmarks/decode_speed.py). Asking for the count sets the thread up.
    """
    import torch

    torch.set_num_threads(torch.get_num_threads())


def generation_error(model_id: str, exc: BaseException, device: str) -> ModelError:
    """A ModelError with a one-line cause for a failed generation."""
    import torch

    if isinstance(exc, ModelError):
        return exc
    if isinstance(exc, torch.OutOfMemoryError) or isinstance(exc, MemoryError):
        return ModelError(
            model_id,
            f"out of memory while generating on {device}; try a shorter prompt or smaller image",
        )
    text = " ".join(str(exc).split())
    return ModelError(model_id, f"generation failed: {type(exc).__name__}: {text[:300]}")


def _iterate(streamer: PieceStreamer, model_id: str, timeout_s: float | None) -> Iterator[str]:
    try:
        yield from streamer.pieces()
    except StreamStalled:
        raise ModelError(
            model_id, f"no new text within {timeout_s:g} s; generation stalled"
        ) from None
