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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class Finished:
    """The last item a backend's generate() yields: what the answer took."""

    tokens: int | None = None  # tokens generated; None when the backend cannot tell


class Stream(Iterator[str]):
    """One answer as it is generated, for one request.

    Iterate for the text pieces; once the iteration ends, `finished` is True if the backend
    reported the end of its answer and `tokens` holds its token count (None if unknown)."""

    def __init__(self, items: Iterable[str | Finished]):
        self._items = iter(items)
        self.tokens: int | None = None
        self.finished = False

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        for item in self._items:
            if isinstance(item, Finished):
                self.tokens, self.finished = item.tokens, True
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

    def stream(self, messages: list[dict]) -> Stream:
        """The answer to `messages`, streaming; raises ModelError (while iterating) on any failure."""
        return Stream(self.generate(messages))

    @abstractmethod
    def generate(self, messages: list[dict]) -> Iterator[str | Finished]:
        """Yield pieces of the answer, then one Finished; raise ModelError on any failure."""

    @property
    def loaded(self) -> bool:
        """False while the model must still be loaded before it can answer (the page says so)."""
        return True

    @abstractmethod
    def check(self) -> str:
        """Load or reach the model; return a short status line, or raise ModelError."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release processes or connections."""


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
