"""Command-line verbs of moderation: python -m arena moderate hide|unhide|ban|unban|erase|
reports|audit. Each action is stored with its audit row, the actor "cli:<os user>"."""

from __future__ import annotations

import getpass

from arena.cli_data import _store
from arena.errors import InputError


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in the environment nor the password database
        return "cli:unknown"


def _done(changed: bool, did: str, already: str) -> int:
    print(did if changed else already)
    return 0


def cmd_hide(args) -> int:
    changed = _store().hide(args.battle, args.reason, actor())
    return _done(
        changed,
        f"hid battle {args.battle}: it leaves every board and export",
        f"battle {args.battle} was hidden already (noted in the audit log)",
    )


def cmd_unhide(args) -> int:
    changed = _store().unhide(args.battle, actor(), args.reason)
    return _done(
        changed,
        f"battle {args.battle} is shown again",
        f"battle {args.battle} was not hidden (noted in the audit log)",
    )


def cmd_ban(args) -> int:
    changed = _store().ban(args.voter, args.reason, actor())
    return _done(
        changed,
        f"banned voter {args.voter}: their votes leave every board; new ones are refused",
        f"voter {args.voter} was banned already (noted in the audit log)",
    )


def cmd_unban(args) -> int:
    changed = _store().unban(args.voter, actor(), args.reason)
    return _done(
        changed,
        f"voter {args.voter} can vote again and their votes count",
        f"voter {args.voter} was not banned (noted in the audit log)",
    )


def cmd_erase(args) -> int:
    if not (args.image or args.text):
        raise InputError("erase needs --image, --text or both: say what to remove.")
    erased = _store().erase(args.battle, args.image, args.text, actor(), args.reason)
    print(f"battle {args.battle}: removed {erased.describe()}")
    if erased.off_disk:
        print("SQLite overwrote them and checkpointed its WAL: they left the database file")
    elif erased.image_sha256 or erased.turns:
        print("the old bytes stay in the database's free space until VACUUM (README, Moderation)")
    print("backups, replicas and earlier exports still hold them")
    return 0


def cmd_reports(args) -> int:
    found = _store().reports(limit=args.limit)
    if not found:
        print("no reports")
    for r in found:
        print(f"{r.created_at:%Y-%m-%d %H:%M:%S}  {r.battle_id}  {r.voter_id or '-'}  {r.reason}")
    return 0


def cmd_audit(args) -> int:
    found = _store().audit_log(limit=args.limit)
    if not found:
        print("the audit log is empty")
    for a in found:
        why = f"  {a.reason}" if a.reason else ""
        print(f"{a.at:%Y-%m-%d %H:%M:%S}  {a.actor}  {a.action} {a.target}{why}")
    return 0


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        import argparse

        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return n


def add_commands(sub) -> None:
    p = sub.add_parser(
        "moderate",
        help="hide or show battles, ban or unban voters, erase a battle's image or text, "
        "list reports and the audit log",
    )
    verbs = p.add_subparsers(dest="verb", required=True)

    v = verbs.add_parser("hide", help="keep a battle but leave it out of every board and export")
    v.add_argument("battle")
    v.add_argument("--reason", required=True, help="why (kept in the audit log)")
    v.set_defaults(func=cmd_hide)

    v = verbs.add_parser("unhide", help="show a hidden battle again")
    v.add_argument("battle")
    v.add_argument("--reason")
    v.set_defaults(func=cmd_unhide)

    v = verbs.add_parser("ban", help="leave a voter's votes out of every board, refuse new ones")
    v.add_argument("voter", help="the voter id, e.g. user:someone@example.org")
    v.add_argument("--reason", required=True, help="why (kept in the audit log, never shown)")
    v.set_defaults(func=cmd_ban)

    v = verbs.add_parser("unban", help="count a banned voter's votes again and take new ones")
    v.add_argument("voter")
    v.add_argument("--reason")
    v.set_defaults(func=cmd_unban)

    v = verbs.add_parser(
        "erase",
        help="a privacy request: remove a battle's image bytes (for every battle showing them) "
        "and/or its prompts and answers for good; the battle and its vote stay",
    )
    v.add_argument("battle")
    v.add_argument("--image", action="store_true", help="the image's bytes")
    v.add_argument("--text", action="store_true", help="the prompts, answers and error texts")
    v.add_argument("--reason", help="e.g. the request's reference (kept in the audit log)")
    v.set_defaults(func=cmd_erase)

    for name, func, what in (
        ("reports", cmd_reports, "voters' reports of battles, newest first"),
        ("audit", cmd_audit, "the audit log of moderation actions, newest first"),
    ):
        v = verbs.add_parser(name, help=what)
        v.add_argument("--limit", type=_positive, default=50, metavar="N")
        v.set_defaults(func=func)
