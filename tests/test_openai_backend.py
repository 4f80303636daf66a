"""OpenAIBackend against real servers on 127.0.0.1.

- `transformers serve` serving a tiny random-weight LLaVA directory (started once per session):
  answers, streaming, check(), and greedy equality with the in-process transformers path.
- A small stdlib HTTP server that stands in for a misbehaving OpenAI-compatible provider:
  status codes, broken streams, retries. It speaks HTTP and SSE for real; only its answers
  are scripted.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest
from PIL import Image

from arena.backends.base import chat_messages
from arena.backends.openai_backend import OpenAIBackend, to_openai_messages
from arena.config import Settings
from arena.errors import ModelError
from arena.registry import OpenAISpec
from tests.conftest import free_port, serve_http

PROMPTS = ["What is in this image?", "Say more about the colours."]


def _spec(base_url: str, **fields) -> OpenAISpec:
    fields = {"id": "remote", "backend": "openai", "base_url": base_url, "model": "tiny", **fields}
    return OpenAISpec(**fields)


def _image() -> Image.Image:
    """A small patterned RGB image (sent as PNG, so both paths see the same pixels)."""
    img = Image.new("RGB", (64, 48))
    img.putdata([(x * 4, y * 5, (x * y) % 256) for y in range(48) for x in range(64)])
    return img


# ----- transformers serve ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def local_model(llava_spec):
    from arena.backends import hf

    return hf.load_model(llava_spec, Settings())


def _remote(serve_url, llava_spec, **fields) -> OpenAIBackend:
    fields = {"model": llava_spec.model, "max_new_tokens": 24, "temperature": 0.0, **fields}
    return OpenAIBackend(_spec(serve_url, **fields), Settings())


@pytest.mark.slow
@pytest.mark.parametrize("turns", [1, 2], ids=["one-turn", "follow-up"])
def test_greedy_answer_equals_local_transformers(serve_url, llava_spec, local_model, turns):
    backend = _remote(serve_url, llava_spec)
    local_spec = llava_spec.model_copy(update={"max_new_tokens": 24, "temperature": 0.0})
    messages = chat_messages(_image(), PROMPTS[:turns], ["A tiny coloured square."][: turns - 1])

    stream = backend.stream(messages)
    remote = "".join(stream)
    local = "".join(local_model.stream(messages, local_spec))

    assert remote.strip(), "the served model gave an empty answer"
    assert remote == local
    assert stream.tokens == 24  # from the server's usage (greedy ran to max tokens)


@pytest.mark.slow
def test_serve_streams_in_several_chunks(serve_url, llava_spec):
    backend = _remote(serve_url, llava_spec, max_new_tokens=12)
    pieces = list(backend.stream(chat_messages(_image(), PROMPTS[:1])))
    assert len(pieces) > 1
    assert all(isinstance(p, str) and p for p in pieces)
    # The image reaches the model: another image, another answer.
    red = "".join(backend.stream(chat_messages(Image.new("RGB", (40, 30), "red"), PROMPTS[:1])))
    blue = "".join(backend.stream(chat_messages(Image.new("RGB", (40, 30), "blue"), PROMPTS[:1])))
    assert red != blue


@pytest.mark.slow
def test_check_against_serve(serve_url, llava_spec):
    status = _remote(serve_url, llava_spec).check()
    assert "reachable" in status and llava_spec.model in status

    with pytest.raises(ModelError) as err:
        _remote(serve_url, llava_spec, model="no-such-model").check()
    assert "no-such-model" in err.value.cause and "does not list" in err.value.cause


@pytest.mark.slow
def test_serve_refuses_another_model_name(serve_url, llava_spec):
    """A server pinned to one model answers 400 for another name: not retried, named in the error."""
    backend = _remote(serve_url, llava_spec, model="no-such-model")
    with pytest.raises(ModelError) as err:
        list(backend.stream(chat_messages(_image(), PROMPTS[:1])))
    assert "HTTP 400" in err.value.cause and "no-such-model" in err.value.cause


# ----- a misbehaving provider --------------------------------------------------------------------


def _sse(*events) -> bytes:
    return b"".join(
        f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events
    )


def _chunk(text=None, usage=None, finish=None) -> dict:
    delta = {"content": text} if text is not None else {"role": "assistant"}
    chunk = {
        "id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "tiny",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }  # fmt: skip
    if usage is not None:
        chunk["usage"] = {"prompt_tokens": 3, "completion_tokens": usage, "total_tokens": 3 + usage}
    return chunk


class _Provider(BaseHTTPRequestHandler):
    """Stands in for a misbehaving OpenAI-compatible provider (real HTTP, scripted answers).

    The first path segment picks the behaviour: base_url http://127.0.0.1:PORT/<mode>/v1.
    """

    def do_POST(self):
        mode = self.path.split("/")[1]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.log.append(
            (mode, time.monotonic(), body, {k.lower(): v for k, v in self.headers.items()})
        )
        count = sum(1 for m, *_ in self.server.log if m == mode)
        if mode.startswith("status-"):
            return self._error(int(mode.split("-")[1]))
        if mode == "flaky" and count <= 2:
            return self._error(503)
        if mode == "strict" and "stream_options" in body:
            return self._json(422, {"detail": "Extra inputs are not permitted: stream_options"})
        usage = 7 if "stream_options" in body else None
        if mode == "slow-usage":  # usage = the prompt's length, sent after a pause
            prompt = body["messages"][0]["content"][-1]["text"]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for event in (_chunk(prompt), _chunk(finish="stop")):
                self.wfile.write(_sse(event))
                self.wfile.flush()
                time.sleep(0.2)
            self.wfile.write(_sse(_chunk(usage=len(prompt)), "[DONE]"))
            return
        events = {
            "ok": [
                _chunk(),
                _chunk("Hel"),
                _chunk("lo"),
                _chunk(finish="stop"),
                _chunk(usage=usage),
                "[DONE]",
            ],
            "flaky": [_chunk("fine"), "[DONE]"],
            "strict": [_chunk("a"), _chunk("b"), _chunk("c"), "[DONE]"],
            "empty": [_chunk(), _chunk(finish="stop"), "[DONE]"],
            "badjson": [_chunk("partial"), '{"choices": [', "[DONE]"],
            "notchunk": [{"object": "something.else"}, "[DONE]"],
            "midstream": [_chunk("partial"), {"error": {"message": "worker crashed"}}],
        }[mode]
        if usage is None:
            events = [e for e in events if not (isinstance(e, dict) and "usage" in e)]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(_sse(*events))

    def do_GET(self):
        mode = self.path.split("/")[1]
        if mode == "nolist":
            return self._error(404)
        self._json(
            200,
            {
                "object": "list",
                "data": [{"id": "tiny", "object": "model", "created": 0, "owned_by": "me"}],
            },
        )

    def _error(self, code):
        self._json(
            code, {"error": {"message": f"scripted error {code}", "type": "test", "code": code}}
        )

    def _json(self, code, payload):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def provider():
    yield from serve_http(_Provider, log=[])


def _url(provider, mode) -> str:
    return f"http://127.0.0.1:{provider.server_address[1]}/{mode}/v1"


def _requests(provider, mode) -> list:
    return [entry for entry in provider.log if entry[0] == mode]


def _answer(backend: OpenAIBackend) -> str:
    return "".join(backend.stream(chat_messages(_image(), PROMPTS[:1])))


def _fast(backend: OpenAIBackend) -> OpenAIBackend:
    backend.backoff_s = 0.01
    return backend


def test_request_and_usage(provider, monkeypatch):
    monkeypatch.setenv("ARENA_TEST_KEY", "sk-test-123")
    spec = _spec(_url(provider, "ok"), api_key_env="ARENA_TEST_KEY", max_new_tokens=9, top_p=0.5)
    backend = OpenAIBackend(spec, Settings())
    stream = backend.stream(chat_messages(_image(), PROMPTS[:1]))
    assert list(stream) == ["Hel", "lo"]
    assert stream.tokens == 7 and stream.finished  # the server's usage
    _, _, body, headers = _requests(provider, "ok")[-1]
    assert headers["authorization"] == "Bearer sk-test-123"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    sent = {k: body[k] for k in ("model", "max_tokens", "temperature", "top_p")}
    assert sent == {"model": "tiny", "max_tokens": 9, "temperature": 0.0, "top_p": 0.5}
    image, text = body["messages"][0]["content"]
    assert image["image_url"]["url"].startswith("data:image/png;base64,")
    assert text == {"type": "text", "text": PROMPTS[0]}


def test_two_sessions_streaming_one_backend_each_get_their_own_token_count(provider):
    """The backend is shared by every session: a stream's token count belongs to that stream."""
    backend = OpenAIBackend(_spec(_url(provider, "slow-usage")), Settings())
    prompts = ["short", "a much longer question about the image"]
    streams = [backend.stream(chat_messages(_image(), [p])) for p in prompts]
    texts = [""] * 2

    def read(i):
        texts[i] = "".join(streams[i])

    threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert texts == prompts
    assert [s.tokens for s in streams] == [len(p) for p in prompts]
    assert not hasattr(backend, "last_token_count")


