"""The battle and vote writes that run on the driver's connection (arena/store/driver.py), on a
real SQLite file and the real PostgreSQL server: same rows, same errors, same retries."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, insert, select
from sqlalchemy.exc import IntegrityError

from arena.battle import SideResult
from arena.config import LIMITS, Settings
from arena.images import check_image
from arena.kinds import Outcome, Requester
from arena.store import Store
from arena.store.driver import Writer
from arena.store.schema import battles, images, turns, votes
from tests.conftest import png_bytes
from tests.stored import answered_battle, count_rows, image_data, stored_battle

OK = SideResult("an answer", ttft=0.25, total=1.5, tokens=4)


def test_rows_match_what_sqlalchemy_writes(store, settings):
    """Timestamps, floats, bytes and NULLs written on the driver read back through SQLAlchemy
    exactly as SQLAlchemy itself writes them, so time filters and ordering keep working."""
    image = check_image(png_bytes(), settings)
    before = datetime.now(UTC)
    bid = answered_battle(store,
        mode="named", model_a="m1", model_b="m2", image=image, prompt="p", result_a=OK,
        result_b=SideResult("", error="boom"), session_id=None,
    )  # fmt: skip
    after = datetime.now(UTC)
    row = stored_battle(store, bid)
    created = (
        row["created_at"] if row["created_at"].tzinfo else row["created_at"].replace(tzinfo=UTC)
    )
    assert before <= created <= after
    turn = row["turns"][0]
    assert (turn["ttft_a"], turn["total_a"], turn["tokens_a"], turn["error_a"]) == (
        0.25,
        1.5,
        4,
        None,
    )
    assert (turn["answer_b"], turn["error_b"]) == ("", "boom")
    assert image_data(store, image.sha256) == image.data
    # a row SQLAlchemy writes a second later sorts after it and is found by the same filter
    later = created + timedelta(seconds=1)
    with store.engine.begin() as conn:
        conn.execute(
            insert(images).values(
                sha256="x" * 64, format="PNG", width=1, height=1, data=b"x", created_at=later
            )
        )
    with store.engine.connect() as conn:
        newer = (
            conn.execute(select(images.c.sha256).where(images.c.created_at > created))
            .scalars()
            .all()
        )
    assert newer == ["x" * 64]


def test_driver_errors_are_sqlalchemy_errors(store, settings):
    """A refusal on the driver's connection is the same IntegrityError conn.execute raises,
    and the connection goes back to the pool usable."""
    bid = answered_battle(store,
        mode="anonymous", model_a="m1", model_b="m2", image=check_image(png_bytes(), settings),
        prompt="p", result_a=OK, result_b=OK,
    )  # fmt: skip
    row = dict(
        battle_id=bid, outcome="a", voter_id=None, model_a="m1", model_b="m2", mode="anonymous"
    )
    plain_vote = store.writer.statement(
        "plain vote", lambda: insert(votes).values(**row, created_at=datetime.now(UTC))
    )
    store.writer.one(plain_vote, {})
    with pytest.raises(IntegrityError):  # the unique constraint: one vote per battle
        store.writer.one(plain_vote, {})
    with store.engine.connect() as conn:
        assert conn.execute(select(votes.c.battle_id)).scalars().all() == [bid]
    assert stored_battle(store, answered_battle(store,
        mode="anonymous", model_a="m1", model_b="m2", image=check_image(png_bytes(), settings),
        prompt="p", result_a=OK, result_b=OK,
    )) is not None  # fmt: skip


def test_failed_sqlite_write_rolls_back_everything(tmp_path):
    """SQLite: a battle whose row cannot be written leaves no image behind either (one transaction)."""
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'a.db'}", **dict.fromkeys(LIMITS, 0))
    store = Store.open(settings)
    with store.engine.begin() as conn:  # make the battle insert fail after the image insert
        conn.exec_driver_sql(
            "CREATE TRIGGER no_battles BEFORE INSERT ON battles BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
    image = check_image(png_bytes(), settings)
    with pytest.raises(IntegrityError):
        store.start_battle(mode="anonymous", model_a="m1", model_b="m2", image=image)
    assert (count_rows(store, battles), count_rows(store, images), count_rows(store, turns)) == (
        0,
        0,
        0,
    )
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER no_battles")
    store.start_battle(mode="anonymous", model_a="m1", model_b="m2", image=image)
    assert (count_rows(store, battles), count_rows(store, images)) == (1, 1)


def _write_battles(url: str, n: int, seed: int) -> None:
    settings = Settings(db_url=url, **dict.fromkeys(LIMITS, 0))
    store = Store.open(settings)
    image = check_image(png_bytes(color=(seed, 0, 0)), settings)
    for _ in range(n):
        bid = answered_battle(store,
            mode="anonymous", model_a="m1", model_b="m2", image=image, prompt="p", result_a=OK, result_b=OK,
            session_id=f"s{seed}",
        )  # fmt: skip
        store.record_vote(bid, Outcome.TIE, Requester(session_id=f"s{seed}", voter_id=f"s{seed}"))


def test_sqlite_writers_in_several_processes_queue_on_the_file_lock(tmp_path):
    """Four processes write one SQLite file at once through the writers' lock file: all land."""
    url = f"sqlite:///{tmp_path / 'many.db'}"
    Store.open(Settings(db_url=url))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_battles, args=(url, 60, seed)) for seed in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert (tmp_path / "many.db-writers.lock").exists()
    store = Store.open(Settings(db_url=url))
    assert (count_rows(store, battles), count_rows(store, votes)) == (240, 240)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_memory_sqlite_needs_no_lock_file(url):
    assert Writer(create_engine(url))._lock_path is None
