"""Identity leaks: an answer in an anonymous battle that gives a model away spoils the blind vote.

`identity_terms(spec)` lists the names one model goes by; `find_leak(...)` checks one battle's
answers against both models' names and `KNOWN_NAMES` and returns a short reason, or None. Only
the matched name goes into the reason, never the answer around it: the reason is stored and
shown next to battles whose answers may be private.

How a name in an answer is matched: case-insensitively, as a whole word (so "llama" is not found
in "llamas", "Phi" not in "philosophy", "Yi" not in "yield"), with any of space, "-", "_", "."
between its parts ("Hugging Face" also finds "HuggingFace", "Qwen2-VL" finds "qwen2 vl"), and
with a version glued on ("Qwen" finds "Qwen2.5"). Longer names are tried first, so "GPT-4o" wins
over "GPT" and "SmolVLM2" over "SmolVLM".

The rules:

1. A self-introduction always flags, in every category and for any name: the battle's two
   models' names and `KNOWN_NAMES` (a SmolVLM that says "I am Qwen" is wrong, but the voter now
   votes on a name, right or wrong, instead of the answer). A self-introduction is the name
   right after "I am", "I'm" (straight
   or curly apostrophe), "I'm called", "my name is", "call me"; "as X, I" at the start of a
   clause; "I was / I'm / I've been (trained|developed|created|built|made|designed|powered) by
   X"; "I'm a/an ... model|assistant|AI|chatbot (that was) trained by X" and "as an AI ...
   developed by X"; "I'm a X model" / "I'm an X-based assistant"; "I'm based on X"; "X developed
   me"; "X is my creator"; "my creator is X"; and a sentence opening "Trained by X, I ...".
   A bare "made by X" does not count on its own: "this phone was made by Apple" describes the
   picture, so the by-phrases need a first-person subject ("I was", "I'm a model") or ", I"
   after them. "I am looking at" matches nothing, and neither does "I'm a Gemini" (the zodiac
   sign): an article is only allowed when a word such as "model" or "assistant" follows the name.
2. Naming one of the battle's two models anywhere else (any of `identity_terms`) flags, except:
   a. the prompt names that model (by any of its names): the user asked about it, so the answer
      has to say it;
   b. both answers name that model: two models that never see each other's answer only agree on
      a name that is in the picture or the question (a logo, a screenshot), and a model that
      names its opponent gives nothing away about itself;
   c. `reads_image` is True (the lead sets it for the `ocr` and `recognition` categories): those
      answers read brands, logos and text off the image by design, so only self-introductions
      count there, and the OCR and recognition boards do not lose every battle with a logo in
      its image;
   d. the name sits inside quotes, or near a word that says it is read off the image ("reads",
      "says", "logo", "label", "text", "written", "sign", "brand", "printed", "caption", ...)
      within 40 characters on either side in the same sentence: "the sign says Google" is
      reading, "Google's model answers this" is not.
   A one-word name that is spelt with a capital ("Meta", "Phi", "Gemini") only counts here when
   the answer writes it with a capital too: "a meta-analysis", "the golden ratio phi" are plain
   words. Names in `KNOWN_NAMES` that belong to neither battle model only count as
   self-introductions: "the Gemini constellation" in an astronomy answer gives nothing away.

A battle model whose names are ordinary words (a "Florence" or "Nova" model) can still draw false
flags under rule 2 in general answers ("a trip to Florence"); rules a-d keep most of them out.

Speed: the names of one pair compile into one regular expression (cached per pair), one scan per
answer finds every name, and only the few places where a name is found get their context
checked; a re-check runs this over every stored battle. One battle with answers of 970 and 740
characters takes about 90 µs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath, PureWindowsPath

from arena.registry import OpenAISpec, TransformersSpec

KNOWN_NAMES: tuple[str, ...] = (
    # OpenAI
    "OpenAI", "ChatGPT", "GPT", "GPT-4", "GPT-4o", "GPT-4V", "GPT-5", "o1", "DALL-E",
    # Anthropic
    "Anthropic", "Claude",
    # Google
    "Google", "Google DeepMind", "DeepMind", "Gemini", "Gemma", "PaliGemma", "Bard", "PaLM",
    # Meta
    "Meta", "Meta AI", "Llama", "LLaVA",
    # Alibaba
    "Alibaba", "Alibaba Cloud", "Qwen", "Tongyi", "Tongyi Qianwen",
    # Mistral
    "Mistral", "Mistral AI", "Pixtral", "Mixtral",
    # Microsoft
    "Microsoft", "Phi", "Copilot", "Florence", "Kosmos", "Bing",
    # others
    "Grok", "xAI", "DeepSeek", "InternVL", "InternLM", "Shanghai AI Lab",
    "Shanghai AI Laboratory", "Yi", "01.AI", "MiniCPM", "OpenBMB", "Moondream", "SmolVLM",
    "SmolLM", "Idefics", "Hugging Face", "Molmo", "Allen Institute", "Allen Institute for AI",
    "AI2", "CogVLM", "Zhipu", "Zhipu AI", "GLM", "ChatGLM", "Baidu", "ERNIE", "Reka", "Cohere",
    "Aya", "Amazon", "Nova", "Apple", "NVIDIA", "Nemotron", "ByteDance", "Doubao", "Tencent",
    "Hunyuan", "Moonshot", "Kimi", "StepFun", "IBM", "Granite", "BLIP", "Salesforce", "Falcon",
    "Vicuna",
)  # fmt: skip

# Words too common to identify a model on their own: a term made only of these (and of numbers,
# sizes and versions) is no term at all.
_GENERIC = frozenset(
    """
    a an and the of for with by on in to is it my me you your our this that
    model models chat instruct instruction instructions vision visual base large small medium
    mini tiny nano micro pro plus max ultra lite light turbo fast flash preview latest stable
    experimental exp beta alpha release final new old open free hf ov video image images text
    language multimodal llm vlm mllm ai assistant bot agent default local demo test
    left right one two three first second served serve server api online offline dev prod
    main edition version v ft sft rlhf dpo awq gptq gguf int4 int8 fp16 bf16 mlx
    """.split()
)
_NUMBERISH = re.compile(r"v?\d[\d.x]*[a-z]{0,2}", re.IGNORECASE)  # 256M, 0.5b, 8x7b, v2, 4o
_SEPARATORS = re.compile(r"[\s\-_./:]+")


def identity_terms(spec: TransformersSpec | OpenAISpec) -> tuple[str, ...]:
    """The names that identify one model, nicest spelling first, deduplicated ignoring case and
    separators ("SmolVLM 256M Instruct" and "smolvlm-256m-instruct" are one term).

    Its display name, id, aliases, vendor, the last part of its hub id or path
    ("SmolVLM-256M-Instruct"), and the stems of those names: the leading name before any size or
    generic word ("Qwen2-VL" from "Qwen2-VL-2B-Instruct") and the family without its version
    ("Qwen"). Names shorter than 3 characters, numbers and common words ("model", "chat",
    "instruct", "vision", "base", "large", "small", ...) are left out: they would match answers
    that name nothing. Names read off the id, the display name and the hub id are also left out
    when every word in them is common or a size ("Instruct 2B"); aliases and the vendor are
    written down on purpose and are only left out when short, a number or one common word
    ("01.AI" stays).
    """
    derived = (spec.display_name, spec.id, _last_part(spec.model))
    names = [(spec.display_name, False), (spec.id, False)]
    names += [(alias, True) for alias in spec.aliases]
    names += [(spec.vendor, True)] if spec.vendor else []
    names += [(_last_part(spec.model), False)]
    names += [(stem, False) for name in derived for stem in _stems(name)]
    terms: dict[str, str] = {}
    for name, written in names:
        name = name.strip()
        if _usable(name, written):
            terms.setdefault(_key(name), name)
    return tuple(terms.values())


def find_leak(
    prompts: Sequence[str],
    *,
    answers_a: Sequence[str | None],
    answers_b: Sequence[str | None],
    terms_a: Sequence[str],
    terms_b: Sequence[str],
    reads_image: bool,
    known: Sequence[str] = KNOWN_NAMES,
) -> str | None:
    """Why one battle's answers give a model away (the rules are in the module docstring), or
    None. answers_a and answers_b hold one answer per turn (None for a side that failed);
    terms_a and terms_b are `identity_terms` of the models on sides A and B."""
    matcher = _matcher(tuple(known), tuple(terms_a), tuple(terms_b))
    mentions: list[_Mention] = []
    for side, answers in (("A", answers_a), ("B", answers_b)):
        for turn, raw in enumerate(answers, start=1):
            text = (raw or "").lower()  # the scan is case-sensitive: 30 times faster
            for term, start, end in matcher.find(text):
                where = _answer(side, turn, len(answers))
                if _introduces(text, start, end):
                    return f"{where} introduces itself as '{term.text}'"
                if term.sides and _as_name(term, raw or "", text, start, end):
                    mentions.append(_Mention(side, where, term, text, start, end))
    if reads_image or not mentions:
        return None
    excused = _named_in(matcher, prompts)
    excused |= _sides_named_by(mentions, "A") & _sides_named_by(mentions, "B")
    for mention in mentions:
        if mention.term.sides & excused or _read_off(mention.text, mention.start, mention.end):
            continue
        return f"{mention.where} names '{mention.term.text}'"
    return None


@dataclass(frozen=True)
class _Term:
    text: str  # the spelling the reason shows
    sides: frozenset[str]  # which battle models ("A", "B") go by it; empty for KNOWN_NAMES only
    proper: bool  # one word, capitalised ("Meta", "Phi"): in lower case it is a plain word


@dataclass(frozen=True)
class _Matcher:
    pattern: re.Pattern[str]  # every term, lower case; group 1 is the term without its version
    terms: dict[str, _Term]  # by _key

    def find(self, text: str) -> Iterator[tuple[_Term, int, int]]:
        """Each term in a lower-cased text, with where it starts and ends."""
        for hit in self.pattern.finditer(text):
            yield self.terms[_key(hit.group(1))], hit.start(), hit.end()


@dataclass(frozen=True)
class _Mention:
    side: str
    where: str
    term: _Term
    text: str
    start: int
    end: int


@lru_cache(maxsize=256)
def _matcher(known: tuple[str, ...], terms_a: tuple[str, ...], terms_b: tuple[str, ...]):
    """One regular expression that finds every term of a pair in one scan, cached per pair.

    Measured on 1,000 characters with the 86 KNOWN_NAMES: a case-insensitive alternation with
    a named group per term took about 700 µs; over lower-cased text, with one group and the
    terms grouped by their first letter (so the engine skips a branch on one character), about
    25 µs. Compiling takes about 1.5 ms."""
    spelling: dict[str, str] = {}
    sides: dict[str, set[str]] = {}
    proper: set[str] = set()
    # KNOWN_NAMES first: their spelling ("GPT") reads better than one taken off an id ("gpt")
    for side, names in (("", known), ("A", terms_a), ("B", terms_b)):
        for name in names:
            key = _key(name)
            if not key:
                continue
            spelling.setdefault(key, name.strip())
            sides.setdefault(key, set())
            if name.strip().isalpha() and not name.islower():
                proper.add(key)
            if side:
                sides[key].add(side)
    by_letter: dict[str, list[str]] = {}
    for key in sorted(spelling, key=lambda k: (-len(k), k)):  # longest first: GPT-4o, then GPT
        first, rest = _term_regex(spelling[key].lower())
        by_letter.setdefault(first, []).append(rest)
    alternatives = "|".join(
        re.escape(letter) + "(?:" + "|".join(rests) + ")" for letter, rests in by_letter.items()
    )
    pattern = re.compile(rf"(?<!\w)({alternatives})(?:\d+(?:\.\d+)*)?(?!\w)")
    terms = {k: _Term(spelling[k], frozenset(sides[k]), k in proper) for k in spelling}
    return _Matcher(pattern, terms)


def _term_regex(name: str) -> tuple[str, str]:
    """The term's first character, and a regex of the rest: its parts with any one separator
    (or none) between them."""
    parts = [p for p in _SEPARATORS.split(name) if p]
    first, parts[0] = parts[0][0], parts[0][1:]
    return first, r"[\s\-_.]?".join(re.escape(p) for p in parts)


def _key(name: str) -> str:
    return _SEPARATORS.sub("", name.lower())


def _usable(name: str, written: bool) -> bool:
    parts = [p for p in _SEPARATORS.split(name.lower()) if p]
    if len(name) < 3 or all(_NUMBERISH.fullmatch(p) for p in parts):
        return False
    if written:
        return _key(name) not in _GENERIC
    return any(p not in _GENERIC and not _NUMBERISH.fullmatch(p) for p in parts)


def _last_part(model: str) -> str:
    """ "SmolVLM-256M-Instruct" from a hub id "HuggingFaceTB/SmolVLM-256M-Instruct", a directory's
    name from a local path."""
    path = PureWindowsPath(model) if "\\" in model else PurePosixPath(model)
    return path.name or model


def _stems(name: str) -> list[str]:
    """The leading name before the first size, version or generic word, and its first word without
    a version: "Qwen2-VL" and "Qwen" from "Qwen2-VL-2B-Instruct"."""
    pieces = re.split(r"([\s\-_./:]+)", name.strip())
    words = pieces[0::2]  # pieces alternate word, separator, word, ...
    start = 0
    while start < len(words) and not _plain(words[start]):
        start += 1
    end = start
    while end < len(words) and _plain(words[end]):
        end += 1
    if end == start:
        return []
    lead = "".join(pieces[2 * start : 2 * end - 1])
    family = re.sub(r"[\d.]+$", "", words[start])
    return [lead, family]


def _plain(word: str) -> bool:
    """A word that can be part of a name: not a size or version, not generic."""
    return bool(word) and word.lower() not in _GENERIC and not _NUMBERISH.fullmatch(word)


def _as_name(term: _Term, raw: str, text: str, start: int, end: int) -> bool:
    """A proper name written in lower case is a plain word ("a meta-analysis", "the golden ratio
    phi", "an apple"), not a mention of the model; where lower-casing changed the text's length
    the places do not line up and the mention counts."""
    if not term.proper or len(raw) != len(text):
        return True
    return not raw[start:end].islower()


def _answer(side: str, turn: int, turns: int) -> str:
    return f"answer {side}" + (f" (turn {turn})" if turns > 1 else "")


def _named_in(matcher: _Matcher, prompts: Sequence[str]) -> set[str]:
    """The battle models (sides) the prompts name."""
    named: set[str] = set()
    for prompt in prompts:
        for term, _, _ in matcher.find((prompt or "").lower()):
            named |= term.sides
    return named


def _sides_named_by(mentions: list[_Mention], side: str) -> set[str]:
    return {s for m in mentions if m.side == side for s in m.term.sides}


_I_AM = r"\bI(?:\s+am|\s*['’]\s*m)"
_VERB = (
    r"(?:developed|created|trained|built|made|designed|engineered|powered|produced"
    r"|fine-?tuned|pre-?trained)"
)
_BY = rf"{_VERB}\s+by\s+(?:the\s+)?(?:(?:team|folks|researchers|engineers|people|developers)\s+(?:at|from|of)\s+)?"
_NOUN = r"(?:model|assistant|AI|chatbot|bot|LLM|VLM|MLLM|system|program)s?"
_CLAUSE_I = r"(?:[^\S\n]+[\w.'’-]+){0,3}?[^\S\n]*,\s*(?:I|my)\b"  # "[Pro], I ..." after a name


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# Text that ends right before the name and makes it a self-introduction on its own.
_INTRO_BEFORE = _rx(
    "(?:"
    + "|".join(
        [
            rf"{_I_AM}\s+(?:called\s+|named\s+)?",  # I am X, I'm X, I'm called X
            r"\bmy\s+(?:name|underlying\s+model|base\s+model)\s*(?:is|['’]s)\s+",
            r"\bcall\s+me\s+",
            # I'm a large language model trained by X; as an AI assistant developed by X
            rf"(?:{_I_AM}|\bas)\s+(?:\w+\s+)?(?:an?|the)\s+[^.!?\n]{{0,60}}?\b{_NOUN}\b[\s,]*"
            rf"(?:(?:that|which|who)\s+(?:was|is|were|has\s+been)\s+)?(?:\w+\s+)?{_BY}",
            # I was trained by X, I'm powered by X, I've been built by X
            rf"\bI(?:\s+(?:was|am|have\s+been)|\s*['’]\s*(?:m|ve\s+been))\s+(?:\w+\s+)?{_BY}",
            rf"{_I_AM}\s+(?:\w+\s+)?(?:based|built)\s+(?:on|upon)\s+(?:top\s+of\s+)?(?:the\s+)?",
            r"\bmy\s+(?:creators?|developers?|makers?)\s+(?:is|are|was|were|at)\s+(?:the\s+)?",
        ]
    )
    + r")\Z"
)
# Text right after the name that makes it a self-introduction on its own: X developed me.
_INTRO_AFTER = _rx(
    rf"\A\s*(?:(?:has|had)\s+)?{_VERB}\s+me\b"
    r"|\A\s*(?:is|are|was|were)\s+my\s+(?:creators?|developers?|makers?|parent\s+company)\b"
)
# Pairs: (text before the name, text after it) that together introduce: "As Claude, I";
# "I'm a Gemma model" / "I'm an OpenAI-trained assistant"; "Trained by Google, I can".
_INTRO_PAIRS = (
    (
        _rx(r"(?:\A|[.!?:;,(\n]\s*|\b(?:and|but|so|because|since)\s+)as\s+\Z"),
        _rx(rf"\A{_CLAUSE_I}"),
    ),
    (
        _rx(rf"{_I_AM}\s+(?:\w+\s+)?(?:an?|the)\s+(?:[\w-]+\s+){{0,2}}\Z"),
        _rx(
            rf"\A(?:-?(?:based|trained|built|developed|made|powered))?(?:[\s-]+[\w-]+){{0,2}}?[\s-]+{_NOUN}\b"
        ),
    ),
    (_rx(rf"(?:\A|[.!?\n]\s*)(?:\w+\s+)?{_BY}\Z"), _rx(rf"\A{_CLAUSE_I}")),
)
_WINDOW = 120  # characters looked at before a name: the longest introduction pattern fits


def _introduces(text: str, start: int, end: int) -> bool:
    before, after = text[max(0, start - _WINDOW) : start], text[end : end + 60]
    if _INTRO_BEFORE.search(before) or _INTRO_AFTER.match(after):
        return True
    return any(b.search(before) and a.match(after) for b, a in _INTRO_PAIRS)


_READING = _rx(  # "read" and "say" are left out: "I can read", "I'd say" are no reading
    r"\b(?:reads|reading|says|said|logos?|labels?|labell?ed|text|written|signs?|signage"
    r"|brand(?:s|ed|ing)?|printed|wordmark|watermark|caption(?:ed)?|trademark|emblem"
    r"|spell(?:s|ed)|word)\b"
)
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")
_NEAR = 40  # characters either side of a name searched for a reading word


def _read_off(text: str, start: int, end: int) -> bool:
    """The name is quoted, or a word near it says it is read off the image."""
    before, after = text[max(0, start - _NEAR) : start], text[end : end + _NEAR]
    before = _SENTENCE_END.split(before)[-1]
    after = _SENTENCE_END.split(after)[0]
    return _quoted(text, start, end) or bool(_READING.search(before) or _READING.search(after))


def _quoted(text: str, start: int, end: int) -> bool:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    head, tail = text[line_start:start], text[end : len(text) if line_end < 0 else line_end]
    if head.count('"') % 2 == 1 and '"' in tail:
        return True
    if head.rfind("“") > head.rfind("”") and "”" in tail:
        return True
    if head.rfind("«") > head.rfind("»") and "»" in tail:
        return True
    opener = head.rstrip()[-1:]  # 'Google', ‘Google’, `Google`
    closers = {"'": "'", "‘": "’", "`": "`"}
    return opener in closers and closers[opener] in tail[:_NEAR]
