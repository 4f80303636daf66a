"""The leaderboard page's "best model for …" view: each task category with enough votes, and
its rank-1 models (all of them when the intervals cannot tell them apart), side by side."""

from __future__ import annotations

import streamlit as st

from arena import leaderboard
from arena.categories import OTHER, TAGS
from arena.errors import ArenaError

PER_ROW = 4


def best_models(board: leaderboard.Board) -> list[str]:
    """The rank-1 models of a board (ranks come from the intervals: ties share rank 1)."""
    return [row.model for row in board.leaderboard.rows if row.rank == 1]


def tasks_with_votes(category_votes: dict[str, int], minimum: int) -> list[str]:
    """The task categories (not `other`, not the automatic tags) with at least `minimum` votes,
    most votes first."""
    found = [
        (n, c) for c, n in category_votes.items() if n >= minimum and c != OTHER and c not in TAGS
    ]
    return [c for _, c in sorted(found, key=lambda item: (-item[0], item[1]))]


def render(tasks: list[str], board_for, minimum: int) -> None:
    """`board_for(category)` gives the (cached) board of one category."""
    if not tasks:
        st.info(
            f"No task has {minimum:,} votes yet (ARENA_MIN_CATEGORY_VOTES); the best model per "
            "task appears here once one has."
        )
        return
    st.caption(
        "Rank 1 of each task's own leaderboard (sandwich intervals; models whose intervals "
        "overlap the leader's share rank 1)."
    )
    for start in range(0, len(tasks), PER_ROW):
        row = tasks[start : start + PER_ROW]
        for column, task in zip(st.columns(PER_ROW), row, strict=False):
            with column.container(border=True, key=f"best_{task}"):
                try:
                    board = board_for(task)
                except ArenaError as exc:
                    st.error(str(exc))
                    continue
                st.markdown(f"**{task}**")
                st.caption(f"{board.votes:,} votes")
                for model in best_models(board):
                    st.markdown(f"🥇 {model}")
