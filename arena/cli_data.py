"""Command-line verbs on the votes: import, export, export-dataset, leaderboard."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from arena.config import Settings
from arena.errors import InputError


def _store(settings: Settings | None = None):
    """The store of these settings (default: the environment's); every command opens it so."""
    from arena.store import Store

    return Store.open(settings or Settings.from_env())


def cmd_import(args) -> int:
    from arena.store.dataset import is_dataset
    from arena.store.transfer import import_file

    path = Path(args.file)
    if not is_dataset(path):
        n = import_file(_store(), path)
        print(f"imported {n} votes from {args.file}")
        return 0
    from tqdm import tqdm

    from arena.store.dataset_import import dataset_rows

    store = _store()
    with tqdm(total=dataset_rows(path), desc="import", unit=" battles", file=sys.stderr) as bar:
        n = import_file(store, path, progress=bar.update)
    print(f"imported {n} battles from {args.file}")
    return 0


def cmd_export_dataset(args) -> int:
    from tqdm import tqdm

    from arena.store.dataset import export_dataset

    since = _moment("--since", args.since, end=False)
    store = _store()
    with tqdm(desc="export-dataset", unit=" battles", file=sys.stderr) as bar:
        n = export_dataset(
            store, Path(args.out), since=since, include_unvoted=args.include_unvoted,
            progress=bar.update,
        )  # fmt: skip
    print(f"exported {n} battles to {args.out}")
    return 0


def cmd_export(args) -> int:
    from arena.store.transfer import export_file

    fmt = args.format or Path(args.out).suffix.lstrip(".").lower() or "csv"
    n = export_file(_store(), Path(args.out), fmt)
    print(f"exported {n} votes to {args.out}")
    return 0


def cmd_leaderboard(args) -> int:
    from arena.leaderboard import leaderboard_for, parse_anchor

    anchor = parse_anchor(args.anchor) if args.anchor is not None else None
    if args.bootstrap < 0:
        raise InputError(f"--bootstrap {args.bootstrap}: the number of rounds must be 0 or more.")
    since = _moment("--since", args.since, end=False)
    until = _moment("--until", args.until, end=True)
    store = _store()
    board = leaderboard_for(
        store,
        anonymous_only=not args.all_battles,
        since=since,
        until=until,
        bootstrap_rounds=args.bootstrap,
        seed=args.seed,
        anchor=anchor,
        style_control=args.style_control,
        ci=args.ci,
        style_reg=args.style_reg,
        category=args.category,
        screen=_screen(args, store.settings),
    )
    if args.json:
        out = board.to_dict()
        if args.style_control:  # also when no vote carries style counts (the warning says so)
            out.setdefault("style_control", True)
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(format_board(board))
    return 0


def _screen(args, settings):
    from arena.screened import Screen

    return Screen.from_settings(
        settings,
        identity_leaks=not args.include_identity_leaks,
        flagged_voters=args.exclude_flagged_voters,
        voter_test=args.flagged_voters,
        sample_images=args.exclude_sample_images,
        seed=args.seed,
        **({"dedup_cap": 0} if args.no_dedup else {}),
        **({"dedup_rule": args.dedup_rule} if args.dedup_rule else {}),
    )


def _moment(flag: str, text: str | None, end: bool) -> datetime | None:
    """A date (a whole day, UTC; --until includes it) or an ISO date-time (naive = UTC)."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text) + timedelta(days=1 if end else 0)
            return datetime.combine(day, time(), tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{flag} {text!r}: expected a date (2024-02-20) or an ISO date-time."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_board(board) -> str:
    """The board as aligned text: a summary line, the table, the warnings, the position bias."""
    which = "anonymous battles only" if board.anonymous_only else "all battles"
    if board.empty:
        why = "".join(f"\nwarning: {w}" for w in board.leaderboard.warnings if "No votes" not in w)
        return f"No votes to rate ({which}): import votes or run battles first.{why}"
    lb = board.leaderboard
    last = board.last_vote.strftime("%Y-%m-%d %H:%M:%S UTC") if board.last_vote else "-"
    if board.category:
        which += f", category {board.category}"
    lines = [f"{board.votes:,} votes ({which}) among {len(lb.rows)} models; last vote {last}"]
    if board.screened.rows:
        lines.append(board.screened.summary())
    if lb.style is not None:
        lines.append(style_line(lb.style))
    lines.append("")
    frame = lb.models_frame()
    frame["95% CI"] = [
        f"+{hi - r:.1f}/-{r - lo:.1f}"
        for r, lo, hi in zip(frame["rating"], frame["ci_lower"], frame["ci_upper"], strict=True)
    ]
    columns = ["rank", "model", "rating", "95% CI"]
    if lb.style is not None:
        frame["change"] = frame["rating"] - frame["rating_raw"]
        columns += ["rating_raw", "change"]
    columns += ["elo", "votes", "wins", "losses", "ties"]
    columns += ["win_rate"] + (["group"] if len(lb.groups) > 1 else [])
    formats = {
        "rating": "{:.1f}".format,
        "rating_raw": "{:.1f}".format,
        "change": "{:+.1f}".format,
        "elo": "{:.1f}".format,
        "win_rate": "{:.1%}".format,
    }
    table = frame[columns].to_string(index=False, formatters=formats, justify="right")
    lines.append(table)
    lines += [f"warning: {w}" for w in lb.warnings]
    bias = lb.position_bias
    if bias.rate is not None:
        lines.append(
            f"position bias: model_a won {bias.rate:.1%} of {bias.decisive:,} decisive votes "
            f"(95% CI {bias.ci_lower:.1%} to {bias.ci_upper:.1%})"
        )
    return "\n".join(lines)


def style_line(style) -> str:
    """One line: what style control did, and each effect (logit per standard deviation)."""
    effects = ", ".join(
        f"{name} {value:+.3f} ({lo:+.3f} to {hi:+.3f})"
        for name, (value, lo, hi) in style.coefficients.items()
    )
    return (
        f"style controlled over {style.battles:,} battles (penalty {style.penalty:g}); "
        f"style effects in logit per standard deviation: {effects}"
    )


def add_commands(sub) -> None:
    p = sub.add_parser(
        "import",
        help="import votes from JSON, JSON lines, CSV or parquet, or battles from a dataset "
        "(export-dataset's parquet); all or nothing",
    )
    p.add_argument("file")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser(
        "export-dataset",
        help="every voted battle as one parquet row: conversations, image, timings, vote",
    )
    p.add_argument("out", metavar="OUT.parquet", help="the file to write (replaced when complete)")
    p.add_argument("--since", metavar="DATE", help="rows from this UTC date (or date-time)")
    p.add_argument(
        "--include-unvoted", action="store_true", help="battles without a vote too (winner null)"
    )
    p.set_defaults(func=cmd_export_dataset)

    p = sub.add_parser("export", help="export every vote in the import field names")
    p.add_argument("out")
    p.add_argument(
        "--format", choices=["csv", "jsonl", "parquet"], help="default: from OUT's extension"
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("leaderboard", help="the leaderboard as a table, or as JSON with --json")
    p.add_argument("--json", action="store_true", help="every figure of the page, as JSON")
    p.add_argument("--bootstrap", type=int, default=100, metavar="N", help="rounds (default 100)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="bootstrap seed (default 0)")
    p.add_argument("--anchor", metavar="MODEL=RATING", help="pin one model's rating")
    p.add_argument(
        "--style-control",
        action="store_true",
        help="control for answer length and markdown (LMArena's style control)",
    )
    p.add_argument(
        "--ci",
        choices=["sandwich", "bootstrap"],
        help="interval method (default: sandwich with --style-control, else bootstrap)",
    )
    p.add_argument(
        "--style-reg",
        type=float,
        default=0.5,
        metavar="L",
        help="L2 penalty on the style coefficients, on the summed loss (default 0.5)",
    )
    p.add_argument("--all-battles", action="store_true", help="named battles too")
    p.add_argument("--category", metavar="ID", help="battles of one category (README: Categories)")
    p.add_argument(
        "--include-identity-leaks",
        action="store_true",
        help="keep battles whose answers gave a model away (left out by default)",
    )
    p.add_argument(
        "--flagged-voters",
        action="store_true",
        help="run Chatbot Arena's sequential voter test and list the voters and client keys it "
        "flags (in the JSON)",
    )
    p.add_argument(
        "--exclude-flagged-voters",
        action="store_true",
        help="leave out the votes of voters and client keys the sequential test flags",
    )
    p.add_argument(
        "--no-dedup", action="store_true", help="count every repeat of a prompt on an image"
    )
    p.add_argument(
        "--dedup-rule",
        choices=["cap", "percentile"],
        help="cap (ARENA_DEDUP_CAP, the default) or percentile (FastChat's 99.99th percentile)",
    )
    p.add_argument(
        "--exclude-sample-images",
        action="store_true",
        help="leave out battles started from a shipped sample image",
    )
    p.add_argument("--since", metavar="DATE", help="votes from this UTC date (or date-time)")
    p.add_argument(
        "--until", metavar="DATE", help="votes through this UTC date (or before a date-time)"
    )
    p.set_defaults(func=cmd_leaderboard)
