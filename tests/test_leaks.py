"""Identity leaks: which answers give a model away in an anonymous battle, and which only read a
name off the image or the question."""

from __future__ import annotations

import re

import pytest

from arena.registry import OpenAISpec, TransformersSpec, load_registry
from arena.screening.leaks import KNOWN_NAMES, find_leak, identity_terms


def hub(id: str, model: str, **fields) -> TransformersSpec:
    return TransformersSpec(backend="transformers", id=id, model=model, **fields)


QWEN = hub(
    "qwen2-vl-2b-instruct",
    "Qwen/Qwen2-VL-2B-Instruct",
    name="Qwen2-VL 2B Instruct",
    vendor="Alibaba Cloud",
)
SMOL = hub(
    "smolvlm-256m-instruct",
    "HuggingFaceTB/SmolVLM-256M-Instruct",
    name="SmolVLM 256M Instruct",
    vendor="Hugging Face",
)
PALIGEMMA = hub("paligemma-3b", "google/paligemma-3b-mix-224", name="PaliGemma 3B", vendor="Google")
GEMINI = OpenAISpec(
    backend="openai",
    id="gemini-flash",
    model="gemini-2.0-flash",
    base_url="https://generativelanguage.googleapis.com/v1beta/openai",
    vendor="Google",
)
GPT = OpenAISpec(
    backend="openai",
    id="gpt-4o-mini",
    model="gpt-4o-mini",
    base_url="https://x/v1",
    vendor="OpenAI",
)
LLAMA = hub(
    "llama-3.2-11b-vision",
    "meta-llama/Llama-3.2-11B-Vision-Instruct",
    name="Llama 3.2 11B Vision",
    vendor="Meta",
)
PHI = hub("phi-3-vision", "microsoft/Phi-3-vision-128k-instruct", vendor="Microsoft")
YI = hub("yi-vl-6b", "01-ai/Yi-VL-6B", vendor="01.AI")

PLAIN = "A tabby cat sits on a wooden table next to a cup."
REASON = re.compile(r"answer [AB]( \(turn \d+\))? (introduces itself as|names) '([^']+)'")


def leak(
    answer_a: str | list[str],
    answer_b: str | list[str] = PLAIN,
    *,
    pair=(QWEN, SMOL),
    prompt: str = "What is in this image?",
    reads_image: bool = False,
) -> str | None:
    answers_a = [answer_a] if isinstance(answer_a, str) else answer_a
    answers_b = [answer_b] if isinstance(answer_b, str) else answer_b
    return find_leak(
        [prompt] * max(len(answers_a), len(answers_b)),
        answers_a=answers_a,
        answers_b=answers_b,
        terms_a=identity_terms(pair[0]),
        terms_b=identity_terms(pair[1]),
        reads_image=reads_image,
    )


SELF_INTRODUCTIONS = [
    ("I am Qwen, a large language model created by Alibaba Cloud.", "Qwen"),
    ("I'm Claude, and I'd be glad to help.", "Claude"),
    ("I’m Gemini. The picture shows a cat.", "Gemini"),  # curly apostrophe
    ("Hi! i AM chatgpt. This is a cat.", "ChatGPT"),  # any case
    ("My name is Moondream and I describe images.", "Moondream"),
    ("I'm called Pixtral.", "Pixtral"),
    ("As Llama, I can't browse the web, but the photo shows a beach.", "Llama"),
    ("Well, as GPT-4o, I can only see the image you sent.", "GPT-4o"),  # longest name wins
    ("Hello! I'm an AI assistant developed by OpenAI.", "OpenAI"),
    ("I am a large language model, trained by Google.", "Google"),
    ("I'm just a language model made by Anthropic, so I can't say.", "Anthropic"),
    ("I was trained by the team at Mistral AI.", "Mistral AI"),
    ("I was originally developed by Microsoft.", "Microsoft"),
    ("I've been built by DeepSeek to read charts.", "DeepSeek"),
    ("I was made by Anthropic.", "Anthropic"),
    ("I'm an assistant created by Reka, here to help.", "Reka"),
    ("OpenAI developed me to help with images.", "OpenAI"),
    ("Anthropic created me. The sign is red.", "Anthropic"),
    ("Alibaba Cloud is my creator.", "Alibaba Cloud"),
    ("My creators are Zhipu AI.", "Zhipu AI"),
    ("I'm based on Llama 3 with a vision adapter.", "Llama"),
    ("I'm a Qwen model fine-tuned for vision.", "Qwen"),
    ("I'm an OpenAI-trained assistant.", "OpenAI"),
    ("As an AI model developed by Microsoft, I cannot identify people.", "Microsoft"),
    ("Developed by DeepSeek, I can read charts well.", "DeepSeek"),
    ("I am Qwen2-VL, here is the answer.", "Qwen2-VL"),  # a battle model's own stem
    ("I'm Qwen2.5-VL.", "Qwen"),  # a version glued on
    ("I'm SmolVLM, a small model from Hugging Face.", "SmolVLM"),  # the opponent's name
    ("I'm Grok, made by xAI.", "Grok"),
    ("I am Phi-3, a small model.", "Phi"),
    ("my name is yi", "Yi"),
]


