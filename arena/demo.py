"""Tiny random-weight vision-language models for the offline demo and the tests.

No PyPI package ships trained VLM weights and the Hugging Face hub may be out of reach, so
`build_demo_models(out_dir)` builds a handful of *real* architectures with tiny configurations
and random weights, saves each with `save_pretrained` (model, processor, tokenizer, chat template,
generation config) and writes `out_dir/models.yaml` listing them. They load through exactly the
same code path as a hub model (`arena.backends.hf.load_model`); their answers are
deterministic gibberish.

    python -m arena.demo demo_models/      # then ARENA_MODELS=demo_models/models.yaml

Recipe (see shared NOTES, "Models without the internet"):
- a byte-level BPE tokenizer trained on a few sentences, holding every special token the
  processor needs, wrapped in `PreTrainedTokenizerFast`;
- hidden sizes of 32-64 and one layer, 32 px images and 4-16 image tokens, so CPU generation
  takes milliseconds per token;
- weight matrices re-initialised with a seeded normal(0, 0.2): the default std 0.02 makes greedy
  decoding repeat one token;
- the generation config suppresses special tokens (EOS included) and byte tokens that do not
  decode to printable ASCII, so every answer is printable, non-empty text of max_new_tokens tokens.
"""

from __future__ import annotations

import contextlib
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import yaml

# What build_demo_models builds, in this order. Each name is the model's subfolder of out_dir;
# its id in models.yaml is "tiny-" + the name with "_" as "-" (tiny-qwen2-vl).
ARCHITECTURES: tuple[str, ...] = (
    "llava",  # LlavaForConditionalGeneration: Qwen2 text + SigLIP vision (llava-interleave-qwen)
    "idefics3",  # Idefics3ForConditionalGeneration: Llama text + SigLIP-like vision, pixel shuffle
    "smolvlm",  # SmolVLMForConditionalGeneration (needs the num2words package)
    "qwen2_vl",  # Qwen2VLForConditionalGeneration: M-RoPE, dynamic-resolution vision
    "paligemma",  # PaliGemmaForConditionalGeneration: Gemma text + SigLIP vision
)

ARCHITECTURE_CLASSES: dict[str, str] = {
    "llava": "LlavaForConditionalGeneration",
    "idefics3": "Idefics3ForConditionalGeneration",
    "smolvlm": "SmolVLMForConditionalGeneration",
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "paligemma": "PaliGemmaForConditionalGeneration",
}

DISPLAY_NAMES: dict[str, str] = {
    "llava": "Tiny LLaVA (Qwen2 + SigLIP)",
    "idefics3": "Tiny Idefics3",
    "smolvlm": "Tiny SmolVLM",
    "qwen2_vl": "Tiny Qwen2-VL",
    "paligemma": "Tiny PaliGemma",
}

INIT_STD = 0.2
MAX_NEW_TOKENS = 24

_CORPUS = [
    "A photo of a small red house next to a green tree under a blue sky.",
    "The cat sits on the wooden table and looks at the camera.",
    "Two people are walking along the beach at sunset, holding hands.",
    "This chart shows the sales of each month; the values rise in summer.",
    "What is in this image? Describe the picture in one short sentence.",
    "There is a dog, a ball and a bicycle in the park near the river.",
    "The text on the sign says: open from 9 to 5, closed on Sunday.",
    "Yes. No. Maybe! It looks like a city street with cars and buses.",
    "user assistant system image picture colour color shape left right",
]


def missing_requirements(arch: str) -> str | None:
    """Why `arch` cannot be built or run here (a missing package), or None."""
    if arch == "smolvlm":
        from transformers.utils import is_num2words_available

        if not is_num2words_available():
            return "the SmolVLM processor needs the 'num2words' package (pip install num2words)"
    return None


def available_architectures() -> tuple[str, ...]:
    """The ARCHITECTURES that this environment can build and run."""
    return tuple(a for a in ARCHITECTURES if missing_requirements(a) is None)


