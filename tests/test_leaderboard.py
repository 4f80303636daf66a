"""The leaderboard: arena.leaderboard against the store's own queries (SQLite and PostgreSQL),
`python -m arena leaderboard` in a subprocess, and the page headless (AppTest)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from arena import leaderboard
from arena.config import Settings
from arena.errors import InputError
from arena.ratings import online_elo
from arena.store import Store, VoteFilter
from arena.store.transfer import import_file
from tests.conftest import SHARED_DATA, skip_or_fail
from tests.stored import votes_in_order

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
GENAI = SHARED_DATA / "genai_arena_battles_20240220.json"
WILDVISION = SHARED_DATA / "wildvision_bench_battles.jsonl"
SCORES = SHARED_DATA / "wildvision_published_scores.md"
ANCHOR = "claude-3-sonnet-20240229"


def shared(path: Path) -> Path:
    if not path.exists():
        skip_or_fail(f"{path.name} is not in {SHARED_DATA}: put the shared data sets there")
    return path


def sqlite_with(tmp_path_factory, *files: Path) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('lb') / 'arena.db'}"
    store = Store.open(Settings(db_url=url))
    for path in files:
        import_file(store, shared(path))
    store.engine.dispose()
    return url


@pytest.fixture(scope="module")
def wildvision_db(tmp_path_factory) -> str:
    return sqlite_with(tmp_path_factory, WILDVISION)


@pytest.fixture(scope="module")
def genai_db(tmp_path_factory) -> str:
    return sqlite_with(tmp_path_factory, GENAI)


def arena(db_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARENA_DB_URL": db_url}
    return subprocess.run(
        [sys.executable, "-m", "arena", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def genai_json(genai_db) -> dict:
    """`leaderboard --json` on the GenAI-Arena votes, run once for the tests that read it."""
    return board_json(genai_db)


def board_json(db_url: str, *args: str) -> dict:
    done = arena(db_url, "leaderboard", "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- the module, on both databases -----------------------------------------------------------


def test_one_scan_gives_the_store_counts_and_online_elo(store, tmp_path):
    """The fast scan agrees with counts and ratings.online_elo over the votes read the slow,
    obvious way (SQLAlchemy rows), float for float, under every filter."""
    import_file(store, shared(GENAI))
    extra = tmp_path / "extra.jsonl"
    rows = [  # a self-battle and the same second twice: order then falls to the vote id
        {"model_a": "x", "model_b": "x", "winner": "tie", "tstamp": 1708000000},
        {"model_a": "x", "model_b": "y", "winner": "model_a", "tstamp": 1708000000},
        {"model_a": "y", "model_b": "x", "winner": "model_a", "tstamp": 1708000000},
    ]
    extra.write_text("".join(json.dumps(r) + "\n" for r in rows))
    import_file(store, extra)
    day = datetime(2024, 2, 14, tzinfo=UTC)
    for anonymous_only, since, until in [
        (True, None, None),
        (False, None, None),
        (True, day, day + timedelta(days=2)),
        (False, day, None),
        (False, None, day),
    ]:
        scan = leaderboard.scan_votes(store, VoteFilter(anonymous_only, since, until))
        slow = votes_in_order(store, anonymous_only, since, until)
        counted = Counter((a, b, w) for a, b, w, _ in slow)
        assert sorted(scan.count_rows()) == sorted((*k, n) for k, n in counted.items())
        assert scan.online_elo() == online_elo([(a, b, w) for a, b, w, _ in slow])
        board = leaderboard.leaderboard_for(store, anonymous_only, since, until, bootstrap_rounds=5)
        assert board.votes == len(slow)
        last = max(t for *_, t in slow)
        assert board.last_vote == last.replace(tzinfo=last.tzinfo or UTC)
        assert {r.model: r.elo for r in board.leaderboard.rows} == {
            m: e for m, e in scan.online_elo().items() if m in board.leaderboard.models
        }


def test_empty_database(store):
    board = leaderboard.leaderboard_for(store)
    assert board.empty and board.votes == 0 and board.last_vote is None
    assert board.to_dict()["models"] == [] and board.to_dict()["last_vote"] is None
    assert store.data_version() == (0, None, 0)
    with pytest.raises(InputError, match="models with votes: none"):
        leaderboard.leaderboard_for(store, anchor=("gpt-4o", 1000.0))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpt-4o=1000", ("gpt-4o", 1000.0)),
        (" claude-3=1114.5", ("claude-3", 1114.5)),
        ("org/model=v2=-3e2", ("org/model=v2", -300.0)),
        ("gpt-4o", "expected MODEL=RATING"),
        ("=1000", "expected MODEL=RATING"),
        ("gpt-4o=", "is not a number"),
        ("gpt-4o=abc", "'abc' is not a number"),
        ("gpt-4o=nan", "finite"),
        ("gpt-4o=inf", "finite"),
    ],
)
def test_parse_anchor(text, expected):
    if isinstance(expected, tuple):
        assert leaderboard.parse_anchor(text) == expected
    else:
        with pytest.raises(InputError, match=expected):
            leaderboard.parse_anchor(text)


# --- the command line ------------------------------------------------------------------------


def published_scores() -> dict[str, float]:
    scores = {}
    for line in shared(SCORES).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 2 and re.fullmatch(r"\d+(\.\d+)?", cells[1]):
            scores[cells[0]] = float(cells[1])
    return scores


def test_anchor_reproduces_the_published_wildvision_scores(wildvision_db):
    board = board_json(wildvision_db, "--anchor", f"{ANCHOR}=1000", "--bootstrap", "10")
    rating = {m["model"]: m["rating"] for m in board["models"]}
    published = published_scores()
    assert published["gpt-4o"] == 89.15 and len(published) == 21
    ours = {m: round(100 / (1 + 10 ** ((1000 - rating[m]) / 400)), 2) for m in published}
    assert ours == published
    assert rating[ANCHOR] == 1000.0
    assert board["anchor"] == {"model": ANCHOR, "rating": 1000.0}


def test_json_has_every_figure_of_the_page(genai_json):
    board = genai_json
    first = board["models"][0]
    keys = {"model", "rank", "rating", "ci_lower", "ci_upper", "elo", "votes", "wins", "losses"}
    assert keys | {"ties", "win_rate"} <= set(first)
    assert first["ci_lower"] <= first["rating"] <= first["ci_upper"] and first["elo"] is not None
    models = [m["model"] for m in board["models"]]
    for matrix in ("win_rate_matrix", "battle_count_matrix", "predicted_win_rate_matrix"):
        assert set(board[matrix]) == set(models)
    assert board["votes"] == 1515 == sum(m["votes"] for m in board["models"]) // 2
    last = max(r["tstamp"] for r in json.loads(GENAI.read_text()) if r.get("anony", True))
    assert datetime.fromisoformat(board["last_vote"]) == datetime.fromtimestamp(last, UTC)
    assert set(board["position_bias"]) >= {"left_wins", "decisive", "rate", "ci_lower", "ci_upper"}
    assert board["bootstrap_rounds"] == 100 and board["filters"]["anonymous_only"] is True


def test_genai_groups_and_their_warning(genai_json):
    board = genai_json
    assert len(board["groups"]) == 2
    assert all(m.endswith("_edition") for m in board["groups"][0])
    assert all(m.endswith("_generation") for m in board["groups"][1])
    assert any("2 groups that never met" in w for w in board["warnings"])
    cross = board["win_rate_matrix"][board["groups"][0][0]][board["groups"][1][0]]
    assert cross is None  # never met: no win rate


def test_all_battles_differs_from_the_anonymous_default(genai_db, genai_json):
    anonymous, everything = genai_json, board_json(genai_db, "--all-battles")
    assert (anonymous["votes"], everything["votes"]) == (1515, 2061)
    assert everything["filters"]["anonymous_only"] is False
    assert any("self-battle" in w for w in everything["warnings"])  # one named self-battle
    ratings = [{m["model"]: m["rating"] for m in b["models"]} for b in (anonymous, everything)]
    assert ratings[0] != ratings[1]


def test_dates_filter_and_seeded_bootstrap(genai_db):
    one_day = board_json(genai_db, "--since", "2024-02-14", "--until", "2024-02-14")
    assert one_day["votes"] == 352  # anonymous votes cast on 14 February (UTC)
    assert one_day["filters"]["since"] == "2024-02-14T00:00:00+00:00"
    assert one_day["filters"]["until"] == "2024-02-15T00:00:00+00:00"
    store = Store.open(Settings(db_url=genai_db))
    day = datetime(2024, 2, 14, tzinfo=UTC)
    same = leaderboard.leaderboard_for(store, since=day, until=day + timedelta(days=1)).to_dict()
    assert same["models"] == one_day["models"]  # seeded: the same intervals every time
    other = leaderboard.leaderboard_for(store, since=day, until=day + timedelta(days=1), seed=1)
    assert [r.ci_lower for r in other.leaderboard.rows] != [m["ci_lower"] for m in same["models"]]
    no_ci = leaderboard.leaderboard_for(store, bootstrap_rounds=0).leaderboard.rows
    assert all(r.ci_lower == r.rating == r.ci_upper for r in no_ci)
    store.engine.dispose()


def test_table_in_the_terminal(wildvision_db):
    done = arena(wildvision_db, "leaderboard", "--anchor", f"{ANCHOR}=1000", "--bootstrap", "5")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("19,644 votes (anonymous battles only) among 21 models")
    header = next(line for line in lines if "model" in line and "rating" in line)
    for column in ("rank", "95% CI", "elo", "votes", "wins", "losses", "ties", "win_rate"):
        assert column in header
    rows = [line for line in lines if "gpt-4o" in line or ANCHOR in line]
    assert len(rows) == 2 and len({len(r) for r in rows + [header]}) == 1  # aligned
    assert " 1000.0 " in next(r for r in rows if ANCHOR in r)
    assert "warning: Dropped 500 self-battle(s)" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--anchor", "gpt-4o"], "expected MODEL=RATING"),
        (["--anchor", "gpt-4o=high"], "is not a number"),
        (["--anchor", "no-such-model=1000"], "'no-such-model' has no votes"),
        (["--bootstrap", "-1"], "0 or more"),
        (["--since", "14/02/2024"], "expected a date"),
    ],
)
def test_bad_arguments_are_one_line(wildvision_db, args, message):
    done = arena(wildvision_db, "leaderboard", *args)
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and message in done.stderr


def test_empty_database_on_the_command_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    done = arena(url, "leaderboard")
    assert done.returncode == 0 and "No votes to rate" in done.stdout
    board = board_json(url)
    assert (board["models"], board["votes"], board["last_vote"]) == ([], 0, None)


# --- the page --------------------------------------------------------------------------------


@pytest.fixture
def page_env(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'page.db'}"
    monkeypatch.setenv("ARENA_MODELS", str(ROOT / "models.yaml"))
    monkeypatch.setenv("ARENA_DB_URL", url)
    store = Store.open(Settings(db_url=url))
    yield store
    store.engine.dispose()


def open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("arena/ui/leaderboard_page.py").run()
    assert not at.exception, at.exception
    return at


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def run_until(at, done, failure: str) -> None:
    """Run the page again every quarter second (a background thread is computing) until
    `done(at)`, for at most 30 s."""
    for _ in range(120):
        if done(at):
            return
        time.sleep(0.25)
        at.run()
    pytest.fail(failure)


def test_page_on_an_empty_database(page_env):
    at = open_page()
    assert "No votes yet" in at.info[0].value
    assert not at.dataframe and not at.warning


def test_page_shows_the_board_filters_and_recomputes_on_new_votes(page_env, tmp_path, monkeypatch):
    store = page_env
    import_file(store, shared(GENAI))
    calls = []  # the page's own boards (the background replay of online Elo is not counted)
    compute = leaderboard.leaderboard_for
    monkeypatch.setattr(
        leaderboard,
        "leaderboard_for",
        lambda *a, **k: (calls.append(k) if k.get("replay") is False else None) or compute(*a, **k),
    )

    at = open_page()
    assert metrics(at) == {"Votes": "1,515", "Models": "13", "Last vote": "2024-02-20 22:49 UTC"}
    table = at.dataframe[0].value
    assert len(table) == 13 and table["rank"].min() == 1
    assert {"model", "rating", "ci_lower", "ci_upper", "elo", "votes", "win_rate"} <= set(table)
    assert table["votes"].sum() == 2 * 1515
    assert any("2 groups that never met" in w.value for w in at.warning)
    assert [b.key for b in at.get("download_button")] == ["download_csv"]
    assert len(at.get("vega_lite_chart")) == 3  # ratings with intervals, two heatmaps

    at.run()  # nothing new: read from the cache
    assert len(calls) == 1

    at.toggle(key="lb_anonymous_only").set_value(False).run()
    assert metrics(at)["Votes"] == "2,061"
    assert any("self-battle" in w.value for w in at.warning)
    at.toggle(key="lb_anonymous_only").set_value(True).run()
    assert metrics(at)["Votes"] == "1,515" and len(calls) == 2  # the anonymous board: cached

    at.date_input(key="lb_dates").set_value((date(2024, 2, 14), date(2024, 2, 14))).run()
    assert metrics(at)["Votes"] == "352"
    at.date_input(key="lb_dates").set_value(()).run()

    new_vote = tmp_path / "new.jsonl"
    row = {"model_a": "imagenhub_LCM_generation", "model_b": "imagenhub_SDXL_generation"}
    new_vote.write_text(json.dumps({**row, "winner": "model_a", "tstamp": 1708500000}) + "\n")
    import_file(store, new_vote)
    at.run()
    assert metrics(at)["Votes"] == "1,516" and metrics(at)["Last vote"] == "2024-02-21 07:20 UTC"
    assert at.dataframe[0].value["votes"].sum() == 2 * 1516


def test_page_shows_the_board_at_once_and_replays_online_elo_in_the_background(page_env):
    """After an import of past votes online Elo needs every vote again: the page shows the
    ratings at once without it, says so, and fills the column in once the background replay
    is done (the same Elo as the command line's)."""
    import_file(page_env, shared(GENAI))
    at = open_page()
    assert metrics(at)["Votes"] == "1,515"
    assert any("Online Elo is being replayed" in c.value for c in at.caption)
    assert at.dataframe[0].value["elo"].isna().all()
    assert not at.dataframe[0].value["rating"].isna().any()
    run_until(
        at,
        lambda at: not any("Online Elo is being replayed" in c.value for c in at.caption),
        "online Elo was never replayed",
    )
    expected = leaderboard.leaderboard_for(page_env, bootstrap_rounds=0)
    elo = dict(zip(at.dataframe[0].value["model"], at.dataframe[0].value["elo"], strict=True))
    assert elo == pytest.approx({r.model: r.elo for r in expected.leaderboard.rows})


def test_a_board_without_replay_leaves_online_elo_out_until_it_is_replayed(page_env):
    """leaderboard_for(replay=False) reads no vote where the stored Elo does not hold: the same
    ratings, no Elo, `elo_pending` in the JSON, no state saved; a replay saves it, and then the
    board without replay resumes it."""
    store = page_env
    import_file(store, shared(GENAI))
    pending = leaderboard.leaderboard_for(store, bootstrap_rounds=0, replay=False)
    assert pending.elo_pending and pending.to_dict()["elo_pending"] is True
    assert all(r.elo is None for r in pending.leaderboard.rows)
    assert store.maintained(VoteFilter(), replay=False).pending  # nothing was saved
    full = leaderboard.leaderboard_for(store, bootstrap_rounds=0)
    assert not full.elo_pending and "elo_pending" not in full.to_dict()
    assert [r.rating for r in pending.leaderboard.rows] == [r.rating for r in full.leaderboard.rows]
    again = leaderboard.leaderboard_for(store, bootstrap_rounds=0, replay=False)
    assert not again.elo_pending and again.to_dict() == full.to_dict()


def test_page_when_the_filters_match_nothing(page_env, tmp_path):
    path = tmp_path / "named.jsonl"
    path.write_text(json.dumps({"model_a": "a", "model_b": "b", "winner": "tie", "anony": False}))
    import_file(page_env, path)
    at = open_page()
    assert "No votes match these filters" in at.info[0].value
    at.toggle(key="lb_anonymous_only").set_value(False).run()
    assert metrics(at)["Votes"] == "1" and len(at.dataframe[0].value) == 2


def styled_votes(path: Path, n: int = 1500, seed: int = 0) -> Path:
    """Seeded votes among 5 models with conv_metadata, where the longer answer wins more often."""
    rng = np.random.default_rng(seed)
    strength = np.array([0.6, 0.3, 0.0, -0.3, -0.6])
    with path.open("w") as f:
        for i in range(n):
            a, b = rng.choice(5, 2, replace=False)
            ta, tb = (int(t) for t in rng.integers(20, 800, 2))
            logit = strength[a] - strength[b] + 1.5 * (ta - tb) / (ta + tb + 1)
            winner = "model_a" if rng.random() < 1 / (1 + np.exp(-logit)) else "model_b"
            meta = {"sum_assistant_a_tokens": ta, "sum_assistant_b_tokens": tb}
            row = {"model_a": f"m{a}", "model_b": f"m{b}", "winner": winner, "tstamp": 1.7e9 + i}
            f.write(json.dumps({**row, "conv_metadata": meta}) + "\n")
    return path


def test_page_controls_for_style_in_the_background(page_env, tmp_path):
    import_file(page_env, styled_votes(tmp_path / "styled.jsonl"))
    at = open_page()
    assert at.toggle(key="lb_style").value is True  # on by default: the votes carry style counts
    for _ in range(120):  # the style fit runs in a background thread; the page never waits
        if any("Style-controlled ratings over 1,500 battles" in c.value for c in at.caption):
            break
        assert "being computed in the background" in at.info[0].value
        assert len(at.dataframe[0].value) == 5  # the plain ratings meanwhile
        time.sleep(0.25)
        at.run()
    else:
        pytest.fail("the style-controlled board never appeared")
    caption = next(c.value for c in at.caption if "Style-controlled" in c.value)
    assert "length +" in caption and "computed 20" in caption
    table = at.dataframe[0].value
    assert {"rating_raw", "change"} <= set(table)
    assert np.allclose(table["change"], table["rating"] - table["rating_raw"])
    expected = leaderboard.leaderboard_for(page_env, style_control=True).to_dict()["models"]
    assert table["rating"].tolist() == pytest.approx([m["rating"] for m in expected])

    at.toggle(key="lb_style").set_value(False).run()
    plain = at.dataframe[0].value
    assert "rating_raw" not in plain and not any("Style-controlled" in c.value for c in at.caption)
    assert plain["rating"].tolist() != pytest.approx(table["rating"].tolist())


def test_page_style_toggle_is_off_without_style_counts(page_env):
    import_file(page_env, shared(GENAI))
    at = open_page()
    assert at.toggle(key="lb_style").value is False
    at.toggle(key="lb_style").set_value(True).run()
    run_until(
        at,
        lambda at: any("carry style counts" in i.value for i in at.info),
        "the page never said that no vote carries style counts",
    )
    assert len(at.dataframe[0].value) == 13 and "rating_raw" not in at.dataframe[0].value


def test_page_filters_by_task_screens_voters_and_shows_the_best_model_per_task(page_env, tmp_path):
    """Imported votes with categories and voters: the task selector, the flagged-voter toggle
    with its one line on what was left out, and the "best model for …" view (tasks with at
    least ARENA_MIN_CATEGORY_VOTES votes only)."""
    rng = np.random.default_rng(3)
    strength = {"m0": 1.0, "m1": 0.0, "m2": -1.0}
    rows = []
    for i in range(240):
        a, b = rng.choice(list(strength), 2, replace=False)
        p = 1 / (1 + np.exp(strength[b] - strength[a]))
        winner = "model_a" if rng.random() < p else "model_b"
        category = ["ocr"] if i % 3 else ["counting"] if i % 9 == 0 else ["charts", "reasoning"]
        rows.append({"model_a": a, "model_b": b, "winner": winner, "tstamp": 1.7e9 + i,
                     "judge": f"user:v{i % 30}", "categories": category})  # fmt: skip
    for i in range(30):  # one voter who always picks the weaker model
        a, b = rng.choice(list(strength), 2, replace=False)
        winner = "model_a" if strength[a] < strength[b] else "model_b"
        rows.append({"model_a": a, "model_b": b, "winner": winner, "tstamp": 1.8e9 + i,
                     "judge": "user:contrarian", "categories": ["ocr"]})  # fmt: skip
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    import_file(page_env, path)

    at = open_page()
    assert metrics(at)["Votes"] == "270"
    task = at.selectbox(key="lb_category")
    assert task.options[0] == "All tasks" and "ocr (190 votes)" in task.options
    task.set_value("ocr").run()
    assert metrics(at)["Votes"] == "190"
    assert not any("left out" in c.value for c in at.caption)

    at.toggle(key="lb_flagged_voters").set_value(True).run()
    assert metrics(at)["Votes"] == "160"
    assert any("30 votes left out: 30 from voters the sequential test flags" in c.value
               for c in at.caption)  # fmt: skip
    at.selectbox(key="lb_category").set_value("All tasks").run()
    assert metrics(at)["Votes"] == "240"

    # the per-task boards come from a background thread: the page says so until they are done
    assert any("being computed in the background" in i.value for i in at.info) or any(
        "Rank 1 of each task" in c.value for c in at.caption
    )
    run_until(
        at,
        lambda at: any("Rank 1 of each task" in c.value for c in at.caption),
        "the best model per task never appeared",
    )
    shown = " ".join(m.value for m in at.markdown)
    assert "**ocr**" in shown and "**charts**" in shown and "**reasoning**" in shown
    assert "**counting**" not in shown  # 27 votes: under the 50 a task needs
    assert "🥇 m0" in shown
