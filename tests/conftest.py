"""Shared fixtures: databases (a real SQLite file, the real PostgreSQL server), the demo
models (tiny random-weight models built offline), images and settings."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import create_engine, text

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from arena.config import LIMITS, Settings  # noqa: E402

PG_URL = os.environ.get("ARENA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SERVE_START_TIMEOUT_S = 120


def skip_or_fail(reason: str, *, allow_module_level: bool = False) -> None:
    """Skip a test whose requirement is missing here; under CI=true fail instead, since CI
    provides every requirement and a skip there would hide a broken setup."""
    __tracebackhide__ = True  # a skip is reported at the caller's line, not here
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"{reason} (CI=true: CI provides this, so the test fails instead of skipping)",
            pytrace=False,
        )
    pytest.skip(reason, allow_module_level=allow_module_level)


def _pg_reason() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means: skip with the reason
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"PostgreSQL is not reachable at {PG_URL} ({first[:120]}); start it or set "
            "ARENA_TEST_PG_URL=postgresql+psycopg://user@host:port/db to run the PostgreSQL tests"
        )


_PG_SKIP: list = []


def pg_skip_reason() -> str | None:
    if not _PG_SKIP:
        _PG_SKIP.append(_pg_reason())
    return _PG_SKIP[0]


@pytest.fixture
def pg_url():
    """A PostgreSQL URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    reason = pg_skip_reason()
    if reason:
        skip_or_fail(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """Every storage test runs on a real SQLite file and on the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'arena.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    return Settings(db_url=db_url, models=str(tmp_path / "models.yaml"), **dict.fromkeys(LIMITS, 0))


@pytest.fixture
def store(settings):
    from arena.store import Store

    s = Store.open(settings)
    yield s
    s.engine.dispose()


def png_bytes(size=(64, 48), color=(200, 40, 40), mode="RGB", fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else None).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def image_bytes() -> bytes:
    return png_bytes()


@pytest.fixture(scope="session")
def demo_models_dir(tmp_path_factory) -> Path:
    """The tiny demo models, built once per test session with the same builder users run."""
    from arena.demo import build_demo_models

    out = tmp_path_factory.mktemp("demo_models")
    build_demo_models(out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llava_spec(tmp_path_factory):
    """The TransformersSpec of the tiny LLaVA that arena.demo builds."""
    from arena.demo import build_demo_models
    from arena.registry import load_registry

    path = build_demo_models(tmp_path_factory.mktemp("demo_models"), architectures=("llava",))
    (spec,) = load_registry(path).specs
    assert spec.backend == "transformers" and Path(spec.model).is_dir()
    return spec


@pytest.fixture(scope="session")
def serve_url(llava_spec, tmp_path_factory):
    """`transformers serve` pinned to the tiny LLaVA directory; its /v1 base URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    cmd = [
        sys.executable, "-m", "transformers.cli.transformers", "serve", llava_spec.model,
        "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + SERVE_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-1500:]
                skip_or_fail(f"transformers serve exited with {proc.returncode} at start:\n{tail}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                skip_or_fail(f"transformers serve was not ready within {SERVE_START_TIMEOUT_S} s")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve_http(handler_cls, **attributes):
    """A real HTTP server on 127.0.0.1 (a free port) in a thread, for a pytest fixture to yield;
    `attributes` are set on the server for the handler to read or record into."""
    import threading
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    for name, value in attributes.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def cache_hashes(monkeypatch):
    """Streamlit's cache hashing, recorded: `cache_key(*args)` is the key st.cache_resource makes
    of those arguments, and `fed` every byte string its hashers were given meanwhile (what a
    secret must never be among)."""
    from types import SimpleNamespace

    from streamlit import util
    from streamlit.runtime.caching import hashing
    from streamlit.runtime.caching.cache_type import CacheType

    fed: list[bytes] = []
    real = util.create_fast_hasher

    class Recording:
        def __init__(self):
            self.h = real()

        def update(self, data):
            fed.append(bytes(data))
            self.h.update(data)

        def hexdigest(self):
            return self.h.hexdigest()

        def digest(self):
            return self.h.digest()

    monkeypatch.setattr(util, "create_fast_hasher", Recording)

    def cache_key(*args):
        top = Recording()
        hashing.update_hash(args, top, CacheType.RESOURCE)
        return top.hexdigest()

    return SimpleNamespace(fed=fed, cache_key=cache_key)


def stream_chat(handler, pieces) -> None:
    """Answer an OpenAI chat-completions request with `pieces` as a real SSE stream (chunks,
    a finish chunk, then [DONE]), for the scripted providers of the tests."""
    import json

    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.end_headers()
    deltas = [{"delta": {"content": text}} for text in pieces]
    for choice in [*deltas, {"delta": {}, "finish_reason": "stop"}]:
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                 "choices": [{"index": 0, **choice}]}  # fmt: skip
        handler.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        handler.wfile.flush()
    handler.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium under Playwright, one per test module (browser tests call
    tests.streamlit_server.require_browser() first, so both are there)."""
    from playwright.sync_api import sync_playwright

    from tests.streamlit_server import launch

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
