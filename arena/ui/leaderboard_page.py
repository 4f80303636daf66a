"""The leaderboard page."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from arena.ui.common import resources


def render() -> None:
    res = resources()
    st.title("🏆 Leaderboard")
    rows: dict[str, dict] = {}
    for a, b, winner, n in res.store.pair_counts(anonymous_only=False):
        for model, won, lost in ((a, "model_a", "model_b"), (b, "model_b", "model_a")):
            row = rows.setdefault(model, {"model": model, "votes": 0, "wins": 0, "losses": 0, "ties": 0})
            row["votes"] += n
            row["wins" if winner == won else "losses" if winner == lost else "ties"] += n
    if not rows:
        st.info("No votes yet: run a battle and vote.")
        return
    table = pd.DataFrame(rows.values())
    table["win_rate"] = (table["wins"] + 0.5 * table["ties"]) / table["votes"]
    st.dataframe(table.sort_values("win_rate", ascending=False), hide_index=True, key="leaderboard_table")


if __name__ == "__main__":
    render()
