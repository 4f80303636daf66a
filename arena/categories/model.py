"""The optional classifier model (ARENA_CLASSIFIER_MODEL): a registry model, on any backend,
asked one yes/no question per category about a battle's prompts, at temperature 0.

The image goes with the question only where the answer depends on it (IMAGE_QUESTIONS: is
there text to read, is it a chart); the other questions are about the request alone, which is
cheaper and what the rules see too. An answer that is neither yes nor no, or any failure, is an
error for the caller: its battle keeps the rules' categories.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from PIL import Image

from arena.backends import backend_class
from arena.categories import AUTO, OTHER, TAGS
from arena.errors import ArenaError, ConfigError, ModelError

log = logging.getLogger(__name__)

IMAGE_QUESTIONS = ("ocr", "charts")
ANSWER_TOKENS = 4  # "yes" or "no" and a little slack
_YES_NO = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


def question(category: str, description: str, prompts: Sequence[str]) -> str:
    """The yes/no question about one category."""
    asked = "\n".join(f"- {p}" for p in prompts)
    return (
        "A user of an image chat app asked the following about an image:\n"
        f"{asked}\n\n"
        f"Is this request a '{category}' task ({description})? Answer with one word: yes or no."
    )


def answer_yes(model_id: str, text: str) -> bool:
    """Read a yes/no answer; ModelError when it is neither."""
    found = _YES_NO.match(text or "")
    if found is None:
        shown = (text or "").strip()[:40]
        raise ModelError(model_id, f"answered {shown!r} to a yes/no question")
    return found.group(1).lower() == "yes"


class Classifier:
    """One classifier model, shared by every session: its own backend (temperature 0, a few
    tokens) and one background thread, so classifying never delays a page."""

    def __init__(self, spec, settings, rules):
        self.model_id = spec.id
        self.rules = rules
        quiet = spec.model_copy(update={"temperature": 0.0, "max_new_tokens": ANSWER_TOKENS})
        self._backend = backend_class(quiet.backend)(quiet, settings)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arena-classify")

    @property
    def source(self) -> str:
        """What its labels are stored with: the model's id."""
        return self.model_id

    @classmethod
    def from_registry(cls, model_id: str, registry, settings, rules) -> Classifier:
        try:
            spec = registry.get(model_id)
        except ArenaError as exc:
            raise ConfigError(f"ARENA_CLASSIFIER_MODEL={model_id!r}: {exc}") from None
        return cls(spec, settings, rules)

    def classify(self, prompts: Sequence[str], image: Image.Image | None) -> tuple[str, ...]:
        """The task categories the model says yes to, in the rules' order (() = other)."""
        found = []
        for category in self.rules.categories:
            content: list[dict] = []
            if image is not None and category in IMAGE_QUESTIONS:
                content.append({"type": "image", "image": image})
            text = question(category, self.rules.describe(category), prompts)
            content.append({"type": "text", "text": text})
            reply = "".join(self._backend.stream([{"role": "user", "content": content}]))
            if answer_yes(self.model_id, reply):
                found.append(category)
        return tuple(found)

    def labels(self, prompts, image) -> list[tuple[str, str]]:
        """What the battle stores from this model: (category, model id) rows, `other` if none."""
        tasks = self.classify(prompts, image)
        return [(c, self.model_id) for c in tasks] or [(OTHER, self.model_id)]

    def submit(self, store, battle_id: str, prompts: Sequence[str], image) -> Future:
        """Classify in the background and store the result; on failure the rules' stay."""
        return self._thread.submit(self._relabel, store, battle_id, tuple(prompts), image)

    def _relabel(self, store, battle_id, prompts, image) -> bool:
        try:
            labels = self.labels(prompts, image)
            store.relabel(battle_id, labels, keep=TAGS)
            return True
        except ArenaError as exc:
            log.warning("classifier %s failed on battle %s (%s): the rules' categories stay",
                        self.model_id, battle_id, exc)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a background failure must not be lost silently
            log.warning("classifier %s failed on battle %s (%s: %s): the rules' categories stay",
                        self.model_id, battle_id, type(exc).__name__, exc)  # fmt: skip
        return False

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
        self._backend.close()


__all__ = ["AUTO", "Classifier", "answer_yes", "question"]
