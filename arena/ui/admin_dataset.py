"""Admin: download the dataset (`python -m arena export-dataset`'s parquet). It is written to a
temporary file when the button is clicked, never on a page run, and the download is audited.
Draws nothing for a session that is not an admin."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from arena.store.dataset import export_dataset
from arena.ui.admin_session import require_admin
from arena.ui.client import client_secret
from arena.ui.common import resources


def render() -> None:
    res = resources()
    actor = require_admin(res.access)
    st.title("Dataset")
    st.write(
        "One row per battle: both conversations, the image, timings, tokens, the vote (the voter "
        "as a pseudonym), style and categories. Hidden battles and banned voters' battles are "
        "left out; erased content stays erased."
    )
    unvoted = st.toggle("Include battles without a vote", key="dataset_unvoted")
    st.download_button(
        "Download the dataset (parquet)",
        data=dataset_file(res.store, client_secret(res.settings), actor, unvoted),
        file_name="vlm-arena-dataset.parquet",
        mime="application/vnd.apache.parquet",
        key="dataset_download",
        on_click="ignore",
    )


def dataset_file(store, secret, actor: str, include_unvoted: bool) -> Callable[[], bytes]:
    """What the button calls on click (Streamlit runs it on a thread of its own): the dataset
    written to a temporary file, its bytes, and one audit row."""

    def build() -> bytes:
        with tempfile.TemporaryDirectory(prefix="vlm-arena-dataset-") as folder:
            path = Path(folder) / "dataset.parquet"
            rows = export_dataset(store, path, include_unvoted=include_unvoted, secret=secret)
            data = path.read_bytes()
        store.log_action(actor, "download_dataset", "dataset", f"{rows} battles")
        return data

    return build


if __name__ == "__main__":
    render()
