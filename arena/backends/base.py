"""The one interface every way of running a model implements.

A backend answers a conversation given as transformers chat messages:

    [{"role": "system", "content": [{"type": "text", "text": "..."}]},          # optional
     {"role": "user", "content": [{"type": "image", "image": <PIL.Image>},
                                  {"type": "text", "text": "first prompt"}]},
     {"role": "assistant", "content": [{"type": "text", "text": "its answer"}]},
     {"role": "user", "content": [{"type": "text", "text": "follow-up"}]}]

and streams the answer: `stream()` returns a Stream made for that one request, which yields
the text in pieces as they are generated and afterwards says what the answer cost (`tokens`).
Nothing about a request is kept on the backend, which every session shares. Every failure is
raised as ModelError(model_id, cause) so the page can show it on that side only.

What a backend says about its model (`status()`, `source()`) and what an admin may do with it
(`load_in_background()`, `stop()`) are part of the interface too, for the models page.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from PIL import Image

from arena.backends.status import Download, ModelStatus, Source, State


@dataclass(frozen=True)
class Finished:
    """The last item a backend's generate() yields: what the answer took."""

    tokens: int | None = None  # tokens generated; None when the backend cannot tell


class Stream(Iterator[str]):
    """One answer as it is generated, for one request.

    Iterate for the text pieces; once the iteration ends, `finished` is True if the backend
    reported the end of its answer and `tokens` holds its token count (None if unknown).
    While the model first downloads, `on_progress` is called with each Download the backend
    reports (this request's own callback: the page draws that side's progress bar)."""

    def __init__(
        self,
        items: Iterable[str | Finished | Download],
        on_progress: Callable[[Download], None] | None = None,
    ):
        self._items = iter(items)
        self._on_progress = on_progress
        self.tokens: int | None = None
        self.finished = False

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        for item in self._items:
            if isinstance(item, Finished):
                self.tokens, self.finished = item.tokens, True
                continue
            if isinstance(item, Download):
                if self._on_progress is not None:
                    self._on_progress(item)
                continue
            return item
        raise StopIteration

    def close(self) -> None:
        """Stop early: the backend stops generating."""
        close = getattr(self._items, "close", None)
        if close is not None:
            close()


class Backend(ABC):
    def __init__(self, spec, settings):
        self.spec = spec
        self.settings = settings

    def stream(
        self, messages: list[dict], on_progress: Callable[[Download], None] | None = None
    ) -> Stream:
        """The answer to `messages`, streaming; raises ModelError (while iterating) on any failure.
        `on_progress` hears of the model's first download, if this request waits for one."""
        return Stream(self.generate(messages), on_progress)

    @abstractmethod
    def generate(self, messages: list[dict]) -> Iterator[str | Finished | Download]:
        """Yield pieces of the answer, then one Finished; raise ModelError on any failure.
        A backend that downloads its model first may yield Download items before the text."""

    @property
    def loaded(self) -> bool:
        """False while the model must still be loaded before it can answer (the page says so)."""
        return True

    @abstractmethod
    def check(self) -> str:
        """Load or reach the model; return a short status line, or raise ModelError."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release processes or connections."""

    def status(self) -> ModelStatus:
        """Whether the model answers now, with what the models page shows about it. Cheap
        enough for every page run; a backend with nothing to load or reach is always ready."""
        return ModelStatus(State.READY)

    def source(self) -> Source:
        """Where the model comes from, and its size on this machine (may read the disk)."""
        return Source(kind=self.spec.backend, location=str(self.spec.model))

    def load_in_background(self) -> None:  # noqa: B027 - nothing to load for most backends
        """Start loading (or reaching) the model now, without waiting for it: ARENA_PRELOAD and
        the models page's "Load now". Returns at once; status() tells how it went."""

    def stop(self) -> None:
        """Unload the model now, even mid-answer (that answer gets a ModelError); the next
        request loads it again. Returns without waiting for a running request."""
        self.close()


def chat_messages(
    image: Image.Image,
    prompts: Sequence[str],
    answers: Sequence[str] = (),
    system_prompt: str | None = None,
) -> list[dict]:
    """Build chat messages: the image goes with the first prompt; answers[i] follows prompts[i]."""
    if len(answers) not in (len(prompts) - 1, len(prompts)):
        raise ValueError("answers must follow prompts one to one")
    messages: list[dict] = []
    if system_prompt:
        messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    for i, prompt in enumerate(prompts):
        content: list[dict] = [{"type": "text", "text": prompt}]
        if i == 0:
            content.insert(0, {"type": "image", "image": image})
        messages.append({"role": "user", "content": content})
        if i < len(answers):
            messages.append(
                {"role": "assistant", "content": [{"type": "text", "text": answers[i]}]}
            )
    return messages
