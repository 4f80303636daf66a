"""Import and export votes in the field names public arena datasets use.

Fields: model_a, model_b, winner (model_a | model_b | tie | tie (bothbad)), and optional
tstamp (Unix seconds), anony (true/false; absent = anonymous), judge (the voter), question_id,
conv_metadata (the style counts of LMArena's datasets, arena.style; in CSV its flat columns
`sum_assistant_a_tokens`, `header_count_a.h1`, ...) and categories (a list of category ids; in
CSV separated by commas). An import is all or nothing: every row is
checked first, then all are written in one transaction.
"""

from __future__ import annotations

import csv
import json
import math
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import exists, insert, literal, select, text
from sqlalchemy.exc import DBAPIError

from arena.errors import TransferError
from arena.kinds import Mode, Outcome
from arena.store.engine import with_retries
from arena.store.maintained import deferred_counts
from arena.store.schema import VOTE_CARRIES, banned_voters, battle_categories, battles, votes
from arena.store.store import Store, _first_line, now
from arena.style import FLAT_FIELDS, StyleCounts, conv_metadata, flat_conv_metadata
from arena.style import parse_conv_metadata as _parse_style

FIELDS = ("model_a", "model_b", "winner", "tstamp", "anony", "judge", "question_id")
FORMATS = ("csv", "jsonl", "parquet")
_CHUNK = 50_000
_MAX_REPORTED = 5


def read_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, raw row) for a JSON list, JSON-lines or CSV file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as f:
                for i, row in enumerate(csv.DictReader(f), start=2):  # line 1 is the header
                    yield i, row
        elif suffix == ".parquet":
            yield from _parquet_rows(path)
        elif _starts_with_bracket(path):
            yield from _json_list(path.read_text(encoding="utf-8"), path)
        else:
            with path.open(encoding="utf-8") as f:
                for i, line in enumerate(f, start=1):
                    if line.strip():
                        try:
                            yield i, json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise TransferError(
                                f"{path}: line {i}: not valid JSON ({exc.msg}); nothing was imported."
                            ) from None
    except OSError as exc:
        raise TransferError(f"{path}: cannot read the file ({exc.strerror}).") from None
    except UnicodeDecodeError:
        raise TransferError(
            f"{path}: not UTF-8 text; export it as CSV, JSON or JSON lines."
        ) from None


def _starts_with_bracket(path: Path) -> bool:
    """A JSON list (read whole) rather than JSON lines (streamed)."""
    with path.open(encoding="utf-8") as f:
        while chunk := f.read(4096):
            stripped = chunk.lstrip()
            if stripped:
                return stripped.startswith("[")
    return False


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """Each row of a parquet file, a record batch at a time."""
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow's own error types: a file that is not parquet
        raise TransferError(f"{path}: not a parquet file ({_first_line(exc)}).") from None
    line = 0
    for batch in reader.iter_batches(batch_size=_CHUNK):
        for row in batch.to_pylist():
            line += 1
            yield line, row


def _json_list(text: str, path: Path) -> Iterator[tuple[int, dict]]:
    """Each object of a JSON list with the line it starts on."""
    decoder = json.JSONDecoder()
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TransferError(
            f"{path}: line {exc.lineno}: not valid JSON ({exc.msg}); nothing was imported."
        ) from None
    pos = text.index("[") + 1
    for item in items:
        while text[pos] in " \t\r\n,":
            pos += 1
        line = text.count("\n", 0, pos) + 1
        _, end = decoder.raw_decode(text, pos)
        pos = end
        yield line, item


