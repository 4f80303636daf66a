"""Client keys in a real `streamlit run` server, seen from Debian's chromium (arena/ui/client.py).

A tiny page shows `client_key()` (the key, never an address). Loaded directly, with a spoofed
X-Forwarded-For, through a TCP relay whose connections come from 127.0.0.2, and through a small
reverse proxy on 127.0.0.2 that adds X-Forwarded-For: 203.0.113.7 (trusted only where
ARENA_TRUSTED_PROXIES says so). The relays bind loopback only and stop by themselves.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from arena.clients import Secret, client_key, load_secret, unverified_key
from arena.config import Settings
from tests.streamlit_server import (
    REPO,
    StreamlitServer,
    _stop,
    _wait_healthy,
    require_browser,
    server_env,
    tabs_for,
)

require_browser()


from tests.conftest import free_port  # noqa: E402
from tests.relay import PROXY_HOST, Relay  # noqa: E402

pytestmark = pytest.mark.browser

PAGE = """\
import streamlit as st

from arena.ui.client import client_key, disable_uvicorn_forwarding

disable_uvicorn_forwarding()
with st.container(key="client_key"):
    st.code(client_key() or "none", language=None)
"""
FORWARDED = "203.0.113.7"  # what the reverse proxy says the client is
SPOOF = "198.51.100.9"  # what a client says about itself
RAW = ("127.0.0.1", PROXY_HOST, FORWARDED, SPOOF, "::1")


# ----- a server for the tiny page ----------------------------------------------------------------


@contextlib.contextmanager
def page_server(
    script: Path, env: Mapping[str, str], log_path: Path, *, forwarded_allow_ips: str | None = None
) -> Iterator[StreamlitServer]:
    """`streamlit run <script>` on 127.0.0.1 (as tests/streamlit_server.py starts the app), with
    uvicorn's FORWARDED_ALLOW_IPS left at its default unless given."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.headless", "true", "--server.port", str(port),
        "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    full_env = server_env(env)
    full_env.pop("FORWARDED_ALLOW_IPS", None)
    if forwarded_allow_ips is not None:
        full_env["FORWARDED_ALLOW_IPS"] = forwarded_allow_ips
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    server = StreamlitServer(port, proc, log_path)
    try:
        _wait_healthy(server, 60.0)
        yield server
    finally:
        _stop(proc)


# ----- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The page, and the folder of models.yaml where the secret file will be made."""
    folder = tmp_path_factory.mktemp("client_keys")
    (folder / "client_key_page.py").write_text(PAGE)
    return folder


def _env(folder: Path, **extra: str) -> dict[str, str]:
    return {"ARENA_MODELS": str(folder / "models.yaml"), **extra}


@pytest.fixture(scope="module")
def server(folder):
    """No ARENA_SECRET, no trusted proxies, uvicorn's defaults."""
    with page_server(folder / "client_key_page.py", _env(folder), folder / "plain.log") as srv:
        yield srv


@pytest.fixture(scope="module")
def proxied(folder, server):
    """A second replica beside the first (same models.yaml folder, so the same secret file),
    trusting the reverse proxy on 127.0.0.2."""
    env = _env(folder, ARENA_TRUSTED_PROXIES=f"{PROXY_HOST}/32")
    with page_server(folder / "client_key_page.py", env, folder / "proxied.log") as srv:
        yield srv


@pytest.fixture
def tabs(request, browser, server):
    with tabs_for(request, browser, server) as t:
        yield t


@pytest.fixture(scope="module")
def first_key(browser, server) -> str:
    """The key of a plain first visit; the server makes its secret file on it."""
    with contextlib.closing(browser.new_context()) as context:
        return shown_key(context.new_page(), server.url)


@pytest.fixture(scope="module")
def secret(folder, first_key) -> Secret:
    return load_secret(Settings(models=str(folder / "models.yaml")))


def shown_key(page, url: str) -> str:
    """Open the page, return the key it shows; its HTML must not hold a client's address."""
    page.goto(url + "/")
    code = page.locator(".st-key-client_key code")
    code.wait_for(timeout=30_000)
    key = code.inner_text().strip()
    html = page.content().replace(url, "")  # the server's own origin is in its asset links
    leaked = [address for address in RAW if address in html]
    assert not leaked, f"the page's HTML holds {leaked}"
    return key


def visit(tabs, url: str, headers: dict[str, str] | None = None) -> str:
    context = tabs.browser.new_context(extra_http_headers=headers or {})
    tabs.contexts.append(context)
    page = context.new_page()
    tabs.pages.append(page)
    return shown_key(page, url)


