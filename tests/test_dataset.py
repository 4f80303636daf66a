"""The dataset export and its import (arena.store.dataset, dataset_import) on a real SQLite file
and the real PostgreSQL server: battles played the way the page plays them (arena.battle.record),
then the parquet file read back with pyarrow and with `datasets`, imported into an empty arena and
exported again."""

from __future__ import annotations

import hashlib
import itertools
import re
import uuid
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, select, text, update

from arena.battle import Battle, SideResult, cast_vote, save_turn, start
from arena.cli import main
from arena.clients import client_key, load_secret
from arena.config import LIMITS, Settings
from arena.errors import TransferError
from arena.images import check_image
from arena.kinds import Outcome, Requester
from arena.registry import load_registry
from arena.store import Store
from arena.store.dataset import SCHEMA, export_dataset
from arena.store.reads import utc
from arena.store.schema import battle_categories, battles, images, turns, votes
from arena.store.transfer import import_file
from arena.style import battle_style, conv_metadata, count_style
from tests.conftest import PG_URL, png_bytes
from tests.stored import count_rows

REGISTRY = """
models:
  - {id: qwen-vl, name: Qwen2-VL, backend: openai, base_url: "http://127.0.0.1:9/v1",
     model: Qwen/Qwen2-VL-2B-Instruct}
  - {id: smol, name: SmolVLM, backend: openai, base_url: "http://127.0.0.1:9/v1",
     model: HuggingFaceTB/SmolVLM-256M-Instruct}
"""
ALICE = "user:alice@example.com"
BOB = "user:bob@example.org"
STYLED = "# Colours\n- red\n- blue\n1. first\n**bold** and __also__"
_counter = itertools.count()


