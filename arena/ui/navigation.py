"""The app's pages, chosen per run: the battle, the leaderboard and the models page always; with
admin access configured (arena.admin) the "Admin" gate, which the admin pages replace once this
session is an admin. A page not in the list does not exist for this session: Streamlit answers
its URL with "Page not found" over the default page, and each admin page refuses to draw for a
non-admin too.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from arena.admin import AdminAccess
from arena.config import Settings
from arena.errors import ArenaError
from arena.ui.admin_session import admin_actor

UI = Path(__file__).resolve().parent
ADMIN_URL = "admin"  # the gate, then the battles browser: the same address before and after


def pages() -> list:
    found = [
        st.Page(UI / "battle_page.py", title="Battle", icon="⚔️", default=True),  # served at /
        st.Page(UI / "leaderboard_page.py", title="Leaderboard", icon="🏆", url_path="leaderboard"),
        st.Page(UI / "models_page.py", title="Models", icon="🧩", url_path="models"),
    ]
    try:
        access = AdminAccess.from_settings(Settings.from_env())
    except ArenaError:  # the pages show the one line
        return found
    if not access.configured:
        return found
    if admin_actor(access) is None:
        return [*found, st.Page(UI / "admin_gate.py", title="Admin", icon="🔑", url_path=ADMIN_URL)]
    return [
        *found,
        st.Page(UI / "admin_battles.py", title="Battles (admin)", icon="🗂️", url_path=ADMIN_URL),
        st.Page(
            UI / "admin_audit.py", title="Audit log (admin)", icon="📜", url_path="admin-audit"
        ),
        st.Page(
            UI / "admin_dataset.py", title="Dataset (admin)", icon="📦", url_path="admin-dataset"
        ),
    ]
