"""The client key of the current Streamlit session (arena/clients.py has the rules).

Call `disable_uvicorn_forwarding()` at the top of streamlit_app.py, then `client_key()` wherever
a page needs the key. What Streamlit 1.67 gives a page:

- The socket peer of the session's WebSocket: `client_context.remote_ip` of the session's client
  (`runtime.get_instance().get_client(session_id)`), the same value st.context.ip_address reads
  but without its filter, which turns 127.0.0.1 and ::1 into None.
- The handshake's headers, X-Forwarded-For included (anyone can send that header).
- Underneath, uvicorn's ProxyHeadersMiddleware has already replaced the peer with an
  X-Forwarded-For entry when the real peer is in FORWARDED_ALLOW_IPS (default 127.0.0.1 and ::1):
  a local client could name any address. Streamlit has no option for it; starting Streamlit with
  FORWARDED_ALLOW_IPS="" (empty) switches it off, and `disable_uvicorn_forwarding()` switches it
  off in a running server for every connection made after it. A session connected before that
  (the process's first ones) whose peer may be rewritten gets the one shared "unverified" key.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import threading

import streamlit as st

from arena.clients import (
    UVICORN_DEFAULT_TRUST,
    IPNetwork,
    Secret,
    connection_key,
    load_secret,
    parse_trusted_proxies,
    secret_path,
)
from arena.config import Settings

logger = logging.getLogger(__name__)

STATE_KEY = "arena_client_key"

# What uvicorn trusted when this server started: it reads FORWARDED_ALLOW_IPS in uvicorn.Config(),
# before any page runs; this module is imported by the first page run, in the same process.
UVICORN_TRUST = os.environ.get("FORWARDED_ALLOW_IPS", UVICORN_DEFAULT_TRUST)

_lock = threading.Lock()  # disable_uvicorn_forwarding
_secrets_lock = threading.Lock()
_disabled: list[int] = []  # how many middlewares were switched off, once per process
_secrets: dict[str, Secret] = {}  # secret file path -> the key read from it


def disable_uvicorn_forwarding() -> int:
    """Stop uvicorn rewriting the peer from X-Forwarded-For in this server, so that only
    ARENA_TRUSTED_PROXIES decides whose header is believed. Idempotent and cheap after the first
    call; returns how many of uvicorn's proxy-headers middlewares it switched off (0 outside a
    running server, e.g. under AppTest).

    The middleware keeps its trust list in `trusted_hosts` (anything supporting `in`); an empty
    one trusts no peer, so it passes every connection through unchanged.
    """
    if _disabled:
        return _disabled[0]
    with _lock:
        if _disabled:
            return _disabled[0]
        count = _switch_off_middlewares()
        _disabled.append(count)
        if count == 0 and _running() and UVICORN_TRUST.strip():
            logger.warning(
                "Could not find uvicorn's ProxyHeadersMiddleware to switch off; start Streamlit "
                "with FORWARDED_ALLOW_IPS= (empty) so that only ARENA_TRUSTED_PROXIES decides whose "
                "X-Forwarded-For is believed."
            )
        return count


def _switch_off_middlewares() -> int:
    if not _running():
        return 0
    try:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
    except ImportError:
        return 0
    # type(), not isinstance(): isinstance reads __class__, which some lazy modules (torch) warn on
    found = [obj for obj in gc.get_objects() if issubclass(type(obj), ProxyHeadersMiddleware)]
    for middleware in found:
        middleware.trusted_hosts = frozenset()
    return len(found)


def _running() -> bool:
    from streamlit import runtime

    return runtime.exists()


def client_key() -> str | None:
    """This session's client key (32 hex digits), the same on every reload from one client;
    computed once per session and kept in st.session_state. None where there is no connection
    to look at (AppTest, a bare script run) or its peer is not an IP address."""
    if STATE_KEY in st.session_state:
        return st.session_state[STATE_KEY]
    peer, forwarded_for = _connection()
    if peer is None:
        return None
    settings = Settings.from_env()
    key = connection_key(
        peer,
        forwarded_for,
        _trusted(settings.trusted_proxies),
        client_secret(settings),
        UVICORN_TRUST,
    )
    if key is not None:
        st.session_state[STATE_KEY] = key
    return key


def _connection() -> tuple[str | None, str | None]:
    """(socket peer, X-Forwarded-For values comma-joined in header order) of this session."""
    from streamlit import runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not runtime.exists():
        return None, None
    client = runtime.get_instance().get_client(ctx.session_id)
    context = getattr(client, "client_context", None)
    if context is None:
        return None, None
    values = [value for name, value in context.headers if name.lower() == "x-forwarded-for"]
    return context.remote_ip, ", ".join(values) if values else None


@functools.lru_cache(maxsize=8)
def _trusted(text: str) -> tuple[IPNetwork, ...]:
    return parse_trusted_proxies(text)


def client_secret(settings: Settings) -> Secret:
    """ARENA_SECRET, else the secret file's key, read (or created) once per process."""
    if settings.secret:
        return settings.secret
    path = str(secret_path(settings.models))
    with _secrets_lock:
        if path not in _secrets:
            _secrets[path] = load_secret(settings)
        return _secrets[path]