@pytest.fixture
def registry(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(REGISTRY)
    return load_registry(path)


def play(store, registry, turns_played, *, outcome="a", voter=ALICE, mode="anonymous", color=(200, 40, 40)):  # fmt: skip
    """One battle as the page plays it: start, each turn stored, then the vote (none when
    `outcome` is None). `turns_played`: (prompt, SideResult a, SideResult b) per turn."""
    n = next(_counter)
    requester = Requester(session_id=f"sess-{n}-secret", voter_id=voter, client_key=f"ck{n:030d}")
    picture = check_image(png_bytes(color=color), store.settings)
    battle = Battle(mode=mode, spec_a=registry.get("qwen-vl"), spec_b=registry.get("smol"), image=picture)  # fmt: skip
    start(store, battle, requester)
    for prompt, a, b in turns_played:
        battle.prompts.append(prompt)
        battle.results.append((a, b))
        battle.unsaved = True
        save_turn(store, battle)
    if outcome is not None:
        cast_vote(store, battle, Outcome(outcome), requester)
    return battle.battle_id


def ok(answer, ttft=0.25, total=1.5, tokens=7):
    return SideResult(answer, ttft=ttft, total=total, tokens=tokens)


MULTI = [  # the first turn's left side failed; the second turn answered on both sides
    ("What colour is this square?", SideResult("", error="timed out", ttft=None, total=30.0),
     ok(STYLED, tokens=21)),
    ("Read the text in the image", ok("It says nothing.", 0.5, 2.0, 4), ok("No text.", 0.1, 0.9, 3)),
]  # fmt: skip
ONE = [("Describe the picture", ok("A red square."), ok("Red."))]


@pytest.fixture
def arena(store, registry):
    """Four battles: a two-turn one with an error (Alice), a named one (Bob), an unvoted one
    (Alice), and a tie (Bob, another image). Returns their ids by name."""
    return {
        "multi": play(store, registry, MULTI, outcome="a", voter=ALICE),
        "named": play(store, registry, ONE, outcome="bothbad", voter=BOB, mode="named"),
        "unvoted": play(store, registry, ONE, outcome=None, voter=ALICE),
        "tie": play(store, registry, ONE, outcome="tie", voter=BOB, color=(10, 200, 30)),
    }


def export(store, path, **kwargs) -> pa.Table:
    export_dataset(store, path, **kwargs)
    return pq.read_table(path)


def rows_by_id(table) -> dict[str, dict]:
    return {row["question_id"]: row for row in table.to_pylist()}


def categories(store, battle_id) -> list[str]:
    return sorted(store.categories_of([battle_id])[battle_id])


# ----- the export --------------------------------------------------------------------------


def test_the_export_has_its_schema_and_every_value_of_the_voted_battles(store, arena, tmp_path):
    table = export(store, tmp_path / "d.parquet")
    assert table.schema.equals(SCHEMA)
    assert [r["question_id"] for r in table.to_pylist()] == [
        arena[k] for k in ("multi", "named", "tie")
    ]  # no question_id of their own: the battle id; in vote order; the unvoted one left out
    rows = rows_by_id(table)
    multi = rows[arena["multi"]]
    assert (multi["model_a"], multi["model_b"], multi["winner"]) == ("qwen-vl", "smol", "model_a")
    assert multi["anony"] is True and multi["turn"] == 2
    assert multi["conversation_a"] == [
        {"role": "user", "content": "What colour is this square?"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "Read the text in the image"},
        {"role": "assistant", "content": "It says nothing."},
    ]
    assert [m["content"] for m in multi["conversation_b"][1::2]] == [STYLED, "No text."]
    assert multi["ttft_a"] == [None, 0.5] and multi["total_a"] == [30.0, 2.0]
    assert multi["tokens_a"] == [None, 4] and multi["tokens_b"] == [21, 3]
    assert multi["error_a"] == ["timed out", None] and multi["error_b"] == [None, None]
    red = png_bytes(color=(200, 40, 40))
    assert multi["image"] == {
        "bytes": red, "sha256": hashlib.sha256(red).hexdigest(), "width": 64, "height": 48,
        "format": "PNG",
    }  # fmt: skip
    style_a = battle_style([count_style("", None), count_style("It says nothing.", 4)])
    style_b = battle_style([count_style(STYLED, 21), count_style("No text.", 3)])
    assert multi["conv_metadata"] == conv_metadata(style_a, style_b)
    assert multi["conv_metadata"]["header_count_b"]["h1"] == 1
    assert multi["conv_metadata"]["bold_count_b"] == {"**": 1, "__": 1}
    assert multi["categories"] == categories(store, arena["multi"])
    assert "multi_turn" in multi["categories"]
    named = rows[arena["named"]]
    assert named["anony"] is False and named["winner"] == "tie (bothbad)"
    assert rows[arena["tie"]]["winner"] == "tie"
    with store.engine.connect() as conn:
        voted_at = conn.execute(
            select(votes.c.created_at).where(votes.c.battle_id == arena["multi"])
        ).scalar_one()
    assert multi["tstamp"] == pytest.approx(utc(voted_at).timestamp(), abs=1e-6)


@pytest.mark.parametrize(("include", "expected"), [(False, 3), (True, 4)])
def test_unvoted_battles_come_only_with_include_unvoted_after_the_voted_ones(
    store, arena, tmp_path, include, expected
):
    table = export(store, tmp_path / "d.parquet", include_unvoted=include)
    assert table.num_rows == expected
    last = table.to_pylist()[-1]
    if include:
        assert last["question_id"] == arena["unvoted"]
        assert (last["winner"], last["judge"], last["conv_metadata"]) == (None, None, None)
        with store.engine.connect() as conn:
            started = conn.execute(
                select(battles.c.created_at).where(battles.c.id == arena["unvoted"])
            ).scalar_one()
        assert last["tstamp"] == pytest.approx(utc(started).timestamp(), abs=1e-6)
        assert last["conversation_a"][1]["content"] == "A red square."
    else:
        assert arena["unvoted"] not in rows_by_id(table)


def test_since_keeps_the_rows_from_that_moment(store, arena, tmp_path):
    with store.engine.begin() as conn:
        conn.execute(
            update(votes)
            .where(votes.c.battle_id == arena["named"])
            .values(created_at=datetime(2020, 1, 1, tzinfo=UTC))
        )
    table = export(store, tmp_path / "d.parquet", since=datetime(2021, 1, 1, tzinfo=UTC))
    assert arena["named"] not in rows_by_id(table) and table.num_rows == 2
    assert export(store, tmp_path / "all.parquet").to_pylist()[0]["question_id"] == arena["named"]


def test_rows_stream_through_more_than_one_page_and_row_group(store, registry, tmp_path, monkeypatch):  # fmt: skip
    from arena.store import dataset

    monkeypatch.setattr(dataset, "_PAGE", 2)
    monkeypatch.setattr(dataset, "_GROUP_ROWS", 3)
    ids = [play(store, registry, ONE, voter=f"user:v{i}@example.com") for i in range(7)]
    out = tmp_path / "d.parquet"
    assert export_dataset(store, out) == 7
    assert pq.ParquetFile(out).metadata.num_row_groups == 3
    assert pq.read_table(out).column("question_id").to_pylist() == ids


def test_the_judge_is_a_keyed_pseudonym_and_no_voter_id_or_session_is_in_the_file(
    store, arena, tmp_path
):
    out = tmp_path / "d.parquet"
    rows = rows_by_id(export(store, out, include_unvoted=True))
    judges = {k: rows[arena[k]]["judge"] for k in ("multi", "named", "tie")}
    assert all(re.fullmatch(r"[0-9a-f]{32}", j) for j in judges.values())
    assert judges["multi"] != judges["named"] == judges["tie"]  # the same voter, the same judge
    secret = load_secret(store.settings)
    assert judges["multi"] != client_key("127.0.0.1", secret)
    again = rows_by_id(export(store, tmp_path / "again.parquet"))
    assert again[arena["multi"]]["judge"] == judges["multi"]  # stable across exports
    with store.engine.connect() as conn:
        private = [
            v
            for row in conn.execute(select(battles.c.voter_id, battles.c.session_id, battles.c.client_key))
            for v in row
        ]  # fmt: skip
    # every value of the file, uncompressed (Arrow IPC), and the file's own bytes
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, SCHEMA) as writer:
        writer.write_table(pq.read_table(out))
    for blob in (sink.getvalue().to_pybytes(), out.read_bytes()):
        for secret_text in [*private, "alice", "bob@", "user:", "session:", "sess-"]:
            assert secret_text.encode() not in blob, secret_text


