"""VLM Arena: `streamlit run streamlit_app.py`. Thin: navigation over the pages only."""

import streamlit as st

from arena.ui.client import disable_uvicorn_forwarding
from arena.ui.navigation import pages

disable_uvicorn_forwarding()  # only ARENA_TRUSTED_PROXIES decides whose X-Forwarded-For counts
st.set_page_config(page_title="VLM Arena", page_icon="⚔️", layout="wide")
st.navigation(pages()).run()  # the admin pages only for an admin session (arena/ui/navigation.py)
