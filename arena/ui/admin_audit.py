"""Admin: the audit log (every action: who, when, what, why), the voters' reports and the banned
voters. Draws nothing for a session that is not an admin."""

from __future__ import annotations

import streamlit as st

from arena.ui.admin_session import require_admin
from arena.ui.common import resources

PAGE_SIZE = 50


def render() -> None:
    res = resources()
    require_admin(res.access)
    st.title("Audit log")
    page = st.session_state.get("audit_page", 0)
    rows = res.store.audit_log(PAGE_SIZE + 1, page * PAGE_SIZE)  # one more: is there a next page
    _table([_audit(r) for r in rows[:PAGE_SIZE]], "audit_table")
    newer, older, _ = st.columns([1, 1, 6])
    if newer.button("← Newer", key="audit_newer", disabled=page == 0):
        st.session_state.audit_page = page - 1
        st.rerun()
    if older.button("Older →", key="audit_older", disabled=len(rows) <= PAGE_SIZE):
        st.session_state.audit_page = page + 1
        st.rerun()
    st.subheader("Reports")
    reports = res.store.reports(PAGE_SIZE)
    _table([_report(r) for r in reports], "reports_table")
    st.subheader("Banned voters")
    banned = res.store.banned_voters()
    _table([{"voter": v, "reason": why} for v, why in sorted(banned.items())], "banned_table")


def _table(rows: list[dict], key: str) -> None:
    st.dataframe(rows, hide_index=True, width="stretch", key=key)


def _audit(r) -> dict:
    when = f"{r.at:%Y-%m-%d %H:%M:%S}"
    return {
        "when (UTC)": when,
        "who": r.actor,
        "what": r.action,
        "target": r.target,
        "why": r.reason or "",
    }


def _report(r) -> dict:
    when = f"{r.created_at:%Y-%m-%d %H:%M}"
    return {
        "when (UTC)": when,
        "battle": r.battle_id,
        "voter": r.voter_id or "",
        "reason": r.reason,
    }


if __name__ == "__main__":
    render()
