"""What backends say about their models (Backend.status, source, load_in_background, stop), and
the ARENA_PRELOAD setting: real worker processes on a tiny demo model, and a stdlib HTTP server
standing in for an OpenAI-compatible endpoint (its model list is scripted; it speaks real HTTP)."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

import pytest

from arena.backends.local import LocalBackend
from arena.backends.openai_backend import REACH_TTL_S, OpenAIBackend
from arena.backends.status import Source, State, rss_bytes
from arena.config import Settings, preload_ids
from arena.errors import ConfigError
from arena.registry import OpenAISpec, TransformersSpec
from tests.conftest import free_port, serve_http

KNOWN, ENABLED = ["a", "b", "off"], ["a", "b"]


@pytest.mark.parametrize(
    "text,ids",
    [
        ("none", ()),
        (" None ", ()),
        ("all", ("a", "b")),  # the enabled ones
        ("ALL", ("a", "b")),
        ("b", ("b",)),
        ("b, a,b", ("b", "a")),  # in order, once each
        ("off", ("off",)),  # named, a disabled model loads too
    ],
)
def test_preload_names_none_all_or_listed_ids(text, ids):
    assert Settings(preload=text).preload == text
    assert preload_ids(text, KNOWN, ENABLED) == ids


def test_an_unknown_preload_id_is_one_line_naming_it():
    with pytest.raises(ConfigError) as caught:
        preload_ids("a,nope", KNOWN, ENABLED)
    assert str(caught.value) == (
        "Setting ARENA_PRELOAD='a,nope' is invalid: no model 'nope' in models.yaml "
        "(its ids: a, b, off)."
    )


@pytest.mark.parametrize("text", ["a,,b", ",", "a, "])
def test_a_preload_list_with_an_empty_entry_is_refused_at_start_up(text):
    with pytest.raises(ConfigError, match="expected none, all or comma-separated model ids"):
        Settings.from_env({"ARENA_PRELOAD": text})


def test_preload_defaults_to_none():
    assert Settings.from_env({}).preload == "none"


# ----- a local model ----------------------------------------------------------------------------


def test_a_local_model_loads_in_the_background_and_stops(llava_spec):
    backend = LocalBackend(llava_spec, Settings(generation_timeout_s=120))
    try:
        assert backend.status().state is State.NOT_LOADED
        assert backend.source().kind == "local directory" and backend.source().size_bytes > 100_000
        started = time.monotonic()
        backend.load_in_background()
        assert time.monotonic() - started < 1.0  # returns at once
        assert backend.status().state is State.LOADING
        deadline = time.monotonic() + 120
        while not backend.status().ready:
            assert time.monotonic() < deadline and backend.status().state is State.LOADING
            time.sleep(0.1)
        ready = backend.status()
        assert ready.pid is not None and ready.rss_bytes == pytest.approx(rss_bytes(ready.pid), rel=0.5)  # fmt: skip
        assert 0 < ready.load_seconds < time.monotonic() - started + 0.5
        backend.stop()
        stopped = backend.status()
        assert stopped.state is State.NOT_LOADED and stopped.pid is None
        assert stopped.load_seconds == ready.load_seconds  # the last load's time stays shown
    finally:
        backend.close()


def test_a_model_that_cannot_load_shows_the_error_with_its_cause(tmp_path):
    spec = TransformersSpec(id="gone", backend="transformers", model=str(tmp_path / "nowhere"))
    backend = LocalBackend(spec, Settings(generation_timeout_s=120))
    try:
        backend.load_in_background()
        deadline = time.monotonic() + 120
        while backend.status().state is State.LOADING:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        status = backend.status()
        assert status.state is State.ERROR and status.pid is None
        assert "local model directory" in status.last_error and "not found" in status.last_error
    finally:
        backend.close()


def test_rss_of_a_process_that_is_gone_is_none():
    assert rss_bytes(None) is None
    assert rss_bytes(2**22 + 12345) is None  # above Linux's default pid_max


# ----- an OpenAI-compatible endpoint ------------------------------------------------------------


class _Endpoint(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.log.append(self.path)
        if self.path != "/v1/models":
            self.send_error(404)
            return
        body = json.dumps(
            {"object": "list", "data": [{"id": m, "object": "model"} for m in self.server.models]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def endpoint():
    yield from serve_http(_Endpoint, log=[], models=["tiny"])


def _backend(base_url: str) -> OpenAIBackend:
    spec = OpenAISpec(id="remote", backend="openai", base_url=base_url, model="tiny")
    return OpenAIBackend(spec, Settings())


def test_an_endpoint_serving_the_model_is_ready_and_asked_once_per_interval(endpoint):
    backend = _backend(f"http://127.0.0.1:{endpoint.server_port}/v1")
    first, second = backend.status(), backend.status()
    assert first == second and first.ready and first.reachable and first.last_error is None
    assert endpoint.log == ["/v1/models"]  # the second status came from the last REACH_TTL_S
    assert REACH_TTL_S >= 5
    backend.load_in_background()  # "Load now": ask again
    assert backend.status().ready and endpoint.log == ["/v1/models"] * 2
    assert backend.source() == Source(
        "endpoint", f"http://127.0.0.1:{endpoint.server_port}/v1 (model 'tiny')"
    )


def test_an_endpoint_that_lists_other_models_is_reachable_but_not_ready(endpoint):
    endpoint.models = ["other"]
    status = _backend(f"http://127.0.0.1:{endpoint.server_port}/v1").status()
    assert status.state is State.ERROR and status.reachable is True
    assert "does not list model 'tiny' (it lists: other)" in status.last_error


def test_an_endpoint_nobody_answers_on_is_unreachable_within_the_short_timeout():
    backend = _backend(f"http://127.0.0.1:{free_port()}/v1")
    started = time.monotonic()
    status = backend.status()
    assert time.monotonic() - started < 5
    assert status.state is State.ERROR and status.reachable is False
    assert "cannot connect to" in status.last_error


def test_an_endpoint_whose_key_is_missing_is_not_asked_and_says_which_variable(
    endpoint, monkeypatch
):
    monkeypatch.delenv("ARENA_TEST_MISSING_KEY", raising=False)
    spec = OpenAISpec(
        id="remote", backend="openai", base_url=f"http://127.0.0.1:{endpoint.server_port}/v1",
        model="tiny", api_key_env="ARENA_TEST_MISSING_KEY",
    )  # fmt: skip
    status = OpenAIBackend(spec, Settings()).status()
    assert status.state is State.ERROR and status.reachable is None and endpoint.log == []
    assert "ARENA_TEST_MISSING_KEY is not set" in status.last_error