def build_demo_models(
    out_dir: Path, seed: int = 0, architectures: tuple[str, ...] | None = None
) -> Path:
    """Build the tiny demo models into subfolders of out_dir; return the path of out_dir/models.yaml.

    Builds every architecture of `available_architectures()` unless `architectures` names some
    (asking for one whose package is missing raises RuntimeError). Deterministic for a seed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = available_architectures() if architectures is None else tuple(architectures)
    entries = []
    with _quiet_progress_bars():
        for arch in wanted:
            entries.append(_build_one(out_dir, arch, seed))
    header = (
        "# Tiny random-weight demo models built by arena.demo.build_demo_models (deterministic\n"
        "# gibberish answers). Paths are relative to this file.\n"
    )
    path = out_dir / "models.yaml"
    path.write_text(header + yaml.safe_dump({"models": entries}, sort_keys=False), encoding="utf-8")
    return path


@contextlib.contextmanager
def _quiet_progress_bars():
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _build_one(out_dir: Path, arch: str, seed: int) -> dict:
    """Build one architecture into out_dir/arch; return its models.yaml entry."""
    import torch

    if arch not in _BUILDERS:
        raise ValueError(
            f"unknown demo architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}"
        )
    why = missing_requirements(arch)
    if why:
        raise RuntimeError(f"cannot build the demo {arch} model: {why}")
    with torch.random.fork_rng(devices=[]):
        # one seed per architecture, so look-alike ones (Idefics3, SmolVLM) answer differently
        torch.manual_seed(seed * 1_000_003 + zlib.crc32(arch.encode()))
        _BUILDERS[arch](out_dir / arch)
    return {
        "id": f"tiny-{arch.replace('_', '-')}",
        "name": DISPLAY_NAMES[arch],
        "backend": "transformers",
        "model": f"./{arch}",
        "max_new_tokens": MAX_NEW_TOKENS,
        "temperature": 0.0,
        "weight": 1.0,
        "device": "cpu",
        "dtype": "float32",
    }


# --------------------------------------------------------------------------- tokenizer


def _tokenizer(special: list[str], *, bos: str, eos: str, pad: str, vocab_size: int = 420, **extra):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = list(dict.fromkeys([bos, eos, pad, *special]))
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer)
    others = [t for t in specials if t not in (bos, eos, pad)]
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        additional_special_tokens=others,
        **extra,
    )


def _suppressed_ids(tokenizer) -> list[int]:
    """Ids a demo model must never generate: special tokens and tokens that are not printable ASCII."""
    bad = []
    # special tokens, and tokens added on top of the BPE (e.g. PaliGemma's <loc>/<seg> tokens)
    special = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
    for token_id in range(len(tokenizer)):
        if token_id in special:
            bad.append(token_id)
            continue
        text = tokenizer.decode([token_id])
        if not text or not all(" " <= ch <= "~" for ch in text) or not text.strip(" "):
            bad.append(token_id)
    return bad


# --------------------------------------------------------------------------- weights / saving


def _randomise(model, std: float = INIT_STD) -> None:
    import torch

    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.normal_(0.0, std)


def _save(model, processor, tokenizer, target: Path, video_processor: dict | None = None) -> None:
    """Randomise and save; `video_processor` is written into processor_config.json (see below)."""
    import json

    from transformers import GenerationConfig

    _randomise(model)
    model.eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=MAX_NEW_TOKENS,
        suppress_tokens=_suppressed_ids(tokenizer),
    )
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    processor.save_pretrained(target)
    if video_processor is not None:
        # Without torchvision the video sub-processor cannot be built, so save_pretrained cannot
        # write its config. Write it as a torchvision install would, so that AutoProcessor loads
        # these models normally there (and fails here exactly as for a hub model).
        path = target / "processor_config.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        image = data.get("image_processor", {})
        data["video_processor"] = {
            **{k: image[k] for k in _VIDEO_KEYS if k in image},
            **video_processor,
        }
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


_VIDEO_KEYS = (
    "do_convert_rgb",
    "do_normalize",
    "do_rescale",
    "do_resize",
    "image_mean",
    "image_std",
    "rescale_factor",
    "size",
    "patch_size",
    "temporal_patch_size",
    "merge_size",
    "max_image_size",
)


# --------------------------------------------------------------------------- chat templates

# ChatML, as used by llava-interleave-qwen and Qwen2-VL: the image placeholder goes where the
# image item is in the user's content.
_CHATML = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{IMAGE}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Idefics3 / SmolVLM style: "User:<image>prompt<end_of_utterance>\nAssistant:".
_IDEFICS = (
    "<|im_start|>"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}: {{ message['content'] }}"
    "{% else %}{% if message['content'][0]['type'] == 'image' %}:{% else %}: {% endif %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

# PaliGemma has no chat format: images first, then the turns as plain text. The processor puts
# <bos> after the last image and "\n" at the end.
_PALIGEMMA = (
    "{% for message in messages %}{% if message['content'] is not string %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>{% endif %}"
    "{% endfor %}{% endif %}{% endfor %}"
    "{% for message in messages %}"
    "{% if message['role'] != 'user' %}{{ message['role'] }}: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if not loop.last %}\n{% endif %}"
    "{% endfor %}"
)


# --------------------------------------------------------------------------- builders

_HIDDEN = 64
_HEADS = 4


def _tiny_text(tokenizer, **extra) -> dict:
    """A one-layer text model config whose special ids are the tokenizer's."""
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=_HIDDEN,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=_HEADS,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def _qwen2_text(tokenizer) -> dict:
    return _tiny_text(tokenizer, tie_word_embeddings=False)