def parse_row(row) -> dict:
    """A checked row, or ValueError naming what is wrong."""
    if not isinstance(row, dict):
        raise ValueError("expected an object with model_a, model_b and winner")
    missing = [f for f in ("model_a", "model_b", "winner") if _empty(row.get(f))]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    outcome = Outcome.from_label(str(row["winner"]).strip())
    parsed = {
        "model_a": str(row["model_a"]).strip(),
        "model_b": str(row["model_b"]).strip(),
        "outcome": outcome.value,
        "created_at": _time(row.get("tstamp")),
        "mode": (Mode.ANONYMOUS if _bool(row.get("anony"), default=True) else Mode.NAMED).value,
        "voter_id": None if _empty(row.get("judge")) else str(row["judge"]),
        "question_id": None if _empty(row.get("question_id")) else str(row["question_id"]),
        "style": _parse_style(row),
        "categories": _categories(row.get("categories")),
        "prompt_key": None,  # a votes file has no prompts
    }
    for name, column in _LENGTH_CHECKED.items():
        limit = column.type.length
        if parsed[name] is not None and len(parsed[name]) > limit:
            raise ValueError(f"{_FIELD_NAMES.get(name, name)} is longer than {limit} characters")
    return parsed


# the text columns an imported row fills, whose length the database enforces (PostgreSQL)
_LENGTH_CHECKED = {
    "model_a": battles.c.model_a,
    "model_b": battles.c.model_b,
    "voter_id": votes.c.voter_id,
    "question_id": battles.c.question_id,
}
_FIELD_NAMES = {"voter_id": "judge"}


_CATEGORY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def _categories(value) -> tuple[str, ...]:
    """`categories`: a list of ids, its JSON text, or ids separated by commas (CSV)."""
    if value is None or (not isinstance(value, (list, tuple)) and _empty(value)):
        return ()
    if hasattr(value, "tolist"):  # a parquet list arrives as a NumPy array
        value = value.tolist()
    if isinstance(value, str):
        text_value = value.strip()
        if text_value.startswith("["):
            try:
                value = json.loads(text_value)
            except json.JSONDecodeError:
                raise ValueError("categories is not a JSON list of ids") from None
        else:
            value = [part for part in re.split(r"[,;]", text_value) if part.strip()]
    if not isinstance(value, (list, tuple)):
        raise ValueError("categories must be a list of category ids")
    found = []
    for item in value:
        name = str(item).strip() if isinstance(item, str) else None
        if not name or not _CATEGORY.match(name):
            raise ValueError(
                f"category {item!r} is not an id (lower-case letters, digits and _, e.g. ocr)"
            )
        if name not in found:
            found.append(name)
    return tuple(found)


def _empty(value) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or str(value).strip() == ""
    )


def _bool(value, default: bool) -> bool:
    if _empty(value):
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "1.0"):
        return True
    if text in ("false", "0", "no", "0.0"):
        return False
    raise ValueError(f"anony {value!r} is not true or false")


def _time(value) -> datetime:
    if _empty(value):
        return now()
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"tstamp {value!r} is not Unix seconds or an ISO date") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def import_file(
    store: Store, path: str | Path, progress: Callable[[int], object] | None = None
) -> int:
    """Store every row of the file in one transaction, or none. Returns the number of votes; for
    a dataset file (arena.store.dataset), the number of battles, with `progress` called as its
    rows are checked.

    The file streams through in chunks (JSON lines, CSV and parquet; a JSON list is parsed whole),
    each checked and written as it comes, so ten million votes never sit in memory at once. After
    the first bad row nothing more is written, the rest is still checked (the error lists the
    first few problems and how many there were), and the transaction is rolled back."""
    path = Path(path)
    from arena.store import dataset  # here: dataset imports this module's helpers

    if dataset.is_dataset(path):  # whole battles (a parquet with conversations), not votes
        from arena.store.dataset_import import import_dataset

        return import_dataset(store, path, progress)
    source = f"import:{path.name}"[:200]
    # Battle ids in row order: a random 80-bit prefix per import, then a counter (32 hex digits,
    # like uuid4().hex). Sequential keys append to the id indexes instead of landing at random
    # pages: twice as fast an import at a million rows, and faster joins on votes.battle_id later.
    prefix = uuid.uuid4().hex[:20]

    def write() -> int:
        written, problems, chunk = 0, [], []
        with store.write_engine.begin() as conn, deferred_counts(conn) as counted:
            for line, raw in read_rows(path):
                try:
                    row = parse_row(raw)
                except ValueError as exc:
                    problems.append(f"line {line}: {exc}")
                    continue
                if problems:
                    continue  # the import fails: check the rest, write nothing more
                chunk.append(row)
                counted.add(row, row["categories"])
                if len(chunk) == _CHUNK:
                    written += _write_chunk(conn, chunk, prefix, written, source)
                    chunk = []
            if problems:
                raise _problems(path, problems)  # rolls the transaction back
            written += _write_chunk(conn, chunk, prefix, written, source)
            if not written:
                raise TransferError(f"{path}: no rows to import.")
        return written

    count = with_retries("import the votes", write)
    analyze(store, "battles", "votes")
    return count