def test_datasets_loads_the_file_offline(store, arena, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    out = tmp_path / "d.parquet"
    export_dataset(store, out, include_unvoted=True)
    loaded = datasets.load_dataset(
        "parquet", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf" / "cache")
    )
    assert loaded.num_rows == 4 and loaded.column_names == SCHEMA.names
    first = loaded[0]
    assert first["question_id"] == arena["multi"] and first["turn"] == 2
    assert first["conversation_b"][1]["content"] == STYLED
    assert first["image"]["bytes"] == png_bytes(color=(200, 40, 40))


# ----- moderation ------------------------------------------------------------------------------


def test_hidden_battles_and_banned_voters_are_left_out_and_erased_data_stays_empty(
    store, registry, arena, tmp_path
):
    carol = play(store, registry, ONE, outcome=None, voter="user:carol@example.com")
    store.hide(arena["tie"], "spam", "cli:test")
    store.ban(ALICE, "scripted votes", "cli:test")
    store.ban("user:carol@example.com", "abuse", "cli:test")
    kept = rows_by_id(export(store, tmp_path / "d.parquet", include_unvoted=True))
    assert list(kept) == [arena["named"]]  # Alice's voted and unvoted battles, Carol's, hidden
    assert carol not in kept
    store.unban(ALICE, "cli:test")
    store.erase(arena["multi"], image=True, text=True, actor="cli:test")
    rows = rows_by_id(export(store, tmp_path / "e.parquet"))
    erased = rows[arena["multi"]]
    red = png_bytes(color=(200, 40, 40))
    assert erased["image"] == {
        "bytes": None, "sha256": hashlib.sha256(red).hexdigest(), "width": 64, "height": 48,
        "format": "PNG",
    }  # fmt: skip
    assert {m["content"] for m in erased["conversation_a"] + erased["conversation_b"]} == {""}
    assert erased["tokens_b"] == [21, 3]  # the counts stay
    # the unvoted battle of Alice shows the same image: its bytes are gone there too
    unvoted = rows_by_id(export(store, tmp_path / "u.parquet", include_unvoted=True))
    assert unvoted[arena["unvoted"]]["image"]["bytes"] is None


# ----- the round trip ---------------------------------------------------------------------------


@pytest.fixture
def empty_store(request, db_url, tmp_path):
    """A second, empty arena on the same engine, with its own secret."""
    models = tmp_path / "other" / "models.yaml"
    models.parent.mkdir()
    schema = None
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'other.db'}"
    else:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    other = Store.open(Settings(db_url=url, models=str(models), **dict.fromkeys(LIMITS, 0)))
    yield other
    other.engine.dispose()
    if schema:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_export_import_export_gives_the_same_rows(store, registry, arena, empty_store, tmp_path):
    store.erase(arena["named"], image=True, text=False, actor="cli:test")  # a null image too
    votes_file = tmp_path / "votes.jsonl"  # imported votes: no image, no turns, a plain judge
    votes_file.write_text(
        '{"model_a": "m1", "model_b": "m2", "winner": "model_b", "tstamp": 1707700514.25, '
        '"judge": "carol", "question_id": "q-1", "categories": ["ocr"], "conv_metadata": '
        '{"sum_assistant_a_tokens": 5, "sum_assistant_b_tokens": 9}}\n'
        '{"model_a": "m2", "model_b": "m1", "winner": "tie", "anony": false, "tstamp": 1707700515}\n'
    )
    import_file(store, votes_file)
    first = tmp_path / "first.parquet"
    table = export(store, first, include_unvoted=True)
    imported = table.to_pylist()[:2]  # the oldest votes
    assert [r["question_id"] for r in imported][0] == "q-1" and imported[0]["turn"] == 0
    assert imported[0]["image"] is None and imported[0]["categories"] == ["ocr"]
    assert re.fullmatch(r"[0-9a-f]{32}", imported[0]["judge"]) and imported[1]["judge"] is None
    assert load_secret(store.settings) != load_secret(empty_store.settings)
    assert import_file(empty_store, first) == 6
    again = export(empty_store, tmp_path / "again.parquet", include_unvoted=True)
    assert again.equals(table), (again.to_pylist(), table.to_pylist())
    # full battles: turns, images once each, the vote, the categories, the judge as given
    assert count_rows(empty_store, turns) == 5 and count_rows(empty_store, images) == 2
    assert count_rows(empty_store, votes) == 5
    with empty_store.engine.connect() as conn:
        voters = set(conn.execute(select(votes.c.voter_id)).scalars())
        sources = set(conn.execute(select(battle_categories.c.source)).scalars())
        origin = set(conn.execute(select(battles.c.source)).scalars())
    assert voters - {None} == {f"judge:{r['judge']}" for r in table.to_pylist() if r["judge"]}
    assert sources == {"import"} and origin == {"import:first.parquet"}
    assert len(empty_store.battles_page(limit=10)) == 6  # the admin's browser sees them


