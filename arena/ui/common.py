"""Shared resources (one per server process) and per-tab identity."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import streamlit as st

from arena.admin import AdminAccess
from arena.backends import Backends
from arena.categories.labeller import Labeller
from arena.config import Settings, preload_ids
from arena.errors import ArenaError, ConfigError
from arena.kinds import USER_PREFIX, Requester
from arena.pairing import ActiveSampler, sampler_for
from arena.registry import Registry, load_registry
from arena.store import Store
from arena.terms import Terms, load_terms
from arena.ui.client import client_key, client_secret


@dataclass(frozen=True)
class Resources:
    settings: Settings
    registry: Registry
    store: Store
    backends: Backends
    sampler: ActiveSampler | None = None  # anonymous pairs; None: by weight (Registry.draw_pair)
    labeller: Labeller | None = None  # categories: the rules, and the classifier model if set
    access: AdminAccess = AdminAccess()  # who may open the admin pages (arena.admin)
    terms: Terms | None = None  # ARENA_TERMS, which voters accept before their first upload


@st.cache_resource(show_spinner="Opening the database and the model registry…")
def _resources(settings: Settings, registry_mtime: float, terms_mtime: float) -> Resources:
    registry = load_registry(settings.models)
    known, enabled = [s.id for s in registry.specs], [s.id for s in registry.enabled]
    preload = preload_ids(settings.preload, known, enabled)  # an unknown id: one line, at start-up
    client_secret(settings)  # at start-up: made once beside models.yaml, with its warning, if unset
    store = Store.open(settings)
    sampler = sampler_for(settings.pair_sampling, registry, store)
    labeller = Labeller.from_settings(settings, registry)  # a bad rules file: one line, at start-up
    access = AdminAccess.from_settings(settings)
    terms = load_terms(settings.terms)  # an edited file: new terms (its mtime is in the key)
    backends = Backends(registry, settings)
    # Streamlit has no start-up hook: this runs once per server process, on its first page run.
    # The models load in background threads; the page does not wait for them.
    backends.preload(preload)
    return Resources(settings, registry, store, backends, sampler, labeller, access, terms)


def resources() -> Resources:
    """Settings, registry, database and model workers, shared by every session.

    A configuration mistake is shown once, as one line, and the page stops.
    """
    try:
        settings = Settings.from_env()
        if settings.require_login and not auth_configured():
            raise ConfigError(
                "ARENA_REQUIRE_LOGIN=true needs Streamlit authentication: add an [auth] section to "
                ".streamlit/secrets.toml (README: Admin and login), or set ARENA_REQUIRE_LOGIN=false."
            )
        if settings.admins and not auth_configured():
            raise ConfigError(
                "ARENA_ADMINS needs Streamlit authentication to know who is logged in: add an "
                "[auth] section to .streamlit/secrets.toml (README: Admin and login), or use "
                "ARENA_ADMIN_TOKEN instead."
            )
        return _resources(settings, _mtime(settings.models), _mtime(settings.terms))
    except ArenaError as exc:
        st.error(str(exc))
        st.stop()


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime if path else 0.0
    except OSError:
        return 0.0


def login_gate(settings: Settings) -> bool:
    """With ARENA_REQUIRE_LOGIN, a visitor who is not logged in sees why and a login button
    instead of the arena. True when the page may go on."""
    if not settings.require_login or logged_in():
        return True
    st.info(
        "This arena asks you to log in before you battle or vote: each person's votes count once."
    )
    st.button("Log in", key="login", on_click=st.login, type="primary")
    return False


def logged_in() -> bool:
    user = getattr(st, "user", None)
    return bool(user is not None and user.get("is_logged_in"))


def auth_configured() -> bool:
    """Whether .streamlit/secrets.toml has an [auth] section, which st.login needs."""
    try:
        return bool(st.secrets.load_if_toml_exists() and st.secrets.get("auth"))
    except Exception:  # noqa: BLE001 - a malformed secrets file: Streamlit reports it itself
        return False


def requester() -> Requester:
    """Who is asking, for the rate limits: this tab, the voter, and the client's key (a keyed
    hash of its address; None where there is no connection to read, e.g. under AppTest)."""
    return Requester(session_id=session_id(), voter_id=voter_id(), client_key=client_key())


def session_id() -> str:
    """A random id for this browser tab; never an IP address."""
    if "session_id" not in st.session_state:
        st.session_state.session_id = uuid.uuid4().hex
    return st.session_state.session_id


def voter_id() -> str:
    """The logged-in user when Streamlit authentication is configured, else the tab's session id."""
    if logged_in():
        return f"{USER_PREFIX}{st.user.get('email') or st.user.get('sub')}"
    return f"session:{session_id()}"