@pytest.mark.parametrize("answer,name", SELF_INTRODUCTIONS)
def test_a_self_introduction_flags(answer, name):
    assert leak(answer) == f"answer A introduces itself as '{name}'"


@pytest.mark.parametrize("answer,name", SELF_INTRODUCTIONS[:8])
def test_a_self_introduction_flags_in_an_image_reading_battle_too(answer, name):
    assert leak(answer, reads_image=True) == f"answer A introduces itself as '{name}'"


def test_a_self_introduction_flags_even_when_both_answers_and_the_prompt_name_it():
    reason = leak(
        "I am Qwen. The logo says Qwen.",
        "The logo says Qwen.",
        prompt="Is this the Qwen logo?",
        reads_image=True,
    )
    assert reason == "answer A introduces itself as 'Qwen'"


@pytest.mark.parametrize(
    "answer",
    [
        "I am looking at a photo of a harbour.",
        "I'm a Gemini, born in June, and this is my cake.",  # the zodiac sign, not the model
        "Two llamas graze on a hill.",
        "This phone was made by Apple.",  # a bare "made by" describes the picture
        "Companies such as Google, I think, make these phones.",
        "The bright stars in the top left form the Gemini constellation.",
        "I'm not sure; the logo was designed by Google.",
        "This is a Google Pixel phone on a desk.",  # a known name, no battle model's
        "It is known as Claude's bakery, I believe.",
        "The book is about philosophy; these fields yield wheat.",
        "I am not ChatGPT-like in any way; this is a cat.",
    ],
)
def test_names_that_are_no_introduction_and_belong_to_neither_model_do_not_flag(answer):
    assert leak(answer) is None


@pytest.mark.parametrize(
    "answer,pair",
    [
        ("Two llamas graze on a hill near a lake.", (LLAMA, SMOL)),
        ("This is a philosophy textbook open at chapter two.", (PHI, SMOL)),
        ("These crops yield more in the second year.", (YI, SMOL)),
        ("THE RUINS OF DELPHI, GREECE", (PHI, SMOL)),  # capitals, so not just a lower-case word
    ],
)
def test_a_name_inside_a_longer_word_is_not_found(answer, pair):
    assert leak(answer, pair=pair) is None


