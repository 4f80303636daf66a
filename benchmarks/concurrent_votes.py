"""Many writers at once: 8 processes x 2,000 battles-with-votes through the page's code path.

    python benchmarks/concurrent_votes.py                      # SQLite file in a temp dir
    python benchmarks/concurrent_votes.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

Each battle goes through arena.battle exactly as the page drives it (pick a pair, ask both
sides at once, store the turn, vote), with one difference: the models are fake and answer at
once (FastAnswer below), because this measures the database, not the models. At the end it
checks that exactly processes x battles battles and votes are stored, each vote on its own
battle, and prints votes per second. Targets on the 2-core build machine: 1,000 votes/s on
SQLite, 2,000 on PostgreSQL, zero errors.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, func, select, text  # noqa: E402

from arena import battle as battles  # noqa: E402
from arena.backends import Backends  # noqa: E402
from arena.backends.base import Backend  # noqa: E402
from arena.config import Settings  # noqa: E402
from arena.images import check_image  # noqa: E402
from arena.outcome import Outcome  # noqa: E402
from arena.registry import load_registry  # noqa: E402
from arena.store import Store  # noqa: E402
from arena.store.schema import battles as battles_t  # noqa: E402
from arena.store.schema import votes as votes_t  # noqa: E402

REGISTRY = """models:
""" + "".join(f"  - {{id: fake-{i}, backend: transformers, model: fake/{i}}}\n" for i in range(6))


class FastAnswer(Backend):
    """A fake model that answers at once (this benchmark measures the database only)."""

    last_token_count = 3

    def stream(self, messages):
        yield from ("A ", "fast ", "answer.")

    def check(self) -> str:
        return "ok"


def worker(db_url: str, registry_path: str, n: int, seed: int, out, ready, go) -> None:
    settings = Settings(db_url=db_url, models=registry_path, battles_per_minute=0, votes_per_hour=0)
    registry = load_registry(registry_path)
    store = Store.open(settings)
    pool = Backends(registry, settings)
    for spec in registry.specs:
        pool._by_id[spec.id] = FastAnswer(spec, settings)
    rng = random.Random(seed)
    image = check_image(_png(seed), settings)
    session = uuid.uuid4().hex
    errors = 0
    outcomes = list(Outcome)
    ready.put(seed)
    go.wait()
    for _ in range(n):
        try:
            a, b = battles.pick_models(registry, "anonymous", rng=rng)
            battle = battles.Battle(mode="anonymous", spec_a=a, spec_b=b, image=image)
            for _event in battles.ask(pool, battle, "What is in the image?"):
                pass
            battles.save_turn(store, battle, session)
            battles.vote(store, battle, rng.choice(outcomes), voter_id=session, session_id=session)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            errors += 1
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
    out.put(errors)


def _png(seed: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (seed * 40 % 256, 80, 120)).save(buf, "PNG")
    return buf.getvalue()


def run(db_url: str, processes: int, per_process: int) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        registry_path = Path(tmp) / "models.yaml"
        registry_path.write_text(REGISTRY)
        Store.open(Settings(db_url=db_url))  # migrate once before the clock starts
        ctx = mp.get_context("spawn")
        out, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        procs = [
            ctx.Process(target=worker, args=(db_url, str(registry_path), per_process, i, out, ready, go))
            for i in range(processes)
        ]
        for p in procs:
            p.start()
        for _ in procs:  # every process has imported, connected and built its pool
            ready.get()
        start = time.perf_counter()
        go.set()
        errors = sum(out.get() for _ in procs)
        elapsed = time.perf_counter() - start
        for p in procs:
            p.join()
    engine = create_engine(db_url)
    with engine.connect() as conn:
        n_battles = conn.execute(select(func.count()).select_from(battles_t)).scalar_one()
        n_votes = conn.execute(select(func.count()).select_from(votes_t)).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(votes_t.c.battle_id)))).scalar_one()
    engine.dispose()
    expected = processes * per_process
    ok = n_battles == n_votes == distinct == expected and errors == 0
    print(
        f"{engine.dialect.name:10} {processes} processes x {per_process} battles: {elapsed:6.2f} s "
        f"(from the start signal to the last vote), {expected / elapsed:7.0f} votes/s; stored {n_battles} battles, "
        f"{n_votes} votes on {distinct} distinct battles, {errors} errors -> {'OK' if ok else 'MISMATCH'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--battles", type=int, default=2000, help="battles per process")
    parser.add_argument("--pg", help="PostgreSQL URL to benchmark as well (a fresh schema is used)")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run")
    args = parser.parse_args()
    ok = True
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            ok &= run(f"sqlite:///{tmp}/bench.db", args.processes, args.battles)
    if args.pg:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.pg)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in args.pg else "?"
        try:
            ok &= run(f"{args.pg}{sep}options=-csearch_path%3D{schema}", args.processes, args.battles)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
