"""Many writers at once: 8 processes x 2,000 battles-with-votes through the page's code path.

    python benchmarks/concurrent_votes.py                      # SQLite file in a temp dir
    python benchmarks/concurrent_votes.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test
    python benchmarks/concurrent_votes.py --no-sqlite --pg URL --pgbench   # and the server's ceiling

Each battle goes through arena.battle exactly as the page drives it (pick a pair, take the
battle's slot, ask both sides at once, store the turn, vote), with one difference: the models are fake and answer at
once (FastAnswer below), because this measures the database, not the models. At the end it
checks that exactly processes x battles battles and votes are stored, each vote on its own
battle, and prints votes per second and where the CPU went. Targets on the 2-core build machine:
1,000 votes/s on SQLite, 2,000 on PostgreSQL, zero errors.

--store-only calls Store.start_battle, add_turn and record_vote directly (no pair drawn, no
sides run): the storage layer's share. --pgbench also runs PostgreSQL's own pgbench (a C client,
next to no client CPU) with the same number of connections, each transaction being the app's
three statements (compiled from arena.store.statements, literal stand-ins for the values): the
server's ceiling for these writes on this machine at that moment, to read the app's figure
against.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, func, select, text  # noqa: E402

from arena import battle as flow  # noqa: E402
from arena.backends import Backends  # noqa: E402
from arena.backends.base import Backend, Finished  # noqa: E402
from arena.battle import SideResult  # noqa: E402
from arena.config import LIMITS, Settings  # noqa: E402
from arena.images import check_image  # noqa: E402
from arena.kinds import Outcome, Requester  # noqa: E402
from arena.registry import load_registry  # noqa: E402
from arena.store import Store  # noqa: E402
from arena.store.schema import battles as battles_t  # noqa: E402
from arena.store.schema import votes as votes_t  # noqa: E402

REGISTRY = """models:
""" + "".join(f"  - {{id: fake-{i}, backend: transformers, model: fake/{i}}}\n" for i in range(6))


class FastAnswer(Backend):
    """A fake model that answers at once (this benchmark measures the database only)."""

    def generate(self, messages):
        yield from ("A ", "fast ", "answer.")
        yield Finished(tokens=3)

    def check(self) -> str:
        return "ok"


def worker(
    db_url: str, registry_path: str, n: int, seed: int, out, ready, go, store_only: bool = False
) -> None:
    settings = Settings(db_url=db_url, models=registry_path, **dict.fromkeys(LIMITS, 0))
    registry = load_registry(registry_path)
    store = Store.open(settings)
    pool = Backends(registry, settings)
    for spec in registry.specs:
        pool._by_id[spec.id] = FastAnswer(spec, settings)
    rng = random.Random(seed)
    image = check_image(_png(seed), settings)
    session = uuid.uuid4().hex
    me = Requester(session_id=session, voter_id=f"session:{session}", client_key=f"client-{seed}")
    errors = 0
    outcomes = list(Outcome)
    ready.put(seed)
    go.wait()
    cpu_start = time.process_time()
    answer = SideResult("A fast answer.", ttft=0.001, total=0.002, tokens=3)
    for _ in range(n):
        try:
            if store_only:  # the storage layer alone: no pair drawn, no sides run
                bid = store.start_battle(
                    mode="anonymous", model_a="fake-0", model_b="fake-1", image=image, requester=me
                )
                store.add_turn(bid, "What is in the image?", answer, answer)
                store.record_vote(bid, rng.choice(outcomes), me)
                continue
            a, b = flow.pick_models(registry, "anonymous", rng=rng)
            battle = flow.Battle(mode="anonymous", spec_a=a, spec_b=b, image=image)
            flow.start(store, battle, me)
            for _event in flow.ask(pool, battle, "What is in the image?"):
                pass
            flow.save_turn(store, battle)
            flow.cast_vote(store, battle, rng.choice(outcomes), me)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            errors += 1
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
    out.put((errors, time.process_time() - cpu_start))


def _png(seed: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (seed * 40 % 256, 80, 120)).save(buf, "PNG")
    return buf.getvalue()


def run(db_url: str, processes: int, per_process: int, store_only: bool = False) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        registry_path = Path(tmp) / "models.yaml"
        registry_path.write_text(REGISTRY)
        Store.open(Settings(db_url=db_url))  # migrate once before the clock starts
        ctx = mp.get_context("spawn")
        out, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        procs = [
            ctx.Process(
                target=worker,
                args=(db_url, str(registry_path), per_process, i, out, ready, go, store_only),
            )
            for i in range(processes)
        ]
        for p in procs:
            p.start()
        for _ in procs:  # every process has imported, connected and built its pool
            ready.get()
        busy_before = _machine_busy_s()
        start = time.perf_counter()
        go.set()
        reports = [out.get() for _ in procs]
        elapsed = time.perf_counter() - start
        busy_after = _machine_busy_s()
        for p in procs:
            p.join()
    errors = sum(e for e, _ in reports)
    client_cpu = sum(c for _, c in reports)
    engine = create_engine(db_url)
    with engine.connect() as conn:
        n_battles = conn.execute(select(func.count()).select_from(battles_t)).scalar_one()
        n_votes = conn.execute(select(func.count()).select_from(votes_t)).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(votes_t.c.battle_id)))).scalar_one()
    engine.dispose()
    expected = processes * per_process
    ok = n_battles == n_votes == distinct == expected and errors == 0
    print(
        f"{engine.dialect.name:10} {processes} processes x {per_process} {'store-only ' if store_only else ''}battles: {elapsed:6.2f} s "
        f"(from the start signal to the last vote), {expected / elapsed:7.0f} votes/s; stored {n_battles} battles, "
        f"{n_votes} votes on {distinct} distinct battles, {errors} errors -> {'OK' if ok else 'MISMATCH'}"
    )
    if busy_before is not None:  # where the CPU went while the clock ran
        busy = busy_after - busy_before
        print(
            f"{'':10} CPU per battle-with-vote: {client_cpu / expected * 1e3:.2f} ms in the {processes} processes, "
            f"{(busy - client_cpu) / expected * 1e3:.2f} ms elsewhere (the database server, the kernel); "
            f"{busy / elapsed:.2f} of {os.cpu_count()} cores busy"
        )
    return ok


def _machine_busy_s() -> float | None:
    """CPU seconds this machine spent busy so far (Linux /proc/stat), or None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


