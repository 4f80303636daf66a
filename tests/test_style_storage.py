"""Style counts in the database, on a real SQLite file and the real PostgreSQL server (db_url):
every stored turn counts its answers, every vote sums its battle's turns, migration 0006 backfills
both, and import/export carry LMArena's conv_metadata. Read back with plain SQL."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy import delete, text

from arena.battle import SideResult
from arena.errors import TransferError
from arena.images import check_image
from arena.kinds import Outcome, Requester
from arena.store import engine as eng
from arena.store.schema import battles, turns, votes
from arena.store.transfer import export_file, export_frame, import_file
from arena.style import COUNTS, StyleCounts, conv_metadata, count_style, flat_conv_metadata
from tests.conftest import png_bytes
from tests.stored import count_rows

STYLE_A = [f"style_{name}_a" for name in COUNTS]
STYLE_B = [f"style_{name}_b" for name in COUNTS]
STYLE = STYLE_A + STYLE_B


def style_of(row) -> tuple[StyleCounts | None, StyleCounts | None]:
    """(side a, side b) from a row of plain SQL that selected STYLE; None where NULL."""
    values = [row[c] for c in STYLE]
    a, b = values[: len(COUNTS)], values[len(COUNTS) :]
    return tuple(None if any(v is None for v in vs) else StyleCounts(*vs) for vs in (a, b))


def turn_styles(engine, battle_id: str) -> list[tuple[StyleCounts, StyleCounts]]:
    query = f"SELECT {', '.join(STYLE)} FROM turns WHERE battle_id = :b ORDER BY idx"
    with engine.connect() as conn:
        return [style_of(r) for r in conn.execute(text(query), {"b": battle_id}).mappings()]


def vote_style(engine, battle_id: str) -> tuple[StyleCounts | None, StyleCounts | None]:
    query = f"SELECT {', '.join(STYLE)} FROM votes WHERE battle_id = :b"
    with engine.connect() as conn:
        return style_of(conn.execute(text(query), {"b": battle_id}).mappings().one())


def counted(a: SideResult, b: SideResult) -> tuple[StyleCounts, StyleCounts]:
    return count_style(a.answer, a.tokens), count_style(b.answer, b.tokens)


def summed(pairs) -> tuple[StyleCounts, StyleCounts]:
    pairs = list(pairs)
    return sum((p[0] for p in pairs), StyleCounts()), sum((p[1] for p in pairs), StyleCounts())


# --- the live store: turns, regenerate, vote -------------------------------------------------------

FIRST_A = SideResult("# Old title\n- one\n- two\n- three\n**old** **bold**", tokens=500)
FIRST_B = SideResult("## Old\n1. a\n2. b\n__u__", tokens=400)
NEW_A = SideResult("## New\n1. x\n   2. y\n```md\n# not a header\n- nor an item\n```", tokens=12)
NEW_B = SideResult("__new__ and **new**\n* item\n#hashtag", tokens=None)  # no usage: the fallback
SECOND_A = SideResult("### Third\n+ z\n###### six", tokens=0)  # a model that said 0 tokens
SECOND_B = SideResult("Plain words, nothing else.", tokens=9)


def start(store, settings, session="s1") -> str:
    image = check_image(png_bytes(), settings)
    return store.start_battle(
        mode="anonymous", model_a="m1", model_b="m2", image=image,
        requester=Requester(session_id=session),
    )  # fmt: skip


def test_turns_store_the_counts_and_the_vote_their_sum(store, settings):
    bid = start(store, settings)
    store.add_turn(bid, "first?", FIRST_A, FIRST_B)
    first = counted(FIRST_A, FIRST_B)
    assert first[0] == StyleCounts(500, h1=1, unordered=3, bold_stars=2)
    assert first[1] == StyleCounts(400, h2=1, ordered=2, bold_underscores=1)
    assert turn_styles(store.engine, bid) == [first]

    store.replace_last_turn(bid, NEW_A, NEW_B)  # regenerate: the old counts must go
    final = counted(NEW_A, NEW_B)
    assert final[0] == StyleCounts(12, h2=1, ordered=2)
    # __new__ | and | * * new * * | * | item | # | hashtag: 11 pieces (\w+ takes the underscores)
    assert final[1] == StyleCounts(11, unordered=1, bold_stars=1, bold_underscores=1)
    assert turn_styles(store.engine, bid) == [final]

    store.add_turn(bid, "second?", SECOND_A, SECOND_B)
    second = counted(SECOND_A, SECOND_B)
    assert second == (StyleCounts(0, h3=1, h6=1, unordered=1), StyleCounts(9))
    assert turn_styles(store.engine, bid) == [final, second]

    store.record_vote(bid, Outcome.A, Requester(session_id="s1"))
    a, b = vote_style(store.engine, bid)
    assert (a, b) == summed([final, second])
    assert a == StyleCounts(12, h2=1, h3=1, h6=1, ordered=2, unordered=1)
    assert b.tokens == 11 + 9  # not 400 + ...: the regenerated answer's count is gone


def test_each_vote_sums_only_its_own_battles_turns(store, settings):
    one, two = start(store, settings, "s1"), start(store, settings, "s2")
    store.add_turn(one, "q", FIRST_A, FIRST_B)
    store.add_turn(two, "q", NEW_A, NEW_B)
    store.add_turn(two, "q2", SECOND_A, SECOND_B)
    store.add_turn(one, "q2", SECOND_B, SECOND_A)
    store.record_vote(two, Outcome.TIE, Requester(session_id="s2"))
    store.record_vote(one, Outcome.B, Requester(session_id="s1"))
    assert vote_style(store.engine, one) == summed(
        [counted(FIRST_A, FIRST_B), counted(SECOND_B, SECOND_A)]
    )
    assert vote_style(store.engine, two) == summed(
        [counted(NEW_A, NEW_B), counted(SECOND_A, SECOND_B)]
    )


def test_a_failed_side_counts_nothing_and_its_regenerated_answer_counts(store, settings):
    bid = start(store, settings)
    failed = SideResult("", error="the model timed out")
    store.add_turn(bid, "q", failed, SECOND_B)
    assert turn_styles(store.engine, bid) == [(StyleCounts(), StyleCounts(9))]
    partial = SideResult("# Half\n- an", error="cut off", tokens=None)  # kept text, fallback
    store.replace_last_turn(bid, partial, SECOND_B)
    assert turn_styles(store.engine, bid) == [(StyleCounts(4, h1=1, unordered=1), StyleCounts(9))]
    store.replace_last_turn(bid, NEW_A, SECOND_B)
    store.record_vote(bid, Outcome.B, Requester(session_id="s1"))
    assert vote_style(store.engine, bid) == counted(NEW_A, SECOND_B)


# --- migration 0006 ------------------------------------------------------------------------------

# the tables as revision 0005 left them: the columns that version's code wrote
OLD_BATTLES = sa.table(
    "battles", *map(sa.column, ("id", "mode", "model_a", "model_b", "source")),
    sa.column("created_at", sa.DateTime(timezone=True)),
)  # fmt: skip
OLD_TURNS = sa.table(
    "turns", *map(sa.column, ("battle_id", "idx", "prompt", "answer_a", "answer_b", "error_a")),
    *map(sa.column, ("tokens_a", "tokens_b", "ok_a", "ok_b")),
    sa.column("created_at", sa.DateTime(timezone=True)),
)  # fmt: skip
OLD_VOTES = sa.table(
    "votes", *map(sa.column, ("id", "battle_id", "outcome", "model_a", "model_b", "mode")),
    sa.column("created_at", sa.DateTime(timezone=True)),
)  # fmt: skip
STAMP = datetime(2024, 5, 1, tzinfo=UTC)
BIG_TURNS = 20_005  # more than one batch (0006's BATCH is 20 000)

# (answer_a, tokens_a, answer_b, tokens_b, error_a) per turn of the small battles
SMALL_TURNS = {
    "two": [
        ("# T\n- a\n- b\n**x**", 30, "## U\n1. c\n__y__", None, None),
        ("```\n# code\n```\n### V", None, "+ d\n  * e", 4, None),
    ],
    "open": [("**unvoted**", 3, "# no vote", 2, None)],
    "failed": [(None, None, "###### six\n####### seven", 0, "timed out")],
    "last": [("- z", 1, "1. z", None, None)],
}
VOTE_IDS = {"two": 1, "imported": 20_000, "big": 20_001, "failed": 39_999, "last": 40_001}


def write_at_0005(engine) -> None:
    """Battles, turns and votes as the code of revision 0005 wrote them: a battle of two turns,
    an unvoted one, a failed turn, an imported vote (no turns), and a battle with BIG_TURNS turns
    (made in SQL); vote ids that straddle 0006's batches of vote ids."""
    names = [*SMALL_TURNS, "imported", "big"]
    with engine.begin() as conn:
        conn.execute(sa.insert(OLD_BATTLES), [
            dict(id=n, mode="anonymous", model_a=f"{n}-a", model_b=f"{n}-b", created_at=STAMP,
                 source="import:old.jsonl" if n == "imported" else "arena")
            for n in names
        ])  # fmt: skip
        conn.execute(sa.insert(OLD_TURNS), [
            dict(battle_id=n, idx=i, prompt="p", answer_a=aa, tokens_a=ta, answer_b=ab,
                 tokens_b=tb, error_a=err, ok_a=err is None, ok_b=True, created_at=STAMP)
            for n, rows in SMALL_TURNS.items() for i, (aa, ta, ab, tb, err) in enumerate(rows)
        ])  # fmt: skip
        numbers = {
            "sqlite": "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq "
            f"WHERE n < {BIG_TURNS - 1}) SELECT n FROM seq",
            "postgresql": f"SELECT n FROM generate_series(0, {BIG_TURNS - 1}) AS n",
        }[engine.dialect.name]
        conn.execute(
            text(
                "INSERT INTO turns (battle_id, idx, created_at, prompt, answer_a, tokens_a, "
                "answer_b, tokens_b, ok_a, ok_b) SELECT 'big', n, :at, 'p', "
                "'# turn ' || n || CASE WHEN n % 3 = 0 THEN '\n- item' ELSE '' END, n % 7, "
                "CASE WHEN n % 5 = 0 THEN NULL ELSE '**b** __c__ words' END, NULL, TRUE, TRUE "
                f"FROM ({numbers}) AS numbers"
            ).bindparams(sa.bindparam("at", STAMP, type_=sa.DateTime(timezone=True)))
        )
        conn.execute(sa.insert(OLD_VOTES), [
            dict(id=i, battle_id=n, outcome="a", model_a=f"{n}-a", model_b=f"{n}-b",
                 mode="anonymous", created_at=STAMP)
            for n, i in VOTE_IDS.items()
        ])  # fmt: skip


