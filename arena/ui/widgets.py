"""Pieces of the battle page: the two answer columns and the vote bar."""

from __future__ import annotations

import streamlit as st

from arena.battle.sides import SideResult
from arena.boxes import draw_boxes, find_boxes
from arena.kinds import Outcome

VOTE_BUTTONS = (
    (Outcome.A, "👈 A is better"),
    (Outcome.B, "👉 B is better"),
    (Outcome.TIE, "🤝 Tie"),
    (Outcome.BOTH_BAD, "👎 Both are bad"),
)


def timing_caption(result: SideResult) -> str:
    parts = []
    if result.ttft is not None:
        parts.append(f"first token {result.ttft:.2f} s")
    if result.total is not None:
        parts.append(f"total {result.total:.2f} s")
    if result.tokens:
        parts.append(f"{result.tokens} tokens")
    return " · ".join(parts)


def show_result(result: SideResult, image=None) -> None:
    """An answer as markdown (never live HTML) or its error, and the boxes it names drawn on
    this side's copy of the image."""
    if result.error:
        if result.answer:
            st.markdown(result.answer)
        st.error(result.error)
    else:
        st.markdown(result.answer)
    if image is not None and result.answer:
        boxes = find_boxes(result.answer, *image.size)
        if boxes:
            st.image(draw_boxes(image, boxes), caption=f"{len(boxes)} box(es) found in this answer")
    caption = timing_caption(result)
    if caption:
        st.caption(caption)


def waiting(placeholder, side: str, loading: bool) -> None:
    """What a side shows until its first words: a running status while the model downloads or
    loads for the first time, else a short note."""
    if loading:
        placeholder.status(
            f"Loading Model {side.upper()} for the first time (downloading it if needed)…",
            state="running",
        )
    else:
        placeholder.markdown(f"⏳ Model {side.upper()} is thinking…")


def vote_bar(enabled: bool) -> Outcome | None:
    """Four vote buttons in a row; returns the outcome clicked, if any."""
    clicked = None
    for col, (outcome, label) in zip(st.columns(len(VOTE_BUTTONS)), VOTE_BUTTONS, strict=True):
        with col:
            if st.button(label, key=f"vote_{outcome.value}", disabled=not enabled, width="stretch"):
                clicked = outcome
    return clicked
