"""Admin: one battle in full (image, both conversations, vote, voter, timings, tokens, errors,
reports), with a placeholder where content was erased, and its actions below.

What voters typed (prompts, report reasons) is drawn as plain text, never as markdown: a
markdown image in a prompt would make the admin's browser fetch a URL of the voter's choosing.
The answers are drawn as the voter saw them (arena.ui.widgets.show_result)."""

from __future__ import annotations

import streamlit as st

from arena.battle.sides import SideResult
from arena.errors import ArenaError
from arena.ui import widgets
from arena.ui.admin_actions import actions

ERASED = "_(erased)_"


def show_battle(res, battle_id: str, actor: str) -> None:
    try:
        detail = res.store.battle_detail(battle_id)
    except ArenaError as exc:
        st.error(str(exc))
        return
    battle = detail.battle
    names = {s.id: s.display_name for s in res.registry.specs}
    st.subheader(f"Battle {battle['id']}")
    st.markdown("\n".join(f"- {line}" for line in _facts(detail, names)))
    _image(res, detail)
    erased = battle["text_erased_at"] is not None
    for turn in detail.turns:
        with st.chat_message("user"):
            if erased:
                st.markdown(ERASED)
            else:
                st.text(turn["prompt"])
        for side, column in zip("ab", st.columns(2), strict=True):
            with column:
                if turn["idx"] == 0:
                    st.markdown(f"**Model {side.upper()}: {battle[f'model_{side}']}**")
                _answer(turn, side, erased)
    for report in detail.reports:
        with st.container(border=True):
            st.caption(
                f"🚩 Reported {report.created_at:%Y-%m-%d %H:%M} by {_code(report.voter_id)}:"
            )
            st.text(report.reason)
    actions(res, detail, actor)


def _facts(detail, names: dict[str, str]) -> list[str]:
    battle, vote = detail.battle, detail.vote
    models = " vs ".join(names.get(battle[k], battle[k]) for k in ("model_a", "model_b"))
    facts = [
        f"started {battle['created_at']:%Y-%m-%d %H:%M:%S} UTC, {battle['mode']}: {models}",
        f"started by voter {_code(battle['voter_id'])} (session {_code(battle['session_id'])}, "
        f"client key {_code(battle['client_key'])})",
    ]
    if vote is None:
        facts.append("no vote")
    else:
        banned = " (banned)" if detail.voter_banned else ""
        facts.append(
            f"vote **{vote['outcome']}** by {_code(vote['voter_id'])}{banned} at "
            f"{vote['created_at']:%Y-%m-%d %H:%M:%S} UTC"
        )
    if battle["hidden_reason"] is not None:
        facts.append(
            f"hidden since {battle['hidden_at']:%Y-%m-%d %H:%M}: {_code(battle['hidden_reason'])}"
        )
    if battle["identity_leak"]:
        facts.append(f"identity leak: {_code(battle['identity_leak'])}")
    if battle["text_erased_at"] is not None:
        facts.append(f"prompts and answers erased {battle['text_erased_at']:%Y-%m-%d %H:%M}")
    return facts


def _code(value) -> str:
    """A value as inline code: markdown draws nothing inside it (no links, no images)."""
    return "`" + str(value).replace("`", "'").replace("\n", " ") + "`"


def _image(res, detail) -> None:
    info = detail.image
    if info is None:
        st.caption("No image (an imported vote).")
        return
    data = res.store.image_data(info.sha256) if info.erased_at is None else None
    if data is None:
        st.info("🗑️ The image was erased.")
        return
    st.image(data, width=420)
    st.caption(
        f"{info.format} {info.width}x{info.height}, {info.size or len(data):,} bytes, "
        f"sha256 {info.sha256[:16]}…"
    )


def _answer(turn: dict, side: str, erased: bool) -> None:
    result = SideResult(
        answer=turn[f"answer_{side}"] or "",
        error=turn[f"error_{side}"],
        ttft=turn[f"ttft_{side}"],
        total=turn[f"total_{side}"],
        tokens=turn[f"tokens_{side}"],
    )
    if not erased:
        widgets.show_result(result)
        return
    st.markdown(ERASED)
    if turn[f"error_{side}"] is not None:
        st.error(f"Model {side.upper()} failed (its error text was erased).")
    caption = widgets.timing_caption(result)
    if caption:
        st.caption(caption)
