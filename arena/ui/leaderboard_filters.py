"""The leaderboard page's filters: which votes, which task, and what the screening leaves out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

STYLE_HELP = (
    "Voters tend to prefer longer answers with more markdown. Style control (LMArena's default) "
    "fits the ratings together with the effect of each answer's length, headers, list items and "
    "bold text, so a model's rating says how much voters liked what it answered, not how it was "
    "dressed."
)
ALL_TASKS = "All tasks"


@dataclass(frozen=True)
class Choice:
    """What the visitor asked the page for (a cache key: every field is hashable)."""

    style: bool
    anonymous_only: bool
    since: datetime | None
    until: datetime | None
    category: str | None
    flagged_voters: bool  # leave out the votes of flagged voters
    sample_images: bool  # leave out battles on shipped samples


def filters(style_default: bool, category_votes: dict[str, int]) -> Choice:
    left, middle, right = st.columns([1, 1, 2], vertical_alignment="bottom")
    style = middle.toggle("Control for style", value=style_default, key="lb_style", help=STYLE_HELP)
    anonymous_only = left.toggle(
        "Anonymous battles only",
        value=True,
        key="lb_anonymous_only",
        help="The ranking counts blind votes only; named battles show the models before the vote.",
    )
    dates = right.date_input(
        "Votes cast between (UTC)", value=(), key="lb_dates", format="YYYY-MM-DD"
    )
    dates = dates if isinstance(dates, tuple) else (dates,)
    since = _midnight(dates[0]) if len(dates) >= 1 else None
    until = _midnight(dates[1] + timedelta(days=1)) if len(dates) == 2 else None
    task, voters, samples = st.columns([2, 1, 1], vertical_alignment="bottom")
    options = [ALL_TASKS, *sorted(category_votes)]
    category = task.selectbox(
        "Task",
        options,
        key="lb_category",
        format_func=lambda c: c if c == ALL_TASKS else f"{c} ({category_votes[c]:,} votes)",
        help="The ranking over the battles of one task category (assigned from the prompts).",
    )
    flagged = voters.toggle(
        "Leave out flagged voters",
        value=False,
        key="lb_flagged_voters",
        help="Voters (or addresses) whose votes keep going against everyone else's, by Chatbot "
        "Arena's sequential test.",
    )
    sample_images = samples.toggle(
        "Leave out sample images",
        value=False,
        key="lb_sample_images",
        help="Battles started from one of the arena's own sample images.",
    )
    chosen = None if category == ALL_TASKS else category
    return Choice(style, anonymous_only, since, until, chosen, flagged, sample_images)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)
