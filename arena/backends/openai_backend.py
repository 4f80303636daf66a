"""Models behind an OpenAI-compatible chat-completions endpoint.

Works with OpenAI itself and with servers that speak its API (vLLM, `transformers serve`,
llama.cpp, ...), through the official `openai` client. The image goes as a base64 data URL,
so the server needs no access to this machine's files.

Retries: 429 and 5xx answers are retried spec.max_retries times with exponential backoff,
and only before any text was yielded (a half-shown answer is never restarted). The client's
own retries are off, so that count is the only one.

status() asks the endpoint's model list (GET /models) with a short timeout, at most once every
REACH_TTL_S seconds however many pages ask: every models-page run wants it.
"""

from __future__ import annotations

import base64
import io
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import openai
from PIL import Image

from arena.backends.base import Backend, Finished
from arena.backends.status import ModelStatus, Source, State
from arena.errors import ModelError

PLACEHOLDER_KEY = "not-needed"  # sent when api_key_env is None: local servers ignore the key
PNG_MAX_PIXELS = 512 * 512  # larger images go as JPEG (a photo as PNG is several MB)
JPEG_QUALITY = 90
REACH_TIMEOUT_S = 2.0  # status(): the model list must come back this fast
REACH_TTL_S = 10.0  # ... and is asked again after this long


@dataclass(frozen=True)
class Reach:
    """One look at the endpoint's model list: whether it answered at all, whether it serves
    spec.model, and the line that says so (check()'s answer or its error's cause)."""

    reachable: bool | None  # None: not asked (the API key is missing)
    serves: bool
    line: str


