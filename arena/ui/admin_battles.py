"""Admin: the recent battles, filtered and paginated, and one battle in full with its actions
(arena/ui/admin_battle_view.py). Draws nothing for a session that is not an admin."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from arena.kinds import Mode
from arena.ui.admin_battle_view import show_battle
from arena.ui.admin_session import require_admin
from arena.ui.common import resources

PAGE_SIZE = 25
ANY = "any"
YES_NO = {ANY: None, "yes": True, "no": False}


def render() -> None:
    res = resources()
    actor = require_admin(res.access)
    st.title("Battles")
    which = _filters(res.registry)
    total = res.store.battles_count(**which)
    page = _pager(total, which)
    rows = res.store.battles_page(PAGE_SIZE, page * PAGE_SIZE, **which)
    st.caption(f"{total:,} battles match; page {page + 1} of {_pages(total)}, most recent first.")
    st.dataframe([_row(r) for r in rows], hide_index=True, width="stretch", key="admin_table")
    chosen = st.selectbox(
        "Open a battle",
        [r.id for r in rows],
        index=None,
        format_func=lambda i: _label(next(r for r in rows if r.id == i)),
        key="admin_battle",
        placeholder="Choose one of this page's battles",
    )
    typed = st.text_input("…or type a battle id", key="admin_battle_id", max_chars=32).strip()
    for message in st.session_state.pop("admin_notices", []):
        st.success(message)
    battle_id = typed or chosen
    if battle_id:
        st.divider()
        show_battle(res, battle_id, actor)


def _filters(registry) -> dict:
    model_col, mode_col, dates_col, voted_col, flagged_col = st.columns([2, 1, 2, 1, 1])
    models = [ANY, *sorted(s.id for s in registry.specs)]
    model = model_col.selectbox("Model (either side)", models, key="admin_f_model")
    mode = mode_col.selectbox("Mode", [ANY, *[m.value for m in Mode]], key="admin_f_mode")
    dates = dates_col.date_input(
        "Started between (UTC)", value=(), key="admin_f_dates", format="YYYY-MM-DD"
    )
    voted = voted_col.selectbox("Voted", list(YES_NO), key="admin_f_voted")
    flagged = flagged_col.selectbox(
        "Flagged",
        list(YES_NO),
        key="admin_f_flagged",
        help="Hidden, reported by a voter, or naming a model in an anonymous battle.",
    )
    since, until = _range(dates if isinstance(dates, tuple) else (dates,))
    return {
        "model": None if model == ANY else model,
        "mode": None if mode == ANY else Mode(mode),
        "since": since,
        "until": until,
        "voted": YES_NO[voted],
        "flagged": YES_NO[flagged],
    }


def _range(dates: tuple[date, ...]) -> tuple[datetime | None, datetime | None]:
    since = _midnight(dates[0]) if dates else None
    until = _midnight(dates[1] + timedelta(days=1)) if len(dates) == 2 else None
    return since, until


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _pages(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))


def _pager(total: int, which: dict) -> int:
    """The page shown (from 0): back to the first whenever the filters change."""
    key = repr(sorted(which.items()))
    if st.session_state.get("admin_filters") != key:
        st.session_state.admin_filters = key
        st.session_state.admin_page = 0
    page = min(st.session_state.get("admin_page", 0), _pages(total) - 1)
    newer, older, _ = st.columns([1, 1, 6])
    st.session_state.admin_page = page
    for column, label, key, step, disabled in (
        (newer, "← Newer", "admin_newer", -1, page == 0),
        (older, "Older →", "admin_older", 1, page + 1 >= _pages(total)),
    ):
        if column.button(label, key=key, disabled=disabled):
            st.session_state.admin_page = page + step
            st.rerun()
    return page


def _row(r) -> dict:
    flags = [
        name
        for name, on in (
            ("hidden", r.hidden),
            (f"{r.reports} report(s)", r.reports),
            ("identity leak", r.identity_leak),
            ("text erased", r.text_erased),
            ("image erased", r.image_erased),
        )
        if on
    ]
    return {
        "started (UTC)": r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        "battle": r.id,
        "mode": r.mode.value,
        "model A": r.model_a,
        "model B": r.model_b,
        "vote": r.outcome.value if r.outcome else "",
        "flags": ", ".join(flags),
    }


def _label(r) -> str:
    return f"{r.created_at:%Y-%m-%d %H:%M} · {r.model_a} vs {r.model_b} · {r.id}"


if __name__ == "__main__":
    render()