def analyze(store: Store, *tables: str) -> None:
    """After a bulk import on PostgreSQL: plan the next queries on fresh statistics, not on the
    empty tables' (PostgreSQL's bulk-load advice)."""
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(text(f"ANALYZE {', '.join(tables)}"))


def _problems(path: Path, problems: list[str]) -> TransferError:
    shown = "; ".join(problems[:_MAX_REPORTED])
    more = f"; and {len(problems) - _MAX_REPORTED} more" if len(problems) > _MAX_REPORTED else ""
    return TransferError(
        f"{path}: {len(problems)} rows have problems, nothing was imported: {shown}{more}."
    )


def _write_chunk(conn, chunk: list[dict], prefix: str, start: int, source: str) -> int:
    """Insert a chunk of checked rows as battles and their votes; battle ids count on from
    `start`. Returns the rows written."""
    if not chunk:
        return 0
    ids = [f"{prefix}{i:012x}" for i in range(start, start + len(chunk))]
    _insert(
        conn,
        battles,
        [
            {
                "id": bid,
                "created_at": r["created_at"],
                "mode": r["mode"],
                "model_a": r["model_a"],
                "model_b": r["model_b"],
                "source": source,
                "question_id": r["question_id"],
            }
            for bid, r in zip(ids, chunk, strict=True)
        ],
    )
    _insert(
        conn,
        votes,
        [
            {
                "battle_id": bid,
                "outcome": r["outcome"],
                "created_at": r["created_at"],
                "voter_id": r["voter_id"],
                **{name: r[name] for name in VOTE_CARRIES},  # the battle's, repeated
                **_style_columns(r["style"]),
            }
            for bid, r in zip(ids, chunk, strict=True)
        ],
    )
    labelled = [
        {"battle_id": bid, "category": c, "source": "import"}
        for bid, r in zip(ids, chunk, strict=True)
        for c in r["categories"]
    ]
    if labelled:
        _insert(conn, battle_categories, labelled)
    return len(chunk)


_NO_STYLE = dict.fromkeys([*StyleCounts().columns("a"), *StyleCounts().columns("b")])


def _style_columns(style: tuple[StyleCounts, StyleCounts] | None) -> dict:
    """The vote's style columns: the imported conv_metadata, or NULL (no style data)."""
    if style is None:
        return _NO_STYLE
    return {**style[0].columns("a"), **style[1].columns("b")}


def _insert(conn, table, records: list[dict]) -> None:
    """INSERT many rows inside the caller's transaction. On PostgreSQL through psycopg, COPY on
    the same connection: the rows, defaults and constraints are those of the INSERT, and a million
    votes import in about half the time psycopg's executemany takes."""
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        conn.execute(insert(table), records)
        return
    import psycopg
    from psycopg import sql

    columns = list(records[0])
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    try:
        with conn.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            for record in records:
                copy.write_row([record[c] for c in columns])
    except (
        psycopg.Error
    ) as exc:  # the same SQLAlchemy error an INSERT raises (with_retries reads it)
        raise DBAPIError.instance(f"COPY {table.name}", None, exc, psycopg.Error) from exc


