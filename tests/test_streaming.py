"""arena.backends.hf.streaming: generated tokens to text pieces.

The pieces joined must be exactly `tokenizer.decode` of all the generated ids (what the
pipeline itself returns, and what transformers' TextIteratorStreamer, used before, streamed), on
tokenizations that split characters and words across tokens: byte-level BPE (the demo models)
and SentencePiece-style Metaspace with byte fallback (Llama, Gemma), built here offline with the
`tokenizers` library as the demo models' are, and the real tokenizers of Qwen2-VL (Qwen2's) and
SmolVLM from ../shared/data/hub-configs/.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import torch

from arena import demo
from arena.backends.hf.streaming import IncrementalText, PieceStreamer, StreamStalled
from tests.conftest import SHARED_DATA, skip_or_fail

TEXTS = {
    "multi-byte UTF-8": "naïve café: 東京 and 🎉🎉, über größer ß",
    "spaces": "  two  spaces   and\ttabs  at the end  ",
    "newlines": "line one\n\nline two\n  indented\nlast",
    "leading space": " The cat sits on the table.",
    "only an emoji": "🎉",
    "empty": "",
}
SPECIALS = ("<|im_start|>", "<|im_end|>", "<image>")


def byte_level_tokenizer():
    """The demo models' tokenizer: byte-level BPE, like Qwen2's."""
    return demo._tokenizer(
        list(SPECIALS), bos="<|endoftext|>", eos="<|im_end|>", pad="<|endoftext|>"
    )


def metaspace_tokenizer():
    """A Llama-style tokenizer: Metaspace ("▁" for spaces) BPE with byte-fallback tokens, and a
    decoder that strips the leading space of the text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", *SPECIALS],
                                  show_progress=False)  # fmt: skip
    tok.train_from_iterator(demo._CORPUS, trainer)
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for byte in range(256):  # plain tokens, not special ones: <0xE2> is text
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    data["model"]["byte_fallback"] = True
    tok = Tokenizer.from_str(json.dumps(data))
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])  # fmt: skip
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", additional_special_tokens=list(SPECIALS))  # fmt: skip


def hub_tokenizer(folder: str):
    from transformers import AutoTokenizer

    path = SHARED_DATA / "hub-configs" / folder
    if not path.is_dir():
        skip_or_fail(f"the hub's tokenizer files are not in {path}")
    return AutoTokenizer.from_pretrained(path)


BUILDERS = {
    "byte-level BPE": byte_level_tokenizer,
    "Metaspace + byte fallback": metaspace_tokenizer,
    "Qwen2-VL-2B-Instruct": lambda: hub_tokenizer("Qwen2-VL-2B-Instruct"),
    "SmolVLM-256M-Instruct": lambda: hub_tokenizer("SmolVLM-256M-Instruct"),
}
_BUILT: dict = {}


def tokenizer_named(name: str):
    if name not in _BUILT:
        _BUILT[name] = BUILDERS[name]()
    return _BUILT[name]