def test_migration_0006_backfills_turns_and_votes(db_url, caplog):
    engine = eng.make_engine(db_url)
    eng.upgrade(engine, "0005")
    assert eng.current_revision(engine) == "0005"
    write_at_0005(engine)
    caplog.set_level(logging.INFO, logger="arena.migrations")
    eng.upgrade(engine, "head")
    assert eng.current_revision(engine) == eng.head_revision()

    query = f"SELECT battle_id, idx, answer_a, tokens_a, answer_b, tokens_b, {', '.join(STYLE)} FROM turns"
    with engine.connect() as conn:
        rows = list(conn.execute(text(query)).mappings())
    assert len(rows) == BIG_TURNS + 5
    per_battle: dict[str, list] = {}
    for r in rows:
        expected = (
            count_style(r["answer_a"], r["tokens_a"]),
            count_style(r["answer_b"], r["tokens_b"]),
        )
        assert style_of(r) == expected, dict(r)
        per_battle.setdefault(r["battle_id"], []).append(expected)
    # spot checks against hand counts: fallbacks, code blocks, a NULL answer, 7 '#'s
    two = sorted((r for r in rows if r["battle_id"] == "two"), key=lambda r: r["idx"])
    assert style_of(two[0]) == (
        StyleCounts(30, h1=1, unordered=2, bold_stars=1),
        StyleCounts(7, h2=1, ordered=1, bold_underscores=1),  # # # U 1 . c __y__
    )
    assert style_of(two[1]) == (StyleCounts(12, h3=1), StyleCounts(4, unordered=2))
    (failed,) = (r for r in rows if r["battle_id"] == "failed")
    assert style_of(failed) == (StyleCounts(), StyleCounts(0, h6=1))
    big = {r["idx"]: style_of(r) for r in rows if r["battle_id"] == "big"}
    assert big[3] == (
        StyleCounts(3, h1=1, unordered=1),
        StyleCounts(7, bold_stars=1, bold_underscores=1),
    )
    assert big[20_000] == (StyleCounts(1, h1=1, unordered=0), StyleCounts())  # 20000 % 3 == 2

    with engine.connect() as conn:
        found = {
            r["battle_id"]: style_of(r)
            for r in conn.execute(
                text(f"SELECT battle_id, {', '.join(STYLE)} FROM votes")
            ).mappings()
        }
    assert set(found) == set(VOTE_IDS)
    for name in ("two", "big", "failed", "last"):
        assert found[name] == summed(per_battle[name]), name
    assert found["imported"] == (None, None)  # no turns: no style data
    assert found["big"][0].h1 == BIG_TURNS and found["big"][1].tokens == 7 * (BIG_TURNS - 4001)

    messages = [r.getMessage() for r in caplog.records if r.name == "arena.migrations"]
    turns_done = [m for m in messages if m.startswith("migration 0006: style counts of")]
    total = BIG_TURNS + 5
    assert turns_done == [
        f"migration 0006: style counts of 20000 of {total} turns",
        f"migration 0006: style counts of {total} of {total} turns",
    ]
    votes_done = [m for m in messages if m.startswith("migration 0006: style totals")]
    assert votes_done == [
        f"migration 0006: style totals of votes up to id {hi} of 40001"
        for hi in (20000, 40000, 40001)
    ]
    engine.dispose()


