"""The dataset: one row per battle (its conversations, image, timings, vote, style and
categories) in a parquet file, the layout `python -m arena export-dataset` writes and
`python -m arena import` reads back (arena.store.dataset_import).

The columns follow LMArena's public datasets (`question_id`, `model_a`, `model_b`, `winner`,
`judge`, `anony`, `tstamp`, `turn`, `conversation_a`/`_b` in the OpenAI chat format,
`conv_metadata`) plus the image and the per-turn timings, tokens and errors. `judge` is a
pseudonym (arena.clients.judge_key), never a voter id. Rows are the voted battles in vote order,
then with `include_unvoted` the battles without a vote in the order they started. Hidden battles,
battles a banned voter started or voted on, are left out; an erased image keeps its sha256, size
and format with `bytes` null.

The battles are read in keyset pages and written a row group at a time, so neither the battles
nor their images are ever all in memory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import and_, bindparam, exists, or_, select
from sqlalchemy.engine import Connection

from arena.clients import Secret, judge_key, load_secret
from arena.errors import TransferError
from arena.kinds import Mode, Outcome
from arena.store import screening
from arena.store.schema import banned_voters, battles, images, turns, votes
from arena.store.store import Store, _first_line
from arena.store.transfer import _NO_STYLE, _utc
from arena.style import StyleCounts, conv_metadata


def _arrow_type(value) -> pa.DataType:
    """The struct type of a conv_metadata dict: nested dicts become structs, counts int64."""
    if isinstance(value, dict):
        return pa.struct([(k, _arrow_type(v)) for k, v in value.items()])
    return pa.int64()


MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
IMAGE = pa.struct(
    [
        ("bytes", pa.binary()),  # null once the image was erased; the rest stays
        ("sha256", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("format", pa.string()),
    ]
)
PER_TURN = {  # one value per turn and side; null where the side has none
    "ttft": pa.float64(),
    "total": pa.float64(),
    "tokens": pa.int64(),
    "error": pa.string(),
}
SCHEMA = pa.schema(
    [
        ("question_id", pa.string()),  # the battle's question_id, else the battle id
        ("model_a", pa.string()),
        ("model_b", pa.string()),
        ("winner", pa.string()),  # model_a | model_b | tie | tie (bothbad); null: no vote
        ("judge", pa.string()),  # the voter's pseudonym; null: no vote or an unknown voter
        ("anony", pa.bool_()),
        ("tstamp", pa.float64()),  # Unix seconds of the vote (of the start when unvoted)
        ("turn", pa.int64()),  # the number of prompts
        ("conversation_a", pa.list_(MESSAGE)),
        ("conversation_b", pa.list_(MESSAGE)),
        ("image", IMAGE),  # null: a battle without an image (an imported vote)
        *[(f"{name}_{side}", pa.list_(t)) for name, t in PER_TURN.items() for side in "ab"],
        ("conv_metadata", _arrow_type(conv_metadata(StyleCounts(), StyleCounts()))),
        ("categories", pa.list_(pa.string())),  # in name order; empty when it has none
    ]
)
COLUMNS = tuple(SCHEMA.names)
# what tells a dataset from a votes file (arena.store.transfer), and what an import needs
LAYOUT = ("conversation_a", "conversation_b")
REQUIRED = ("model_a", "model_b", "winner", *LAYOUT)
IMPORTED_JUDGE = "judge:"  # voter ids an import took from a dataset's judge: exported unchanged
PSEUDONYM = re.compile(r"^[0-9a-f]{32}$")
_PAGE = 200  # battles read at a time
_GROUP_ROWS = 2_000  # a row group ends at this many battles, or once its images hold
# _GROUP_BYTES: the export's peak memory is about 200 MB plus six times that (3,000 battles with
# 100 KB images: 314 MB at 16 MiB, 571 MB at 64 MiB, and 16 MiB groups wrote faster)
_GROUP_BYTES = 16 * 2**20
_LABELS = {o.value: o.winner_label for o in Outcome}


def is_dataset(path: str | Path) -> bool:
    """A parquet file with both conversation columns: this layout, not a votes file (LMArena's
    votes files may carry one conversation column and still import as votes)."""
    path = Path(path)
    if path.suffix.lower() != ".parquet":
        return False
    try:
        names = pq.read_schema(path).names
    except Exception:  # pyarrow's own errors: the votes import says why it cannot read it
        return False
    return all(name in names for name in LAYOUT)


def judge(voter_id: str | None, secret: Secret | bytes) -> str | None:
    """The pseudonym a vote's voter id is published as. A voter id an import took from a
    dataset ("judge:<32 hex>") is one already and goes out unchanged, so a dataset moves between
    arenas with its judges; every other id is hashed (arena.clients.judge_key)."""
    if voter_id is None:
        return None
    imported = voter_id.removeprefix(IMPORTED_JUDGE)
    if imported != voter_id and PSEUDONYM.match(imported):
        return imported
    return judge_key(voter_id, secret)


def export_dataset(
    store: Store,
    out: str | Path,
    *,
    since: datetime | None = None,
    include_unvoted: bool = False,
    secret: Secret | None = None,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Write the dataset to `out` (a parquet file, replaced only once it is complete); the number
    of battles. `since` keeps the rows whose tstamp is at or after it; `progress` is called with
    the battles of each row group written."""
    secret = load_secret(store.settings) if secret is None else secret
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    written = 0
    try:
        with pq.ParquetWriter(partial, SCHEMA) as writer:

            def flush(group: list[dict]) -> int:
                writer.write_table(pa.Table.from_pylist(group, schema=SCHEMA))
                if progress:
                    progress(len(group))
                return len(group)

            group: list[dict] = []
            size = 0
            for row, nbytes in _rows(store, since, include_unvoted, secret):
                group.append(row)
                size += nbytes
                if len(group) >= _GROUP_ROWS or size >= _GROUP_BYTES:
                    written += flush(group)
                    group, size = [], 0
            if group:
                written += flush(group)
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise TransferError(f"{out}: cannot write the dataset ({_first_line(exc)}).") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return written


