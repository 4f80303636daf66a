"""Pieces of the battle page: the two answer columns and the vote bar."""

from __future__ import annotations

import streamlit as st

from arena.backends.status import Download
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


def download_text(side: str, download: Download, show_size: bool) -> str:
    """The line over a side's download bar. Without show_size (an anonymous battle before the
    vote) percent only: a model's size would give it away."""
    fraction = download.fraction
    percent = f"{fraction:.0%}" if fraction is not None else "starting"
    line = f"Model {side.upper()}: downloading for the first time"
    if not show_size:
        return f"{line}, {percent}"
    if download.total:
        return (
            f"{line}, {format_bytes(download.done)} of {format_bytes(download.total)} ({percent})"
        )
    return f"{line}, {format_bytes(download.done)}"


def downloading(placeholder, side: str, download: Download, show_size: bool) -> None:
    """A side's progress bar while its model downloads, from the hub client's own byte count."""
    placeholder.progress(download.fraction or 0.0, text=download_text(side, download, show_size))


def format_bytes(size: int | None) -> str:
    """1.5 GB, 340 MB, 12 kB (powers of 1000, as the hub shows sizes); '' for None."""
    if size is None:
        return ""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{size} B"


def vote_bar(enabled: bool) -> Outcome | None:
    """Four vote buttons in a row; returns the outcome clicked, if any."""
    clicked = None
    for col, (outcome, label) in zip(st.columns(len(VOTE_BUTTONS)), VOTE_BUTTONS, strict=True):
        with col:
            if st.button(label, key=f"vote_{outcome.value}", disabled=not enabled, width="stretch"):
                clicked = outcome
    return clicked
