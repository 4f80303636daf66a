"""The leaderboard page: ratings with their intervals, pairwise heatmaps, filters, CSV download.

arena.leaderboard computes the board; this page caches it per (database, filters, data version).
The version (number of votes, highest vote id) is one cheap query per run, and any new vote
changes it, so the page recomputes after new votes and reads the cache otherwise. The
style-controlled board needs one row per battle, and the "best model for …" view one board per
task (each reads its task's votes), so both are computed in background threads
(arena.background) and the page shows the latest ones with their time, never waiting for them.
"""

from __future__ import annotations

from dataclasses import replace

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from arena import leaderboard
from arena.background import BackgroundResults, Latest
from arena.errors import ArenaError
from arena.leaderboard import Board
from arena.screened import Screen
from arena.store import VoteFilter
from arena.ui import best_models as best
from arena.ui.common import resources
from arena.ui.leaderboard_filters import Choice, filters

SCREEN_HELP = (
    "Votes that should not count: battles whose answers gave a model away (an identity leak "
    "spoils the blind vote), repeats of one prompt on one image beyond ARENA_DEDUP_CAP, and what "
    "the toggles above leave out."
)

COLUMNS = {
    "rank": st.column_config.NumberColumn("rank", help="1 + models clearly above (CIs apart)"),
    "model": st.column_config.TextColumn("model"),
    "rating": st.column_config.NumberColumn("rating", format="%.1f", help="Bradley-Terry MLE"),
    "rating_raw": st.column_config.NumberColumn(
        "without style control", format="%.1f", help="the plain Bradley-Terry rating"
    ),
    "change": st.column_config.NumberColumn(
        "change", format="%+.1f", help="style-controlled minus plain rating"
    ),
    "ci": st.column_config.TextColumn("95% CI", help="interval around the rating"),
    "ci_lower": st.column_config.NumberColumn("CI low", format="%.1f"),
    "ci_upper": st.column_config.NumberColumn("CI high", format="%.1f"),
    "elo": st.column_config.NumberColumn("elo", format="%.1f", help="online Elo, in vote order"),
    "votes": st.column_config.NumberColumn("votes"),
    "wins": st.column_config.NumberColumn("wins"),
    "losses": st.column_config.NumberColumn("losses"),
    "ties": st.column_config.NumberColumn("ties"),
    "win_rate": st.column_config.NumberColumn("win rate", format="percent", help="wins / votes"),
    "group": st.column_config.NumberColumn("group", help="ratings compare only within a group"),
    "flagged": st.column_config.CheckboxColumn(
        "flagged", help="rating is a bound, not an estimate"
    ),
}


@st.cache_data(show_spinner="Computing the leaderboard…", max_entries=64)
def _board(db_url: str, choice: Choice, version, _store) -> Board:
    """Cached on everything but `_store`: db_url and the data version say which votes it saw."""
    return _compute(_store, choice, replay=False)


def _compute(store, choice: Choice, **options) -> Board:
    """The board of the page's filters (leaderboard_for's `options` added): every board the
    page shows, cached or in the background, comes from here."""
    return leaderboard.leaderboard_for(
        store,
        anonymous_only=choice.anonymous_only,
        since=choice.since,
        until=choice.until,
        category=choice.category,
        screen=_screen(store, choice),
        **options,
    )


@st.cache_resource
def _replays() -> BackgroundResults:
    """Boards whose online Elo is replayed over every vote (after an import of past votes or a
    moderation), computed in the background: the page shows the board without Elo meanwhile."""
    return BackgroundResults()


def _replayed(res, choice: Choice, version) -> Latest:
    return _replays().latest(
        (res.settings.db_url, choice),
        version,
        lambda: _compute(res.store, choice),
    )


def _screen(store, choice: Choice) -> Screen:
    return Screen.from_settings(
        store.settings, flagged_voters=choice.flagged_voters, sample_images=choice.sample_images
    )


@st.cache_data(max_entries=32)
def _category_votes(db_url: str, version, _store) -> dict[str, int]:
    return _store.category_votes(VoteFilter())


@st.cache_resource
def _style_boards() -> BackgroundResults:
    """The style-controlled boards of this server process, computed in the background."""
    return BackgroundResults()


@st.cache_resource
def _best_boards() -> BackgroundResults:
    """The "best model for …" boards of this server process, computed in the background."""
    return BackgroundResults()