# ----- the reads ---------------------------------------------------------------------------------

_BATTLE = (
    battles.c.id,
    battles.c.mode,
    battles.c.model_a,
    battles.c.model_b,
    battles.c.image_sha256,
    battles.c.question_id,
)
_VOTE_STYLE = [votes.c[name] for name in _NO_STYLE]
_TURN = [
    turns.c.battle_id,
    turns.c.prompt,
    *[turns.c[f"{name}_{side}"] for side in "ab" for name in ("answer", *PER_TURN)],
]


def _visible():
    """The battles a dataset may show: not hidden, and not started by a banned voter (a vote's
    voter is checked in the voted pass). Migration 0009's moderation columns."""
    return and_(battles.c.hidden_reason.is_(None), ~_banned(battles.c.voter_id))


def _banned(voter_id):
    return exists().where(banned_voters.c.voter_id == voter_id)


def _rows(
    store: Store, since: datetime | None, include_unvoted: bool, secret: Secret | bytes
) -> Iterator[tuple[dict, int]]:
    """Every exported row with the bytes of its image, page by page."""
    with store.engine.connect() as conn:
        passes = [_voted_page] + ([_unvoted_page] if include_unvoted else [])
        for page_of in passes:
            after = None
            while page := page_of(conn, after, since):
                after = page[-1]["at"], page[-1]["key"]
                yield from _page_rows(conn, page, secret)


def _voted_page(conn: Connection, after: tuple | None, since: datetime | None) -> list:
    """The next page of voted battles in vote order (created_at, id: the votes' time index)."""
    query = (
        select(
            votes.c.created_at.label("at"),
            votes.c.id.label("key"),
            votes.c.outcome,
            votes.c.voter_id,
            *_VOTE_STYLE,
            *_BATTLE,
        )
        .join_from(votes, battles, votes.c.battle_id == battles.c.id)
        .where(_visible(), ~_banned(votes.c.voter_id))
    )
    return _page(conn, query, votes.c.created_at, votes.c.id, after, since)