def test_migration_0006_on_an_empty_database_and_back(db_url, caplog):
    engine = eng.make_engine(db_url)
    eng.upgrade(engine, "0005")
    caplog.set_level(logging.INFO, logger="arena.migrations")
    eng.upgrade(engine, "head")
    assert not [r for r in caplog.records if "migration 0006" in r.getMessage()]
    columns = {c["name"] for c in sa.inspect(engine).get_columns("votes")}
    assert set(STYLE) <= columns
    eng.upgrade(engine, "head")  # nothing left to do
    from alembic import command

    cfg = eng.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    for table in ("turns", "votes"):
        assert not set(STYLE) & {c["name"] for c in sa.inspect(engine).get_columns(table)}
    engine.dispose()


# --- import and export: conv_metadata ------------------------------------------------------------

ROW = {"model_a": "m1", "model_b": "m2", "winner": "model_a"}
A = StyleCounts(120, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
B = StyleCounts(33, 0, 1, 0, 0, 0, 0, 2, 0, 1, 0)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def styled_rows(n: int = 6) -> list[dict]:
    rows = []
    for i in range(n):
        a = StyleCounts(100 + i, h1=i % 2, h4=i, unordered=3 * i, bold_underscores=i % 3)
        b = StyleCounts(2**31 - 1 - i, h6=1, ordered=i, bold_stars=7)  # the largest count kept
        rows.append({
            **ROW, "model_a": f"m{i % 3}", "winner": ["model_a", "model_b", "tie", "tie (bothbad)"][i % 4],
            "tstamp": 1707700514.25 + i, "judge": f"j{i}", "question_id": f"q{i}",
            "anony": i != 2, "conv_metadata": conv_metadata(a, b),
        })  # fmt: skip
    return rows


def stored_styles(store) -> list[tuple]:
    """Each vote's style columns in time order, by plain SQL."""
    query = f"SELECT {', '.join(STYLE)} FROM votes ORDER BY created_at, id"
    with store.engine.connect() as conn:
        return [style_of(r) for r in conn.execute(text(query)).mappings()]


def empty(store) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(votes))
        conn.execute(delete(battles))