def _best_latest(res, choice: Choice, tasks: list[str], version) -> Latest | None:
    """The latest boards of the tasks (each task's filters are the page's, with that category);
    None without tasks."""
    if not tasks:
        return None
    base = replace(choice, category=None)

    def board_for(task: str) -> Board:
        return _compute(res.store, replace(base, category=task), ci="sandwich")

    key = (res.settings.db_url, base, tuple(tasks))
    return _best_boards().latest(key, version, lambda: best.boards(tasks, board_for))


@st.cache_data(max_entries=32)
def _has_style(db_url: str, version, _store) -> bool:
    return _store.has_style()


def _metrics(board: leaderboard.Board) -> None:
    votes, models, last = st.columns(3)
    votes.metric("Votes", f"{board.votes:,}")
    models.metric("Models", len(board.leaderboard.rows))
    last.metric(
        "Last vote", board.last_vote.strftime("%Y-%m-%d %H:%M UTC") if board.last_vote else "–"
    )


def _table(board: leaderboard.Board) -> pd.DataFrame:
    frame = board.leaderboard.models_frame()
    frame["ci"] = [
        f"+{hi - r:.1f} / -{r - lo:.1f}"
        for r, lo, hi in zip(frame["rating"], frame["ci_lower"], frame["ci_upper"], strict=True)
    ]
    columns = ["rank", "model", "rating", "ci", "ci_lower", "ci_upper"]
    if board.leaderboard.style is not None:
        frame["change"] = frame["rating"] - frame["rating_raw"]
        columns += ["rating_raw", "change"]
    columns += ["elo", "votes", "wins", "losses", "ties", "win_rate"]
    if len(board.leaderboard.groups) > 1:
        columns.append("group")
    if frame["flagged"].any():
        columns.append("flagged")
    return frame[columns]


def _rating_chart(table: pd.DataFrame) -> alt.Chart:
    order = table["model"].tolist()
    base = alt.Chart(table).encode(y=alt.Y("model:N", sort=order, title=None))
    interval = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("ci_lower:Q", scale=alt.Scale(zero=False), title="rating (95% CI)"),
        x2="ci_upper:Q",
    )
    colour = alt.Color("group:N") if "group" in table else alt.value("#1f77b4")
    tips = ["model", alt.Tooltip("rating:Q", format=".1f"), alt.Tooltip("ci_lower:Q", format=".1f")]
    tips += [alt.Tooltip("ci_upper:Q", format=".1f"), "votes"]
    points = base.mark_point(filled=True, size=70).encode(x="rating:Q", color=colour, tooltip=tips)
    return (interval.encode(color=colour) + points).properties(height=max(160, 22 * len(order)))


def _cells(board: leaderboard.Board) -> pd.DataFrame:
    """One row per ordered pair of models that met: win rate of `model` over `opponent`, battles."""
    lb = board.leaderboard
    n = len(lb.models)
    cells = pd.DataFrame(
        {
            "model": np.repeat(lb.models, n),
            "opponent": np.tile(lb.models, n),
            "win_rate": lb.win_rate.ravel(),
            "battles": lb.battle_count.ravel(),
        }
    )
    return cells[cells["battles"] > 0]


def _heatmap(cells: pd.DataFrame, models: list[str], value: str) -> alt.Chart:
    if value == "win_rate":
        scale = alt.Scale(scheme="redblue", domain=[0, 1])
        colour = alt.Color("win_rate:Q", title="win rate", scale=scale)
    else:
        colour = alt.Color("battles:Q", title="battles", scale=alt.Scale(scheme="blues"))
    tips = ["model", "opponent", alt.Tooltip("win_rate:Q", format=".1%"), "battles:Q"]
    size = max(200, 18 * len(models))
    return (
        alt.Chart(cells)
        .mark_rect()
        .encode(
            x=alt.X("opponent:N", sort=models, title="opponent"),
            y=alt.Y("model:N", sort=models, title="model"),
            color=colour,
            tooltip=tips,
        )
        .properties(height=size, width=size)
    )


def _bias_caption(board: leaderboard.Board) -> str:
    bias = board.leaderboard.position_bias
    if bias.rate is None:
        return "Position bias: no decisive votes yet."
    return (
        f"Position bias: the left answer (model A) won {bias.rate:.1%} of {bias.decisive:,} "
        f"decisive votes (95% CI {bias.ci_lower:.1%} – {bias.ci_upper:.1%}; 50% is no bias)."
    )


