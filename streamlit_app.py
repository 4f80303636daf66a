"""VLM Arena: `streamlit run streamlit_app.py`. Thin: navigation over the pages only."""

from pathlib import Path

import streamlit as st

from arena.ui.client import disable_uvicorn_forwarding

UI = Path(__file__).resolve().parent / "arena" / "ui"

disable_uvicorn_forwarding()  # only ARENA_TRUSTED_PROXIES decides whose X-Forwarded-For counts
st.set_page_config(page_title="VLM Arena", page_icon="⚔️", layout="wide")
page = st.navigation(
    [
        st.Page(UI / "battle_page.py", title="Battle", icon="⚔️", default=True),  # served at /
        st.Page(UI / "leaderboard_page.py", title="Leaderboard", icon="🏆", url_path="leaderboard"),
    ]
)
page.run()
