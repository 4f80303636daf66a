"""The command line: python -m arena COMMAND ... (see README.md, "Command line").

Every error is one line on stderr and a non-zero exit; never a traceback. Each command imports
what it needs when it runs (SQLAlchemy, NumPy, Pillow, pydantic ...), so `--help` and the
commands that need none of them start at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

from arena.config import Settings, describe
from arena.errors import ArenaError, InputError, StoreError
from arena.kinds import Mode, Outcome, Requester


def _settings_registry(args) -> tuple[Settings, object]:
    from arena.registry import load_registry

    settings = Settings.from_env()
    path = getattr(args, "registry", None) or settings.models
    return settings, load_registry(path)


def _read_image(path: str, settings):
    from arena.images import check_image

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the image ({exc.strerror}).") from None
    return check_image(data, settings, filename=Path(path).name)


def cmd_demo_models(args) -> int:
    from arena.demo import build_demo_models

    registry_path = build_demo_models(Path(args.dir))
    print(
        f"Built demo models; run the app on them with: ARENA_MODELS={registry_path} streamlit run streamlit_app.py"
    )
    return 0


def cmd_check_models(args) -> int:
    from arena.backends import Backends

    settings, registry = _settings_registry(args)
    backends = Backends(registry, settings)
    failed = 0
    try:
        for spec in registry.specs:
            if not spec.enabled:
                print(f"{spec.id}: disabled")
                continue
            try:
                print(f"{spec.id}: ok, {backends.get(spec.id).check()}", flush=True)
            except ArenaError as exc:
                failed += 1
                print(f"{spec.id}: ERROR {exc}", flush=True)
    finally:
        backends.close()
    return 1 if failed else 0


def cmd_ask(args) -> int:
    from arena.backends import Backends, chat_messages
    from arena.images import check_prompt

    settings, registry = _settings_registry(args)
    spec = registry.get(args.model)
    image = _read_image(args.image, settings)
    prompt = check_prompt(args.prompt, settings)
    backends = Backends(registry, settings)
    try:
        for piece in backends.get(spec.id).stream(
            chat_messages(image.image, [prompt], (), spec.system_prompt)
        ):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    finally:
        backends.close()
    return 0


def cmd_battle(args) -> int:
    from arena.backends import Backends
    from arena.battle import Battle, ask, cast_vote, pick_models, save_turn, start
    from arena.categories.labeller import Labeller
    from arena.images import check_prompt
    from arena.pairing import sampler_for
    from arena.store import Store

    settings, registry = _settings_registry(args)
    image = _read_image(args.image, settings)
    prompt = check_prompt(args.prompt, settings)
    models = tuple(args.models) if args.models else None
    mode = Mode.NAMED if models else Mode.ANONYMOUS
    named = pick_models(registry, mode, models) if models else None  # before the database opens
    store = Store.open(settings)
    sampler = sampler_for(settings.pair_sampling, registry, store)  # active: it reads the votes
    if sampler is not None and named is None:
        sampler.refresh()  # one draw, so it waits for the chances (else it would be by weight)
    spec_a, spec_b = named or pick_models(registry, mode, sampler=sampler)
    session_id = f"cli-{uuid.uuid4().hex[:12]}"
    requester = Requester(session_id=session_id, voter_id=session_id)
    backends = Backends(registry, settings)
    labeller = Labeller.from_settings(settings, registry)
    try:
        battle = Battle(mode=mode, spec_a=spec_a, spec_b=spec_b, image=image)
        start(store, battle, requester)
        for _ in ask(backends, battle, prompt):
            pass
        classified = save_turn(store, battle, labeller)
        if classified is not None:  # a command has no page to keep responsive: wait for it
            classified.result()
    finally:
        backends.close()
        labeller.close()
    result_a, result_b = battle.results[-1]
    out = {
        "battle_id": battle.battle_id,
        "mode": mode.value,
        "model_a": spec_a.id,
        "model_b": spec_b.id,
        "answer_a": result_a.answer,
        "answer_b": result_b.answer,
        "error_a": result_a.error,
        "error_b": result_b.error,
        "vote": None,
    }
    status = 0
    if args.vote:
        try:
            cast_vote(store, battle, Outcome(args.vote), requester)
            out["vote"] = args.vote
        except ArenaError as exc:
            print(f"error: vote not stored: {exc}", file=sys.stderr)
            status = 1
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return status


def cmd_db(args) -> int:
    from arena.store import engine as eng
    from arena.store import migrate

    settings = Settings.from_env()
    engine = eng.make_engine(settings.db_url)
    if args.action == "upgrade":
        _log_to_stderr("arena")  # each migration step, and any wait for another process's
        eng.with_retries("migrate the database", lambda: migrate.upgrade(engine, args.revision))
    elif args.action == "recount":
        from arena.store.maintained import recount

        if eng.current_revision(engine) != eng.head_revision():
            raise StoreError(
                "The database is not at the latest schema: run `python -m arena db upgrade` first."
            )
        n = eng.with_retries("count the votes again", lambda: recount(engine))
        print(f"vote_counts rebuilt from {n:,} votes; online Elo is replayed on the next read")
    print(f"database revision: {eng.current_revision(engine)} (latest: {eng.head_revision()})")
    return 0


def _log_to_stderr(name: str) -> None:
    import logging

    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def cmd_settings(_args) -> int:
    for name, default, help_text in describe():
        print(f"{name:28} {default:22} {help_text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m arena", description="VLM Arena command line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "demo-models", help="build tiny random-weight demo models and their models.yaml"
    )
    p.add_argument("dir")
    p.set_defaults(func=cmd_demo_models)

    p = sub.add_parser("check-models", help="load or reach each model and report ok or the error")
    p.add_argument("--registry", help="models.yaml to check (default: ARENA_MODELS)")
    p.set_defaults(func=cmd_check_models)

    p = sub.add_parser("ask", help="stream one model's answer to stdout")
    p.add_argument("--model", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--registry")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("battle", help="run a battle as the page does, store it, print JSON")
    p.add_argument("--image", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument(
        "--models", nargs=2, metavar=("A", "B"), help="named mode: these two, A on the left"
    )
    p.add_argument("--vote", choices=[o.value for o in Outcome])
    p.add_argument("--registry")
    p.set_defaults(func=cmd_battle)

    p = sub.add_parser(
        "db",
        help="database schema: upgrade to the latest migration, show the revision, or recount "
        "the leaderboard's maintained vote counts",
    )
    p.add_argument("action", choices=["upgrade", "current", "recount"])
    p.add_argument("--revision", default="head")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("settings", help="list the settings (environment variables) with defaults")
    p.set_defaults(func=cmd_settings)

    from arena import cli_data, cli_moderation, cli_screening

    cli_data.add_commands(sub)
    cli_screening.add_commands(sub)
    cli_moderation.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ArenaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # a database refusal not foreseen above: one line, nothing half-written
    except _database_errors() as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        print(
            f"error: the database refused it: {detail[0] if detail else type(exc).__name__}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _database_errors() -> tuple[type[BaseException], ...]:
    """SQLAlchemy's error class once a command has loaded SQLAlchemy (evaluated only when an
    error is raised); before that no database error can happen, and nothing is caught."""
    errors = sys.modules.get("sqlalchemy.exc")
    return (errors.SQLAlchemyError,) if errors is not None else ()