def _style_board(res, choice: Choice, version) -> Latest:
    key = (res.settings.db_url, choice)
    return _style_boards().latest(
        key,
        version,
        lambda: _compute(res.store, choice, style_control=True),
    )


def _style_caption(latest: Latest, board: leaderboard.Board) -> str:
    style = board.leaderboard.style
    effects = ", ".join(
        f"{name} {value:+.2f} ({lo:+.2f} to {hi:+.2f})"
        for name, (value, lo, hi) in style.coefficients.items()
    )
    when = latest.result.computed_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    fresh = " Recomputing for the newest votes…" if latest.running else ""
    return (
        f"Style-controlled ratings over {style.battles:,} battles, computed {when} in "
        f"{latest.result.seconds:.1f} s.{fresh} Style effects (log-odds of winning per standard "
        f"deviation; above 0 means voters favoured more of it): {effects}. "
        "'change' is how far style control moved each model."
    )


def render() -> None:
    res = resources()
    st.title("🏆 Leaderboard")
    latest = None
    try:
        version = res.store.data_version()
        if version[0] == 0:
            st.info(
                "No votes yet: run a battle on the Battle page and vote; the ratings appear here."
            )
            return
        has_style = _has_style(res.settings.db_url, version, res.store)
        category_votes = _category_votes(res.settings.db_url, version, res.store)
        choice = filters(has_style, category_votes)
        if choice.style:
            latest = _style_board(res, choice, version)
        replay = None
        if latest is not None and latest.result is not None and not latest.result.value.empty:
            board = latest.result.value
        else:
            board = _board(res.settings.db_url, choice, version, res.store)
            if board.elo_pending:
                replay = _replayed(res, choice, version)
                if replay.result is not None and replay.result.version == version:
                    board = replay.result.value
    except ArenaError as exc:
        st.error(str(exc))
        return
    if latest is not None:
        if latest.result is not None and latest.result.value.empty:
            st.info("No votes here carry style counts: these are the plain ratings.")
            latest = None
        elif latest.error and latest.result is None:
            st.error(f"The style-controlled ratings could not be computed: {latest.error}")
        elif latest.result is None:
            st.info(
                "The style-controlled ratings are being computed in the background; these are the "
                "plain ratings until then. Refresh in a moment.",
                icon="⏳",
            )
    if board.empty:
        if board.screened.rows:
            st.caption(board.screened.summary())
        st.info(
            "No votes match these filters: include named battles, widen the dates or pick "
            "another task."
        )
        return
    _metrics(board)
    if board.elo_pending:
        failed = replay is not None and replay.error and not replay.running
        st.caption(
            f"Online Elo could not be replayed: {replay.error}"
            if failed
            else "Online Elo is being replayed over every vote (past votes changed: an import or "
            "a moderation); its column fills in on a refresh once it is done.",
            help="The ratings and intervals do not need it and are up to date.",
        )
    if board.screened.rows:
        st.caption(board.screened.summary(), help=SCREEN_HELP)
    if latest is not None and latest.result is not None and board is latest.result.value:
        st.caption(_style_caption(latest, board))
    for warning in board.leaderboard.warnings:
        st.warning(warning)
    table = _table(board)
    st.dataframe(table, hide_index=True, column_config=COLUMNS, key="leaderboard_table")
    st.download_button(
        "Download CSV",
        table.drop(columns="ci").to_csv(index=False),
        file_name="leaderboard.csv",
        mime="text/csv",
        key="download_csv",
        on_click="ignore",
    )
    st.caption(_bias_caption(board))
    ratings_tab, win_tab, count_tab, best_tab = st.tabs(
        ["Ratings", "Win rates", "Battle counts", "Best model for…"]
    )
    ratings_tab.altair_chart(_rating_chart(table), width="stretch", key="chart_ratings")
    cells, models = _cells(board), board.leaderboard.models
    win_tab.altair_chart(_heatmap(cells, models, "win_rate"), key="chart_win_rate")
    count_tab.altair_chart(_heatmap(cells, models, "battles"), key="chart_battle_count")
    minimum = res.settings.min_category_votes
    tasks = best.tasks_with_votes(category_votes, minimum)
    with best_tab:
        best.render(tasks, _best_latest(res, choice, tasks, version), minimum)


if __name__ == "__main__":
    render()