def test_the_import_of_a_dataset_counts_on_the_leaderboard(store, arena, empty_store, tmp_path):
    out = tmp_path / "d.parquet"
    export_dataset(store, out)
    import_file(empty_store, out)
    assert empty_store.pair_counts(_all()) is not None
    counted = sorted(
        (a, b, o.value, n) for a, b, o, n in empty_store.pair_counts(_all())
    )  # the maintained counts, kept by the import (deferred on PostgreSQL)
    assert counted == [
        ("qwen-vl", "smol", "a", 1), ("qwen-vl", "smol", "bothbad", 1), ("qwen-vl", "smol", "tie", 1)
    ]  # fmt: skip


def _all():
    from arena.store import VoteFilter

    return VoteFilter(anonymous_only=False)


# ----- files that are not a dataset, or a damaged one --------------------------------------------


def _damaged(table: pa.Table, name: str) -> pa.Table:
    rows = table.to_pylist()
    if name == "sha mismatch":
        rows[1]["image"]["bytes"] = rows[1]["image"]["bytes"][:-1] + b"\x00"
        return pa.Table.from_pylist(rows, schema=table.schema)
    if name == "bad rows":
        rows[0]["conversation_b"][0]["content"] = "another prompt"
        rows[1]["turn"] = 5
        rows[2]["tokens_a"] = [-1]
        rows[2]["winner"] = "model_c"
        return pa.Table.from_pylist(rows, schema=table.schema)
    if name == "missing columns":
        return table.drop_columns(["model_b", "winner"])
    if name == "not this layout":  # conversations as plain strings
        return table.set_column(
            table.schema.get_field_index("conversation_a"),
            "conversation_a",
            pa.array(["hello"] * table.num_rows),
        )
    raise AssertionError(name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sha mismatch", r"row 2: image [0-9a-f]{12}: its bytes do not match its sha256"),
        (
            "bad rows",
            r"3 rows have problems, nothing was imported: row 1: conversation_a and "
            r"conversation_b do not ask the same prompts; row 2: turn is 5 but the "
            r"conversations hold 1 prompts; row 3: unknown winner 'model_c'",
        ),
        ("missing columns", r"needs the columns .*; missing model_b, winner\."),
        ("not this layout", r"conversation_a must be a list of \{role, content\} messages"),
    ],
)
def test_a_damaged_file_is_one_line_and_imports_nothing(
    store, arena, empty_store, tmp_path, name, expected
):
    table = export(store, tmp_path / "d.parquet")
    bad = tmp_path / "bad.parquet"
    pq.write_table(_damaged(table, name), bad)
    with pytest.raises(TransferError) as caught:
        import_file(empty_store, bad)
    message = str(caught.value)
    assert "\n" not in message and re.search(expected, message), message
    assert count_rows(empty_store, battles) == count_rows(empty_store, images) == 0


