"""Decode speed through the arena's worker path against plain `model.generate`, same run.

    python benchmarks/decode_speed.py                       # tiny demo models + full-size LLaVA, CPU
    python benchmarks/decode_speed.py --presets tiny --tokens 256 --repeats 25
    python benchmarks/decode_speed.py --presets full --device cuda --full-tokens 128   # on a GPU

For each model, both sides load it with the arena's loader (`hf.load_model`) and answer the same
messages (one 640x480 image and a prompt) with the same settings (greedy, the entry's
max_new_tokens) and the same torch thread count (`hf.cpu_threads()`, what the worker sets),
one after the other after a warm-up round, alternating which side goes first:

  plain  `processor.apply_chat_template` then `model.generate`, with a streamer that only notes
         when each token arrives;
  arena  `LocalBackend(spec).stream(messages)`, the page's path: the worker process, the
         pipeline, the streamer, the queues between the processes.

Prefill is the time to the first token (plain) or to the first piece (arena; the tokens that
piece holds are counted from the plain side's ids, since both answers must be the same text).
Decode is the time per token after that. Every answer must have exactly the asked number of
tokens and the same text on both sides: the models' special tokens are suppressed.

Presets:
  tiny  the demo models (arena.demo): LLaVA (Qwen2 text) and SmolVLM, hidden size 64, where the
        per-token overhead dominates as it does on a GPU
  full  llava-interleave-qwen-0.5b's architecture (Qwen2-0.5B + SigLIP-so400m, 384 px, 0.9 B)
        with random weights (benchmarks/battle_latency.py's builder)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402
from battle_latency import PROMPT, QWEN2_05B, SIGLIP_SO400M, _photo, build_llava  # noqa: E402

from arena.backends import chat_messages, hf  # noqa: E402
from arena.backends.local import LocalBackend  # noqa: E402
from arena.config import Settings  # noqa: E402
from arena.images import check_image  # noqa: E402
from arena.registry import load_registry  # noqa: E402


@dataclass(frozen=True)
class Run:
    """One answer: seconds to the first token (or piece) and per token after it."""

    prefill_s: float
    decode_s: float  # per token after the first piece
    total_s: float  # the whole answer
    tokens: int
    text: str
    first_tokens: int = 1  # tokens the first piece held


def build(preset: str, out: Path, tokens: int, device: str) -> list[dict]:
    """The preset's models in out/, as models.yaml entries."""
    import torch

    if preset == "tiny":
        from arena import demo

        demo.build_demo_models(out, architectures=("llava", "smolvlm"))
        entries = yaml.safe_load((out / "models.yaml").read_text())["models"]
        for e in entries:
            e["model"] = str(out / e["model"])
    else:
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        build_llava(out / "llava-0.5b-arch", QWEN2_05B, SIGLIP_SO400M, 0, tokens, dtype)
        entries = [{"id": "llava-0.5b-arch", "backend": "transformers",
                    "model": str(out / "llava-0.5b-arch")}]  # fmt: skip
    for e in entries:
        e.update(max_new_tokens=tokens, temperature=0.0, device=device, dtype="auto")
    return entries


def plain_clock():
    """A streamer that notes when each generated token arrives and does nothing else."""
    from transformers.generation.streamers import BaseStreamer

    class Clock(BaseStreamer):
        def __init__(self):
            self.times: list[float] = []
            self._prompt = True

        def put(self, value):
            if self._prompt:
                self._prompt = False  # generate() hands the prompt over first
            else:
                self.times.extend([time.perf_counter()] * int(value.numel()))

        def end(self):
            pass

    return Clock()


def plain_once(model: hf.LoadedModel, spec, messages: list[dict]) -> tuple[Run, list[int]]:
    start = time.perf_counter()
    inputs = model.processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    ).to(model.model.device, dtype=model.dtype)
    clock = plain_clock()
    out = model.model.generate(**inputs, **model.generation_kwargs(spec), streamer=clock)
    ids = out[0, inputs["input_ids"].shape[1] :].tolist()
    text = model.processor.tokenizer.decode(ids, skip_special_tokens=True)
    end, t = time.perf_counter(), clock.times
    run = Run(t[0] - start, (t[-1] - t[0]) / max(1, len(t) - 1), end - start, len(ids), text)
    return run, ids