def _siglip_vision(image_size: int = 32, patch_size: int = 8) -> dict:
    return dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
    )


def _build_llava(target: Path) -> None:
    from transformers import (
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        SiglipImageProcessorPil,
    )

    tokenizer = _tokenizer(
        ["<|im_start|>", "<|im_end|>", "<image>"],
        bos="<|endoftext|>",
        eos="<|im_end|>",
        pad="<|endoftext|>",
    )
    image_size, patch = 32, 8
    image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=0,
        chat_template=_CHATML.replace("{IMAGE}", "<image>"),
        image_token="<image>",
    )
    config = LlavaConfig(
        text_config={"model_type": "qwen2", **_qwen2_text(tokenizer)},
        vision_config={"model_type": "siglip_vision_model", **_siglip_vision(image_size, patch)},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    _save(LlavaForConditionalGeneration(config), processor, tokenizer, target)


def _idefics_parts(processor_cls, image_processor_cls, video: bool):
    tokenizer = _tokenizer(
        [
            "<|im_start|>",
            "<end_of_utterance>",
            "<image>",
            "<fake_token_around_image>",
            "<global-img>",
        ],
        bos="<|im_start|>",
        eos="<end_of_utterance>",
        pad="<|endoftext|>",
    )
    image_size, patch, scale = 32, 8, 2
    image_processor = image_processor_cls(
        size={"longest_edge": image_size},
        max_image_size={"longest_edge": image_size},
        do_image_splitting=False,
    )
    seq_len = (image_size // patch) ** 2 // scale**2
    kwargs = dict(image_seq_len=seq_len, chat_template=_IDEFICS)
    if video:
        processor = _without_video(processor_cls)(image_processor, tokenizer, **kwargs)
    else:
        processor = processor_cls(image_processor, tokenizer, **kwargs)
    text = _tiny_text(tokenizer, model_type="llama")
    config_kwargs = dict(
        text_config=text,
        vision_config=_siglip_vision(image_size, patch),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=scale,
    )
    return tokenizer, processor, config_kwargs


def _build_idefics3(target: Path) -> None:
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    tokenizer, processor, cfg = _idefics_parts(Idefics3Processor, Idefics3ImageProcessorPil, False)
    _save(Idefics3ForConditionalGeneration(Idefics3Config(**cfg)), processor, tokenizer, target)


def _build_smolvlm(target: Path) -> None:
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessorPil,
        SmolVLMProcessor,
    )

    tokenizer, processor, cfg = _idefics_parts(SmolVLMProcessor, SmolVLMImageProcessorPil, True)
    model = SmolVLMForConditionalGeneration(SmolVLMConfig(**cfg))
    video = {"video_processor_type": "SmolVLMVideoProcessor", "processor_class": "SmolVLMProcessor"}
    _save(model, processor, tokenizer, target, video)


def _build_qwen2_vl(target: Path) -> None:
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
        Qwen2VLProcessor,
    )

    tokenizer = _tokenizer(
        [
            "<|im_start|>",
            "<|im_end|>",
            "<|vision_start|>",
            "<|vision_end|>",
            "<|image_pad|>",
            "<|video_pad|>",
        ],
        bos="<|endoftext|>",
        eos="<|im_end|>",
        pad="<|endoftext|>",
    )
    patch, merge = 8, 2
    side = patch * merge * 2  # 32 px: 4x4 patches, merged 2x2 -> 4 image tokens
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": side * side, "longest_edge": side * side},
        patch_size=patch,
        merge_size=merge,
        temporal_patch_size=2,
    )
    template = _CHATML.replace("{IMAGE}", "<|vision_start|><|image_pad|><|vision_end|>")
    processor = _without_video(Qwen2VLProcessor)(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=template
    )
    head_dim = _HIDDEN // _HEADS
    text = _qwen2_text(tokenizer)
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 10000.0,
        # M-RoPE splits head_dim / 2 rotary frequencies over (time, height, width).
        "mrope_section": [head_dim // 8, head_dim // 4 - head_dim // 8, head_dim // 4],
    }
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=dict(
            depth=1,
            embed_dim=32,
            hidden_size=_HIDDEN,
            mlp_ratio=2,
            num_heads=2,
            patch_size=patch,
            spatial_merge_size=merge,
            temporal_patch_size=2,
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    )
    video = {"video_processor_type": "Qwen2VLVideoProcessor", "processor_class": "Qwen2VLProcessor"}
    _save(Qwen2VLForConditionalGeneration(config), processor, tokenizer, target, video)


