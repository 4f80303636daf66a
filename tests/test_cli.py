"""The command line, run as a user would: python -m arena in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from arena.config import Settings
from arena.store import Store
from arena.store.engine import head_revision
from tests.conftest import free_port, png_bytes
from tests.stored import stored_battle

ROOT = Path(__file__).resolve().parents[1]


def arena(*args, env=None, timeout=300):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "arena", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli_env(demo_models_dir, tmp_path):
    return {
        "ARENA_MODELS": str(demo_models_dir / "models.yaml"),
        "ARENA_DB_URL": f"sqlite:///{tmp_path / 'cli.db'}",
    }


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes((64, 48)))
    return path


def test_ask_streams_an_answer(cli_env, image_file):
    out = arena(
        "ask", "--model", "tiny-llava", "--image", str(image_file), "--prompt", "What?", env=cli_env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_battle_stores_and_votes(cli_env, image_file):
    out = arena(
        "battle",
        "--image",
        str(image_file),
        "--prompt",
        "Describe",
        "--models",
        "tiny-llava",
        "tiny-paligemma",
        "--vote",
        "b",
        env=cli_env,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["model_a"], result["model_b"], result["vote"]) == (
        "tiny-llava",
        "tiny-paligemma",
        "b",
    )
    assert result["answer_a"] and result["answer_b"]
    store = Store.open(Settings(db_url=cli_env["ARENA_DB_URL"]))
    row = stored_battle(store, result["battle_id"])
    assert row["vote"]["outcome"] == "b" and row["mode"] == "named"


def test_anonymous_battle(cli_env, image_file):
    out = arena("battle", "--image", str(image_file), "--prompt", "Describe", env=cli_env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["mode"] == "anonymous" and result["model_a"] != result["model_b"]


def test_check_models_reports_each(demo_models_dir, tmp_path):
    registry = tmp_path / "models.yaml"
    data = yaml.safe_load((demo_models_dir / "models.yaml").read_text())
    for entry in data["models"]:
        entry["model"] = str(demo_models_dir / entry["model"])
    data["models"].append({"id": "gone", "backend": "transformers", "model": "/nonexistent/model"})
    registry.write_text(yaml.safe_dump(data))
    out = arena("check-models", "--registry", str(registry))
    assert out.returncode == 1
    lines = out.stdout.strip().splitlines()
    assert any(line.startswith("tiny-llava: ok") for line in lines)
    assert any(line.startswith("gone: ERROR") and "/nonexistent/model" in line for line in lines)


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ("ask", "--model", "tiny-llava", "--image", "{bad}", "--prompt", "x"),
            "not a supported image",
        ),
        (("ask", "--model", "tiny-llava", "--image", "{img}", "--prompt", "  "), "prompt is empty"),
        (
            ("ask", "--model", "nope", "--image", "{img}", "--prompt", "x"),
            "no model with id 'nope'",
        ),
        (
            ("ask", "--model", "tiny-llava", "--image", "/no/such.png", "--prompt", "x"),
            "cannot read the image",
        ),
        (
            ("battle", "--image", "{img}", "--prompt", "x", "--models", "tiny-llava", "tiny-llava"),
            "two different",
        ),
    ],
)
def test_errors_are_one_line(cli_env, image_file, tmp_path, args, message):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    args = [a.format(img=image_file, bad=bad) for a in args]
    out = arena(*args, env=cli_env)
    assert out.returncode != 0
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr


def test_broken_registry_env(tmp_path, image_file):
    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  - id: a\n    model: x\n    weight: -2\n")
    out = arena(
        "battle", "--image", str(image_file), "--prompt", "x", env={"ARENA_MODELS": str(bad)}
    )
    assert (
        out.returncode == 1 and "field 'weight'" in out.stderr and len(out.stderr.splitlines()) == 1
    )


def test_demo_models_command(tmp_path):
    out = arena("demo-models", str(tmp_path / "demo"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "demo" / "models.yaml").is_file()


def test_check_models_reports_served_models(demo_models_dir, serve_url, llava_spec, tmp_path):
    registry = tmp_path / "models.yaml"
    registry.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "id": "served",
                        "backend": "openai",
                        "base_url": serve_url,
                        "model": llava_spec.model,
                    },
                    {
                        "id": "unknown-name",
                        "backend": "openai",
                        "base_url": serve_url,
                        "model": "no-such-model",
                    },
                    {
                        "id": "down",
                        "backend": "openai",
                        "base_url": f"http://127.0.0.1:{free_port()}/v1",
                        "model": "x",
                    },
                ]
            }
        )
    )
    out = arena("check-models", "--registry", str(registry))
    lines = dict(line.split(": ", 1) for line in out.stdout.strip().splitlines())
    assert out.returncode == 1
    assert lines["served"].startswith("ok") and "reachable" in lines["served"]
    assert lines["unknown-name"].startswith("ERROR") and "no-such-model" in lines["unknown-name"]
    assert lines["down"].startswith("ERROR") and "127.0.0.1" in lines["down"]


@pytest.mark.postgres
def test_battle_and_vote_on_postgresql(demo_models_dir, image_file, pg_url, tmp_path):
    env = {"ARENA_MODELS": str(demo_models_dir / "models.yaml"), "ARENA_DB_URL": pg_url}
    out = arena("battle", "--image", str(image_file), "--prompt", "Hi", "--vote", "tie", env=env)
    assert out.returncode == 0, out.stderr
    battle_id = json.loads(out.stdout)["battle_id"]
    assert stored_battle(Store.open(Settings(db_url=pg_url)), battle_id)["vote"]["outcome"] == "tie"
    out = arena("export", str(tmp_path / "votes.csv"), env=env)
    assert out.returncode == 0 and "exported 1 votes" in out.stdout
    out = arena("db", "current", env=env)
    assert out.returncode == 0 and f"database revision: {head_revision()}" in out.stdout


def test_a_database_refusal_is_one_line(tmp_path):
    from sqlalchemy import text

    db_url = f"sqlite:///{tmp_path / 'refuse.db'}"
    store = Store.open(Settings(db_url=db_url))
    with store.engine.begin() as conn:  # a refusal no row check can foresee
        conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON battles WHEN NEW.model_a = 'refused' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the database'); END"
            )
        )
    votes_file = tmp_path / "votes.jsonl"
    votes_file.write_text(
        json.dumps({"model_a": "refused", "model_b": "b", "winner": "tie"}) + "\n"
    )
    out = arena("import", str(votes_file), env={"ARENA_DB_URL": db_url})
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip() == "error: the database refused it: refused by the database"


def test_the_command_line_starts_without_its_heavy_libraries():
    """`python -m arena --help` and the parser load no database, array, image or model library:
    each command imports what it needs when it runs (the package alone took ~0.8 s before)."""
    heavy = ("sqlalchemy", "alembic", "numpy", "pandas", "scipy", "PIL", "pydantic", "yaml")
    code = (
        "import sys; from arena.cli import build_parser; build_parser(); "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert arena("--help").returncode == 0


def test_db_recount_rebuilds_counts_changed_behind_the_triggers(tmp_path):
    from sqlalchemy import text

    db_url = f"sqlite:///{tmp_path / 'recount.db'}"
    store = Store.open(Settings(db_url=db_url))
    votes_file = tmp_path / "votes.jsonl"
    rows = [{"model_a": "a", "model_b": "b", "winner": w} for w in ("model_a", "tie", "model_a")]
    votes_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert arena("import", str(votes_file), env={"ARENA_DB_URL": db_url}).returncode == 0
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE vote_counts SET votes = 40"))
    out = arena("db", "recount", env={"ARENA_DB_URL": db_url})
    assert out.returncode == 0, out.stderr
    assert "vote_counts rebuilt from 3 votes" in out.stdout
    with store.engine.connect() as conn:
        counted = conn.execute(text("SELECT outcome, votes FROM vote_counts ORDER BY outcome"))
        assert counted.all() == [("a", 2), ("tie", 1)]
    store.engine.dispose()
