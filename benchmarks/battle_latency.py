"""Battle wall time against the slower model alone and against both run one after the other.

    python benchmarks/battle_latency.py                      # tiny demo models + small ones, CPU
    python benchmarks/battle_latency.py --presets full --device cuda --tokens 128   # on a GPU

Each model runs in its own worker process (arena.backends.local), exactly as in the app.
The models have random weights (the hub is out of reach here) but real architectures and
sizes; their special tokens are suppressed so every answer has exactly --tokens tokens.

Presets:
  tiny   the demo models (arena.demo): LLaVA and Idefics3, hidden size 64
  small  LLaVA (Qwen2 text, 8 layers, hidden 512 + SigLIP 224 px), two seeds: ~70 M parameters
  full   llava-interleave-qwen-0.5b's architecture (Qwen2-0.5B + SigLIP-so400m, 384 px, 0.9 B)
         against the same vision tower on a Qwen2-1.5B text model (1.9 B): GPU only
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402
from PIL import Image  # noqa: E402

from arena import battle as flow  # noqa: E402
from arena.backends import Backends, chat_messages  # noqa: E402
from arena.config import Settings  # noqa: E402
from arena.images import check_image  # noqa: E402
from arena.registry import load_registry  # noqa: E402

PROMPT = "Describe this image in detail."

SMALL_TEXT = dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=8, num_attention_heads=8,
                  num_key_value_heads=2)  # fmt: skip
SMALL_VISION = dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=6,
                    image_size=224, patch_size=16)  # fmt: skip
QWEN2_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151646, tie_word_embeddings=True)  # fmt: skip
QWEN2_15B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151646, tie_word_embeddings=True)  # fmt: skip
SIGLIP_SO400M = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                     image_size=384, patch_size=14)  # fmt: skip


def build_llava(target: Path, text: dict, vision: dict, seed: int, tokens: int, dtype) -> None:
    """A LLaVA model of the given sizes with random weights, saved like a hub checkpoint."""
    import torch
    from transformers import (
        GenerationConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers import SiglipImageProcessorPil as ImageProcessor

    from arena import demo

    tokenizer = demo._tokenizer(["<|im_start|>", "<|im_end|>", "<image>"], bos="<|endoftext|>",
                                eos="<|im_end|>", pad="<|endoftext|>")  # fmt: skip
    size, patch = vision["image_size"], vision["patch_size"]
    processor = LlavaProcessor(
        image_processor=ImageProcessor(size={"height": size, "width": size}),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=0,
        chat_template=demo._CHATML.replace("{IMAGE}", "<image>"),
        image_token="<image>",
    )
    vocab = max(text.get("vocab_size", 0), len(tokenizer))
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    config = LlavaConfig(
        text_config={
            "model_type": "qwen2",
            "tie_word_embeddings": False,
            **text,
            "vocab_size": vocab,
            "max_position_embeddings": 4096,
            **ids,
        },  # fmt: skip
        vision_config={"model_type": "siglip_vision_model", **vision},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(size // patch) ** 2,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = LlavaForConditionalGeneration(config).to(dtype)
    demo._randomise(model, std=0.05)
    suppressed = demo._suppressed_ids(tokenizer) + list(range(len(tokenizer), vocab))
    model.generation_config = GenerationConfig(**ids, do_sample=False, max_new_tokens=tokens,
                                               suppress_tokens=suppressed)  # fmt: skip
    model.save_pretrained(target)
    processor.save_pretrained(target)
    del model


def build(preset: str, out: Path, tokens: int, device: str) -> list[dict]:
    """Models of a preset in out/, as models.yaml entries (the two to battle)."""
    import torch

    if preset == "tiny":
        from arena import demo

        demo.build_demo_models(out, architectures=("llava", "idefics3"))
        entries = yaml.safe_load((out / "models.yaml").read_text())["models"]
        for e in entries:
            e["model"] = str(out / e["model"])
    else:
        shapes = {
            "small": [("small-a", SMALL_TEXT, SMALL_VISION), ("small-b", SMALL_TEXT, SMALL_VISION)],
            "full": [
                ("llava-0.5b-arch", QWEN2_05B, SIGLIP_SO400M),
                ("llava-1.5b-arch", QWEN2_15B, SIGLIP_SO400M),
            ],
        }[preset]
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        entries = []
        for seed, (name, text, vision) in enumerate(shapes):
            build_llava(out / name, text, vision, seed, tokens, dtype)
            entries.append({"id": name, "backend": "transformers", "model": str(out / name)})
    for e in entries:
        e.update(max_new_tokens=tokens, temperature=0.0, device=device, dtype="auto")
    return entries


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(preset: str, tokens: int, repeats: int, device: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        entries = build(preset, Path(tmp), tokens, device)
        registry_path = Path(tmp) / "bench.yaml"
        registry_path.write_text(yaml.safe_dump({"models": entries}))
        registry = load_registry(registry_path)
        settings = Settings(generation_timeout_s=600)
        pool = Backends(registry, settings)
        image = check_image(_photo(), settings)
        spec_a, spec_b = registry.specs[0], registry.specs[1]
        messages = chat_messages(image.image, [PROMPT])

        def alone(spec):
            pieces = list(pool.get(spec.id).stream(messages))
            assert "".join(pieces).strip(), f"{spec.id} gave an empty answer"

        def battle():
            b = flow.Battle(mode="named", spec_a=spec_a, spec_b=spec_b, image=image)
            for _ in flow.ask(pool, b, PROMPT):
                pass
            assert b.last_ok, b.results

        try:
            load = timed(lambda: (alone(spec_a), alone(spec_b)))  # start workers, load, warm up
            alone(spec_a), alone(spec_b)
            rows = {"a": [], "b": [], "seq": [], "battle": []}
            for _ in range(repeats):
                rows["a"].append(timed(lambda: alone(spec_a)))
                rows["b"].append(timed(lambda: alone(spec_b)))
                rows["seq"].append(timed(lambda: (alone(spec_a), alone(spec_b))))
                rows["battle"].append(timed(battle))
        finally:
            pool.close()
    med = {k: statistics.median(v) for k, v in rows.items()}
    slower = max(med["a"], med["b"])
    print(
        f"{preset:5} {device:4} {tokens} tokens, median of {repeats}: {spec_a.id} alone {med['a']:.2f} s "
        f"({tokens / med['a']:.0f} tok/s), {spec_b.id} alone {med['b']:.2f} s ({tokens / med['b']:.0f} tok/s), "
        f"one after the other {med['seq']:.2f} s, battle {med['battle']:.2f} s "
        f"= {med['battle'] / slower:.2f}x the slower alone, {med['battle'] / med['seq']:.2f}x sequential "
        f"(first start and load {load:.1f} s)",
        flush=True,
    )


def _photo() -> bytes:
    import io

    img = Image.new("RGB", (640, 480))
    img.putdata(
        [((x * 7) % 256, (y * 3) % 256, (x + y) % 256) for y in range(480) for x in range(640)]
    )
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--presets", nargs="+", default=["tiny", "small"], choices=["tiny", "small", "full"]
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for preset in args.presets:
        measure(preset, args.tokens, args.repeats, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