def test_conv_metadata_round_trips_through_every_format(store, tmp_path):
    rows = styled_rows()
    assert import_file(store, write_jsonl(tmp_path / "in.jsonl", rows)) == len(rows)
    expected = [tuple(StyleCounts(*v) for v in _sides(r["conv_metadata"])) for r in rows]
    assert stored_styles(store) == expected
    frame, flat = export_frame(store), export_frame(store, flat=True)
    assert [r for r in frame["conv_metadata"]] == [r["conv_metadata"] for r in rows]
    files = {fmt: tmp_path / f"out.{fmt}" for fmt in ("jsonl", "csv", "parquet")}
    for fmt, path in files.items():
        assert export_file(store, path, fmt) == len(rows)
    first = {fmt: path.read_bytes() for fmt, path in files.items()}
    assert json.loads(first["jsonl"].splitlines()[0])["conv_metadata"] == rows[0]["conv_metadata"]
    for fmt, path in files.items():
        empty(store)
        assert count_rows(store, votes) == 0
        assert import_file(store, path) == len(rows), fmt
        assert stored_styles(store) == expected, fmt
        pd.testing.assert_frame_equal(export_frame(store), frame)
        pd.testing.assert_frame_equal(export_frame(store, flat=True), flat)
        again = tmp_path / f"again.{fmt}"
        export_file(store, again, fmt)
        if fmt == "parquet":
            pd.testing.assert_frame_equal(pd.read_parquet(again), pd.read_parquet(path))
        else:
            assert again.read_bytes() == first[fmt], fmt