# pgbench stand-ins for the statements' parameters (:client_id and :r are pgbench variables)
PGBENCH_VALUES = {
    "id": "'b' || :client_id || '_' || :r", "battle_id": "'b' || :client_id || '_' || :r",
    "sha256": "'img' || :client_id", "session_id": "'s' || :client_id", "voter_id": "'s' || :client_id",
    "created_at": "now()", "format": "'PNG'", "width": "32", "height": "32", "data": "'\\x89504e47'::bytea",
    "mode": "'anonymous'", "client_key": "'c' || :client_id", "model_a": "'fake-1'", "model_b": "'fake-2'", "prompt": "'What is in the image?'",
    "outcome": "'tie'", "error_a": "NULL", "error_b": "NULL", "answer_a": "'A fast answer.'",
    "answer_b": "'A fast answer.'", "ttft_a": "0.001", "ttft_b": "0.001", "total_a": "0.002",
    "total_b": "0.002", "tokens_a": "3", "tokens_b": "3", "ok_a": "true", "ok_b": "true",
}  # fmt: skip


def pgbench_script(dialect) -> str:
    """The battle's start, its turn and the vote, as the app sends them, with literal stand-ins."""
    import re

    from arena.store import statements

    lines = ["\\set r random(1, 1000000000000)"]
    writes = (
        statements.start_battle("postgresql", ()),
        statements.guarded_turn(),
        statements.guarded_vote("postgresql", True, ()),
    )
    for statement in writes:
        compiled = statement.compile(dialect=dialect)
        fixed = {k: v for k, v in compiled.params.items() if v is not None}

        def value(match, fixed=fixed):
            name = match.group(1)
            if name in fixed:
                v = fixed[name]
                return str(v) if isinstance(v, int) else "'" + str(v).replace("'", "''") + "'"
            return f"({PGBENCH_VALUES[name]})"

        lines.append(" ".join(re.sub(r"%\((\w+)\)s", value, compiled.string).split()) + ";")
    return "\n".join(lines) + "\n"


def run_pgbench(db_url: str, clients: int, transactions: int) -> None:
    import shutil
    import subprocess

    from sqlalchemy.engine import make_url

    exe = shutil.which("pgbench") or next(
        iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))), None
    )
    if exe is None:
        print("pgbench        not found (Debian: apt install postgresql-client); skipped")
        return
    url = make_url(db_url)
    Store.open(Settings(db_url=db_url))  # the schema
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "battle_and_vote.sql"
        script.write_text(pgbench_script(create_engine(db_url).dialect))
        env = {**os.environ, "PGOPTIONS": url.query.get("options", "")}
        cmd = [str(exe), "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)),
               "-t", str(transactions), "-f", str(script), "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
               "-U", url.username or "postgres", url.database or "postgres"]  # fmt: skip
        busy_before = _machine_busy_s()
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        busy_after = _machine_busy_s()
    if done.returncode != 0:
        print(f"pgbench        failed: {(done.stderr or done.stdout).strip().splitlines()[-1]}")
        return
    n = clients * transactions
    line = f"pgbench    {clients} connections x {transactions} battle-and-vote transactions: {n / elapsed:7.0f} per second"
    if busy_before is not None:
        line += f", {(busy_after - busy_before) / n * 1e3:.2f} ms of CPU each (server, kernel and pgbench)"
    print(line)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--battles", type=int, default=2000, help="battles per process")
    parser.add_argument("--pg", help="PostgreSQL URL to benchmark as well (a fresh schema is used)")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run")
    parser.add_argument(
        "--pgbench", action="store_true", help="with --pg: also the server's ceiling (pgbench)"
    )
    parser.add_argument(
        "--store-only",
        action="store_true",
        help="call Store.start_battle, add_turn and record_vote alone (no battle code)",
    )
    args = parser.parse_args()
    ok = True
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            ok &= run(f"sqlite:///{tmp}/bench.db", args.processes, args.battles, args.store_only)
    if args.pg:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.pg)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in args.pg else "?"
        try:
            ok &= run(
                f"{args.pg}{sep}options=-csearch_path%3D{schema}",
                args.processes,
                args.battles,
                args.store_only,
            )
            if args.pgbench:
                run_pgbench(
                    f"{args.pg}{sep}options=-csearch_path%3D{schema}", args.processes, args.battles
                )
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