def test_a_bad_per_turn_value_is_reported_by_row(store, arena, empty_store, tmp_path):
    rows = export(store, tmp_path / "d.parquet").to_pylist()
    rows[2]["tokens_a"] = [-1]
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), bad)
    with pytest.raises(TransferError, match=r"row 3: tokens_a: -1 is not a whole number >= 0"):
        import_file(empty_store, bad)


def test_a_votes_parquet_still_imports_as_votes(store, empty_store, tmp_path):
    out = tmp_path / "votes.parquet"
    pq.write_table(pa.table({"model_a": ["m1"], "model_b": ["m2"], "winner": ["model_b"]}), out)
    assert import_file(empty_store, out) == 1
    assert count_rows(empty_store, turns) == 0


# ----- the commands ----------------------------------------------------------------------------


def test_the_commands_export_and_import_a_dataset(
    store, arena, empty_store, tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("ARENA_SECRET", raising=False)
    monkeypatch.setenv("ARENA_DB_URL", store.settings.db_url)
    monkeypatch.setenv("ARENA_MODELS", store.settings.models)
    out = tmp_path / "cli.parquet"
    assert main(["export-dataset", str(out), "--since", "2020-01-01"]) == 0
    assert f"exported 3 battles to {out}" in capsys.readouterr().out
    assert main(["export-dataset", str(out), "--include-unvoted"]) == 0
    assert "exported 4 battles" in capsys.readouterr().out
    assert pq.read_table(out).equals(export(store, tmp_path / "api.parquet", include_unvoted=True))
    monkeypatch.setenv("ARENA_DB_URL", empty_store.settings.db_url)
    assert main(["import", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"imported 4 battles from {out}" in captured.out
    assert "4/4" in captured.err  # the progress bar
    assert main(["export-dataset", str(out), "--since", "yesterday"]) == 1
    assert "--since 'yesterday'" in capsys.readouterr().err
