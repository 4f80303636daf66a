"""Admin: the actions on one battle, each a small form with its reason. The store writes the
change and its audit row in one transaction (arena.store.moderation)."""

from __future__ import annotations

import streamlit as st

from arena.errors import ArenaError
from arena.store.moderation import REASON_MAX


def actions(res, detail, actor: str) -> None:
    battle, store = detail.battle, res.store
    voter = (detail.vote or {}).get("voter_id") or battle["voter_id"]
    st.subheader("Actions")
    hide_col, ban_col, erase_col = st.columns(3)
    bid = battle["id"]
    with hide_col:
        if battle["hidden_reason"] is None:
            title = "Hide from every board and export"
            _form("hide", title, "Hide", lambda reason: store.hide(bid, reason, actor))
        else:
            _form("unhide", "Show again", "Unhide", lambda reason: store.unhide(bid, actor, reason))
    with ban_col:
        if voter is None:
            st.caption("No voter to ban (an imported battle without one).")
        elif detail.voter_banned:
            _form("unban", f"Unban {voter}", "Unban", lambda r: store.unban(voter, actor, r))
        else:
            title = f"Ban {voter} (their votes leave every board)"
            _form("ban", title, "Ban", lambda reason: store.ban(voter, reason, actor))
    with erase_col:
        _erase(res, detail, actor)


def _form(key: str, title: str, button: str, run, *, extra=None) -> None:
    """A form with a reason field; on submit `run(reason)`, then a notice and a fresh page."""
    with st.form(f"admin_{key}", clear_on_submit=True):
        st.markdown(f"**{title}**")
        chosen = extra() if extra else None
        reason = st.text_input("Reason", key=f"admin_{key}_reason", max_chars=REASON_MAX)
        sent = st.form_submit_button(button, key=f"admin_{key}_go")
    if not sent:
        return
    try:
        done = run(reason) if extra is None else run(reason, *chosen)
    except ArenaError as exc:
        st.error(str(exc))
        return
    summary = getattr(done, "describe", None)
    note = f"{button}: done." if summary is None else f"Erased {summary()}."
    st.session_state.setdefault("admin_notices", []).append(note)
    st.rerun()


def _erase(res, detail, actor: str) -> None:
    battle_id = detail.battle["id"]

    def what() -> tuple[bool, bool]:
        image = st.checkbox("the image (every battle showing it)", key="admin_erase_image")
        text = st.checkbox("the prompts and answers", key="admin_erase_text")
        return image, text

    _form(
        "erase",
        "Erase for good (a privacy request)",
        "Erase",
        lambda reason, image, text: res.store.erase(battle_id, image, text, actor, reason),
        extra=what,
    )
