"""What the database maintains for the leaderboard (migrations 0007 and 0010): after every kind of
write the triggers' vote_counts, category_counts and prompt_counts equal a full recount, the
resumed online Elo equals a full replay float for float, and the boards (with their screening and
category counts) equal those of the vote scan exactly. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, select, text, update

from arena import leaderboard
from arena.config import LIMITS, Settings
from arena.images import check_image
from arena.kinds import Outcome
from arena.ratings import elo_loop, online_elo
from arena.screened import Screen, screen_votes
from arena.store import Store, VoteFilter, transfer
from arena.store import engine as eng
from arena.store.maintained import EloState
from arena.store.schema import (
    battle_categories,
    battles,
    category_counts,
    elo_state,
    prompt_counts,
    vote_counts,
    votes,
)
from arena.store.transfer import import_file
from tests.conftest import png_bytes
from tests.stored import answered_battle, votes_in_order
from tests.test_store import OK_A, OK_B

MODELS = ["m0", "m1", "m2", "m3"]
LABELS = [o.winner_label for o in Outcome]
KEY = ("mode", "model_a", "model_b", "outcome")


def recounted(store) -> dict:
    """The counts the slow, obvious way: GROUP BY over the votes."""
    columns = [votes.c[name] for name in KEY]
    with store.engine.connect() as conn:
        rows = conn.execute(select(*columns, func.count()).group_by(*columns)).all()
    return {tuple(row[:4]): row[4] for row in rows}


def maintained_counts(store) -> dict:
    with store.engine.connect() as conn:
        rows = conn.execute(select(vote_counts)).mappings().all()
    return {tuple(row[name] for name in KEY): row["votes"] for row in rows}


def screening_recounted(store) -> tuple[dict, dict]:
    """Votes per (mode, category) and per (mode, prompt key), the slow way."""
    pair = battle_categories.c.battle_id == votes.c.battle_id
    with store.engine.connect() as conn:
        categories = conn.execute(
            select(votes.c.mode, battle_categories.c.category, func.count())
            .select_from(votes.join(battle_categories, pair))
            .group_by(votes.c.mode, battle_categories.c.category)
        ).all()
        prompts = conn.execute(
            select(votes.c.mode, votes.c.prompt_key, func.count())
            .where(votes.c.prompt_key.is_not(None))
            .group_by(votes.c.mode, votes.c.prompt_key)
        ).all()
    return {(m, c): n for m, c, n in categories}, {(m, k): n for m, k, n in prompts}


def screening_counts(store) -> tuple[dict, dict]:
    with store.engine.connect() as conn:
        categories = conn.execute(select(category_counts)).all()
        prompts = conn.execute(select(prompt_counts)).all()
    return {(m, c): n for m, c, n in categories}, {(m, k): n for m, k, n in prompts}


def stored_elo(store, kind: str) -> dict | None:
    with store.engine.connect() as conn:
        ratings = conn.execute(select(elo_state.c.ratings).where(elo_state.c.kind == kind)).scalar()
    return None if ratings is None else json.loads(ratings)


def assert_maintained(store) -> None:
    """Counts equal a recount; for both kept filters the maintained board equals the scanned
    one exactly, and the stored Elo equals a full replay float for float."""
    assert maintained_counts(store) == recounted(store)
    assert screening_counts(store) == screening_recounted(store)
    for anonymous_only in (True, False):  # a low cap and the percentile rule, both ways
        which = VoteFilter(anonymous_only)
        for screen in (Screen(dedup_cap=2), Screen(dedup_rule="percentile")):
            counted = screen_votes(store, which, screen)
            read = screen_votes(store, which, screen, counted=False)
            assert (counted.rows, counted.excluded) == (read.rows, read.excluded)
            assert counted.dedup_cap == read.dedup_cap
    for anonymous_only, kind in ((True, "anonymous"), (False, "all")):
        args = dict(anonymous_only=anonymous_only, bootstrap_rounds=20, seed=7)
        kept = leaderboard.leaderboard_for(store, **args)
        scanned = leaderboard.leaderboard_for(store, **args, maintained=False)
        assert kept.to_dict() == scanned.to_dict()
        replay = online_elo(votes_in_order(store, anonymous_only))
        if replay:
            assert stored_elo(store, kind) == replay
            assert {r.model: r.elo for r in kept.leaderboard.rows} == {
                r.model: replay[r.model] for r in kept.leaderboard.rows
            }


CATEGORIES = ["ocr", "charts", "counting", "other"]


def app_vote(store, settings, rng: random.Random, mode: str = "anonymous") -> str:
    """A battle stored as the page stores it, with its prompt key (one of four, so some repeat)
    and up to two categories, then its vote."""
    a, b = rng.sample(MODELS, 2)
    image = check_image(png_bytes(), settings)
    bid = answered_battle(
        store, mode=mode, model_a=a, model_b=b, image=image, prompt="?", result_a=OK_A,
        result_b=OK_B,
    )  # fmt: skip
    labels = [(c, "rules") for c in rng.sample(CATEGORIES, rng.randint(0, 2))]
    store.screen_battle(
        bid, prompt_key=f"key{rng.randint(0, 3)}", identity_leak=None, categories=labels
    )
    store.record_vote(bid, rng.choice(list(Outcome)))
    return bid


def import_votes(store, tmp_path, rng: random.Random, n: int, start: float, name: str) -> None:
    """n votes one second apart from Unix time `start`, a tenth named, some self-battles."""
    path = tmp_path / f"{name}.jsonl"
    with path.open("w") as f:
        for i in range(n):
            a, b = rng.choice(MODELS), rng.choice(MODELS)
            row = {"model_a": a, "model_b": b, "winner": rng.choice(LABELS)}
            row |= {"tstamp": start + i + rng.random() / 2, "anony": rng.random() > 0.1}
            row["categories"] = rng.sample(CATEGORIES, rng.randint(0, 2))
            f.write(json.dumps(row) + "\n")
    import_file(store, path)


PAST = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
FUTURE = datetime(2031, 1, 1, tzinfo=UTC).timestamp()


def test_app_votes_and_imports_keep_the_counts_and_elo(store, settings, tmp_path):
    rng = random.Random(1)
    assert_maintained(store)  # empty
    for _ in range(6):
        app_vote(store, settings, rng)
    app_vote(store, settings, rng, mode="named")
    assert_maintained(store)
    for _ in range(3):  # newer votes: the stored state is resumed
        app_vote(store, settings, rng)
    assert_maintained(store)
    import_votes(store, tmp_path, rng, 300, PAST, "past")  # older than the state: a replay
    assert_maintained(store)
    import_votes(store, tmp_path, rng, 200, FUTURE, "future")  # newer: resumed
    assert_maintained(store)


def test_newer_votes_resume_the_stored_state(store, settings, tmp_path):
    """The state is read back and only the votes after it are applied."""
    rng = random.Random(2)
    import_votes(store, tmp_path, rng, 100, PAST, "first")
    leaderboard.leaderboard_for(store, bootstrap_rounds=0)
    import_votes(store, tmp_path, rng, 40, FUTURE, "later")
    kept = store.maintained(VoteFilter())
    assert kept.state is not None and kept.state.applied + len(kept.codes) == kept.votes
    assert 0 < len(kept.codes) <= 40
    assert_maintained(store)


def test_a_deleted_vote(store, settings, tmp_path):
    rng = random.Random(3)
    import_votes(store, tmp_path, rng, 200, PAST, "votes")
    assert_maintained(store)
    with store.engine.begin() as conn:
        first = conn.execute(select(func.min(votes.c.id))).scalar()
        conn.execute(delete(votes).where(votes.c.id == first))
        conn.execute(delete(votes).where(votes.c.id.in_([first + 5, first + 6, first + 7])))
    assert_maintained(store)


def test_a_deleted_battle_takes_its_vote_with_it(store, settings):
    """ON DELETE CASCADE takes the vote and the categories, in either order: the pair is
    counted off once (PostgreSQL fires cascaded AFTER triggers at the end of the statement, so
    0010 counts off in BEFORE triggers there)."""
    rng = random.Random(4)
    ids = [app_vote(store, settings, rng) for _ in range(8)]
    assert_maintained(store)
    with store.engine.begin() as conn:  # ON DELETE CASCADE fires the vote's trigger too
        conn.execute(delete(battles).where(battles.c.id == ids[1]))
    assert_maintained(store)
    with store.engine.begin() as conn:  # several battles in one statement
        conn.execute(delete(battles).where(battles.c.id.in_(ids[2:6])))
    assert_maintained(store)


def test_relabelled_and_removed_categories_keep_the_counts(store, settings):
    """Categories change after the vote: a classifier's relabel, a replacement, a battle that
    loses them all, rows deleted and changed behind the app."""
    rng = random.Random(14)
    ids = [app_vote(store, settings, rng) for _ in range(8)]
    app_vote(store, settings, rng, mode="named")
    unvoted = answered_battle(
        store, mode="anonymous", model_a="m0", model_b="m1", image=check_image(png_bytes(), settings),
        prompt="?", result_a=OK_A, result_b=OK_B,
    )  # fmt: skip
    assert_maintained(store)
    store.relabel(ids[0], [("charts", "model:x"), ("ocr", "model:x")], keep=("other",))
    store.set_categories({ids[1]: [], ids[2]: [("counting", "rules")], unvoted: [("ocr", "r")]})
    assert_maintained(store)
    with store.engine.begin() as conn:
        conn.execute(delete(battle_categories).where(battle_categories.c.battle_id == ids[3]))
        conn.execute(
            update(battle_categories)
            .where(battle_categories.c.battle_id == ids[4])
            .values(category="reasoning")
        )
    assert_maintained(store)
    with store.engine.begin() as conn:  # the unvoted battle's category counts once it has a vote
        conn.execute(update(votes).where(votes.c.battle_id == ids[5]).values(prompt_key=None))
    store.record_vote(unvoted, Outcome.A)
    assert_maintained(store)


def test_a_dataset_import_counts_its_categories_and_prompt_keys(store, settings, tmp_path):
    """The dataset round trip: the export of app battles imported into this database again
    (a dataset import stores prompts, so its battles carry prompt keys)."""
    from arena.store.dataset import export_dataset
    from arena.store.dataset_import import import_dataset

    rng = random.Random(15)
    for _ in range(6):
        app_vote(store, settings, rng)
    app_vote(store, settings, rng, mode="named")
    out = tmp_path / "battles.parquet"
    export_dataset(store, out)
    assert import_dataset(store, out) == 7
    assert_maintained(store)
    _, prompts = screening_counts(store)
    assert sum(prompts.values()) == 14  # every vote, its key counted twice over


@pytest.mark.parametrize(
    "change",
    [
        {"outcome": "bothbad"},
        {"model_a": "m-new"},
        {"mode": "named"},
        {"created_at": datetime(2023, 6, 1, tzinfo=UTC)},  # same counts, another Elo order
        {"prompt_key": "k-new"},
    ],
)
def test_an_updated_vote(store, settings, tmp_path, change):
    rng = random.Random(5)
    import_votes(store, tmp_path, rng, 200, PAST, "votes")
    assert_maintained(store)
    with store.engine.begin() as conn:
        some = conn.execute(select(votes.c.id).order_by(votes.c.id).limit(20)).scalars().all()
        conn.execute(update(votes).where(votes.c.id.in_(some[5:9])).values(**change))
    assert_maintained(store)


def test_an_update_of_other_columns_keeps_the_state(store, settings, tmp_path):
    rng = random.Random(6)
    import_votes(store, tmp_path, rng, 50, PAST, "votes")
    leaderboard.leaderboard_for(store, bootstrap_rounds=0)
    with store.engine.begin() as conn:
        conn.execute(update(votes).values(voter_id="someone"))
    kept = store.maintained(VoteFilter())
    assert kept.state is not None and len(kept.codes) == 0
    assert_maintained(store)


def votes_at_0006(engine, rng: random.Random, n: int, start: float, prefix: str) -> None:
    """n votes as the code of revision 0006 stored them (its columns only), one second apart."""
    from sqlalchemy import column, insert, table

    old_battles = table("battles", *map(column, ("id", "created_at", "mode", "model_a", "model_b")))
    columns = ("battle_id", "outcome", "created_at", "model_a", "model_b", "mode")
    old_votes = table("votes", *map(column, columns))
    rows = []
    for i in range(n):
        at = datetime.fromtimestamp(start + i + rng.random() / 2, UTC)
        mode = "anonymous" if rng.random() > 0.1 else "named"
        a, b = rng.choice(MODELS), rng.choice(MODELS)
        rows.append(
            dict(id=f"{prefix}{i:028d}", created_at=at, mode=mode, model_a=a, model_b=b,
                 outcome=rng.choice(list(Outcome)).value)
        )  # fmt: skip
    with engine.begin() as conn:
        conn.execute(
            insert(old_battles),
            [{k: r[k] for k in ("id", "created_at", "mode", "model_a", "model_b")} for r in rows],
        )
        conn.execute(
            insert(old_votes),
            [{**{k: r[k] for k in columns[1:]}, "battle_id": r["id"]} for r in rows],
        )


def test_the_screening_counts_migration_counts_what_is_stored(db_url, settings):
    """Battles voted at revision 0009 (before 0010's triggers), then the upgrade fills the
    counts; down and up again."""
    engine = eng.make_engine(db_url)
    eng.upgrade(engine, "0009")
    store = Store(engine, settings)
    rng = random.Random(16)
    for _ in range(6):
        app_vote(store, settings, rng)
    app_vote(store, settings, rng, mode="named")
    eng.upgrade(engine, "head")
    categories, prompts = screening_counts(store)
    assert sum(prompts.values()) == 7 and categories
    assert_maintained(store)
    eng.upgrade(engine, "0009")
    app_vote(store, settings, rng)
    eng.upgrade(engine, "head")
    assert_maintained(store)
    engine.dispose()


def test_the_migration_counts_the_stored_votes(db_url, settings, tmp_path):
    engine = eng.make_engine(db_url)
    eng.upgrade(engine, "0006")
    votes_at_0006(engine, random.Random(7), 300, PAST, "old0")
    eng.upgrade(engine, "head")
    store = Store(engine, settings)
    assert sum(maintained_counts(store).values()) == 300
    assert_maintained(store)
    eng.upgrade(engine, "0006")  # and back: the triggers go with the tables
    votes_at_0006(engine, random.Random(8), 10, FUTURE, "old1")
    eng.upgrade(engine, "head")
    assert_maintained(store)
    engine.dispose()


def test_recount_repairs_counts_changed_behind_the_triggers(store, settings, tmp_path):
    import_votes(store, tmp_path, random.Random(9), 100, PAST, "votes")
    app_vote(store, settings, random.Random(9))
    leaderboard.leaderboard_for(store, bootstrap_rounds=0)
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM vote_counts"))
        conn.execute(text("INSERT INTO vote_counts VALUES ('anonymous', 'x', 'y', 'a', 5)"))
        conn.execute(text("DELETE FROM prompt_counts"))
        conn.execute(text("UPDATE category_counts SET votes = votes + 3"))
    assert store.recount() == 101
    assert stored_elo(store, "anonymous") is None
    assert_maintained(store)


def test_an_older_state_never_replaces_a_newer_one(store, settings, tmp_path):
    import_votes(store, tmp_path, random.Random(10), 30, PAST, "votes")
    leaderboard.leaderboard_for(store, bootstrap_rounds=0)
    newest = stored_elo(store, "anonymous")
    kept = store.maintained(VoteFilter())
    stale = EloState({"m0": 1.0}, kept.last_at, kept.votes - 1, kept.edits)
    assert not store.save_elo_state(kept.kind, stale)
    assert stored_elo(store, "anonymous") == newest


def test_date_filters_are_not_maintained(store):
    assert store.maintained(VoteFilter(since=datetime(2024, 1, 1, tzinfo=UTC))) is None


@pytest.mark.parametrize("split", [0, 1, 17, 499, 500])
def test_resumed_elo_is_elo_loop_float_for_float(split):
    rng = random.Random(split)
    names = [f"m{i}" for i in range(12)]
    battles_ = [(rng.choice(names), rng.choice(names), rng.choice("ab") + "") for _ in range(500)]
    combos = sorted({(a, b, o) for a, b, o in battles_})
    index = {c: i for i, c in enumerate(combos)}
    import numpy as np

    codes = np.array([index[b] for b in battles_], dtype=np.int64)
    first = leaderboard.resume_elo({}, combos, codes[:split])
    resumed = leaderboard.resume_elo(first, combos, codes[split:])
    ids: dict[str, int] = {}
    left = [ids.setdefault(a, len(ids)) for a, _, _ in battles_]
    right = [ids.setdefault(b, len(ids)) for _, b, _ in battles_]
    scores = [1.0 if o == "a" else 0.0 for _, _, o in battles_]
    rating = elo_loop(left, right, scores, len(ids))
    assert resumed == {name: rating[i] for name, i in ids.items()}


def test_a_busy_sqlite_database_only_skips_saving_the_state(tmp_path):
    """While another connection holds the write lock (an import, say), the board is still read
    and right; only its Elo state is not saved, after a short wait instead of the 30 s timeout."""
    import sqlite3
    import time

    from arena.config import Settings
    from arena.store import maintained

    db = tmp_path / "busy.db"
    store = Store.open(Settings(db_url=f"sqlite:///{db}"))
    import_votes(store, tmp_path, random.Random(11), 50, PAST, "votes")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        board = leaderboard.leaderboard_for(store, bootstrap_rounds=0)
        assert time.monotonic() - started < maintained.SAVE_WAIT_MS / 1000 + 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert stored_elo(store, "anonymous") is None
    scanned = leaderboard.leaderboard_for(store, bootstrap_rounds=0, maintained=False)
    assert board.to_dict() == scanned.to_dict()
    leaderboard.leaderboard_for(store, bootstrap_rounds=0)  # free again: saved
    assert stored_elo(store, "anonymous") == online_elo(votes_in_order(store))
    store.engine.dispose()


def test_counts_changed_behind_the_triggers_fall_back_to_the_scan(
    store, settings, tmp_path, caplog
):
    """Where vote_counts disagrees with the votes (an edit with triggers off), the board is still
    the scanned one, and the log says to run db recount."""
    import_votes(store, tmp_path, random.Random(12), 60, PAST, "votes")
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE vote_counts SET votes = votes + 3"))
    args = dict(bootstrap_rounds=5, seed=1)
    with caplog.at_level("WARNING", logger="arena.store.maintained"):
        board = leaderboard.leaderboard_for(store, **args)
    assert board.to_dict() == leaderboard.leaderboard_for(store, **args, maintained=False).to_dict()
    assert "db recount" in caplog.text
    store.recount()
    assert_maintained(store)


@pytest.fixture
def pg_store(pg_url, tmp_path):
    s = Store.open(
        Settings(db_url=pg_url, models=str(tmp_path / "models.yaml"), **dict.fromkeys(LIMITS, 0))
    )
    yield s
    s.engine.dispose()


@pytest.mark.postgres
def test_an_app_vote_does_not_wait_for_an_import_on_the_same_pair(pg_store, tmp_path, monkeypatch):
    """PostgreSQL takes many writers at once: an import holding vote_counts' rows from its first
    chunk to its commit would make every app vote on those pairs wait for the whole import. The
    import counts its own votes in one upsert at its end instead (SQLite has one writer at a
    time, so there an app vote waits for any import, triggers or not)."""
    store, rng = pg_store, random.Random(7)
    settings = store.settings
    app_vote(store, settings, rng)
    paused, release = threading.Event(), threading.Event()
    write_chunk = transfer._write_chunk

    def pausing(conn, chunk, *args):
        written = write_chunk(conn, chunk, *args)
        if chunk:  # the first chunk is written, the transaction still open
            paused.set()
            release.wait(60)
        return written

    monkeypatch.setattr(transfer, "_CHUNK", 50)
    monkeypatch.setattr(transfer, "_write_chunk", pausing)
    path = tmp_path / "all-pairs.jsonl"
    rows = [
        {"model_a": a, "model_b": b, "winner": w, "categories": CATEGORIES}
        for a in MODELS
        for b in MODELS
        for w in LABELS
        if a != b
    ]  # every pair, outcome and category: the app vote's count rows are ones the import wrote
    path.write_text("".join(json.dumps(row) + "\n" for row in rows * 2))
    errors = []
    importer = threading.Thread(target=lambda: _run(errors, import_file, store, path))
    importer.start()
    try:
        assert paused.wait(30), "the import never wrote its first chunk"
        started = time.perf_counter()
        app_vote(store, settings, rng)  # a pair the import has written (every pair is in it)
        assert time.perf_counter() - started < 5
    finally:
        release.set()
        importer.join(60)
    assert not errors, errors
    assert_maintained(store)
    assert maintained_counts(store) == recounted(store)


@pytest.mark.postgres
def test_a_vote_and_a_relabel_of_its_battle_at_once_count_the_pair_once(pg_store):
    """Two transactions, one adding a category to a battle and one storing the battle's vote:
    neither sees the other's uncommitted row, so without 0010's lock on the battle row each
    would leave the pair to the other and it would never be counted. The vote waits for the
    relabel to commit, then counts the category."""
    store, rng = pg_store, random.Random(17)
    settings = store.settings
    app_vote(store, settings, rng)
    bid = answered_battle(
        store, mode="anonymous", model_a="m0", model_b="m1", image=check_image(png_bytes(), settings),
        prompt="?", result_a=OK_A, result_b=OK_B,
    )  # fmt: skip
    errors: list = []
    voter = threading.Thread(target=lambda: _run(errors, store.record_vote, bid, Outcome.B))
    with store.write_engine.connect() as conn:
        tx = conn.begin()
        conn.execute(
            battle_categories.insert().values(battle_id=bid, category="charts", source="model:x")
        )
        voter.start()
        voter.join(1.0)
        assert voter.is_alive(), "the vote did not wait for the relabel of its battle"
        tx.commit()
    voter.join(30)
    assert not errors, errors
    categories, _ = screening_counts(store)
    assert categories.get(("anonymous", "charts"), 0) >= 1
    assert_maintained(store)


def _run(errors: list, fn, *args) -> None:
    try:
        fn(*args)
    except Exception as exc:  # reported by the test's own thread
        errors.append(exc)
