"""The "Admin" page everyone sees while admin access is configured: it asks for the login or the
admin token and shows nothing else. Once the session is an admin, the navigation puts the admin
pages in its place (arena/ui/navigation.py)."""

from __future__ import annotations

import streamlit as st

from arena.admin import MAX_TOKEN_CHARS
from arena.ui.admin_session import STATE_KEY, admin_actor
from arena.ui.common import logged_in, requester, resources


def render() -> None:
    res = resources()
    st.title("Admin")
    access = res.access
    if admin_actor(access) is not None:  # the token typed in another run of this session
        st.rerun()
    if access.admins:
        _login(access)
    if access.token:
        _token(res)


def _login(access) -> None:
    if not logged_in():
        st.write("Admins log in with their account.")
        st.button("Log in", key="admin_login", on_click=st.login)
    else:
        st.info("This account is not an admin of this arena.")


def _token(res) -> None:
    with st.form("admin_token_form", clear_on_submit=True):
        typed = st.text_input(
            "Admin token", type="password", key="admin_token_typed", max_chars=MAX_TOKEN_CHARS
        )
        sent = st.form_submit_button("Open the admin pages", key="admin_token_go")
    if not sent or not typed:
        return
    login = res.access.log_in(res.store, typed, requester())
    if login.actor is not None:
        st.session_state[STATE_KEY] = "token"
        st.rerun()
    st.error(login.refusal)


if __name__ == "__main__":
    render()