class OpenAIBackend(Backend):
    """Backend for an OpenAISpec.

    A stream's `tokens` is the server's usage.completion_tokens when the server reports usage
    (asked for with stream_options={"include_usage": True}; a server that rejects that option
    is asked again without it, and is not asked again), else the number of content chunks.
    """

    backoff_s = 0.5  # first retry delay; doubles each retry, capped at backoff_max_s
    backoff_max_s = 8.0

    def __init__(self, spec, settings):
        super().__init__(spec, settings)
        self._include_usage = True
        self._client: openai.OpenAI | None = None
        self._client_key: str | None = None
        self._reach_lock = threading.Lock()
        self._reached: tuple[float, Reach] | None = None  # (time.monotonic(), what status() saw)

    # ----- client ------------------------------------------------------------------------------

    def client(self) -> openai.OpenAI:
        """The client, made on first use (and again if the key in the environment changed)."""
        spec = self.spec
        key = PLACEHOLDER_KEY
        if spec.api_key_env:
            key = os.environ.get(spec.api_key_env, "")
            if not key:
                raise ModelError(
                    spec.id,
                    f"the environment variable {spec.api_key_env} is not set: set it to the API key "
                    f"for {spec.base_url}",
                )
        if self._client is None or key != self._client_key:
            self._client = openai.OpenAI(
                base_url=spec.base_url, api_key=key, timeout=spec.timeout_s, max_retries=0
            )
            self._client_key = key
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ----- Backend -----------------------------------------------------------------------------

    def generate(self, messages: list[dict]) -> Iterator[str | Finished]:
        spec = self.spec
        client = self.client()
        request = {
            "model": spec.model,
            "messages": to_openai_messages(messages, spec.system_prompt),
            "stream": True,
            "max_tokens": spec.max_new_tokens,
            "temperature": spec.temperature,
            "top_p": spec.top_p,
        }
        attempt = 0
        yielded = False
        while True:
            pieces, usage = 0, None
            try:
                with self._create(client, request) as chunks:
                    for chunk in chunks:
                        text, tokens = _read_chunk(chunk)
                        usage = tokens if tokens is not None else usage
                        if text:
                            pieces += 1
                            yielded = True
                            yield text
                break
            except openai.APIStatusError as exc:
                if yielded or attempt >= spec.max_retries or not _retryable(exc.status_code):
                    raise ModelError(spec.id, self._cause(exc, attempt)) from None
                time.sleep(min(self.backoff_s * 2**attempt, self.backoff_max_s))
                attempt += 1
            except openai.APIError as exc:
                raise ModelError(spec.id, self._cause(exc, attempt)) from None
            except ValueError as exc:  # an event with bad JSON, or one that is not a chunk
                raise ModelError(spec.id, f"malformed stream from {spec.base_url}: {exc}") from None
        if not yielded:
            raise ModelError(spec.id, f"{spec.base_url} sent an empty answer (no text at all)")
        yield Finished(tokens=usage if usage is not None else pieces)

    def check(self) -> str:
        reach = self.reach(self.spec.timeout_s)
        if not reach.serves:
            raise ModelError(self.spec.id, reach.line)
        return reach.line

    def reach(self, timeout_s: float) -> Reach:
        """Ask the endpoint's model list (GET /models) once, waiting at most `timeout_s`."""
        spec = self.spec
        try:
            client = self.client().with_options(timeout=timeout_s)
        except ModelError as exc:  # the key is not in the environment: nothing was asked
            return Reach(reachable=None, serves=False, line=exc.cause)
        try:
            listed = [m.id for m in client.models.list()]
        except openai.APIStatusError as exc:
            if exc.status_code in (404, 405, 501):
                return Reach(
                    True, True, f"reachable at {spec.base_url} (it does not list its models)"
                )
            return Reach(True, False, self._cause(exc, 0))
        except openai.APIError as exc:  # no connection, or no answer in time
            return Reach(False, False, self._cause(exc, 0))
        except _MALFORMED_ERRORS as exc:
            return Reach(True, False, f"malformed model list from {spec.base_url}: {exc}")
        if spec.model not in listed:
            shown = ", ".join(listed[:10]) + (", ..." if len(listed) > 10 else "") or "none"
            return Reach(
                True,
                False,
                f"{spec.base_url} does not list model '{spec.model}' (it lists: {shown}); "
                "check 'model' in models.yaml",
            )
        return Reach(True, True, f"reachable at {spec.base_url}; it serves '{spec.model}'")

    def status(self) -> ModelStatus:
        with self._reach_lock:  # one request per REACH_TTL_S, however many pages ask at once
            if self._reached is None or time.monotonic() - self._reached[0] > REACH_TTL_S:
                self._reached = (time.monotonic(), self.reach(REACH_TIMEOUT_S))
            reach = self._reached[1]
        return ModelStatus(
            State.READY if reach.serves else State.ERROR,
            last_error=None if reach.serves else reach.line,
            reachable=reach.reachable,
        )

    def source(self) -> Source:
        return Source("endpoint", f"{self.spec.base_url} (model '{self.spec.model}')")

    def load_in_background(self) -> None:
        """Nothing loads here: the endpoint is asked again on the next status()."""
        with self._reach_lock:
            self._reached = None

    # ----- helpers -----------------------------------------------------------------------------

    def _create(self, client: openai.OpenAI, request: dict):
        """Start the stream, asking for usage unless this server has rejected that option."""
        if self._include_usage:
            try:
                return client.chat.completions.create(
                    **request, stream_options={"include_usage": True}
                )
            except (openai.BadRequestError, openai.UnprocessableEntityError):
                # Perhaps only the option: ask again without it; if that works, stop asking.
                chunks = client.chat.completions.create(**request)
                self._include_usage = False
                return chunks
        return client.chat.completions.create(**request)

    def _cause(self, exc: openai.APIError, retries: int) -> str:
        """One line for the user, from an error of the openai client."""
        spec = self.spec
        url = spec.base_url
        if isinstance(exc, openai.APITimeoutError):
            return f"no response from {url} within {spec.timeout_s:g} s (timeout_s in models.yaml)"
        if isinstance(exc, openai.APIConnectionError):
            reason = _first_line(exc.__cause__) or _first_line(exc)
            return f"cannot connect to {url} ({reason}): is the server running at that base_url?"
        if not isinstance(exc, openai.APIStatusError):
            return f"{url} reported an error in the stream: {_first_line(exc.message)}"
        code, detail = exc.status_code, _detail(exc)
        if code == 401:
            fix = (
                f"check the key in {spec.api_key_env}"
                if spec.api_key_env
                else "set api_key_env in models.yaml to the variable that holds the key"
            )
            return f"{url} rejected the API key (HTTP 401): {fix}"
        if code == 404:
            return (
                f"HTTP 404 from {url}: the server does not know model '{spec.model}', or "
                f"base_url is wrong (it usually ends in /v1) [{detail}]"
            )
        after = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if _retryable(code) else ""
        if code == 429:
            return f"{url} is rate limiting requests (HTTP 429){after}: {detail}"
        if code >= 500:
            return f"{url} had a server error (HTTP {code}){after}: {detail}"
        return f"{url} refused the request (HTTP {code}): {detail}"