def logs_hold_no_address(*servers: StreamlitServer) -> None:
    for srv in servers:
        log = srv.log_path.read_text(errors="replace")
        for address in (FORWARDED, SPOOF):
            assert address not in log, f"{srv.log_path.name} holds {address}"


# ----- the tests ---------------------------------------------------------------------------------


def test_a_reload_keeps_the_key(tabs, server, first_key, secret):
    """(a) Every visit is a new Streamlit session; the key stays the client's."""
    assert first_key == client_key("127.0.0.1", secret)
    assert visit(tabs, server.url) == first_key
    page = tabs.pages[-1]
    page.reload()
    assert shown_key(page, server.url) == first_key
    assert first_key != unverified_key(secret)


def test_a_spoofed_forwarded_for_changes_nothing(tabs, server, first_key, secret):
    """(b) A header the client writes itself is ignored (uvicorn's rewriting is off)."""
    for spoof in (SPOOF, FORWARDED, f"{SPOOF}, {FORWARDED}", "::1", "garbage"):
        assert visit(tabs, server.url, {"X-Forwarded-For": spoof}) == first_key, spoof
    assert first_key != client_key(SPOOF, secret)
    logs_hold_no_address(server)


def test_another_peer_is_another_client(tabs, server, first_key, secret):
    """(c) Through a TCP relay whose connections come from 127.0.0.2: a different client,
    spoofing or not (127.0.0.2 is no trusted proxy here)."""
    with Relay(server.port) as relay:
        key = visit(tabs, relay.url)
        spoofed = visit(tabs, relay.url, {"X-Forwarded-For": FORWARDED})
    assert key == spoofed == client_key(PROXY_HOST, secret)
    assert key != first_key


def test_a_trusted_proxy_names_the_client(browser, request, server, proxied, first_key, secret):
    """(d) ARENA_TRUSTED_PROXIES=127.0.0.2/32 and a reverse proxy there adding
    X-Forwarded-For: 203.0.113.7 after whatever the client sent: the key is 203.0.113.7's."""
    with tabs_for(request, browser, proxied) as tabs, Relay(proxied.port, FORWARDED) as proxy:
        key = visit(tabs, proxy.url)
        spoofed = visit(tabs, proxy.url, {"X-Forwarded-For": SPOOF})
        # straight to the server, not through the proxy: the header is the client's own again
        direct = visit(tabs, proxied.url, {"X-Forwarded-For": FORWARDED})
    assert any(b"upgrade: websocket" in head.lower() for head in proxy.requests)
    assert key == spoofed == client_key(FORWARDED, secret)
    assert direct == first_key == client_key("127.0.0.1", secret)
    # both replicas read one secret file, made once and warned about once
    logs = [s.log_path.read_text(errors="replace") for s in (server, proxied)]
    assert sum(log.count("ARENA_SECRET is not set") for log in logs) == 1, logs
    logs_hold_no_address(server, proxied)


@pytest.mark.parametrize(
    "forwarded_allow_ips, expected",
    [(None, "unverified"), ("", "127.0.0.1")],
    ids=["uvicorn-default", "FORWARDED_ALLOW_IPS-empty"],
)
def test_a_spoofing_first_session(browser, request, tmp_path, forwarded_allow_ips, expected):
    """The first session of a process connects before any page has run, so before
    disable_uvicorn_forwarding(): with uvicorn's default its peer may already be the spoofed
    address, and it gets the one shared "unverified" key. Started with FORWARDED_ALLOW_IPS=""
    even that first session is seen as it is. Later sessions are seen as they are either way."""
    (tmp_path / "page.py").write_text(PAGE)
    env = _env(tmp_path, ARENA_SECRET="a shared replica secret")
    log = tmp_path / "first.log"
    with (
        page_server(tmp_path / "page.py", env, log, forwarded_allow_ips=forwarded_allow_ips) as srv,
        tabs_for(request, browser, srv) as tabs,
    ):
        first = visit(tabs, srv.url, {"X-Forwarded-For": SPOOF})
        later = visit(tabs, srv.url, {"X-Forwarded-For": SPOOF})
    secret = Secret("a shared replica secret")
    want = unverified_key(secret) if expected == "unverified" else client_key(expected, secret)
    assert first == want
    assert later == client_key("127.0.0.1", secret)
    assert first != client_key(SPOOF, secret)
    assert not (tmp_path / ".arena-secret").exists()  # ARENA_SECRET set: no file
    assert "ARENA_SECRET is not set" not in log.read_text()