def _sides(meta: dict) -> tuple[list[int], list[int]]:
    out = []
    for s in ("a", "b"):
        out.append([
            meta[f"sum_assistant_{s}_tokens"], *meta[f"header_count_{s}"].values(),
            *meta[f"list_count_{s}"].values(), *meta[f"bold_count_{s}"].values(),
        ])  # fmt: skip
    return tuple(out)


def test_a_mixed_file_keeps_the_votes_without_style_data_without_it(store, tmp_path):
    rows = styled_rows(4)
    for i in (1, 3):
        del rows[i]["conv_metadata"]
    rows.append({**ROW, "tstamp": 1707800000, "conv_metadata": None})  # null: no style data
    import_file(store, write_jsonl(tmp_path / "mixed.jsonl", rows))
    styles = stored_styles(store)
    assert [s == (None, None) for s in styles] == [False, True, False, True, True]
    with store.engine.connect() as conn:  # every column NULL, not just the first
        nulls = conn.execute(
            text(f"SELECT count(*) FROM votes WHERE {' AND '.join(f'{c} IS NULL' for c in STYLE)}")
        ).scalar_one()
    assert nulls == 3
    out = tmp_path / "mixed-out.jsonl"
    export_file(store, out, "jsonl")
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert ["conv_metadata" in r for r in exported] == [True, False, True, False, False]
    assert exported[0]["conv_metadata"] == rows[0]["conv_metadata"]
    export_file(store, tmp_path / "mixed.csv", "csv")
    export_file(store, tmp_path / "mixed.parquet", "parquet")
    csv_rows = pd.read_csv(tmp_path / "mixed.csv", keep_default_na=False, dtype=str)
    assert csv_rows["sum_assistant_a_tokens"].tolist() == ["100", "", "102", "", ""]
    assert csv_rows["bold_count_b.**"].tolist() == ["7", "", "7", "", ""]
    import pyarrow.parquet as pq

    meta = pq.read_table(tmp_path / "mixed.parquet").column("conv_metadata")
    assert str(meta.type.field("sum_assistant_a_tokens").type) == "int64"  # not 100.0
    assert [m.is_valid for m in meta] == [True, False, True, False, False]
    frame = export_frame(store)
    for fmt in ("csv", "parquet", "jsonl"):
        empty(store)
        import_file(store, tmp_path / f"mixed{'-out' if fmt == 'jsonl' else ''}.{fmt}")
        assert stored_styles(store) == styles, fmt
        pd.testing.assert_frame_equal(export_frame(store), frame)


