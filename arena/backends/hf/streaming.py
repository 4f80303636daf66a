"""From the tokens `generate()` produces to the text pieces a stream hands out.

    streamer = PieceStreamer(tokenizer, timeout_s=600)   # generate(..., streamer=streamer)
    for piece in streamer.pieces():                      # in another thread than generate()
        ...
    streamer.token_count                                 # tokens generated (prompt excluded)

transformers' TextIteratorStreamer decodes all the text since the last newline and crosses a
queue to the consumer thread on every token. Measured in one process on the tiny demo models
(CPU, 128 tokens): its decoding alone took 1.07x plain `generate`'s time per token, and the
consumer thread waking for every token 1.21-1.28x. Here `put()`, which runs inside the decoding
loop, only appends the ids; the consumer wakes at the first token, then at most every
PIECE_INTERVAL_S, and decodes only the tokens since its last piece (IncrementalText).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

# A piece at most every 20 ms (the first one at once) still reads as live typing, and it wakes
# the consumer, the worker's queue and the page once per piece instead of once per token.
PIECE_INTERVAL_S = 0.02


class StreamStalled(Exception):
    """No new token within the streamer's timeout."""


class IncrementalText:
    """The text of a growing list of token ids, handed out as the new part only.

    Each `push` decodes a short window: the tokens of the last piece handed out (context, so
    that a leading-space rule or a word boundary decodes as it does in the whole text) and the
    new ones. Text ending in an incomplete UTF-8 sequence ("\\ufffd") is held back until its
    remaining bytes arrive; `finish` hands out whatever is left. The pieces joined are
    `tokenizer.decode(ids, skip_special_tokens=...)` of all the ids (the algorithm of
    text-generation-inference and vLLM).
    """

    def __init__(self, tokenizer, skip_special_tokens: bool = True):
        self._tokenizer = tokenizer
        self._skip = skip_special_tokens
        self._ids: list[int] = []
        self._prefix = 0  # the window starts here: the tokens of the last piece
        self._read = 0  # the tokens up to here are in the pieces handed out

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=self._skip)

    def push(self, ids: list[int]) -> str:
        """Add generated ids; return the new text they complete ("" while it is incomplete)."""
        self._ids.extend(ids)
        return self._advance(final=False)

    def finish(self) -> str:
        """The text still held back, an incomplete trailing character included."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        if len(self._ids) == self._read:
            return ""
        before = self._decode(self._ids[self._prefix : self._read])
        now = self._decode(self._ids[self._prefix :])
        if not final and (len(now) <= len(before) or now.endswith("\ufffd")):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return now[len(before) :]


class PieceStreamer:
    """A `generate()` streamer (put/end) that hands out text pieces to one consumer thread.

    `put` and `end` are called by `generate()` in its own thread; `pieces()` runs in another.
    Both sides share only a list that `put` appends to and two events. The first piece comes
    as soon as the first token decodes to text, the later ones at most every `interval_s`
    (the last one as soon as generation ends). `pieces()` raises StreamStalled when no token
    arrives within `timeout_s` (None waits for ever).
    """

    def __init__(
        self,
        tokenizer,
        *,
        skip_special_tokens: bool = True,
        interval_s: float = PIECE_INTERVAL_S,
        timeout_s: float | None = None,
    ):
        self._text = IncrementalText(tokenizer, skip_special_tokens)
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._ids: list[int] = []
        self._prompt_seen = False
        self._new = threading.Event()  # tokens arrived since the consumer last looked
        self._ended = threading.Event()

    @property
    def token_count(self) -> int:
        """Tokens generated so far (special tokens included, prompt excluded)."""
        return len(self._ids)

    def put(self, value) -> None:
        """Called by generate(): first with the prompt (skipped), then with each new token."""
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self._ids.extend(value.reshape(-1).tolist())
        if not self._new.is_set():
            self._new.set()

    def end(self) -> None:
        """Called by generate() when it is done (and by the caller after a failure); idempotent."""
        self._ended.set()
        self._new.set()

    def pieces(self) -> Iterator[str]:
        """The answer's text in pieces, until end(); StreamStalled if tokens stop coming."""
        read = 0
        while True:
            if not self._new.wait(self._timeout_s):
                raise StreamStalled()
            self._new.clear()
            ended = self._ended.is_set()  # before reading ids: every put precedes end
            ids = self._ids[read:]
            read += len(ids)
            piece = self._text.push(ids)
            if ended:
                piece += self._text.finish()
            if piece:
                yield piece
                if not ended:
                    self._ended.wait(self._interval_s)  # let tokens gather; wake at the end
            if ended:
                return
