"""The same prompt on the same image asked many times, capped so that it does not weigh too much.

A script, a class doing one exercise or a sample image's suggested prompt can ask one question
hundreds of times; each of those battles counts like a battle on a fresh question. Battles are
grouped by `prompt_key` (the normalised first prompt and the image's sha256) and each group with
more than `cap` battles is downsampled to `cap` of them (`kept`): ARENA_DEDUP_CAP, default 10.

`percentile_cap` is FastChat's rule for big arenas (fastchat/serve/monitor/deduplication.py,
read at lm-sys/FastChat 0e6d3e4): the cap is the 99.99th percentile of the battles per distinct
prompt, so only the rarest extremes are cut. FastChat's key differs from ours: it is every user
turn of the conversation joined with newlines, cut at 10,000 characters, not normalised, and
without the image.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Sequence

import numpy as np

DEFAULT_CAP = 10
PERCENTILE = 99.99
KEY_LABEL = "vlm-arena prompt key v1"  # bump when normalise_prompt changes: stored keys change
_KEY_HEX = 32

_LOOKALIKES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
    }
)
_SPACES = re.compile(r"\s+")
_INVISIBLE = ("Cf", "Cc")  # format and control characters (zero-width space, NUL), not spaces


def normalise_prompt(text: str) -> str:
    """The prompt with trivial differences removed; words and digits are kept as they are.

    NFKC (full-width letters, ligatures), casefold, typographic quotes and dashes as ASCII,
    invisible characters (zero-width space, soft hyphen, BOM, controls) dropped, every run of
    whitespace one space, and punctuation and spaces trimmed from both ends: "Describe this
    image." == "  DESCRIBE   this image!!". No stemming, and punctuation inside stays.
    """
    text = unicodedata.normalize("NFKC", text).casefold().translate(_LOOKALIKES)
    text = "".join(c for c in text if c.isspace() or unicodedata.category(c) not in _INVISIBLE)
    text = _SPACES.sub(" ", text)
    start, end = 0, len(text)
    while start < end and _trimmed(text[start]):
        start += 1
    while end > start and _trimmed(text[end - 1]):
        end -= 1
    return text[start:end]


def _trimmed(char: str) -> bool:
    return char == " " or unicodedata.category(char).startswith("P")


def prompt_key(first_prompt: str, image_sha256: str | None) -> str:
    """The stored duplicate key of a battle: 32 hex characters, the same in every process.

    sha256 over KEY_LABEL, the normalised first prompt and the image's sha256 (lower case; ""
    for no image), NUL-separated; a normalised prompt holds no NUL, so no two inputs share a text.
    Only the first prompt counts: follow-ups do not make a new question of a scripted one.
    """
    image = (image_sha256 or "").strip().lower()
    text = "\0".join((KEY_LABEL, normalise_prompt(first_prompt), image))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_KEY_HEX]


def kept(keys: np.ndarray, ids: Sequence[str], cap: int, seed: int = 0) -> np.ndarray:
    """Which battles count: every one of a key with at most `cap`, exactly `cap` of the others.

    keys holds a code per battle (equal codes = same prompt key), ids the battle ids in the
    same order. A key over the cap keeps the `cap` battles with the smallest blake2b hash of
    (seed, battle id): the same answer in every process and whatever the order of the battles,
    and stable: a new battle of a key changes its kept set only if its hash ranks within the
    cap, and then it replaces exactly one kept battle. cap <= 0 means no cap: all are kept.
    """
    keys = np.asarray(keys, dtype=np.int64)
    if keys.ndim != 1 or keys.size != len(ids):
        raise ValueError("keys must be a 1-D array with one code per battle id")
    keep = np.ones(keys.size, dtype=bool)
    if cap <= 0 or keys.size <= cap:
        return keep
    _, at, counts = np.unique(keys, return_inverse=True, return_counts=True)
    over = np.flatnonzero(counts[at] > cap)
    if not over.size:
        return keep
    ranks = _hashes([ids[i] for i in over.tolist()], seed)
    order = np.lexsort((ranks, keys[over]))  # by key, then by hash within the key
    group = keys[over][order]
    first = np.r_[True, group[1:] != group[:-1]]
    starts = np.flatnonzero(first)
    position = np.arange(group.size) - np.repeat(starts, np.diff(np.r_[starts, group.size]))
    keep[over[order[position >= cap]]] = False
    return keep


def _hashes(ids: Sequence[str], seed: int) -> np.ndarray:
    """64-bit blake2b of seed + id per battle. Measured: 1M uuid4 hex ids in 0.5 s here."""
    prefix = f"{KEY_LABEL}\0{seed}\0".encode()
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(prefix + i.encode(), digest_size=8).digest() for i in ids])
    return np.frombuffer(digests, dtype="<u8")


def percentile_cap(counts_per_key: np.ndarray, q: float = PERCENTILE) -> int:
    """FastChat's cap: floor of the q-th percentile of the battles per distinct key.

    The percentile is over the keys, one count each (keys with no battles left out), with
    linear interpolation (pandas' Series.quantile, which FastChat calls with q / 100). FastChat
    downsamples the keys whose count is above that percentile to int(percentile) battles: for
    whole counts, that is "cap = floor(percentile)", and as every count is at least 1 the cap is
    at least 1. No keys: 0, no cap. q is a percentile (99.99), not FastChat's fraction (0.9999).
    """
    if not 0 < q <= 100:
        raise ValueError(f"q is a percentile between 0 and 100, not {q}")
    counts = np.asarray(counts_per_key, dtype=np.float64)
    counts = counts[counts > 0]
    if not counts.size:
        return 0
    cutoff = float(np.quantile(counts, q / 100, method="linear"))
    return max(
        1, math.floor(cutoff + 1e-9)
    )  # 1e-9: a whole cutoff that interpolation left at 4.999...