_MALFORMED_ERRORS = (ValueError, TypeError, AttributeError)  # bad JSON or a missing field


def _read_chunk(chunk) -> tuple[str, int | None]:
    """(delta text, completion tokens if this chunk reports usage) of one streamed chunk."""
    try:
        if not isinstance(chunk.choices, list):
            raise ValueError("it has no 'choices' list")
        text = "".join(c.delta.content or "" for c in chunk.choices)
        usage = getattr(chunk, "usage", None)
        tokens = usage.completion_tokens if usage is not None else None
        if tokens is not None and not isinstance(tokens, int):
            raise ValueError(f"usage.completion_tokens is {tokens!r}")
    except _MALFORMED_ERRORS as exc:
        raise ValueError(f"an event is not a chat-completion chunk: {exc}") from None
    return text, tokens


def _detail(exc: openai.APIStatusError) -> str:
    """The server's own words: OpenAI's {"error": {"message"}}, FastAPI's {"detail"}, or the body."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            inner = inner.get("message") or inner.get("detail") or inner
        if inner:
            return _first_line(inner)
    return _first_line(body) or _first_line(exc.message)


def _retryable(status_code: int) -> bool:
    return status_code == 429 or status_code >= 500


def _first_line(value) -> str:
    text = str(value or "").strip()
    return text.splitlines()[0][:300] if text else ""


def to_openai_messages(messages: list[dict], system_prompt: str | None = None) -> list[dict]:
    """Transformers chat messages (see base.py) -> OpenAI chat-completions messages.

    Images become base64 data URLs; system and assistant turns become plain strings;
    system_prompt is added first when the messages have no system turn.
    """
    out: list[dict] = []
    if system_prompt and not any(m["role"] == "system" for m in messages):
        out.append({"role": "system", "content": system_prompt})
    for message in messages:
        role, content = message["role"], message["content"]
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif role == "user":
            out.append({"role": role, "content": [_part(p) for p in content]})
        else:
            text = "".join(p.get("text", "") for p in content if p.get("type") == "text")
            out.append({"role": role, "content": text})
    return out


def _part(part: dict) -> dict:
    if part["type"] == "text":
        return {"type": "text", "text": part["text"]}
    if part["type"] == "image":
        return {"type": "image_url", "image_url": {"url": image_data_url(part["image"])}}
    raise ValueError(f"unsupported content part type {part['type']!r}")


def image_data_url(image: Image.Image) -> str:
    """PNG (lossless) for small images, JPEG for larger ones."""
    buf = io.BytesIO()
    if image.width * image.height <= PNG_MAX_PIXELS:
        image.save(buf, format="PNG")
        mime = "image/png"
    else:
        image.convert("RGB").save(buf, format="JPEG", quality=JPEG_QUALITY)
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"