def generated_ids(tokenizer, text: str) -> list[int]:
    """The ids of `text`, with special tokens at the start, in the middle and at the end."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    special = tokenizer.all_special_ids[:3] * 3
    middle = len(ids) // 2
    return [special[0], *ids[:middle], special[2], special[1], *ids[middle:], special[1]]


def incremental(tokenizer, ids: list[int], chunk: int) -> list[str]:
    text = IncrementalText(tokenizer)
    pieces = [text.push(ids[i : i + chunk]) for i in range(0, len(ids), chunk)]
    return [*pieces, text.finish()]


def old_streamer_text(tokenizer, ids: list[int]) -> str:
    """What transformers' TextIteratorStreamer (the arena's streamer before) streamed."""
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(tokenizer, skip_special_tokens=True)
    for token in ids:
        streamer.put(torch.tensor([token]))
    streamer.end()
    return "".join(streamer)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize("case", TEXTS)
@pytest.mark.parametrize("name", BUILDERS)
def test_pieces_join_to_the_decoded_text_however_the_tokens_arrive(name, case, chunk):
    tokenizer = tokenizer_named(name)
    ids = generated_ids(tokenizer, TEXTS[case])
    whole = tokenizer.decode(ids, skip_special_tokens=True)
    assert whole in (TEXTS[case], TEXTS[case].removeprefix(" "))  # Metaspace drops the first
    pieces = incremental(tokenizer, ids, chunk)
    assert "".join(pieces) == whole
    assert not any("\ufffd" in piece for piece in pieces)  # no character is ever cut in two


@pytest.mark.parametrize("case", TEXTS)
@pytest.mark.parametrize("name", BUILDERS)
def test_final_text_is_what_the_old_streamer_gave(name, case):
    tokenizer = tokenizer_named(name)
    ids = generated_ids(tokenizer, TEXTS[case])
    ours = "".join(incremental(tokenizer, ids, 1))
    assert (
        ours == old_streamer_text(tokenizer, ids) == tokenizer.decode(ids, skip_special_tokens=True)
    )


def test_text_streams_word_by_word_not_all_at_the_end():
    tokenizer = tokenizer_named("byte-level BPE")
    ids = tokenizer.encode("The cat sits on the wooden table.", add_special_tokens=False)
    pieces = incremental(tokenizer, ids, 1)
    assert len([p for p in pieces if p]) >= len(ids) - 1
    assert pieces[-1] == ""  # nothing was held back


def test_an_incomplete_character_is_held_back_until_its_last_byte():
    tokenizer = tokenizer_named("byte-level BPE")
    ids = tokenizer.encode("🎉", add_special_tokens=False)
    assert len(ids) > 1  # the emoji's four bytes are several tokens
    text = IncrementalText(tokenizer)
    assert [text.push([i]) for i in ids[:-1]] == [""] * (len(ids) - 1)
    assert text.push(ids[-1:]) == "🎉"


def test_finish_hands_out_a_cut_character_like_decode_does():
    tokenizer = tokenizer_named("byte-level BPE")
    ids = tokenizer.encode("ok 🎉", add_special_tokens=False)[:-1]  # generation stopped mid-emoji
    pieces = incremental(tokenizer, ids, 1)
    assert "".join(pieces) == tokenizer.decode(ids) and pieces[-1].endswith("\ufffd")


# --------------------------------------------------------------------------- PieceStreamer


def generate_into(streamer: PieceStreamer, ids: list[int], pause_s: float) -> threading.Thread:
    """A stand-in for generate() in its thread: the prompt, then one token at a time, then end."""

    def run():
        streamer.put(torch.tensor([[1, 2, 3]]))  # the prompt, which is not part of the answer
        for token in ids:
            time.sleep(pause_s)
            streamer.put(torch.tensor([token]))
        streamer.end()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_streamer_hands_out_the_whole_answer_in_fewer_pieces_than_tokens():
    tokenizer = tokenizer_named("byte-level BPE")
    ids = generated_ids(tokenizer, TEXTS["multi-byte UTF-8"] * 3)
    streamer = PieceStreamer(tokenizer, interval_s=0.02, timeout_s=10)
    started = time.perf_counter()
    thread = generate_into(streamer, ids, pause_s=0.002)
    arrivals, pieces = [], []
    for piece in streamer.pieces():
        arrivals.append(time.perf_counter() - started)
        pieces.append(piece)
    thread.join()
    took = time.perf_counter() - started
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True)
    assert streamer.token_count == len(ids)  # special tokens counted, the prompt not
    assert 2 <= len(pieces) <= took / 0.02 + 2 < len(ids)
    assert arrivals[0] < took / 2  # the first piece did not wait for the end


def test_streamer_that_gets_no_token_stalls_after_its_timeout():
    streamer = PieceStreamer(tokenizer_named("byte-level BPE"), timeout_s=0.05)
    streamer.put(torch.tensor([[1, 2]]))  # the prompt, then nothing
    started = time.perf_counter()
    with pytest.raises(StreamStalled):
        next(streamer.pieces())
    assert 0.04 < time.perf_counter() - started < 2


def test_streamer_ended_without_tokens_hands_out_nothing():
    streamer = PieceStreamer(tokenizer_named("byte-level BPE"), timeout_s=1)
    streamer.end()  # what a failed generation does
    streamer.end()
    assert list(streamer.pieces()) == [] and streamer.token_count == 0
