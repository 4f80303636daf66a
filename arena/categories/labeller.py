"""Who labels a battle's categories: the rules at once when a turn is stored, and the
classifier model (when ARENA_CLASSIFIER_MODEL is set) afterwards in the background."""

from __future__ import annotations

import functools
from concurrent.futures import Future
from dataclasses import dataclass

from arena.categories.model import Classifier
from arena.categories.rules import Rules, load_rules


@dataclass(frozen=True)
class Labeller:
    rules: Rules
    classifier: Classifier | None = None

    @classmethod
    def from_settings(cls, settings, registry=None) -> Labeller:
        """The rules of ARENA_CATEGORIES (or the shipped ones); the classifier model too when
        ARENA_CLASSIFIER_MODEL is set and a registry is given to find it in."""
        rules = _rules(getattr(settings, "categories", "") or None)
        model_id = getattr(settings, "classifier_model", "")
        if not model_id or registry is None:
            return cls(rules)
        return cls(rules, Classifier.from_registry(model_id, registry, settings, rules))

    def later(self, store, battle_id: str, prompts, image) -> Future | None:
        """Ask the classifier model in the background (None when there is none)."""
        if self.classifier is None:
            return None
        return self.classifier.submit(store, battle_id, prompts, image.image)

    def close(self) -> None:
        if self.classifier is not None:
            self.classifier.close()


@functools.lru_cache(maxsize=8)
def _rules(path: str | None) -> Rules:
    return load_rules(path)
