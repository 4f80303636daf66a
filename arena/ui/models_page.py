"""The models page: every enabled model's display name and whether it is ready, for everyone;
for an admin also where each comes from, what of it is on this machine, its worker, its figures
from the stored battles, and "Load now" / "Stop".

The public table names no backend, source or id: the display names are the registry's list
anyway, while where a model runs is the operator's business.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from arena.backends.status import ModelStatus, Source, State
from arena.errors import ArenaError
from arena.store.model_stats import ModelStats
from arena.ui.admin_session import admin_actor
from arena.ui.common import resources
from arena.ui.widgets import format_bytes

STATE_LABELS = {
    State.READY: "✅ ready",
    State.LOADING: "⏳ loading",
    State.NOT_LOADED: "💤 loads on its first battle",
    State.ERROR: "❌ unavailable",
}
STATS_TTL_S = 60  # answers stored without a vote leave data_version alone: seen within a minute


def render() -> None:
    res = resources()
    st.title("🧩 Models")
    specs = res.registry.enabled
    statuses = res.backends.statuses(spec.id for spec in specs)
    st.dataframe(pd.DataFrame(public_rows(specs, statuses)), hide_index=True, key="models_public")
    if admin_actor(res.access) is not None:
        render_admin_details(res, specs, statuses)


def public_rows(specs: Sequence, statuses: dict[str, ModelStatus]) -> list[dict]:
    """Display name and readiness: what anyone may see."""
    return [
        {"model": spec.display_name, "status": STATE_LABELS[statuses[spec.id].state]}
        for spec in specs
    ]


def render_admin_details(res, specs: Sequence, statuses: dict[str, ModelStatus]) -> None:
    """The operator's view: one row per model, then its buttons. The buttons act in their
    on_click callbacks, before the page runs again, so the table shows what they did."""
    st.subheader("Details (admin)")
    try:
        stats = _stats(res.settings.db_url, res.store.data_version(), res.store)
    except ArenaError as exc:
        st.error(str(exc))
        stats = {}
    sources = {spec.id: res.backends.get(spec.id).source() for spec in specs}
    rows = admin_rows(specs, statuses, sources, stats)
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="models_admin")
    st.button("🔄 Refresh", key="models_refresh")
    for spec in specs:
        backend = res.backends.get(spec.id)
        name, load, stop = st.columns([3, 1, 1], vertical_alignment="center")
        name.markdown(f"`{spec.id}` · {STATE_LABELS[statuses[spec.id].state]}")
        load.button(
            "Load now", key=f"load_{spec.id}", on_click=backend.load_in_background, width="stretch"
        )
        stop.button("Stop", key=f"stop_{spec.id}", on_click=backend.stop, width="stretch")


def admin_rows(
    specs: Sequence,
    statuses: dict[str, ModelStatus],
    sources: dict[str, Source],
    stats: dict[str, ModelStats],
) -> list[dict]:
    rows = []
    for spec in specs:
        status, source = statuses[spec.id], sources[spec.id]
        figures = stats.get(spec.id, ModelStats(spec.id))
        rows.append(
            {
                "id": spec.id,
                "model": spec.display_name,
                "status": STATE_LABELS[status.state],
                "backend": spec.backend,
                "source": source.location,
                "on this machine": on_this_machine(source, status),
                "worker pid": status.pid,
                "memory": format_bytes(status.rss_bytes),
                "load time (s)": _rounded(status.load_seconds, 1),
                "last error": status.last_error or "",
                "answers": figures.answers,
                "median first token (s)": _rounded(figures.median_ttft, 2),
                "median tokens/s": _rounded(figures.median_tokens_per_s, 1),
                "votes": figures.votes,
            }
        )
    return rows


def on_this_machine(source: Source, status: ModelStatus) -> str:
    """What of the model is here: a local directory's size, whether a hub model is in the
    Hugging Face cache (and its size), or whether an endpoint answers."""
    if status.download is not None and status.download.fraction is not None:
        return (
            f"downloading, {status.download.fraction:.0%} of {format_bytes(status.download.total)}"
        )
    if source.kind == "endpoint":
        return {True: "endpoint reachable", False: "endpoint unreachable"}.get(status.reachable, "")
    if source.kind == "hub" and not source.cached:
        return "not in the Hugging Face cache: downloads on first load"
    where = "local directory" if source.kind == "local directory" else "in the Hugging Face cache"
    return f"{where}, {format_bytes(source.size_bytes)}" if source.size_bytes else where


@st.cache_data(ttl=STATS_TTL_S, show_spinner=False)
def _stats(db_url: str, version: tuple, _store) -> dict[str, ModelStats]:
    """One statement per new vote (data_version) or per minute, whichever comes first."""
    return _store.model_stats()


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


if __name__ == "__main__":
    render()
