"""The leaderboard page's "best model for …" view: each task category with enough votes, and
its rank-1 models (all of them when the intervals cannot tell them apart), side by side.

Each task's board reads that task's votes (the database keeps no counts per category and pair),
so the boards are computed together in a background thread (arena.background) and the view shows
the latest ones with their time: the page never waits for them."""

from __future__ import annotations

import streamlit as st

from arena import leaderboard
from arena.background import Latest
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


def boards(tasks: list[str], board_for) -> dict[str, leaderboard.Board | str]:
    """Each task's board, or the one line saying why it could not be computed: what the
    background thread computes (`board_for(category)` gives one board)."""
    found: dict[str, leaderboard.Board | str] = {}
    for task in tasks:
        try:
            found[task] = board_for(task)
        except ArenaError as exc:
            found[task] = str(exc)
    return found


def render(tasks: list[str], latest: Latest | None, minimum: int) -> None:
    """The view from the latest background result (None: no task has enough votes)."""
    if not tasks or latest is None:
        st.info(
            f"No task has {minimum:,} votes yet (ARENA_MIN_CATEGORY_VOTES); the best model per "
            "task appears here once one has."
        )
        return
    if latest.result is None:
        if latest.error:
            st.error(f"The best model per task could not be computed: {latest.error}")
        else:
            st.info(
                "The best model per task is being computed in the background; refresh in a moment.",
                icon="⏳",
            )
        return
    when = latest.result.computed_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    fresh = " Recomputing for the newest votes…" if latest.running else ""
    st.caption(
        "Rank 1 of each task's own leaderboard (sandwich intervals; models whose intervals "
        f"overlap the leader's share rank 1), computed {when}.{fresh}"
    )
    found = latest.result.value
    shown = [task for task in tasks if task in found] or list(found)
    for start in range(0, len(shown), PER_ROW):
        row = shown[start : start + PER_ROW]
        for column, task in zip(st.columns(PER_ROW), row, strict=False):
            with column.container(border=True, key=f"best_{task}"):
                board = found[task]
                if isinstance(board, str):
                    st.error(board)
                    continue
                st.markdown(f"**{task}**")
                st.caption(f"{board.votes:,} votes")
                for model in best_models(board):
                    st.markdown(f"🥇 {model}")
