"""Time style control at scale: the whole `python -m arena leaderboard --style-control --json`
process, its scan and its fit apart, and migration 0006's backfill of stored battles.

    python benchmarks/style_control.py [--sizes 1000000 10000000] [--models 20] [--backfill 1000000]
                                       [--pg URL] [--keep DIR] [--fit-sizes N ...]

For each size, votes among M models (known ratings, a real length effect, 15 % ties) with
conv_metadata go through a parquet file and `arena.store.transfer.import_file` (`python -m arena import`,
the real import, with its peak memory) into a fresh SQLite file (and, with --pg, a fresh schema of that PostgreSQL database). Then:
the whole leaderboard process (start-up, scan, fit, sandwich intervals, JSON) timed from outside,
and inside one process the scan (store -> StyleBattles) and the fit on its own.
--backfill N builds a database at revision 0005 holding N answered and voted battles (one turn
each, markdown answers) with plain SQL, then times `python -m arena db upgrade` (counting every
turn, summing every vote). --fit-sizes N times the fit alone on N battles of the same kind built
in memory (--sizes 0 skips the databases). Targets (issue 11, on the 2-core build machine, 1M battles): the fit
under 3 s, the whole command under 8 s, the backfill in minutes.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arena import leaderboard  # noqa: E402
from arena.config import Settings  # noqa: E402
from arena.ratings import StyleBattles, fit_style  # noqa: E402
from arena.ratings.contextual import sandwich_intervals  # noqa: E402
from arena.store import Store, VoteFilter  # noqa: E402

LABELS = np.array(["model_a", "model_b", "tie"])


# each style feature's conv_metadata columns (their sum is the feature's count on one side)
PARTS = {
    "length": ("sum_assistant_{side}_tokens",),
    "headers": ("header_count_{side}.h1", "header_count_{side}.h2"),
    "lists": ("list_count_{side}.ordered", "list_count_{side}.unordered"),
    "bold": ("bold_count_{side}.**",),
}


def styled_votes(votes: int, models: int, seed: int):
    """Votes among `models` with flat conv_metadata columns, where the longer answer wins more
    often: (model a, model b, winner code 0 a / 1 b / 2 tie, {column: counts})."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(0, 0.7, models)
    verbosity = rng.uniform(80, 700, models)
    a = rng.integers(0, models, votes)
    b = (a + rng.integers(1, models, votes)) % models
    cols = {}
    for side, m in (("a", a), ("b", b)):
        cols[f"sum_assistant_{side}_tokens"] = rng.poisson(verbosity[m])
        cols[f"header_count_{side}.h1"] = rng.poisson(0.5, votes)
        cols[f"header_count_{side}.h2"] = rng.poisson(1.0, votes)
        cols[f"list_count_{side}.ordered"] = rng.poisson(2.0, votes)
        cols[f"list_count_{side}.unordered"] = rng.poisson(3.0, votes)
        cols[f"bold_count_{side}.**"] = rng.poisson(2.0, votes)
    ta, tb = cols["sum_assistant_a_tokens"], cols["sum_assistant_b_tokens"]
    logit = strength[a] - strength[b] + 1.2 * (ta - tb) / (ta + tb + 1)
    code = np.where(rng.random(votes) < 1 / (1 + np.exp(-logit)), 0, 1)
    code = np.where(rng.random(votes) < 0.15, 2, code)
    return a, b, code, cols


def _names(models: int) -> list[str]:
    return [f"model-{i:02d}" for i in range(models)]


def styled_parquet(path: Path, votes: int, models: int, seed: int) -> None:
    """styled_votes as a file for `python -m arena import`."""
    a, b, code, cols = styled_votes(votes, models, seed)
    names = np.array(_names(models))
    frame = pd.DataFrame(
        {
            "model_a": names[a],
            "model_b": names[b],
            "winner": LABELS[code],
            "tstamp": 1.7e9 + 0.5 * np.arange(votes),
            **cols,
        }
    )
    frame.to_parquet(path, index=False)


def styled_battles(votes: int, models: int, seed: int) -> StyleBattles:
    """styled_votes built in memory (no database), as the scan hands them to the fit: the four
    features (a - b) / (a + b + 1) of each count."""
    a, b, code, cols = styled_votes(votes, models, seed)
    side = {
        s: np.stack(
            [sum(cols[c.format(side=s)] for c in parts) for parts in PARTS.values()], axis=1
        ).astype(np.float64)
        for s in ("a", "b")
    }
    features = (side["a"] - side["b"]) / (side["a"] + side["b"] + 1)
    score = np.array([1.0, 0.0, 0.5])[code]
    return StyleBattles(
        tuple(_names(models)), a.astype(np.int64), b.astype(np.int64), score, features
    )


def fit_in_memory(votes: int, models: int) -> None:
    """The fit alone (features in memory -> ratings, coefficients, sandwich intervals)."""
    battles = styled_battles(votes, models, seed=votes)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        sandwich_intervals(fit_style(battles))
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  {votes:,} battles in memory, {models} models: fit + sandwich intervals "
        f"{min(times):.2f} s (best of 3; {', '.join(f'{t:.2f}' for t in times)}; "
        f"peak {peak:.0f} MiB)",
        flush=True,
    )


def arena_cli(db_url: str, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "ARENA_DB_URL": db_url, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "arena", *args], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"arena {' '.join(args)} failed: {done.stderr.strip()}")
    return elapsed, done