@pytest.mark.parametrize(
    "answer_a,answer_b,pair,reason",
    [
        (
            "Unlike SmolVLM, I can read small print.",
            PLAIN,
            (QWEN, SMOL),
            "answer A names 'SmolVLM'",
        ),
        (PLAIN, "Qwen2-VL would call this a cat.", (QWEN, SMOL), "answer B names 'Qwen2-VL'"),
        (
            "This looks like a Hugging Face demo.",
            PLAIN,
            (QWEN, SMOL),
            "answer A names 'Hugging Face'",
        ),
        (PLAIN, "The receipt is from Google Cloud.", (SMOL, PALIGEMMA), "answer B names 'Google'"),
        ("Yes, that is Meta's Llama.", PLAIN, (LLAMA, SMOL), "answer A names 'Meta'"),
        (
            "The bright stars in the top left form the Gemini constellation.",
            PLAIN,
            (GEMINI, SMOL),
            "answer A names 'Gemini'",
        ),
        (PLAIN, "QWEN can do this.", (QWEN, SMOL), "answer B names 'Qwen'"),  # the family stem
        (
            PLAIN,
            "Try smolvlm-256m-instruct.",
            (QWEN, SMOL),
            "answer B names 'SmolVLM 256M Instruct'",
        ),
        (PLAIN, "Ask gpt-4o mini instead.", (SMOL, GPT), "answer B names 'gpt-4o-mini'"),
    ],
)
def test_naming_a_battle_model_flags(answer_a, answer_b, pair, reason):
    assert leak(answer_a, answer_b, pair=pair) == reason


@pytest.mark.parametrize(
    "answer,pair",
    [
        ("The chart is a meta-analysis of twelve trials.", (LLAMA, SMOL)),
        ("The spiral follows the golden ratio phi.", (PHI, SMOL)),
        ("The gemini constellation is low in the sky.", (GEMINI, SMOL)),
        ("qwen can do this.", (QWEN, SMOL)),
    ],
)
def test_a_capitalised_one_word_name_in_lower_case_is_a_plain_word(answer, pair):
    assert leak(answer, pair=pair) is None


def test_a_name_in_a_later_turn_says_which_turn():
    reason = leak(["A cat.", "SmolVLM would miss the cup."], ["A cat.", "A cup."])
    assert reason == "answer A (turn 2) names 'SmolVLM'"


@pytest.mark.parametrize(
    "answer_b",
    [
        'The receipt header says "Google Cloud".',
        'The receipt is from "Google Cloud".',
        "The receipt is from “Google Cloud”.",
        "The receipt is from 'Google Cloud'.",
        "The receipt shows the Google logo at the top.",
        "The label reads Google Cloud Platform.",
        "A Google sign hangs above the door.",
        "The brand printed on the box is Google.",
        "Total: $12.40. The text at the top is Google Cloud.",
    ],
)
def test_a_battle_model_name_read_off_the_image_does_not_flag(answer_b):
    assert leak(PLAIN, answer_b, pair=(SMOL, PALIGEMMA)) is None


@pytest.mark.parametrize(
    "answer_b",
    ["The receipt is from Google Cloud.", "Google Cloud billed $12.40 for compute."],
)
def test_an_image_reading_battle_counts_only_self_introductions(answer_b):
    assert leak(PLAIN, answer_b, pair=(SMOL, PALIGEMMA), reads_image=True) is None
    assert (
        leak(PLAIN, answer_b, pair=(SMOL, PALIGEMMA), reads_image=False)
        == "answer B names 'Google'"
    )


@pytest.mark.parametrize(
    "answer_a,answer_b",
    [
        ("This screenshot shows an OpenAI settings page.", "A settings page from OpenAI."),
        ("A settings page from OpenAI.", "The ChatGPT app, made by OpenAI, is open."),
        ("OpenAI is at the top.", ["A phone.", "The page belongs to gpt-4o-mini's maker, OpenAI."]),
    ],
)
def test_a_model_both_answers_name_is_in_the_picture_not_a_leak(answer_a, answer_b):
    assert (
        leak(answer_a, answer_b if isinstance(answer_b, list) else [answer_b], pair=(SMOL, GPT))
        is None
    )


@pytest.mark.parametrize(
    "prompt,answer",
    [
        ("is this the llama logo?", "Yes, that is the Llama logo."),
        ("is this the llama logo?", "Yes, that is Meta's Llama."),  # another name of the same model
        ("Who makes Llama models?", "Meta makes them."),
    ],
)
def test_a_model_the_prompt_names_may_be_named(prompt, answer):
    assert leak(answer, pair=(LLAMA, SMOL), prompt=prompt) is None


