"""The battle page: upload an image, ask, watch two answers stream side by side, vote."""

from __future__ import annotations

import time

import streamlit as st

from arena.battle import SIDES, Battle, ask, cast_vote, pick_models, regenerate, save_turn, start
from arena.battle.sides import names_shown
from arena.errors import AlreadyVoted, ArenaError
from arena.images import EXTENSIONS, check_image, check_prompt
from arena.kinds import Mode
from arena.samples import SAMPLES, SAMPLES_DIR
from arena.ui import widgets
from arena.ui.common import login_gate, requester, resources
from arena.ui.voter_notes import report_box, terms_gate

MODES = {Mode.ANONYMOUS: "🎲 Anonymous battle", Mode.NAMED: "🏷️ Named battle"}
_REFRESH_S = 0.05  # how often a streaming answer is redrawn


def render() -> None:
    res = resources()
    st.title("⚔️ VLM Arena")
    st.caption(
        "Upload an image, ask a question, and vote for the better answer. Names are revealed after the vote."
    )
    if not login_gate(res.settings):
        return
    battle: Battle | None = st.session_state.get("battle")

    if battle is None:
        if not terms_gate(res):  # ARENA_TERMS: accepted once before the first upload
            return
        mode, models = _mode_picker(res.registry)
        upload = st.file_uploader(
            "Image (PNG, JPEG, WebP, GIF, BMP)",
            type=list(EXTENSIONS),
            key="image",
            max_upload_size=_uploader_mb(res.settings),
        )
        checked = _checked_upload(upload, res.settings)
        if upload is None:
            checked = _sample_picker(res.settings)
    else:
        st.image(battle.image.image, width=420)
        _conversation(battle)

    prompt = st.chat_input(
        _placeholder(battle, res.settings),
        key="prompt",
        disabled=_input_closed(battle, res.settings),
    )
    if prompt is not None:
        if battle is None:
            battle = _start(res, mode, models, checked, prompt)
        else:
            _follow_up(res, battle, prompt)
    if battle is not None:
        _actions(res, battle)
    for message in st.session_state.pop("notices", []):
        st.info(message)


def _mode_picker(registry):
    mode = Mode(st.radio("Mode", list(MODES), format_func=MODES.get, key="mode", horizontal=True))
    if mode is Mode.ANONYMOUS:
        return mode, None
    options = [s.id for s in registry.enabled]
    names = {s.id: s.display_name for s in registry.specs}
    left, right = st.columns(2)
    a = left.selectbox("Model A (left)", options, index=0, format_func=names.get, key="named_a")
    b = right.selectbox(
        "Model B (right)",
        options,
        index=min(1, len(options) - 1),
        format_func=names.get,
        key="named_b",
    )
    return mode, (a, b)


def _placeholder(battle, settings) -> str:
    if battle is None:
        return "Ask about the image…"
    if battle.outcome is not None:
        return "Vote stored: start a new battle to ask again"
    return f"Ask a follow-up ({len(battle.prompts)}/{settings.max_turns} turns)"


def _input_closed(battle, settings) -> bool:
    return battle is not None and not battle.can_follow_up(settings.max_turns)


def _uploader_mb(settings) -> int:
    """Streamlit's own limit takes whole megabytes: ARENA_MAX_UPLOAD_MB rounded up (0.5 -> 1,
    20.5 -> 21), so it never refuses a file that check_image accepts; check_image has the last word."""
    mb = settings.max_upload_mb
    return max(1, int(mb) + (mb % 1 > 0))


def _checked_upload(upload, settings):
    """Check the uploaded file at once: a preview, or one line saying what is wrong."""
    if upload is None:
        return None
    try:
        image = check_image(upload.getvalue(), settings, filename=upload.name)
    except ArenaError as exc:
        st.error(str(exc))
        return None
    st.image(image.image, width=320)
    return image


def _sample_picker(settings):
    """A row of sample images to start from; returns the chosen one, checked like an upload
    except for the upload size limit."""
    st.caption("…or start from a sample image:")
    for col, sample in zip(st.columns(len(SAMPLES)), SAMPLES, strict=True):
        with col:
            st.image(str(SAMPLES_DIR / sample.file), width="stretch")
            if st.button(sample.title, key=f"sample_{sample.file}", width="stretch"):
                st.session_state.sample = sample.file
    chosen = next((s for s in SAMPLES if s.file == st.session_state.get("sample")), None)
    if chosen is None:
        return None
    try:  # a sample is not an upload: the pixel and side limits apply, the upload size limit not
        image = check_image(
            (SAMPLES_DIR / chosen.file).read_bytes(), settings, filename=chosen.file, upload=False
        )
    except ArenaError as exc:
        st.error(str(exc))
        return None
    st.image(image.image, width=320, caption=f"{chosen.title}: try “{chosen.prompt}”")
    return image


