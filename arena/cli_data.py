"""Command-line verbs on the votes: import, export, leaderboard."""

from __future__ import annotations

from pathlib import Path

from arena.config import Settings


def _store():
    from arena.store import Store

    return Store.open(Settings.from_env())


def cmd_import(args) -> int:
    from arena.store.transfer import import_file

    n = import_file(_store(), Path(args.file))
    print(f"imported {n} votes from {args.file}")
    return 0


def cmd_export(args) -> int:
    from arena.store.transfer import export_file

    fmt = args.format or Path(args.out).suffix.lstrip(".").lower() or "csv"
    n = export_file(_store(), Path(args.out), fmt)
    print(f"exported {n} votes to {args.out}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("import", help="import votes from JSON, JSON lines or CSV (all or nothing)")
    p.add_argument("file")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="export every vote in the import field names")
    p.add_argument("out")
    p.add_argument("--format", choices=["csv", "jsonl", "parquet"], help="default: from OUT's extension")
    p.set_defaults(func=cmd_export)