def _build_paligemma(target: Path) -> None:
    from transformers import (
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessorPil,
    )

    tokenizer = _tokenizer(["<image>"], bos="<bos>", eos="<eos>", pad="<pad>")
    image_size, patch = 32, 8
    image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    image_processor.image_seq_length = (image_size // patch) ** 2
    # The processor adds the 1,152 <locNNNN>/<segNNN> tokens: read the vocabulary size after it.
    processor = PaliGemmaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=_PALIGEMMA
    )
    vocab = len(tokenizer)
    config = PaliGemmaConfig(
        text_config=dict(
            model_type="gemma",
            vocab_size=vocab,
            hidden_size=_HIDDEN,
            intermediate_size=128,
            num_hidden_layers=1,
            num_attention_heads=_HEADS,
            num_key_value_heads=1,
            head_dim=_HIDDEN // _HEADS,
            max_position_embeddings=512,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
        ),
        vision_config={**_siglip_vision(image_size, patch), "model_type": "siglip_vision_model"},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vocab_size=vocab,
        projection_dim=_HIDDEN,
        hidden_size=_HIDDEN,
        # Tied random embeddings (Gemma scales them by sqrt(hidden)) make greedy decoding repeat
        # the last token; untied, the answers vary.
        tie_word_embeddings=False,
    )
    _save(PaliGemmaForConditionalGeneration(config), processor, tokenizer, target)


_BUILDERS: dict[str, Callable[[Path], None]] = {
    "llava": _build_llava,
    "idefics3": _build_idefics3,
    "smolvlm": _build_smolvlm,
    "qwen2_vl": _build_qwen2_vl,
    "paligemma": _build_paligemma,
}


def _without_video(processor_cls):
    from arena.backends.hf import processor_without_video

    return processor_without_video(processor_cls)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path("demo_models")
    path = build_demo_models(out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
