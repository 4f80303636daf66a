"""The one interface every way of running a model implements.

A backend answers a conversation given as transformers chat messages:

    [{"role": "system", "content": [{"type": "text", "text": "..."}]},          # optional
     {"role": "user", "content": [{"type": "image", "image": <PIL.Image>},
                                  {"type": "text", "text": "first prompt"}]},
     {"role": "assistant", "content": [{"type": "text", "text": "its answer"}]},
     {"role": "user", "content": [{"type": "text", "text": "follow-up"}]}]

and yields the answer's text in pieces as they are generated. Every failure is raised as
ModelError(model_id, cause) so the page can show it on that side only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

from PIL import Image


class Backend(ABC):
    def __init__(self, spec, settings):
        self.spec = spec
        self.settings = settings

    @abstractmethod
    def stream(self, messages: list[dict]) -> Iterator[str]:
        """Yield pieces of the answer; raise ModelError on any failure."""

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
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answers[i]}]})
    return messages