def one_size(db_url: str, votes: int, models: int, work: Path, reuse: bool = False) -> None:
    path = work / f"styled-{votes}.parquet"
    if not path.exists():
        styled_parquet(path, votes, models, seed=votes)
    if reuse:
        print(f"  reusing the database of an earlier run ({votes:,} votes)")
    else:
        took, _ = arena_cli(db_url, "import", str(path))
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"  `import` of {votes:,} votes with conv_metadata: {took:.1f} s (peak {peak:.0f} MiB)"
        )
    store = Store.open(Settings(db_url=db_url))
    for run in ("first", "second"):  # the first after an import also replays online Elo once
        whole, _ = arena_cli(db_url, "leaderboard", "--style-control", "--json")
        print(f"  whole `leaderboard --style-control --json` process, {run} run: {whole:.2f} s")
    start = time.perf_counter()
    _, battles, _ = leaderboard._style_scan(store, VoteFilter(), 0, np.zeros(0, np.int64))
    scan = time.perf_counter() - start
    times = []
    for _ in range(3):
        start = time.perf_counter()
        sandwich_intervals(fit_style(battles))
        times.append(time.perf_counter() - start)
    print(f"  scan (store -> one row per battle): {scan:.2f} s")
    print(f"  fit + sandwich intervals (best of 3): {min(times):.2f} s")
    start = time.perf_counter()
    leaderboard.leaderboard_for(store, style_control=True)
    print(f"  leaderboard_for(style_control=True) in process: {time.perf_counter() - start:.2f} s")
    store.engine.dispose()


def backfill(db_url: str, battles: int) -> None:
    """A database at 0005 with `battles` voted battles of one turn each, then `db upgrade`."""
    from sqlalchemy import text

    from arena.store import engine as eng

    engine = eng.make_engine(db_url)
    eng.upgrade(engine, revision="0005")
    answer = "# Plan\n\n1. **Look** at it\n2. Count\n- one\n- two\n```\n# not a header\n```\nDone."
    with engine.begin() as conn:
        for start in range(0, battles, 100_000):
            ids = [f"{i:032x}" for i in range(start, min(start + 100_000, battles))]
            conn.execute(
                text(
                    "INSERT INTO battles (id, created_at, mode, model_a, model_b, source) "
                    "VALUES (:id, '2026-01-01 00:00:00', 'anonymous', 'a', 'b', 'arena')"
                ),
                [{"id": i} for i in ids],
            )
            conn.execute(
                text(
                    "INSERT INTO turns (battle_id, idx, created_at, prompt, answer_a, tokens_a, "
                    "answer_b, ok_a, ok_b) VALUES (:id, 0, '2026-01-01 00:00:00', 'What?', :a, "
                    "40, :b, true, true)"
                ),
                [{"id": i, "a": answer, "b": answer[: 20 + n % 50]} for n, i in enumerate(ids)],
            )
            conn.execute(
                text(
                    "INSERT INTO votes (battle_id, outcome, created_at, model_a, model_b, mode) "
                    "VALUES (:id, 'a', '2026-01-01 00:00:00', 'a', 'b', 'anonymous')"
                ),
                [{"id": i} for i in ids],
            )
    engine.dispose()
    upgrade, _ = arena_cli(db_url, "db", "upgrade")
    print(
        f"  `db upgrade` 0005 -> 0006 over {battles:,} battles (turns and votes): {upgrade:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument(
        "--fit-sizes",
        type=int,
        nargs="+",
        default=[],
        metavar="N",
        help="also time the fit alone on N battles built in memory (no import)",
    )
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--backfill", type=int, default=1_000_000, metavar="N")
    parser.add_argument("--pg", metavar="URL", help="also on this PostgreSQL database")
    parser.add_argument(
        "--keep", metavar="DIR", help="keep the generated files and databases here (and reuse them)"
    )
    args = parser.parse_args()
    print("command: python benchmarks/style_control.py " + " ".join(sys.argv[1:]))
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="style-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    for votes in (n for n in args.sizes if n > 0):
        print(f"SQLite, {votes:,} votes among {args.models} models:")
        db = work / f"styled-{votes}.db"
        reuse = bool(args.keep) and db.exists()  # --keep: the database stays for the next run
        one_size(f"sqlite:///{db}", votes, args.models, work, reuse)
        if not args.keep:
            db.unlink(missing_ok=True)
        if args.pg:
            print(f"PostgreSQL, {votes:,} votes among {args.models} models:")
            with pg_schema(args.pg) as url:
                one_size(url, votes, args.models, work)
    if args.fit_sizes:  # after the imports: a child forked from a big process reports its size
        print("The fit alone, battles in memory:")
        for votes in args.fit_sizes:
            fit_in_memory(votes, args.models)
    if args.backfill:
        print(f"SQLite backfill, {args.backfill:,} battles:")
        backfill(f"sqlite:///{work / 'backfill.db'}", args.backfill)
        if args.pg:
            print(f"PostgreSQL backfill, {args.backfill:,} battles:")
            with pg_schema(args.pg) as url:
                backfill(url, args.backfill)


class pg_schema:
    """A fresh schema on the PostgreSQL database, used through search_path, dropped after."""

    def __init__(self, url: str):
        self.url, self.schema = url, f"bench_{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> str:
        from sqlalchemy import create_engine, text

        self.admin = create_engine(self.url)
        with self.admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {self.schema}"))
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}options=-csearch_path%3D{self.schema}"

    def __exit__(self, *exc) -> None:
        from sqlalchemy import text

        with self.admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {self.schema} CASCADE"))
        self.admin.dispose()


if __name__ == "__main__":
    main()
