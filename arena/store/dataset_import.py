"""Import a dataset file (arena.store.dataset's layout) as full battles: the image, both
conversations as turns with their timings, tokens and errors, the vote and the categories.

All or nothing, like the votes import (arena.store.transfer): record batches stream through,
each row is checked and written as it comes inside one transaction, and after the first bad row
nothing more is written, the rest is still checked, and the transaction is rolled back.

What is stored: the battle's mode from `anony`, its `question_id`, source "import:<file>",
created_at = tstamp (of the vote; of the start when unvoted); each turn's prompt from the user
messages, the answers from the assistant messages, the turn's style counts recounted from the
answer (arena.style.count_style) and the vote's from conv_metadata (NULL without); the
judge as the voter id ("judge:<hex>" when it is a pseudonym, so an export gives it back
unchanged); images by sha256, once, after checking the bytes against it; categories with source
"import". Not stored: identity-leak verdicts (run `python -m arena check-leaks` afterwards).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import bindparam, select

from arena.errors import TransferError
from arena.screening.duplicates import prompt_key
from arena.store.dataset import IMPORTED_JUDGE, LAYOUT, PER_TURN, PSEUDONYM, REQUIRED
from arena.store.engine import with_retries
from arena.store.maintained import deferred_counts
from arena.store.schema import VOTE_CARRIES, battle_categories, battles, images, turns, votes
from arena.store.store import Store, _first_line, now
from arena.store.transfer import _empty, _insert, _problems, _style_columns, analyze, parse_row

_BATCH = 256  # rows per record batch: a batch's images are in memory at once
_INT_MAX = 2**31 - 1  # the stored integer columns


class Image(NamedTuple):
    sha256: str
    format: str
    width: int
    height: int
    data: bytes | None  # None: erased where it was exported


class Row(NamedTuple):
    """One checked dataset row."""

    vote: dict  # transfer.parse_row's fields; outcome None for a battle without a vote
    prompts: list[str]
    answers: dict[str, list[str]]  # side -> one answer per prompt
    per_turn: dict[str, list]  # "ttft_a", ... -> one value per prompt
    image: Image | None


def open_dataset(path: Path) -> pq.ParquetFile:
    """The file, once its columns are those of a dataset (TransferError naming what is not)."""
    try:
        reader = pq.ParquetFile(path)
    except OSError as exc:
        raise TransferError(f"{path}: cannot read the file ({exc.strerror or exc}).") from None
    except Exception as exc:  # pyarrow's own error types: not parquet
        raise TransferError(f"{path}: not a parquet file ({_first_line(exc)}).") from None
    schema = reader.schema_arrow
    missing = [name for name in REQUIRED if name not in schema.names]
    if missing:
        raise TransferError(
            f"{path}: a dataset file (it has {' and '.join(n for n in LAYOUT if n in schema.names)}) "
            f"needs the columns {', '.join(REQUIRED)}; missing {', '.join(missing)}."
        )
    for name in LAYOUT:
        kind = schema.field(name).type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not (
            pa.types.is_struct(kind.value_type)
            and {"role", "content"} <= {f.name for f in kind.value_type}
        ):
            raise TransferError(
                f"{path}: {name} must be a list of {{role, content}} messages, not {kind}; "
                "export the file with `python -m arena export-dataset`."
            )
    return reader


def dataset_rows(path: str | Path) -> int:
    """How many rows the file holds (its footer says; for a progress bar)."""
    return open_dataset(Path(path)).metadata.num_rows


def import_dataset(
    store: Store, path: str | Path, progress: Callable[[int], object] | None = None
) -> int:
    """Store every row of the dataset as a battle, in one transaction, or none: the number of
    battles. `progress` is called with the rows of each record batch checked."""
    path = Path(path)
    reader = open_dataset(path)
    source = f"import:{path.name}"[:200]
    prefix = uuid.uuid4().hex[:20]  # battle ids as the votes import makes them (in row order)

    def write() -> int:
        written, problems, number = 0, [], 0
        stored: set[str] = set()  # image sha256s this import has stored or found
        with store.write_engine.begin() as conn, deferred_counts(conn) as counted:
            for batch in _batches(reader):
                chunk = []
                for raw in batch.to_pylist():
                    number += 1
                    try:
                        row = parse_battle(raw)
                    except ValueError as exc:
                        problems.append(f"row {number}: {exc}")
                        continue
                    chunk.append(row)
                if not problems:
                    written += _write_chunk(conn, chunk, prefix, written, source, stored)
                    for row in chunk:
                        if row.vote["outcome"] is not None:
                            counted.add(row.vote, row.vote["categories"])
                if progress:
                    progress(batch.num_rows)
            if problems:
                raise _problems(path, problems)  # rolls the transaction back
            if not written:
                raise TransferError(f"{path}: no rows to import.")
        return written

    count = with_retries("import the dataset", write)
    analyze(store, "images", "battles", "turns", "votes", "battle_categories")
    return count


def _batches(reader: pq.ParquetFile) -> Iterator[pa.RecordBatch]:
    """The file's record batches, one row group at a time. One iter_batches over the whole file
    keeps buffers of the row groups already read (pyarrow 26: 645 MB allocated after 20 batches
    of 100 KB images, against a steady 168 MB this way)."""
    for group in range(reader.num_row_groups):
        yield from reader.iter_batches(batch_size=_BATCH, row_groups=[group])


# ----- checking one row ----------------------------------------------------------------------


def parse_battle(raw: dict) -> Row:
    """A checked row, or ValueError naming what is wrong."""
    voted = not _empty(raw.get("winner"))
    vote = parse_row({**raw, "winner": raw["winner"] if voted else "tie"})
    if not voted:
        vote["outcome"] = None
    judge = vote["voter_id"]
    if judge is not None and PSEUDONYM.match(judge):
        vote["voter_id"] = IMPORTED_JUDGE + judge
    prompts, answers_a = _conversation(raw.get("conversation_a"), "conversation_a")
    prompts_b, answers_b = _conversation(raw.get("conversation_b"), "conversation_b")
    if prompts != prompts_b:
        raise ValueError("conversation_a and conversation_b do not ask the same prompts")
    turn = raw.get("turn")
    if turn is not None and turn != len(prompts):
        raise ValueError(f"turn is {turn!r} but the conversations hold {len(prompts)} prompts")
    per_turn = {
        f"{name}_{side}": _per_turn(raw.get(f"{name}_{side}"), f"{name}_{side}", len(prompts))
        for name in PER_TURN
        for side in "ab"
    }
    if not voted:
        vote["style"] = None  # the style is the vote's
    image = _image(raw.get("image"))
    if prompts:  # the screening's duplicate key, as a played battle gets it
        vote["prompt_key"] = prompt_key(prompts[0], image.sha256 if image else None)
    return Row(vote, prompts, {"a": answers_a, "b": answers_b}, per_turn, image)


def _conversation(messages, name: str) -> tuple[list[str], list[str]]:
    """(prompts, answers) of user and assistant messages that take turns."""
    if messages is None:
        messages = []
    if not isinstance(messages, list):
        raise ValueError(f"{name} must be a list of {{role, content}} messages")
    if len(messages) % 2:
        raise ValueError(f"{name} ends with a message that has no answer")
    prompts, answers = [], []
    for i, message in enumerate(messages):
        role = "user" if i % 2 == 0 else "assistant"
        found = message.get("role") if isinstance(message, dict) else None
        if found != role:
            raise ValueError(f"{name} message {i + 1} is {found!r}; expected {role!r}")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise ValueError(f"{name} message {i + 1}: content must be text")
        (prompts if role == "user" else answers).append(content or "")
    return prompts, answers


def _per_turn(values, name: str, turns_n: int) -> list:
    """One value per turn (None where a side has none); all None when the column is absent."""
    if values is None:
        return [None] * turns_n
    if not isinstance(values, list) or len(values) != turns_n:
        raise ValueError(f"{name} must hold one value per prompt ({turns_n})")
    kind = name.rpartition("_")[0]
    return [_value(v, kind, name) for v in values]


def _value(value, kind: str, name: str):
    if value is None:
        return None
    if kind == "error":
        if not isinstance(value, str):
            raise ValueError(f"{name}: {value!r} is not text")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: {value!r} is not a number")
    if kind == "tokens":
        if not float(value).is_integer() or not 0 <= value <= _INT_MAX:
            raise ValueError(f"{name}: {value!r} is not a whole number >= 0")
        return int(value)
    return float(value)


def _image(value) -> Image | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("image must be {bytes, sha256, width, height, format}")
    sha = value.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
        raise ValueError("image sha256 must be 64 lower-case hex digits")
    data = value.get("bytes")
    if data is not None and hashlib.sha256(data).hexdigest() != sha:
        raise ValueError(
            f"image {sha[:12]}: its bytes do not match its sha256 (a damaged or edited file)"
        )
    fmt = value.get("format")
    if not isinstance(fmt, str) or not 0 < len(fmt) <= images.c.format.type.length:
        raise ValueError("image format must be a name such as PNG or JPEG")
    size = [value.get("width"), value.get("height")]
    if not all(type(n) is int and 0 < n <= _INT_MAX for n in size):
        raise ValueError("image width and height must be whole numbers > 0")
    return Image(sha, fmt, *size, data)


# ----- writing a chunk -----------------------------------------------------------------------


def _write_chunk(
    conn, chunk: list[Row], prefix: str, start: int, source: str, stored: set[str]
) -> int:
    """Insert a chunk of checked rows; battle ids count on from `start`."""
    if not chunk:
        return 0
    _store_images(conn, [r.image for r in chunk if r.image is not None], stored)
    ids = [f"{prefix}{i:012x}" for i in range(start, start + len(chunk))]
    pairs = list(zip(ids, chunk, strict=True))
    _insert(conn, battles, [_battle(bid, r, source) for bid, r in pairs])
    turn_rows = [t for bid, r in pairs for t in _turns(bid, r)]
    if turn_rows:
        _insert(conn, turns, turn_rows)
    vote_rows = [_vote(bid, r) for bid, r in pairs if r.vote["outcome"] is not None]
    if vote_rows:
        _insert(conn, votes, vote_rows)
    labelled = [
        {"battle_id": bid, "category": c, "source": "import"}
        for bid, r in pairs
        for c in r.vote["categories"]
    ]
    if labelled:
        _insert(conn, battle_categories, labelled)
    return len(chunk)


def _store_images(conn, found: list[Image], stored: set[str]) -> None:
    """Store the images not stored yet (by sha256): an image the database has stays as it is
    (erased there stays erased)."""
    new = {image.sha256: image for image in found if image.sha256 not in stored}
    if not new:
        return
    query = select(images.c.sha256).where(images.c.sha256.in_(bindparam("shas", expanding=True)))
    known = set(conn.execute(query, {"shas": sorted(new)}).scalars())
    stamp = now()
    rows = [
        {
            "sha256": image.sha256,
            "format": image.format,
            "width": image.width,
            "height": image.height,
            "data": image.data,
            "created_at": stamp,
            "erased_at": None if image.data is not None else stamp,
        }
        for sha, image in new.items()
        if sha not in known
    ]
    if rows:
        _insert(conn, images, rows)
    stored.update(new)


def _battle(battle_id: str, row: Row, source: str) -> dict:
    v = row.vote
    return {
        "id": battle_id,
        "created_at": v["created_at"],
        "mode": v["mode"],
        "model_a": v["model_a"],
        "model_b": v["model_b"],
        "image_sha256": row.image.sha256 if row.image else None,
        "source": source,
        "question_id": v["question_id"],
        "voter_id": v["voter_id"] if v["outcome"] is not None else None,
        "prompt_key": v["prompt_key"],
    }


def _turns(battle_id: str, row: Row) -> list[dict]:
    from arena.battle.sides import SideResult  # a leaf module; arena.battle imports the store

    out = []
    for i, prompt in enumerate(row.prompts):
        sides = {}
        for side in "ab":
            result = SideResult(
                answer=row.answers[side][i],
                **{name: row.per_turn[f"{name}_{side}"][i] for name in PER_TURN},
            )
            sides.update(result.columns(side))  # its "finished" verdict and style counts too
        created = row.vote["created_at"]
        out.append({"battle_id": battle_id, "idx": i, "created_at": created, "prompt": prompt})
        out[-1].update(sides)
    return out


def _vote(battle_id: str, row: Row) -> dict:
    v = row.vote
    return {
        "battle_id": battle_id,
        "outcome": v["outcome"],
        "created_at": v["created_at"],
        "voter_id": v["voter_id"],
        **{name: v[name] for name in VOTE_CARRIES},
        "identity_leak": False,
        **_style_columns(v["style"]),
    }
