"""Whether this browser session is an admin (arena.admin has the rules), for the navigation and
for every admin page, which each refuse to draw anything for anyone else."""

from __future__ import annotations

import streamlit as st

from arena.admin import TOKEN_ACTOR, AdminAccess
from arena.ui.common import logged_in

STATE_KEY = "admin"  # "token" once the admin token was typed in this session


def admin_actor(access: AdminAccess) -> str | None:
    """ "admin:<email>" for a logged-in user in ARENA_ADMINS (read from st.user on every run, so
    logging out ends it), "admin:token" after the token was typed in this session, else None."""
    if logged_in() and st.user.get("email_verified", True) is not False:
        actor = access.email_actor(st.user.get("email"))
        if actor is not None:
            return actor
    if st.session_state.get(STATE_KEY) == "token" and access.token:
        return TOKEN_ACTOR
    return None


def require_admin(access: AdminAccess) -> str:
    """The admin's actor name; for anyone else the page stops here, having drawn nothing (an
    admin page that the navigation should never have offered them)."""
    actor = admin_actor(access)
    if actor is None:
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in to the admin pages as {actor}.")
        if actor == TOKEN_ACTOR and st.button("Leave the admin pages", key="admin_leave"):
            st.session_state.pop(STATE_KEY, None)
            st.rerun()
    return actor
