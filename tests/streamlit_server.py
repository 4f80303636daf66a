"""Helpers for the tests that drive the real app: a `streamlit run` server and a real browser.
Not a test module.

    with streamlit_server({"ARENA_MODELS": ..., "ARENA_DB_URL": ...}, tmp_path / "st.log") as server:
        page.goto(server.url + "/")

The server listens on 127.0.0.1 on a free port, logs to a file (`server.log_tail()` shows the end
of it in failure messages) and is always stopped, with every process it started (the model
workers included), when the block ends. The browser is Debian's chromium driven by the
playwright package (never `playwright install`: it downloads a browser).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, skip_or_fail

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


class ServerError(RuntimeError):
    """The server exited or did not answer its health check; the message holds the log's tail."""


@dataclass(frozen=True)
class StreamlitServer:
    port: int
    proc: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def server_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without its ARENA_* settings, plus the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


@contextlib.contextmanager
def streamlit_server(
    env: Mapping[str, str], log_path: Path, timeout_s: float = START_TIMEOUT_S
) -> Iterator[StreamlitServer]:
    """A running `streamlit run streamlit_app.py`, healthy on entry, stopped on exit."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
        "--server.headless", "true", "--server.port", str(port),
        "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
        # Without this, a source file saved while the tests run makes Streamlit re-import that
        # module under the cached model workers: their next request fails to pickle.
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        # A session of its own, so stopping it stops the model workers it spawned as well.
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=server_env(env), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    server = StreamlitServer(port, proc, log_path)
    try:
        _wait_healthy(server, timeout_s)
        yield server
    finally:
        _stop(proc)


def _wait_healthy(server: StreamlitServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.proc.poll() is not None:
            raise ServerError(
                f"streamlit exited with code {server.proc.returncode} at start; log tail:\n"
                + server.log_tail()
            )
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise ServerError(
                f"streamlit did not answer /_stcore/health within {timeout_s:g} s; log tail:\n"
                + server.log_tail()
            )
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, then SIGKILL to whatever is left of it."""
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        # the server is gone; its workers get a moment, then anything left of the group is killed
        time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


# ----- the browser -------------------------------------------------------------------------------

