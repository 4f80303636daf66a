"""A hub model's first download: its progress from the hub client to the battle's side.

The hub cannot be reached from these machines, so tests.fake_hub.FakeHub plays it on 127.0.0.1
(HF_ENDPOINT pointed at it, HF_HUB_OFFLINE=0, an empty HF_HOME under tmp_path). It serves the tiny
LLaVA demo model (built offline) as arena-test/tiny-llava through the endpoints huggingface_hub
calls: GET /api/models/{repo} (the probe), GET /api/models/{repo}/revision/{rev} (snapshot_download
resolves main), GET /api/models/{repo}/tree/{rev} (the file list with sizes), and HEAD and GET
/{repo}/resolve/{rev}/{file} (each file's metadata, then its bytes). The worker process, the
real huggingface_hub and the real transformers loader run unchanged.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from arena.backends import Backends, chat_messages
from arena.backends.hf.download import files_to_fetch
from arena.backends.local import LocalBackend
from arena.backends.status import Download, Source, State
from arena.battle import Battle, ask
from arena.config import Settings
from arena.images import check_image
from arena.kinds import Mode
from arena.registry import Registry, TransformersSpec
from arena.ui.widgets import download_text
from tests.conftest import png_bytes, serve_http
from tests.fake_hub import REPO, SHA, FakeHub, hub_attributes

SETTINGS = Settings(hub_timeout_s=30, generation_timeout_s=120)  # a held file waits, within these
HUB_SPEC = TransformersSpec(
    id="hub-llava", name="Hub LLaVA", backend="transformers", model=REPO,
    device="cpu", dtype="float32", max_new_tokens=8,
)  # fmt: skip
WEIGHTS = "model.safetensors"
NOT_WANTED = {"README.md": b"# a model card\n", "pytorch_model.bin": b"old weights " * 100}
WAIT_S = 120  # a worker imports torch and transformers first


@pytest.fixture
def hub(llava_spec, tmp_path, monkeypatch):
    """The fake hub, holding the weights back until the test sets `release`."""
    import huggingface_hub.constants as constants

    attributes = hub_attributes(Path(llava_spec.model), held=(WEIGHTS,))
    attributes["files"].update(NOT_WANTED)  # on the hub, never fetched: the loader reads neither
    servers = serve_http(FakeHub, **attributes)
    server = next(servers)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    # this process reads the cache too (Backend.source, for the models page)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    try:
        yield server
    finally:
        server.release.set()
        servers.close()


def wanted_bytes(hub) -> int:
    return sum(files_to_fetch({n: len(d) for n, d in hub.files.items()}).values())


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Asking(threading.Thread):
    """One request to the backend in a thread of its own, hearing its own progress."""

    def __init__(self, backend):
        super().__init__(daemon=True)
        self.backend, self.seen, self.answer = backend, [], None

    def run(self) -> None:
        messages = chat_messages(check_image(png_bytes(), SETTINGS).image, ["What is it?"])
        self.answer = "".join(self.backend.stream(messages, on_progress=self.seen.append))


def test_a_first_download_reports_its_bytes_to_the_request_and_to_one_waiting_its_turn(hub):
    backend = LocalBackend(HUB_SPEC, SETTINGS)
    try:
        assert backend.source() == Source("hub", REPO, cached=False)
        first, second = Asking(backend), Asking(backend)
        first.start()
        wait_for(lambda: first.seen, "the download to start")
        second.start()  # waits for its turn while the first request's download is held
        wait_for(lambda: second.seen, "the waiting request to hear the download")
        status = backend.status()
        assert status.state is State.LOADING and status.download is not None
        hub.release.set()
        first.join(WAIT_S)
        second.join(WAIT_S)
        assert first.answer and second.answer

        total = wanted_bytes(hub)
        assert first.seen[0] == Download(0, total) and first.seen[-1] == Download(total, total)
        assert all(a.done <= b.done for a, b in pairwise(first.seen))
        assert any(0 < d.done < total for d in first.seen)  # the small files before the weights
        assert all(d.total == total for d in second.seen)

        fetched = Counter(path for method, path in hub.requests if method == "GET" and "/resolve/" in path)  # fmt: skip
        wanted = set(files_to_fetch({n: len(d) for n, d in hub.files.items()}))
        assert fetched == Counter(f"/{REPO}/resolve/{SHA}/{name}" for name in wanted)
        assert wanted.isdisjoint(NOT_WANTED) and WEIGHTS in wanted
        assert {(m, p) for m, p in hub.requests if "/resolve/" not in p} == {
            ("GET", f"/api/models/{REPO}"),
            ("GET", f"/api/models/{REPO}/tree/main"),
            ("GET", f"/api/models/{REPO}/revision/main"),
            ("GET", f"/api/models/{REPO}/tree/{SHA}"),
        }

        assert backend.source() == Source("hub", REPO, cached=True, size_bytes=total)
        ready = backend.status()
        assert ready.ready and ready.download is None and ready.load_seconds > 0
        assert ready.pid == backend.pid and ready.rss_bytes > 10_000_000
    finally:
        backend.close()


def test_in_a_battle_the_downloading_side_gets_progress_events_before_its_text(hub, llava_spec):
    hub.release.set()
    registry = Registry(path=Path("models.yaml"), specs=(HUB_SPEC, llava_spec))
    backends = Backends(registry, SETTINGS)
    try:
        image = check_image(png_bytes(), SETTINGS)
        battle = Battle(mode=Mode.ANONYMOUS, spec_a=HUB_SPEC, spec_b=llava_spec, image=image)
        events = list(ask(backends, battle, "What is in this picture?"))
    finally:
        backends.close()
    downloads = [e for e in events if e.progress is not None]
    assert downloads and {e.side for e in downloads} == {"a"}  # the local directory: none
    first_text = next(i for i, e in enumerate(events) if e.side == "a" and e.text)
    assert all(i < first_text for i, e in enumerate(events) if e.progress is not None)
    assert downloads[-1].progress.fraction == 1.0
    assert all(r.ok for r in battle.results[0])


@pytest.mark.parametrize(
    "download,show_size,line",
    [
        (Download(0, 2_000_000), False, "Model A: downloading for the first time, 0%"),
        (Download(500_000, 2_000_000), False, "Model A: downloading for the first time, 25%"),
        (Download(500_000, None), False, "Model A: downloading for the first time, starting"),
        (
            Download(500_000, 2_000_000),
            True,
            "Model A: downloading for the first time, 500 kB of 2.0 MB (25%)",
        ),
        (Download(1_500_000_000, None), True, "Model A: downloading for the first time, 1.5 GB"),
    ],
)
def test_the_download_line_says_a_size_only_when_names_are_shown(download, show_size, line):
    assert download_text("a", download, show_size) == line


def test_a_side_shows_a_progress_bar_with_percent_only_in_an_anonymous_battle():
    def page():
        import streamlit as st

        from arena.backends.status import Download
        from arena.ui.widgets import downloading

        downloading(st.empty(), "a", Download(250_000_000, 1_000_000_000), show_size=False)
        downloading(st.empty(), "b", Download(250_000_000, 1_000_000_000), show_size=True)

    at = AppTest.from_function(page).run()
    assert not at.exception
    anonymous, named = at.progress
    assert anonymous.value == named.value == 25
    assert anonymous.text == "Model A: downloading for the first time, 25%"
    assert "MB" not in anonymous.text and "GB" not in anonymous.text
    assert named.text == "Model B: downloading for the first time, 250 MB of 1.0 GB (25%)"


@pytest.mark.parametrize(
    "files,wanted",
    [
        (  # a usual VLM repo: configs, tokenizer, template, safetensors; docs stay
            {"config.json": 1, "tokenizer.json": 2, "merges.txt": 3, "chat_template.jinja": 4,
             "model.safetensors": 5, "README.md": 6, ".gitattributes": 7},
            {"config.json", "tokenizer.json", "merges.txt", "chat_template.jinja", "model.safetensors"},
        ),
        (  # safetensors beside old .bin weights: the .bin ones stay
            {"config.json": 1, "model-00001-of-00002.safetensors": 2,
             "model-00002-of-00002.safetensors": 3, "model.safetensors.index.json": 4,
             "pytorch_model.bin": 5, "training_args.bin": 6},
            {"config.json", "model-00001-of-00002.safetensors",
             "model-00002-of-00002.safetensors", "model.safetensors.index.json"},
        ),
        (  # .bin weights only: those, but not the training arguments
            {"config.json": 1, "pytorch_model.bin": 2, "training_args.bin": 3, "spiece.model": 4},
            {"config.json", "pytorch_model.bin", "spiece.model"},
        ),
        (  # other formats and folders stay on the hub
            {"config.json": 1, "model.safetensors": 2, "onnx/model.onnx": 3,
             "onnx/config.json": 4, "model.gguf": 5, "original/consolidated.pth": 6},
            {"config.json", "model.safetensors"},
        ),
    ],
)  # fmt: skip
def test_a_download_fetches_only_the_files_loading_reads(files, wanted):
    assert set(files_to_fetch(files)) == wanted