def _unvoted_page(conn: Connection, after: tuple | None, since: datetime | None) -> list:
    """The next page of battles without a vote, in the order they started."""
    query = select(battles.c.created_at.label("at"), battles.c.id.label("key"), *_BATTLE).where(
        _visible(), ~exists().where(votes.c.battle_id == battles.c.id)
    )
    return _page(conn, query, battles.c.created_at, battles.c.id, after, since)


def _page(conn: Connection, query, at, key, after: tuple | None, since: datetime | None) -> list:
    values = {}
    if since is not None:
        query = query.where(at >= bindparam("since", type_=at.type))
        values["since"] = since
    if after is not None:  # keyset: after the last (time, id) read; the >= lets the index range
        query = query.where(
            at >= bindparam("after_at", type_=at.type),
            or_(at > bindparam("after_at", type_=at.type), key > bindparam("after_key")),
        )
        values["after_at"], values["after_key"] = after
    return conn.execute(query.order_by(at, key).limit(_PAGE), values).mappings().all()


def _page_rows(conn: Connection, page: list, secret: Secret | bytes) -> Iterator[tuple[dict, int]]:
    ids = [row["id"] for row in page]
    conversations = _turns(conn, ids)
    categories = screening.categories_of(conn, ids)
    pictures = _images(conn, {row["image_sha256"] for row in page} - {None})
    for row in page:
        image = pictures.get(row["image_sha256"])
        record = {
            "question_id": row["question_id"] or row["id"],
            "model_a": row["model_a"],
            "model_b": row["model_b"],
            "winner": _LABELS[row["outcome"]] if "outcome" in row else None,
            "judge": judge(row.get("voter_id"), secret),
            "anony": row["mode"] == Mode.ANONYMOUS,
            "tstamp": round(_utc(row["at"]).timestamp(), 6),
            **_conversations(conversations[row["id"]]),
            "image": image,
            "conv_metadata": _style(row),
            "categories": sorted(categories[row["id"]]),
        }
        yield record, len((image or {}).get("bytes") or b"")


def _turns(conn: Connection, ids: list[str]) -> dict[str, list]:
    """Each battle's turns in order."""
    query = (
        select(*_TURN)
        .where(turns.c.battle_id.in_(bindparam("ids", expanding=True)))
        .order_by(turns.c.battle_id, turns.c.idx)
    )
    found: dict[str, list] = {b: [] for b in ids}
    for turn in conn.execute(query, {"ids": ids}).mappings():
        found[turn["battle_id"]].append(turn)
    return found


def _conversations(battle_turns: list) -> dict:
    """The conversations in the OpenAI chat format and the per-turn lists of one battle."""
    out: dict = {"turn": len(battle_turns)}
    for side in "ab":
        out[f"conversation_{side}"] = [
            message
            for t in battle_turns
            for message in (
                {"role": "user", "content": t["prompt"] or ""},
                {"role": "assistant", "content": t[f"answer_{side}"] or ""},
            )
        ]
        for name in PER_TURN:
            out[f"{name}_{side}"] = [t[f"{name}_{side}"] for t in battle_turns]
    return out


def _images(conn: Connection, shas: set[str]) -> dict[str, dict]:
    """The page's images, each read once however many battles share it."""
    if not shas:
        return {}
    query = select(
        images.c.data.label("bytes"),
        images.c.sha256,
        images.c.width,
        images.c.height,
        images.c.format,
    ).where(images.c.sha256.in_(bindparam("shas", expanding=True)))
    return {
        row["sha256"]: dict(row) for row in conn.execute(query, {"shas": sorted(shas)}).mappings()
    }


def _style(row) -> dict | None:
    """The vote's conv_metadata; None for a vote without style counts, or no vote."""
    if "outcome" not in row:
        return None
    a, b = StyleCounts.from_columns(row, "a"), StyleCounts.from_columns(row, "b")
    return None if a is None or b is None else conv_metadata(a, b)