def test_a_file_without_any_style_data_exports_without_the_columns(store, tmp_path):
    import_file(store, write_jsonl(tmp_path / "bare.jsonl", [ROW, {**ROW, "winner": "tie"}]))
    assert stored_styles(store) == [(None, None)] * 2
    assert list(export_frame(store).columns) == list(export_frame(store, flat=True).columns)
    assert "conv_metadata" not in export_frame(store).columns
    export_file(store, tmp_path / "bare.csv", "csv")
    header = (tmp_path / "bare.csv").read_text().splitlines()[0]
    assert header == "model_a,model_b,winner,tstamp,anony,judge,question_id"


def test_csv_flat_columns_with_the_conv_metadata_prefix(store, tmp_path):
    """A dataset flattened by pandas.json_normalize: `conv_metadata.header_count_a.h1`, ..."""
    flat = {f"conv_metadata.{k}": v for k, v in flat_conv_metadata(A, B).items()}
    frame = pd.DataFrame([{**ROW, **flat}, {**ROW, "winner": "tie"}])
    frame.to_csv(tmp_path / "normalized.csv", index=False)
    assert import_file(store, tmp_path / "normalized.csv") == 2
    assert sorted(stored_styles(store), key=str) == sorted([(A, B), (None, None)], key=str)
    json_string = tmp_path / "as-string.csv"  # the object kept as a JSON string in one column
    pd.DataFrame([{**ROW, "conv_metadata": json.dumps(conv_metadata(B, A))}]).to_csv(
        json_string, index=False
    )
    import_file(store, json_string)
    assert (B, A) in stored_styles(store)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"sum_assistant_a_tokens": -1}, "sum_assistant_a_tokens"),
        ({"header_count_b": {"h7": 1}}, "header_count_b has unknown keys h7"),
        ({"list_count_a": {"ordered": 1.5}}, "list_count_a.ordered"),
        ({"bold_count_b": {"**": "x"}}, "bold_count_b.**"),
        ({"sum_assistant_b_tokens": True}, "sum_assistant_b_tokens"),
    ],
)
def test_a_bad_conv_metadata_value_fails_the_whole_import(store, tmp_path, bad, field):
    import_file(store, write_jsonl(tmp_path / "before.jsonl", styled_rows(2)))
    before = (count_rows(store, battles), count_rows(store, votes), stored_styles(store))
    rows = styled_rows(4)
    rows[2]["conv_metadata"] = {**rows[2]["conv_metadata"], **bad}  # line 3
    with pytest.raises(TransferError) as info:
        import_file(store, write_jsonl(tmp_path / "bad.jsonl", rows))
    message = str(info.value)
    assert "\n" not in message and "nothing was imported" in message
    assert re.search(rf"1 rows have problems.*line 3: [^;]*{re.escape(field)}", message), message
    assert (count_rows(store, battles), count_rows(store, votes), stored_styles(store)) == before


