"""What the battle page asks of a voter besides battling: accept the terms (ARENA_TERMS) before
their first upload, and "Report this battle"."""

from __future__ import annotations

import streamlit as st

from arena.errors import ArenaError
from arena.store.moderation import REASON_MAX
from arena.ui.common import requester, voter_id

TERMS_KEY = "terms_accepted"  # (voter id, terms sha256) once this session knows they accepted


def terms_gate(res) -> bool:
    """True when there are no terms or this voter accepted these ones; else the terms and an
    accept button, and False (the page shows no uploader)."""
    terms = res.terms
    if terms is None:
        return True
    voter = voter_id()
    if st.session_state.get(TERMS_KEY) == (voter, terms.sha256):
        return True
    if res.store.accepted_terms(voter, terms.sha256):
        st.session_state[TERMS_KEY] = (voter, terms.sha256)
        return True
    st.info("Before your first upload, please read and accept the terms of this arena.")
    with st.container(border=True, height=320, key="terms_text"):
        st.markdown(terms.text)
    if st.button("I accept these terms", key="accept_terms", type="primary"):
        try:
            res.store.accept_terms(voter, terms.sha256)
        except ArenaError as exc:
            st.error(str(exc))
            return False
        st.session_state[TERMS_KEY] = (voter, terms.sha256)
        st.rerun()
    return False


def report_box(store, battle_id: str) -> None:
    """A small expander: a reason and a button; the report flags the battle for the admins."""
    with st.expander("🚩 Report this battle"):
        if st.session_state.get("reported") == battle_id:
            st.success("Thanks for the report: an admin will look at this battle.")
            return
        reason = st.text_input(
            "What is wrong with it? (e.g. an image or prompt that should not be here)",
            key="report_reason",
            max_chars=REASON_MAX,
        )
        if not st.button("Report", key="report_send"):
            return
        try:
            store.report(battle_id, reason, requester())
        except ArenaError as exc:
            st.error(str(exc))
            return
        st.session_state.reported = battle_id  # reported now, or by this voter before
        st.success("Thanks for the report: an admin will look at this battle.")
