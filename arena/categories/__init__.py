"""Task categories of a battle: what kind of question it asks about its image.

rules   the categories assigned from the prompts by rules kept as data (rules.yaml in this
        package, or the file ARENA_CATEGORIES names)
model   the optional classifier model (ARENA_CLASSIFIER_MODEL): a registry model asked one
        yes/no question per category, in the background, after the battle is stored

A battle can have several task categories; one with none is `other`. Beside them two automatic
tags: `multi_turn` (two or more prompts) and `sample_image` (started from a shipped sample).
Each stored category keeps its source: "rules", "auto" (the tags), "import", or a model's id.
"""

from __future__ import annotations

from collections.abc import Sequence

TASKS = (
    "captioning",
    "ocr",
    "localization",
    "counting",
    "recognition",
    "charts",
    "reasoning",
    "creative",
)
OTHER = "other"
TAGS = ("multi_turn", "sample_image")
READS_IMAGE = ("ocr", "recognition")  # boards where a brand named in an answer is read, not a leak
RULES, AUTO = "rules", "auto"


def tags(prompts: Sequence[str], sample_image: bool) -> list[str]:
    """The automatic tags of a battle with these prompts."""
    found = ["multi_turn"] if len(prompts) >= 2 else []
    return found + (["sample_image"] if sample_image else [])


def labelled(tasks: Sequence[str], source: str, prompts: Sequence[str], sample_image: bool):
    """What a battle stores: its task categories (or `other`) from `source`, and its tags."""
    rows = [(c, source) for c in tasks] or [(OTHER, source)]
    return rows + [(t, AUTO) for t in tags(prompts, sample_image)]