def test_message_conversion():
    messages = chat_messages(_image(), PROMPTS, ["An answer."])
    out = to_openai_messages(messages, system_prompt="Be brief.")
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[0]["content"] == "Be brief." and out[2]["content"] == "An answer."
    assert out[3]["content"] == [{"type": "text", "text": PROMPTS[1]}]
    own = to_openai_messages(chat_messages(_image(), PROMPTS[:1], system_prompt="Mine."), "Spec's.")
    assert [m["content"] for m in own if m["role"] == "system"] == ["Mine."]
    big = to_openai_messages(chat_messages(Image.new("RGB", (1200, 900)), ["x"]))
    assert big[0]["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_server_without_stream_options_falls_back(provider):
    backend = OpenAIBackend(_spec(_url(provider, "strict")), Settings())
    stream = backend.stream(chat_messages(_image(), PROMPTS[:1]))
    assert "".join(stream) == "abc"
    assert stream.tokens == 3  # content chunks: no usage from this server
    assert _answer(backend) == "abc"
    bodies = [body for _, _, body, _ in _requests(provider, "strict")]
    assert ["stream_options" in b for b in bodies] == [True, False, False]  # asked once only


def test_missing_api_key_variable(provider, monkeypatch):
    monkeypatch.delenv("ARENA_TEST_MISSING_KEY", raising=False)
    backend = OpenAIBackend(
        _spec(_url(provider, "ok"), api_key_env="ARENA_TEST_MISSING_KEY"), Settings()
    )
    with pytest.raises(ModelError) as err:
        _answer(backend)
    assert err.value.model_id == "remote" and "ARENA_TEST_MISSING_KEY" in err.value.cause
    with pytest.raises(ModelError, match="ARENA_TEST_MISSING_KEY"):
        backend.check()


def test_connection_refused():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there now
    backend = OpenAIBackend(_spec(url, timeout_s=5), Settings())
    for call in (_answer, OpenAIBackend.check):
        with pytest.raises(ModelError) as err:
            call(backend)
        assert url in err.value.cause and "refused" in err.value.cause.lower()


def test_timeout():
    """A server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        backend = OpenAIBackend(_spec(url, timeout_s=0.5), Settings())
        start = time.monotonic()
        with pytest.raises(ModelError) as err:
            _answer(backend)
        assert time.monotonic() - start < 5
        assert "within 0.5 s" in err.value.cause and url in err.value.cause
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_401_names_the_key_variable(provider, monkeypatch):
    monkeypatch.setenv("ARENA_TEST_KEY", "sk-wrong")
    backend = OpenAIBackend(
        _spec(_url(provider, "status-401"), api_key_env="ARENA_TEST_KEY"), Settings()
    )
    with pytest.raises(ModelError) as err:
        _answer(backend)
    assert "401" in err.value.cause and "ARENA_TEST_KEY" in err.value.cause
    assert len(_requests(provider, "status-401")) == 1  # not retried


def test_404_names_the_model(provider):
    backend = OpenAIBackend(_spec(_url(provider, "status-404"), model="gpt-nope"), Settings())
    with pytest.raises(ModelError) as err:
        _answer(backend)
    assert all(word in err.value.cause for word in ("404", "'gpt-nope'", "base_url"))
    assert len(_requests(provider, "status-404")) == 1


@pytest.mark.parametrize("code", [429, 500, 503])
def test_429_and_5xx_retried_max_retries_times(provider, code):
    mode = f"status-{code}"
    backend = OpenAIBackend(_spec(_url(provider, mode), max_retries=2), Settings())
    backend.backoff_s = 0.05
    with pytest.raises(ModelError) as err:
        _answer(backend)
    assert f"HTTP {code}" in err.value.cause and "after 2 retries" in err.value.cause
    times = [t for _, t, *_ in _requests(provider, mode)]
    assert len(times) == 1 + 2  # the first try and exactly max_retries retries
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # exponential backoff


def test_no_retries_when_max_retries_is_zero(provider):
    backend = OpenAIBackend(_spec(_url(provider, "status-502"), max_retries=0), Settings())
    with pytest.raises(ModelError, match="HTTP 502"):
        _answer(backend)
    assert len(_requests(provider, "status-502")) == 1


def test_retry_then_success(provider):
    backend = _fast(OpenAIBackend(_spec(_url(provider, "flaky"), max_retries=3), Settings()))
    assert _answer(backend) == "fine"
    assert len(_requests(provider, "flaky")) == 3  # two 503s, then the answer


@pytest.mark.parametrize(
    "mode, words",
    [("empty", "empty answer"), ("badjson", "malformed stream"), ("notchunk", "malformed stream")],
)
def test_broken_streams(provider, mode, words):
    backend = _fast(OpenAIBackend(_spec(_url(provider, mode)), Settings()))
    with pytest.raises(ModelError) as err:
        _answer(backend)
    assert words in err.value.cause and _url(provider, mode) in err.value.cause
    assert len(_requests(provider, mode)) == 1


def test_error_after_text_is_not_retried(provider):
    backend = _fast(OpenAIBackend(_spec(_url(provider, "midstream"), max_retries=3), Settings()))
    pieces = []
    with pytest.raises(ModelError) as err:
        for piece in backend.stream(chat_messages(_image(), PROMPTS[:1])):
            pieces.append(piece)
    assert pieces == ["partial"] and "worker crashed" in err.value.cause
    assert len(_requests(provider, "midstream")) == 1


def test_check_against_provider(provider):
    assert "serves 'tiny'" in OpenAIBackend(_spec(_url(provider, "ok")), Settings()).check()
    unlisted = OpenAIBackend(_spec(_url(provider, "nolist")), Settings()).check()
    assert "reachable" in unlisted and "does not list" in unlisted
    with pytest.raises(ModelError, match="other"):
        OpenAIBackend(_spec(_url(provider, "ok"), model="other"), Settings()).check()
