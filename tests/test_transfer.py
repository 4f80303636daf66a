"""Import and export of votes on a real SQLite file and the real PostgreSQL server (db_url)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.exc import DBAPIError

from arena.errors import TransferError
from arena.store import transfer
from arena.store.schema import battles, votes
from arena.store.transfer import export_file, export_frame, import_file
from tests.conftest import SHARED_DATA, skip_or_fail
from tests.stored import count_rows, votes_in_order

GENAI = SHARED_DATA / "genai_arena_battles_20240220.json"
WILDVISION = SHARED_DATA / "wildvision_bench_battles.jsonl"


def shared(path):
    if not path.exists():
        skip_or_fail(f"{path.name} is not in {SHARED_DATA}: put the shared data sets there")
    return path


def counts(store) -> tuple[int, int]:
    return count_rows(store, battles), count_rows(store, votes)


def column(frame, name) -> list:
    return [None if pd.isna(v) else v for v in frame[name]]


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


ROW = {"model_a": "m1", "model_b": "m2", "winner": "model_a", "tstamp": 1707700514.25}


@pytest.mark.parametrize(
    ("name", "rows", "anonymous"),
    [
        ("genai_arena_battles_20240220.json", 2061, 1515),  # JSON list, with anony
        ("wildvision_bench_battles.jsonl", 19644, 19644),  # JSON lines, no anony: all anonymous
    ],
)
def test_import_the_shared_files(store, name, rows, anonymous):
    path = shared(SHARED_DATA / name)
    assert import_file(store, path) == rows
    assert counts(store) == (rows, rows)
    assert len(votes_in_order(store, anonymous_only=True)) == anonymous
    assert len(votes_in_order(store, anonymous_only=False)) == rows


def test_csv_import_and_missing_anony_is_anonymous(store, tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text(
        "model_a,model_b,winner,tstamp,anony,judge,question_id\n"
        "m1,m2,model_a,1707700514.25,true,alice,q1\n"
        "m2,m3,tie (bothbad),1707700515,,,\n"  # empty anony: anonymous
        "m3,m1,model_b,1707700516,False,bob,\n"
        "m1,m3,tie,2024-02-12T02:00:00,1,,q2\n"
    )
    assert import_file(store, path) == 4
    frame = export_frame(store)
    assert frame["winner"].tolist() == ["model_a", "tie (bothbad)", "model_b", "tie"]
    assert frame["anony"].tolist() == [True, True, False, True]
    assert column(frame, "judge") == ["alice", None, "bob", None]
    assert column(frame, "question_id") == ["q1", None, None, "q2"]
    assert frame["tstamp"].iloc[0] == 1707700514.25
    assert frame["tstamp"].iloc[3] == 1707703200.0  # naive ISO time taken as UTC

    no_column = tmp_path / "bare.csv"
    no_column.write_text("model_a,model_b,winner\nm1,m2,model_b\n")
    write_jsonl(tmp_path / "bare.jsonl", [{k: ROW[k] for k in ("model_a", "model_b", "winner")}])
    import_file(store, no_column)
    import_file(store, tmp_path / "bare.jsonl")
    assert len(votes_in_order(store, anonymous_only=True)) == 5


def test_imported_votes_carry_their_battles_models_and_mode(store, tmp_path):
    """Executemany (SQLite) and COPY (PostgreSQL) both fill the vote's copies of the battle's columns."""
    write_jsonl(tmp_path / "v.jsonl", [ROW, {**ROW, "model_a": "m3", "anony": False}])
    import_file(store, tmp_path / "v.jsonl")
    pair = (
        votes.c.model_a,
        votes.c.model_b,
        votes.c.mode,
        battles.c.model_a,
        battles.c.model_b,
        battles.c.mode,
    )
    with store.engine.connect() as conn:
        rows = conn.execute(select(*pair).join_from(votes, battles)).all()
    assert sorted(r[:3] for r in rows) == [("m1", "m2", "anonymous"), ("m3", "m2", "named")]
    assert all(r[:3] == r[3:] for r in rows)


BAD_JSONL = [
    ROW,
    {**ROW, "winner": "model_c"},  # line 2
    ROW,
    {"model_a": "m1", "winner": "tie"},  # line 4: no model_b
    {**ROW, "anony": "maybe"},  # line 5
    {**ROW, "tstamp": "yesterday"},  # line 6
]


def bad_json_list(path):
    items = [json.dumps(r, indent=1) for r in (ROW, ROW, {**ROW, "model_b": ""})]
    path.write_text("[\n" + ",\n".join(items) + "\n]\n")
    return path, ["line 14: missing model_b"]  # the third object starts on line 14


@pytest.mark.parametrize("kind", ["jsonl", "csv", "json-list", "broken-json"])
def test_bad_rows_are_reported_by_line_and_nothing_is_imported(store, tmp_path, kind):
    import_file(store, write_rows(tmp_path / "before.jsonl", [ROW, ROW]))
    before = counts(store)
    if kind == "jsonl":
        path = write_rows(tmp_path / "bad.jsonl", BAD_JSONL)
        lines = ["line 2: unknown winner", "line 4: missing model_b", "line 5: anony", "line 6"]
    elif kind == "csv":
        path = tmp_path / "bad.csv"
        long_name = "m" * 201  # longer than the column: PostgreSQL would refuse it mid-import
        path.write_text(
            f"model_a,model_b,winner\nm1,m2,model_a\nm1,,tie\nm1,m2,nobody\n{long_name},m2,tie\n"
        )
        lines = [
            "line 3: missing model_b",
            "line 4: unknown winner 'nobody'",
            "line 5: model_a is longer than 200",
        ]
    elif kind == "json-list":
        path, lines = bad_json_list(tmp_path / "bad.json")
    else:
        path = tmp_path / "broken.jsonl"
        path.write_text(json.dumps(ROW) + "\n" + json.dumps(ROW)[:-1] + "\n")
        lines = ["line 2: not valid JSON"]
    with pytest.raises(TransferError) as info:
        import_file(store, path)
    message = str(info.value)
    assert "nothing was imported" in message and "\n" not in message
    for line in lines:
        assert line in message
    assert counts(store) == before


def write_rows(path, rows):
    write_jsonl(path, rows)
    return path


def test_a_database_error_midway_rolls_back_every_chunk(store, tmp_path, monkeypatch):
    """Rows that pass every check but that the database refuses, after earlier chunks went in."""
    import_file(store, write_rows(tmp_path / "before.jsonl", [ROW]))
    before = counts(store)
    # The database refuses one model name (standing in for any refusal the row checks cannot
    # foresee): a trigger on SQLite, a CHECK constraint on PostgreSQL (this test's own schema).
    refusal = {
        "sqlite": "CREATE TRIGGER refuse BEFORE INSERT ON battles WHEN NEW.model_a = 'refused' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the database'); END",
        "postgresql": "ALTER TABLE battles ADD CONSTRAINT refuse CHECK (model_a <> 'refused')",
    }[store.engine.dialect.name]
    with store.engine.begin() as conn:
        conn.execute(text(refusal))
    monkeypatch.setattr(transfer, "_CHUNK", 2)  # several chunks in the one transaction
    rows = [ROW] * 5 + [{**ROW, "model_a": "refused"}]
    with pytest.raises(DBAPIError):
        import_file(store, write_rows(tmp_path / "late.jsonl", rows))
    assert counts(store) == before


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_then_import_gives_the_same_votes(store, tmp_path, fmt):
    import_file(store, shared(GENAI))
    extra = [  # what GenAI lacks: question ids, all four outcomes, odd text
        {**ROW, "question_id": "q-1", "judge": 'ann, "quoted"', "anony": False},
        {**ROW, "winner": "tie", "model_a": "naïve model", "tstamp": 1707700600.123456},
        {**ROW, "winner": "tie (bothbad)", "question_id": "42"},
    ]
    import_file(store, write_rows(tmp_path / "extra.jsonl", extra))
    exported = export_frame(store)
    out = tmp_path / f"votes.{fmt}"
    assert export_file(store, out, fmt) == len(exported) == 2061 + 3
    with store.engine.begin() as conn:
        conn.execute(delete(votes))
        conn.execute(delete(battles))
    assert import_file(store, out) == len(exported)
    pd.testing.assert_frame_equal(export_frame(store), exported)


def test_unknown_export_format(store, tmp_path):
    with pytest.raises(TransferError, match="unknown export format"):
        export_file(store, tmp_path / "x.xml", "xml")


def write_as(path, rows, fmt) -> None:
    if fmt == "jsonl":
        write_rows(path, rows)
    elif fmt == "csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        pd.DataFrame(rows).to_parquet(path, index=False)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_a_bad_row_after_written_chunks_rolls_back_and_the_rest_is_still_checked(
    store, tmp_path, monkeypatch, fmt
):
    """The import streams: chunks are written as they come, so a bad row late in the file must
    roll back the chunks already written, and the rows after it are still checked."""
    import_file(store, write_rows(tmp_path / "before.jsonl", [ROW]))
    before = counts(store)
    monkeypatch.setattr(transfer, "_CHUNK", 4)  # many chunks, and parquet batches, in one file
    rows = [{**ROW, "tstamp": ROW["tstamp"] + i} for i in range(30)]
    rows[21] = {**ROW, "winner": "nobody"}
    rows[27] = {**ROW, "model_b": ""}
    path = tmp_path / f"late.{fmt}"
    write_as(path, rows, fmt)
    with pytest.raises(TransferError) as raised:
        import_file(store, path)
    line = {"jsonl": 22, "csv": 23, "parquet": 22}[fmt]  # CSV line 1 is the header
    message = str(raised.value)
    assert "2 rows have problems, nothing was imported" in message
    assert f"line {line}: " in message and f"line {line + 6}: missing model_b" in message
    assert counts(store) == before
    write_as(path, [r for i, r in enumerate(rows) if i not in (21, 27)], fmt)
    assert import_file(store, path) == 28
    assert counts(store) == (before[0] + 28, before[1] + 28)


def test_not_a_parquet_file_is_one_line(store, tmp_path):
    path = tmp_path / "votes.parquet"
    path.write_bytes(b"model_a,model_b\nx,y\n")
    with pytest.raises(TransferError, match="not a parquet file"):
        import_file(store, path)
    assert counts(store) == (0, 0)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_categories_travel_with_the_votes(store, tmp_path, fmt):
    from arena.store.schema import battle_categories

    rows = [
        {**ROW, "categories": ["ocr", "charts"]},
        {**ROW, "winner": "tie", "categories": ["other"]},
        {**ROW, "winner": "model_b"},  # no categories at all
        {**ROW, "categories": "counting, reasoning"},  # CSV style: separated by commas
        {**ROW, "categories": '["creative"]'},  # a JSON text of the list
    ]
    import_file(store, write_rows(tmp_path / "in.jsonl", rows))
    exported = export_frame(store)
    assert list(exported["categories"]) == [
        ["charts", "ocr"], ["other"], None, ["counting", "reasoning"], ["creative"]
    ]  # fmt: skip
    with store.engine.connect() as conn:
        sources = set(conn.execute(select(battle_categories.c.source)).scalars())
    assert sources == {"import"}
    out = tmp_path / f"votes.{fmt}"
    export_file(store, out, fmt)
    with store.engine.begin() as conn:
        for table in (battle_categories, votes, battles):
            conn.execute(delete(table))
    import_file(store, out)
    pd.testing.assert_frame_equal(export_frame(store), exported)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["OCR"], "category 'OCR' is not an id"),
        ([3], "category 3 is not an id"),
        ({"ocr": 1}, "categories must be a list"),
        ("[not json", "not a JSON list"),
    ],
)
def test_bad_categories_are_refused_by_line(store, tmp_path, value, message):
    with pytest.raises(TransferError, match=f"line 2: .*{message}"):
        import_file(store, write_rows(tmp_path / "bad.jsonl", [ROW, {**ROW, "categories": value}]))
    assert counts(store) == (0, 0)