def arena_once(backend: LocalBackend, messages: list[dict], tokenizer, ids: list[int]) -> Run:
    start = time.perf_counter()
    stream = backend.stream(messages)
    pieces = []
    first = None
    for piece in stream:
        if first is None:
            first = time.perf_counter()
        pieces.append(piece)
    end = time.perf_counter()
    held = tokens_before(tokenizer, ids, len(pieces[0]))
    tokens = stream.tokens or 0
    decode_s = (end - first) / max(1, tokens - held)
    return Run(first - start, decode_s, end - start, tokens, "".join(pieces), held)


def tokens_before(tokenizer, ids: list[int], chars: int) -> int:
    """How many of `ids` it takes to decode to `chars` characters (the first piece's tokens)."""
    for k in range(1, len(ids) + 1):
        if len(tokenizer.decode(ids[:k], skip_special_tokens=True)) >= chars:
            return k
    return len(ids)


def measure(spec, settings, image, repeats: int) -> None:
    messages = chat_messages(image.image, [PROMPT])
    model = hf.load_model(spec, settings)
    backend = LocalBackend(spec, settings)
    tokenizer = model.processor.tokenizer
    runs: dict[str, list[Run]] = {"plain": [], "arena": []}
    try:
        _, ids = plain_once(model, spec, messages)  # warm-up rounds, not counted
        arena_once(backend, messages, tokenizer, ids)
        for i in range(repeats):
            if i % 2:  # alternate which side goes first, so that a drift in the machine's load
                arena = arena_once(backend, messages, tokenizer, ids)  # weighs on both alike
                plain, _ = plain_once(model, spec, messages)
            else:
                plain, _ = plain_once(model, spec, messages)
                arena = arena_once(backend, messages, tokenizer, ids)
            if arena.text != plain.text or {arena.tokens, plain.tokens} != {spec.max_new_tokens}:
                raise SystemExit(
                    f"{spec.id}: the sides differ: plain {plain.tokens} tokens {plain.text[:60]!r}, "
                    f"arena {arena.tokens} tokens {arena.text[:60]!r}"
                )
            runs["plain"].append(plain)
            runs["arena"].append(arena)
    finally:
        backend.close()
        model.close()
    report(spec, runs["plain"], runs["arena"])


def report(spec, plain: list[Run], arena: list[Run]) -> None:
    """Medians of each side, and the arena/plain ratios of each round (the two sides of a round
    ran back to back, so the machine's load weighs on both alike), with their quartiles."""
    import torch

    def med(runs: list[Run], field: str) -> float:
        return statistics.median(getattr(r, field) for r in runs)

    def ratio(field: str) -> str:
        ratios = [getattr(a, field) / getattr(p, field) for p, a in zip(plain, arena, strict=True)]
        q1, q2, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        return f"{statistics.median(ratios):.3f}x (quartiles {q1:.2f}-{q3:.2f})"

    p_decode, a_decode = med(plain, "decode_s"), med(arena, "decode_s")
    print(
        f"{spec.id:16} {spec.device:4} {torch.get_num_threads()} thread(s) {spec.max_new_tokens} "
        f"tokens, {len(plain)} rounds: prefill plain {med(plain, 'prefill_s') * 1e3:.1f} ms, arena "
        f"first piece {med(arena, 'prefill_s') * 1e3:.1f} ms ({med(arena, 'first_tokens'):g} "
        f"token(s)); decode plain {p_decode * 1e3:.3f} ms/token ({1 / p_decode:.0f} tok/s), arena "
        f"{a_decode * 1e3:.3f} ms/token ({1 / a_decode:.0f} tok/s); arena/plain per round: "
        f"decode {ratio('decode_s')}, whole answer {ratio('total_s')}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=["tiny", "full"], choices=["tiny", "full"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--tokens", type=int, default=128, help="new tokens, tiny models")
    parser.add_argument("--full-tokens", type=int, default=64, help="new tokens, full size")
    parser.add_argument("--repeats", type=int, default=15, help="rounds, tiny models")
    parser.add_argument("--full-repeats", type=int, default=3, help="rounds, full size")
    args = parser.parse_args()
    import torch

    if args.device == "cpu":
        torch.set_num_threads(hf.cpu_threads())  # what the worker sets for itself
    settings = Settings(generation_timeout_s=600)
    image = check_image(_photo(), settings)
    for preset in args.presets:
        tokens, repeats = (
            (args.tokens, args.repeats)
            if preset == "tiny"
            else (args.full_tokens, args.full_repeats)
        )
        with tempfile.TemporaryDirectory() as tmp:
            entries = build(preset, Path(tmp), tokens, args.device)
            registry_path = Path(tmp) / "bench.yaml"
            registry_path.write_text(yaml.safe_dump({"models": entries}))
            for spec in load_registry(registry_path).specs:
                measure(spec, settings, image, repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