def test_a_bad_flat_csv_value_names_its_line(store, tmp_path):
    frame = pd.DataFrame([{**ROW, **flat_conv_metadata(A, B)}] * 3).astype(str)
    frame.loc[1, "header_count_a.h2"] = "-4"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(TransferError, match=r"line 3: header_count_a\.h2 '-4' is not a whole"):
        import_file(store, tmp_path / "bad.csv")
    assert count_rows(store, votes) == 0 and count_rows(store, battles) == 0


def test_a_parquet_file_with_list_columns_and_no_style_data_imports(store, tmp_path):
    """LMArena's files hold list columns (conversation_a), which pandas reads as numpy arrays:
    the flat-column lookup must not compare those with '' (it did before bc697aa)."""
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "# yo"}]
    frame = pd.DataFrame([{**ROW, "conversation_a": conversation}] * 2)
    frame.to_parquet(tmp_path / "lists.parquet", index=False)
    assert import_file(store, tmp_path / "lists.parquet") == 2
    assert stored_styles(store) == [(None, None)] * 2


def test_a_parquet_file_with_list_columns_and_conv_metadata_imports(store, tmp_path):
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "# yo"}]
    frame = pd.DataFrame(
        [{**ROW, "conversation_a": conversation, "conv_metadata": conv_metadata(A, B)}] * 2
    )
    frame.to_parquet(tmp_path / "lists.parquet", index=False)
    assert import_file(store, tmp_path / "lists.parquet") == 2
    assert stored_styles(store) == [(A, B)] * 2


def test_imported_style_feeds_the_features_the_board_reads(store, tmp_path):
    """The style scan's features are (a - b) / (a + b + 1) of the imported breakdown's totals."""
    from arena.store import VoteFilter

    rows = []
    for i in range(3):
        a = StyleCounts(100 + i, h1=i, h4=1, unordered=3 * i, bold_underscores=i % 3)
        b = StyleCounts(700 - i, h6=1, ordered=i, bold_stars=7)
        rows.append(
            {
                **ROW,
                "model_a": f"m{i}",
                "tstamp": 1707700000 + i,
                "conv_metadata": conv_metadata(a, b),
            }
        )
    rows.append({**ROW, "tstamp": 1707800000})  # no style data: not in the scan
    import_file(store, write_jsonl(tmp_path / "v.jsonl", rows))
    assert count_rows(store, votes) == 4
    combos, codes, features = store.scan_style(VoteFilter(anonymous_only=False))
    assert len(codes) == 3 and features.shape == (3, 4)  # of the 4 votes, the 3 with style
    for got, row in zip(features.tolist(), rows, strict=False):
        a, b = (StyleCounts(*v) for v in _sides(row["conv_metadata"]))
        expected = [(x - y) / (x + y + 1) for x, y in zip(a.totals, b.totals, strict=True)]
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert [combos[c][:2] for c in codes] == [(r["model_a"], r["model_b"]) for r in rows[:3]]
    assert count_rows(store, turns) == 0  # imported votes have no turns


def test_large_accepted_token_counts_still_rate(store, tmp_path):
    """Each count the import accepts (< 2**31) must leave the board computable on both engines."""
    from arena.leaderboard import leaderboard_for

    big = conv_metadata(StyleCounts(1_200_000_000), StyleCounts(1_000_000_000))
    small = conv_metadata(StyleCounts(10), StyleCounts(20))
    rows = [
        {**ROW, "conv_metadata": big},
        {**ROW, "model_a": "m2", "model_b": "m1", "conv_metadata": small},
    ]
    import_file(store, write_jsonl(tmp_path / "big.jsonl", rows))
    board = leaderboard_for(store, style_control=True, bootstrap_rounds=0)
    assert board.leaderboard.style is not None and board.leaderboard.style.battles == 2