def test_a_failed_side_and_no_answers_give_nothing_away():
    assert (
        find_leak(
            ["Hi"], answers_a=[None], answers_b=[], terms_a=("Qwen",), terms_b=(), reads_image=False
        )
        is None
    )


SECRET = "the patient's name is Jane Roe, born 1970, account 4411"


@pytest.mark.parametrize(
    "answer_a",
    [f"{SECRET}. I am Claude. {SECRET}", f"{SECRET}; unlike SmolVLM, {SECRET}"]
    + [f"{SECRET}. {answer} {SECRET}" for answer, _ in SELF_INTRODUCTIONS],
)
def test_the_reason_holds_the_matched_name_and_none_of_the_answer(answer_a):
    reason = leak(answer_a)
    match = REASON.fullmatch(reason or "")
    assert match, reason
    name = match.group(3)
    known = {n.lower() for n in (*KNOWN_NAMES, *identity_terms(QWEN), *identity_terms(SMOL))}
    assert name.lower() in known
    assert not any(word in reason for word in ("patient", "Jane", "1970", "4411"))


def write(tmp_path, text):
    path = tmp_path / "models.yaml"
    path.write_text(text)
    return path


def test_identity_terms_of_a_registry_entry(tmp_path):
    registry = load_registry(
        write(
            tmp_path,
            "models:\n"
            "  - id: smolvlm-256m-instruct\n"
            "    name: SmolVLM 256M Instruct\n"
            "    model: HuggingFaceTB/SmolVLM-256M-Instruct\n"
            "    aliases: [smolvlm, SMOLVLM, Smol VLM]\n"
            "    vendor: Hugging Face\n",
        )
    )
    terms = identity_terms(registry.get("smolvlm-256m-instruct"))
    # the id and the hub name are the display name again; the aliases differ only in case
    assert terms == ("SmolVLM 256M Instruct", "smolvlm", "Hugging Face")


@pytest.mark.parametrize(
    "spec,expected",
    [
        (QWEN, {"Qwen2-VL 2B Instruct", "Alibaba Cloud", "Qwen2-VL", "Qwen"}),
        (GPT, {"gpt-4o-mini", "OpenAI", "gpt"}),
        (
            LLAMA,
            {
                "Llama 3.2 11B Vision",  # the id is the same name
                "Meta",
                "Llama-3.2-11B-Vision-Instruct",
                "Llama",
            },
        ),
        (PHI, {"phi-3-vision", "Microsoft", "Phi-3-vision-128k-instruct", "phi"}),
        (YI, {"yi-vl-6b", "01.AI", "yi-vl"}),  # "yi" is too short on its own
        (
            hub("tiny-qwen2-vl", "/srv/demo_models/qwen2_vl", name="Tiny Qwen2-VL"),
            {"Tiny Qwen2-VL", "qwen2_vl", "Qwen"},  # "tiny" is generic, the stem skips it
        ),
    ],
)
def test_identity_terms_hold_the_names_and_their_stems(spec, expected):
    assert set(identity_terms(spec)) == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"id": "base-model", "name": "Chat", "model": "org/instruct"},
        {"id": "left", "model": "org/vision-large", "aliases": ("Small", "2024", "ab", "v2")},
        {"id": "right", "model": "org/7B-instruct", "name": "Large Vision Model"},
        {"id": "model-0.5b", "model": "org/base", "vendor": "AI"},
    ],
)
def test_generic_words_numbers_and_short_names_are_no_terms(fields):
    assert identity_terms(hub(**fields)) == ()


@pytest.mark.parametrize("spec", [QWEN, SMOL, PALIGEMMA, GPT, LLAMA, PHI, YI])
def test_every_term_finds_itself_in_an_answer(spec):
    """Each term, written as a name (with a capital), in an answer that names it and reads
    nothing off the image: it flags."""
    other = QWEN if spec is SMOL else SMOL
    for term in identity_terms(spec):
        answer = f"Ask {term[0].upper()}{term[1:]} instead."
        assert leak(PLAIN, answer, pair=(other, spec)), answer
