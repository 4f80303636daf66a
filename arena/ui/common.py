"""Shared resources (one per server process) and per-tab identity."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import streamlit as st

from arena.backends import Backends
from arena.config import Settings
from arena.errors import ArenaError
from arena.registry import Registry, load_registry
from arena.store import Store


@dataclass(frozen=True)
class Resources:
    settings: Settings
    registry: Registry
    store: Store
    backends: Backends


@st.cache_resource(show_spinner="Opening the database and the model registry…")
def _resources(settings: Settings, registry_mtime: float) -> Resources:
    registry = load_registry(settings.models)
    store = Store.open(settings)
    return Resources(settings, registry, store, Backends(registry, settings))


def resources() -> Resources:
    """Settings, registry, database and model workers, shared by every session.

    A configuration mistake is shown once, as one line, and the page stops.
    """
    try:
        settings = Settings.from_env()
        try:
            mtime = os.stat(settings.models).st_mtime
        except OSError:
            mtime = 0.0
        return _resources(settings, mtime)
    except ArenaError as exc:
        st.error(str(exc))
        st.stop()


def session_id() -> str:
    """A random id for this browser tab; never an IP address."""
    if "session_id" not in st.session_state:
        st.session_state.session_id = uuid.uuid4().hex
    return st.session_state.session_id


def voter_id() -> str:
    """The logged-in user when Streamlit authentication is configured, else the tab's session id."""
    user = getattr(st, "user", None)
    if user is not None and user.get("is_logged_in"):
        return f"user:{user.get('email') or user.get('sub')}"
    return f"session:{session_id()}"