def export_frame(store: Store, flat: bool = False) -> pd.DataFrame:
    """Every vote, in time order, in the import field names. Votes with style counts carry them
    as `conv_metadata` (an object), or with `flat` as its flat columns (for CSV). Moderation's
    are left out: the votes of hidden battles and of banned voters."""
    labels = {o.value: o.winner_label for o in Outcome}
    style = [votes.c[name] for name in _NO_STYLE]
    query = (
        select(
            battles.c.model_a,
            battles.c.model_b,
            votes.c.outcome,
            votes.c.created_at,
            battles.c.mode,
            votes.c.voter_id,
            battles.c.question_id,
            battles.c.id,
            *style,
        )
        .select_from(votes.join(battles, votes.c.battle_id == battles.c.id))
        .where(battles.c.hidden_reason.is_(None), ~_BANNED)
        .order_by(votes.c.created_at, votes.c.id)
    )
    records, styled = [], False
    with store.engine.connect() as conn:
        labelled = _all_categories(conn)
        for row in conn.execute(query).mappings():
            record = {
                "model_a": row["model_a"],
                "model_b": row["model_b"],
                "winner": labels[row["outcome"]],
                "tstamp": round(_utc(row["created_at"]).timestamp(), 6),
                "anony": row["mode"] == Mode.ANONYMOUS,
                "judge": row["voter_id"],
                "question_id": row["question_id"],
            }
            found = labelled.get(row["id"])
            if found:
                record["categories"] = ",".join(found) if flat else found
            a, b = StyleCounts.from_columns(row, "a"), StyleCounts.from_columns(row, "b")
            if a is not None and b is not None:
                styled = True
                record.update(
                    flat_conv_metadata(a, b) if flat else {"conv_metadata": conv_metadata(a, b)}
                )
            records.append(record)
    columns = list(FIELDS)
    if labelled:
        columns.append("categories")
    if styled:
        columns += list(FLAT_FIELDS) if flat else ["conv_metadata"]
    frame = pd.DataFrame.from_records(records, columns=columns)
    if labelled and not flat:  # None, not NaN, for a vote without categories
        frame["categories"] = (
            frame["categories"].astype(object).where(frame["categories"].notna(), None)
        )
    if styled and flat:  # whole numbers, empty for votes without style counts
        frame[list(FLAT_FIELDS)] = frame[list(FLAT_FIELDS)].astype("Int64")
    elif styled:  # None, not NaN, where a vote has none: parquet keeps the counts integers
        frame["conv_metadata"] = (
            frame["conv_metadata"].astype(object).where(frame["conv_metadata"].notna(), None)
        )
    return frame


_BANNED = exists(select(literal(1)).where(banned_voters.c.voter_id == votes.c.voter_id))


def _all_categories(conn) -> dict[str, list[str]]:
    """Every labelled battle's categories, in name order: {battle id: [category, ...]}."""
    query = select(battle_categories.c.battle_id, battle_categories.c.category).order_by(
        battle_categories.c.battle_id, battle_categories.c.category
    )
    found: dict[str, list[str]] = {}
    for battle, category in conn.execute(query):
        found.setdefault(battle, []).append(category)
    return found


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def export_file(store: Store, out: str | Path, fmt: str) -> int:
    frame = export_frame(store, flat=fmt == "csv")
    out = Path(out)
    if fmt == "csv":
        frame.to_csv(out, index=False)
    elif fmt == "jsonl":  # json.dumps keeps every digit of tstamp (pandas rounds to 10)
        with out.open("w", encoding="utf-8") as f:
            for record in frame.to_dict("records"):
                if not isinstance(record.get("conv_metadata", {}), dict):
                    del record["conv_metadata"]  # a vote without style counts
                if not isinstance(record.get("categories", []), list):
                    del record["categories"]
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    elif fmt == "parquet":
        frame.to_parquet(out, index=False)
    else:
        raise TransferError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")
    return len(frame)