CHROMIUM = os.environ.get("ARENA_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]  # fmt: skip
ARTIFACTS = REPO / "test-artifacts"
ANSWER_TIMEOUT_MS = 120_000  # the first battle starts the model workers (about 15 s on 2 cores)
STEP_TIMEOUT_MS = 30_000


def browser_missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"no chromium at {CHROMIUM} (apt-get install chromium, or set ARENA_TEST_CHROMIUM)"
    if importlib.util.find_spec("playwright") is None:
        return (
            "the playwright package is missing (pip install playwright; no `playwright install`: "
            "the tests drive the system's chromium)"
        )
    return None


def require_browser() -> None:
    """At the top of a browser test module: skip it without chromium or playwright; fail in CI."""
    reason = browser_missing()
    if reason is not None:
        skip_or_fail(reason, allow_module_level=True)


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


class Tabs:
    """Browser tabs, each in a context of its own (own cookies, own Streamlit session).

    `shot(page, step)` keeps a screenshot of each step in memory; `save()` writes them, and each
    open tab as it is now, under test-artifacts/<name>/: call it when the test failed, then `close()`.
    """

    def __init__(self, browser, name: str, viewport: dict | None = None):
        self.browser = browser
        self.name = name
        self.viewport = viewport or {"width": 1400, "height": 1000}
        self.contexts: list = []
        self.pages: list = []
        self.steps: list[tuple[str, bytes]] = []

    def new(self):
        context = self.browser.new_context(viewport=self.viewport)
        context.set_default_timeout(STEP_TIMEOUT_MS)
        self.contexts.append(context)
        self.pages.append(context.new_page())
        return self.pages[-1]

    def shot(self, page, step: str) -> None:
        self.steps.append((step, page.screenshot(full_page=True)))

    def save(self, server_log: str = "") -> Path:
        folder = ARTIFACTS / self.name
        folder.mkdir(parents=True, exist_ok=True)
        for i, (step, data) in enumerate(self.steps, start=1):
            (folder / f"{i:02d}-{step}.png").write_bytes(data)
        for i, page in enumerate(self.pages):
            with contextlib.suppress(Exception):  # a crashed tab has no last picture
                page.screenshot(path=str(folder / f"failed-tab{i}.png"), full_page=True)
        if server_log:
            (folder / "streamlit.log").write_text(server_log)
        return folder

    def close(self) -> None:
        for context in self.contexts:
            with contextlib.suppress(Exception):
                context.close()


@contextlib.contextmanager
def tabs_for(request, browser, *servers: StreamlitServer) -> Iterator[Tabs]:
    """Tabs for one test; on failure its screenshots and the servers' logs go to test-artifacts/.

    Used in a test's body, an exception out of the block is the failure; used in a fixture, the
    test's failure is counted before the fixture's teardown resumes the block."""
    tabs = Tabs(browser, request.node.name)
    failed_before = request.session.testsfailed
    raised = False
    try:
        yield tabs
    except (Exception, pytest.fail.Exception):
        raised = True
        raise
    finally:
        if raised or request.session.testsfailed > failed_before:
            tabs.save("\n\n".join(s.log_tail(20_000) for s in servers))
        tabs.close()


# ----- the app's pages ---------------------------------------------------------------------------


def wait_idle(page, timeout_ms: int = STEP_TIMEOUT_MS) -> None:
    """Until the script run that the last action started has finished."""
    app = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
    app.wait_for(timeout=timeout_ms)


def open_battle_page(page, server: StreamlitServer) -> None:
    goto_battle_page(page, server)
    wait_ready(page)


def goto_battle_page(page, server: StreamlitServer) -> None:
    # The default page lives at "/": "/battle" shows a "Page not found" dialog over it.
    page.goto(server.url + "/", wait_until="commit")


def wait_ready(page) -> None:
    page.get_by_test_id("stFileUploaderDropzoneInput").wait_for(state="attached")
    wait_idle(page)


def ask(page, image: Path, prompt: str) -> None:
    """Upload the image, wait until the server has it, type the prompt and press Enter."""
    upload(page, image)
    wait_uploaded(page, image)
    send_prompt(page, prompt)


def upload(page, image: Path) -> None:
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(image)


def wait_uploaded(page, image: Path) -> None:
    from playwright.sync_api import expect

    chip = page.get_by_test_id("stFileChip").filter(has_text=Path(image).name)
    expect(chip).to_be_visible(timeout=STEP_TIMEOUT_MS)
    expect(chip.get_by_test_id("stFileChipIconSpinner")).to_have_count(0, timeout=STEP_TIMEOUT_MS)
    # The rerun with the upload shows its preview as the page's only image (the sample images
    # offered while nothing is uploaded are gone).
    expect(page.get_by_test_id("stImage")).to_have_count(1, timeout=STEP_TIMEOUT_MS)
    wait_idle(page)


def send_prompt(page, prompt: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(prompt)
    box.press("Enter")


def wait_answers(page, timeout_ms: int = ANSWER_TIMEOUT_MS) -> None:
    """Until both answers are stored and the vote bar is drawn and enabled."""
    from playwright.sync_api import expect

    page.locator(".st-key-vote_a button").wait_for(timeout=timeout_ms)
    wait_idle(page)
    alerts = page.get_by_test_id("stAlert").all_inner_texts()
    errors = page.get_by_test_id("stException").all_inner_texts()
    assert not errors, f"the page raised: {errors}"
    expect(page.locator(".st-key-vote_a button"), f"alerts: {alerts}").to_be_enabled()


def vote(page, key: str = "vote_a") -> None:
    from playwright.sync_api import expect

    page.locator(f".st-key-{key} button").click()
    thanks = page.get_by_test_id("stAlert").filter(has_text="Thanks for voting")
    expect(thanks).to_be_visible(timeout=STEP_TIMEOUT_MS)
    wait_idle(page)


def leaderboard_rows(page) -> list[dict[str, str]]:
    """The leaderboard table's rows as {column: text}.

    st.dataframe draws its cells on a canvas; it keeps an accessible <table> copy in the DOM."""
    table = page.get_by_test_id("stDataFrame").locator("table")
    table.locator("tbody td").first.wait_for(state="attached")
    return table.evaluate(
        """t => {
            const head = [...t.querySelectorAll('thead th')].map(th => th.textContent);
            return [...t.querySelectorAll('tbody tr')].map(tr => Object.fromEntries(
                [...tr.querySelectorAll('td')].map((td, i) => [head[i], td.textContent])));
        }"""
    )


def votes_metric(page):
    """The value of the leaderboard's "Votes" metric (a locator, for expect)."""
    metric = page.get_by_test_id("stMetric").filter(has_text="Votes")
    return metric.get_by_test_id("stMetricValue")