def _start(res, mode, models, image, prompt) -> Battle | None:
    try:
        if image is None:
            st.error("Upload an image first (PNG, JPEG, WebP, GIF or BMP), then ask your question.")
            return None
        text = check_prompt(prompt, res.settings)
        spec_a, spec_b = pick_models(res.registry, mode, models, sampler=res.sampler)
        battle = Battle(mode=mode, spec_a=spec_a, spec_b=spec_b, image=image)
        start(res.store, battle, requester())  # takes its slot now, before any model runs
    except ArenaError as exc:
        st.error(str(exc))
        return None
    st.image(image.image, width=420)
    _stream(res, battle, ask(res.backends, battle, text), text)
    return battle


def _follow_up(res, battle: Battle, prompt: str) -> None:
    try:
        text = check_prompt(prompt, res.settings)
    except ArenaError as exc:
        st.error(str(exc))
        return
    _stream(res, battle, ask(res.backends, battle, text), text)


def _stream(res, battle: Battle, events, prompt: str) -> None:
    """Draw both answers as they stream, store the turn, then redraw the page."""
    with st.chat_message("user"):
        st.markdown(prompt)
    placeholders, texts = {}, {side: "" for side in SIDES}
    for side, col in zip(SIDES, st.columns(2), strict=True):
        with col:
            st.markdown(f"**{battle.label(side)}**")
            placeholders[side] = st.empty()
            backend = res.backends.get(battle.specs[side].id)
            widgets.waiting(placeholders[side], side, loading=not backend.loaded)
    show_size = names_shown(battle.mode, battle.outcome is not None)
    last_draw = 0.0
    for event in events:
        if event.progress is not None:  # the model's first download, before any text
            widgets.downloading(placeholders[event.side], event.side, event.progress, show_size)
        elif event.result is None:
            texts[event.side] += event.text
            if time.monotonic() - last_draw > _REFRESH_S:
                for side in SIDES:
                    if texts[side]:
                        placeholders[side].markdown(texts[side] + " ▌")
                last_draw = time.monotonic()
        else:
            with placeholders[event.side].container():
                widgets.show_result(battle.shown(event.side, event.result), battle.image.image)
    try:
        save_turn(res.store, battle, res.labeller)
    except ArenaError as exc:
        st.error(str(exc))
        return
    st.session_state.battle = battle
    st.rerun()


def _conversation(battle: Battle) -> None:
    for i, (prompt, pair) in enumerate(zip(battle.prompts, battle.results, strict=True)):
        with st.chat_message("user"):
            st.markdown(prompt)
        for side, col, result in zip(SIDES, st.columns(2), pair, strict=True):
            with col:
                if i == 0:
                    st.markdown(f"**{battle.label(side)}**")
                widgets.show_result(battle.shown(side, result), battle.image.image)


def _actions(res, battle: Battle) -> None:
    if battle.outcome is None:
        if not battle.last_ok:
            st.warning("A model failed, so this battle cannot be voted on. Start a new battle.")
        clicked = widgets.vote_bar(enabled=battle.can_vote)
        if clicked is not None:
            _vote(res, battle, clicked)
    else:
        st.success(f"Thanks for voting! {battle.label('a')} · {battle.label('b')}")
        clicked = widgets.vote_bar(enabled=False)
        if clicked is not None:
            _vote(res, battle, clicked)
    if battle.battle_id is not None:
        report_box(res.store, battle.battle_id)
    left, right = st.columns(2)
    if left.button("🔄 New battle", key="new_battle", width="stretch"):
        st.session_state.pop("battle", None)
        st.session_state.pop("sample", None)
        st.rerun()
    if right.button(
        "♻️ Regenerate", key="regenerate", disabled=battle.outcome is not None, width="stretch"
    ):
        _stream(res, battle, regenerate(res.backends, battle), battle.prompts[-1])


def _vote(res, battle: Battle, outcome) -> None:
    try:
        cast_vote(res.store, battle, outcome, requester())
    except AlreadyVoted:
        st.warning(
            "This battle already has its vote: each battle takes one. Start a new battle to vote again."
        )
        return
    except ArenaError as exc:
        st.error(str(exc))
        return
    st.rerun()


if __name__ == "__main__":
    render()
