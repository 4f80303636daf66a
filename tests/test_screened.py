"""The screening on real stored battles, SQLite and PostgreSQL: battles stored the way the page
stores them (arena.battle.record), then the leaderboard with and without each rule."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, select, update

from arena import leaderboard
from arena.battle import Battle, SideResult, cast_vote, save_turn, start
from arena.cli import main
from arena.images import check_image
from arena.kinds import Outcome, Requester
from arena.registry import load_registry
from arena.samples import sample_paths
from arena.screened import Screen
from arena.store.schema import battle_categories, battles, votes
from tests.conftest import png_bytes
from tests.stored import stored_battle

REGISTRY = """
models:
  - {id: qwen-vl, name: Qwen2-VL, backend: openai, base_url: "http://127.0.0.1:9/v1",
     model: Qwen/Qwen2-VL-2B-Instruct, vendor: Alibaba}
  - {id: smol, name: SmolVLM, backend: openai, base_url: "http://127.0.0.1:9/v1",
     model: HuggingFaceTB/SmolVLM-256M-Instruct, vendor: Hugging Face}
  - {id: gemma, name: Gemma 3, backend: openai, base_url: "http://127.0.0.1:9/v1",
     model: google/gemma-3-4b-it, vendor: Google}
  - {id: pixie, name: Pixie, backend: openai, base_url: "http://127.0.0.1:9/v1",
     model: pixie-7b}
"""
STRENGTH = {"qwen-vl": 1.2, "gemma": 0.6, "smol": 0.0, "pixie": -0.6}
NO_SCREEN = Screen.none()
_counter = itertools.count()


@pytest.fixture
def registry(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(REGISTRY)
    return load_registry(path)


def image(settings, color=(200, 40, 40)):
    return check_image(png_bytes(color=color), settings)


def play(
    store,
    registry,
    a: str,
    b: str,
    outcome: str,
    *,
    prompts=("what is in this picture?",),
    answers=None,
    voter=None,
    client=None,
    picture=None,
    mode="anonymous",
) -> str:
    """One battle the way the page plays it: start, each turn stored, the vote."""
    n = next(_counter)
    session = f"s{n}"
    requester = Requester(
        session_id=session, voter_id=voter or f"session:{session}", client_key=client
    )
    battle = Battle(mode=mode, spec_a=registry.get(a), spec_b=registry.get(b), image=picture)
    start(store, battle, requester)
    for i, prompt in enumerate(prompts):
        answer_a, answer_b = answers[i] if answers else (f"left {n}", f"right {n}")
        battle.prompts.append(prompt)
        battle.results.append((SideResult(answer_a, tokens=3), SideResult(answer_b, tokens=3)))
        battle.unsaved = True
        save_turn(store, battle)
    cast_vote(store, battle, Outcome(outcome), requester)
    return battle.battle_id


def honest_outcome(rng, a, b) -> str:
    p = 1 / (1 + pow(2.718281828, STRENGTH[b] - STRENGTH[a]))
    return "a" if rng.random() < p else "b"


def board(store, **kwargs):
    kwargs.setdefault("bootstrap_rounds", 0)
    return leaderboard.leaderboard_for(store, **kwargs)


# ----- identity leaks -----------------------------------------------------------------------


def test_an_answer_that_introduces_itself_is_flagged_and_left_out(store, registry, settings):
    picture = image(settings)
    leaked = play(
        store, registry, "qwen-vl", "smol", "a", picture=picture,
        answers=[("I am Qwen, a model trained by Alibaba. It shows a red square.", "A red box.")],
    )  # fmt: skip
    clean = play(store, registry, "gemma", "pixie", "b", picture=picture)
    row = stored_battle(store, leaked)
    assert "introduces itself" in row["identity_leak"] and row["vote"]["identity_leak"] is True
    assert stored_battle(store, clean)["identity_leak"] is None
    screened = board(store)
    assert screened.votes == 1
    out = screened.to_dict()
    assert out["excluded"]["identity_leak"] == 1 and out["excluded"]["total"] == 1
    kept = board(store, screen=Screen(identity_leaks=False))
    assert kept.votes == 2 and kept.to_dict()["excluded"]["total"] == 0


def test_a_vendor_read_off_a_receipt_is_not_a_leak_but_a_volunteered_name_is(
    store, registry, settings
):
    picture = image(settings)
    ocr = play(
        store, registry, "gemma", "smol", "a", picture=picture,
        prompts=["transcribe the text on this receipt"],
        answers=[("Google Cloud invoice, total $12.00", "Invoice: total 12.00")],
    )  # fmt: skip
    chat = play(
        store, registry, "gemma", "smol", "a", picture=picture,
        prompts=["what do you think of this picture?"],
        answers=[("A lovely scene. Google thinks so too.", "Nice colours.")],
    )  # fmt: skip
    assert stored_battle(store, ocr)["identity_leak"] is None
    assert "names 'Google'" in stored_battle(store, chat)["identity_leak"]
    with store.engine.connect() as conn:
        ocr_categories = conn.execute(
            select(battle_categories.c.category).where(battle_categories.c.battle_id == ocr)
        ).scalars()
        assert "ocr" in set(ocr_categories)
    # the OCR board keeps its battle: a brand read off the image spoils nothing
    assert board(store, category="ocr").votes == 1


def test_named_battles_are_not_checked(store, registry, settings):
    bid = play(
        store, registry, "qwen-vl", "smol", "a", picture=image(settings), mode="named",
        answers=[("I am Qwen.", "Hello")],
    )  # fmt: skip
    assert stored_battle(store, bid)["identity_leak"] is None


def test_check_leaks_rechecks_stored_battles_after_models_yaml_changes(
    store, registry, settings, tmp_path, monkeypatch, capsys
):
    bid = play(
        store, registry, "pixie", "smol", "a", picture=image(settings),
        answers=[("Sparkle here! The image is red.", "A red picture.")],
    )  # fmt: skip
    assert stored_battle(store, bid)["identity_leak"] is None
    registry_path = tmp_path / "models.yaml"
    registry_path.write_text(
        REGISTRY.replace("model: pixie-7b}", "model: pixie-7b, aliases: [Sparkle]}")
    )
    monkeypatch.setenv("ARENA_DB_URL", settings.db_url)
    monkeypatch.setenv("ARENA_MODELS", str(registry_path))
    assert main(["check-leaks"]) == 0
    assert "1 flagged, 1 verdicts changed" in capsys.readouterr().out
    row = stored_battle(store, bid)
    assert "Sparkle" in row["identity_leak"] and row["vote"]["identity_leak"] is True
    assert board(store).votes == 0
    registry_path.write_text(REGISTRY)  # the alias is gone again: so is the flag
    assert main(["check-leaks"]) == 0
    assert stored_battle(store, bid)["vote"]["identity_leak"] is False
    assert board(store).votes == 1


# ----- duplicates -----------------------------------------------------------------------------


def test_repeats_of_one_prompt_on_one_image_beyond_the_cap_are_left_out(store, registry, settings):
    rng = random.Random(3)
    picture = image(settings)
    spellings = ["Describe this image.", "describe this image", "  DESCRIBE   this image!! "]
    for i in range(15):
        play(store, registry, "qwen-vl", "smol", honest_outcome(rng, "qwen-vl", "smol"),
             picture=picture, prompts=[spellings[i % 3]])  # fmt: skip
    other_image = image(settings, color=(10, 200, 10))
    for _ in range(3):
        play(store, registry, "qwen-vl", "smol", "a", picture=other_image,
             prompts=["describe this image"])  # fmt: skip
    capped = board(store)
    assert capped.votes == 13  # 10 of the 15, and the 3 on another image
    assert capped.to_dict()["excluded"]["duplicates"] == 5
    assert capped.to_dict()["dedup_cap"] == 10
    again = board(store)
    assert [r.wins for r in again.leaderboard.rows] == [r.wins for r in capped.leaderboard.rows]
    assert board(store, screen=Screen(dedup_cap=0)).votes == 18
    assert board(store, screen=Screen(dedup_cap=4)).votes == 7
    # FastChat's rule: the 99.99th percentile of two keys' counts (15 and 3) is 14
    assert board(store, screen=Screen(dedup_rule="percentile")).votes == 17


def test_the_duplicates_kept_are_a_seeded_choice(store, registry, settings):
    picture = image(settings)
    for i in range(12):
        play(store, registry, "qwen-vl", "smol", "a" if i % 2 else "b", picture=picture,
             prompts=["count the dots"])  # fmt: skip

    def kept_wins(seed):
        rows = board(store, screen=Screen(dedup_cap=5, seed=seed)).leaderboard.rows
        return sorted((r.model, r.wins) for r in rows)

    assert kept_wins(1) == kept_wins(1)
    assert len({tuple(kept_wins(seed)) for seed in range(8)}) > 1


# ----- suspicious voters ----------------------------------------------------------------------


def test_a_voter_who_keeps_voting_against_everyone_is_flagged(store, registry, settings):
    rng = random.Random(5)
    picture = image(settings)
    models = list(STRENGTH)
    for i in range(160):  # honest voters, a few votes each
        a, b = rng.sample(models, 2)
        play(store, registry, a, b, honest_outcome(rng, a, b), picture=picture,
             voter=f"user:honest{i % 40}@example.org", prompts=[f"question {i}"])  # fmt: skip
    for i in range(25):  # one voter always picks the weaker model, from one address
        a, b = rng.sample(models, 2)
        weaker = "a" if STRENGTH[a] < STRENGTH[b] else "b"
        play(store, registry, a, b, weaker, picture=picture, voter="user:contrarian@example.org",
             client="c" * 32, prompts=[f"other question {i}"])  # fmt: skip
    assert board(store).to_dict()["flagged_voters"] is None  # the test runs on request
    reported = board(store, screen=Screen(voter_test=True))
    out = reported.to_dict()
    assert out["flagged_voters"] == ["user:contrarian@example.org"]
    assert out["flagged_clients"] == ["c" * 32]
    assert reported.votes == 185  # listed, not left out
    left_out = board(store, screen=Screen(flagged_voters=True))
    assert left_out.votes == 160
    assert left_out.to_dict()["excluded"]["flagged_voters"] == 25


def test_voters_with_fewer_than_five_decisive_votes_are_never_flagged(store, registry, settings):
    picture = image(settings)
    for i in range(4):
        play(store, registry, "qwen-vl", "pixie", "b", picture=picture, voter="user:few@x.org",
             prompts=[f"q{i}"])  # fmt: skip
    for i in range(30):
        play(store, registry, "qwen-vl", "pixie", "a", picture=picture, prompts=[f"p{i}"])
    assert board(store, screen=Screen(voter_test=True)).to_dict()["flagged_voters"] == []


# ----- sample images and categories ----------------------------------------------------------


def test_battles_on_shipped_samples_are_tagged_and_can_be_left_out(store, registry, settings):
    sample = check_image(sample_paths()[0].read_bytes(), settings, upload=False)
    on_sample = play(store, registry, "qwen-vl", "smol", "a", picture=sample)
    play(store, registry, "qwen-vl", "smol", "b", picture=image(settings))
    with store.engine.connect() as conn:
        tags = dict(
            conn.execute(
                select(battle_categories.c.category, battle_categories.c.source).where(
                    battle_categories.c.battle_id == on_sample
                )
            ).all()
        )
    assert tags["sample_image"] == "auto"
    assert board(store).votes == 2
    left_out = board(store, screen=Screen(sample_images=True))
    assert left_out.votes == 1 and left_out.to_dict()["excluded"]["sample_images"] == 1
    assert board(store, category="sample_image").votes == 1


def test_category_boards_count_only_their_battles(store, registry, settings):
    picture = image(settings)
    play(store, registry, "qwen-vl", "smol", "a", picture=picture,
         prompts=["how many apples are on the table?"])  # fmt: skip
    play(store, registry, "qwen-vl", "smol", "b", picture=picture,
         prompts=["transcribe this handwritten note", "now translate it to French"])  # fmt: skip
    play(store, registry, "gemma", "smol", "b", picture=picture, prompts=["hello there"])
    overall = board(store)
    assert overall.votes == 3
    counts = overall.to_dict()["category_votes"]
    assert counts["counting"] == 1 and counts["ocr"] == 1 and counts["other"] == 1
    assert counts["multi_turn"] == 1
    counting = board(store, category="counting")
    assert counting.votes == 1 and counting.to_dict()["filters"]["category"] == "counting"
    assert board(store, category="creative").votes == 0


def test_an_unknown_category_is_one_clear_error(store):
    from arena.errors import InputError

    with pytest.raises(InputError, match="no category 'ocrr'.*ocr"):
        board(store, category="ocrr")


# ----- the maintained path under screening ---------------------------------------------------


def test_screened_boards_from_the_maintained_counts_equal_the_scan(store, registry, settings):
    """Leaks and duplicates left out: the maintained counts less the left-out votes, with online
    Elo resumed from its screened state, give the scan's board float for float, also after new
    votes and after the left-out set changes."""
    rng = random.Random(11)
    picture = image(settings)
    models = list(STRENGTH)

    def some(n, repeat=False, leak_every=0):
        for i in range(n):
            a, b = rng.sample(models, 2)
            answers = None
            if leak_every and i % leak_every == 0:
                answers = [("I'm Gemma, made by Google.", "A picture.")]
            play(store, registry, a, b, honest_outcome(rng, a, b), picture=picture, prompts=["same prompt" if repeat else f"p{rng.random()}"],
                 answers=answers)  # fmt: skip

    def same_boards():
        kept = board(store, bootstrap_rounds=10)
        scanned = board(store, bootstrap_rounds=10, maintained=False)
        assert kept.leaderboard.to_dict() == scanned.leaderboard.to_dict()
        assert kept.to_dict()["excluded"] == scanned.to_dict()["excluded"]
        return kept

    some(30, leak_every=7)
    some(14, repeat=True)
    first = same_boards()
    assert first.to_dict()["excluded"]["identity_leak"] > 0
    assert first.to_dict()["excluded"]["duplicates"] == 4
    some(10)  # new votes after the stored state: resumed
    same_boards()
    some(5, repeat=True)  # the duplicates' left-out set changes: the state no longer holds
    same_boards()
    with store.engine.connect() as conn:  # as many leaks as before, but other battles
        flagged = set(
            conn.execute(select(votes.c.battle_id).where(votes.c.identity_leak)).scalars()
        )
        clean = conn.execute(
            select(votes.c.battle_id).where(~votes.c.identity_leak).order_by(votes.c.id).limit(1)
        ).scalar()
    with store.engine.begin() as conn:
        swap = (
            update(votes)
            .where(votes.c.battle_id == bindparam("b"))
            .values(identity_leak=bindparam("f"))
        )
        conn.execute(swap, [{"b": min(flagged), "f": False}, {"b": clean, "f": True}])
    same_boards()
    with store.engine.begin() as conn:  # a leak re-checked away changes the set too
        conn.execute(update(battles).values(identity_leak=None))
        conn.execute(update(votes).values(identity_leak=False))
    assert same_boards().to_dict()["excluded"]["identity_leak"] == 0


# ----- the command line ---------------------------------------------------------------------


def test_leaderboard_json_says_what_was_left_out_and_why(
    store, registry, settings, monkeypatch, capsys
):
    picture = image(settings)
    for _ in range(12):
        play(store, registry, "qwen-vl", "smol", "a", picture=picture, prompts=["Read the sign"])
    play(store, registry, "qwen-vl", "smol", "a", picture=picture, prompts=["hi"],
         answers=[("As Qwen2-VL, I see red.", "red")])  # fmt: skip
    monkeypatch.setenv("ARENA_DB_URL", settings.db_url)
    assert main(["leaderboard", "--json", "--bootstrap", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["votes"] == 10
    assert out["excluded"] == {
        "hidden": 0,
        "banned_voters": 0,
        "identity_leak": 1,
        "duplicates": 2,
        "total": 3,
    }  # fmt: skip (moderation's two rules are always there)
    assert out["category_votes"]["ocr"] == 12
    assert main(["leaderboard", "--json", "--bootstrap", "0", "--no-dedup",
                 "--include-identity-leaks"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["votes"] == 13
    assert main(["leaderboard", "--bootstrap", "0"]) == 0
    assert "3 votes left out" in capsys.readouterr().out
    assert main(["leaderboard", "--json", "--bootstrap", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["flagged_voters"] is None  # not tested
    assert main(["leaderboard", "--json", "--bootstrap", "0", "--flagged-voters"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["flagged_voters"] == [] and listed["votes"] == 10
    assert main(["leaderboard", "--json", "--bootstrap", "0", "--category", "ocr"]) == 0
    assert json.loads(capsys.readouterr().out)["votes"] == 10


def test_date_filtered_boards_apply_the_screening_too(store, registry, settings):
    picture = image(settings)
    for _ in range(12):
        play(store, registry, "qwen-vl", "smol", "a", picture=picture, prompts=["same"])
    since = datetime.now(UTC) - timedelta(hours=1)
    assert board(store, since=since).votes == 10
    assert board(store, since=since, screen=NO_SCREEN).votes == 12


def test_classify_one_prompt_on_the_command_line(capsys):
    assert main(["classify", "--prompt", "how many birds are on the wire?", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == ["counting"]
    assert main(["classify", "--prompt", "good morning"]) == 0
    assert capsys.readouterr().out.strip() == "other"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["classify"], "needs --prompt TEXT, --all or --evaluate FILE"),
        (["classify", "--prompt", "   "], "--prompt is empty"),
        (["classify", "--evaluate", "/no/such/file.jsonl"], "cannot read the labelled prompts"),
    ],
)
def test_classify_mistakes_are_one_line(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_classify_all_relabels_stored_battles_with_the_rules_in_use(
    store, registry, settings, tmp_path, monkeypatch, capsys
):
    picture = image(settings)
    bid = play(store, registry, "qwen-vl", "smol", "a", picture=picture,
               prompts=["write a haiku about this"])  # fmt: skip
    assert board(store, category="creative").votes == 1
    rules = tmp_path / "rules.yaml"
    rules.write_text("categories:\n  poetry:\n    description: poems\n    any: [haiku, poem]\n")
    monkeypatch.setenv("ARENA_DB_URL", settings.db_url)
    monkeypatch.setenv("ARENA_CATEGORIES", str(rules))
    assert main(["classify", "--all"]) == 0
    assert "labelled 1 battles with rules" in capsys.readouterr().out
    with store.engine.connect() as conn:
        stored = set(
            conn.execute(
                select(battle_categories.c.category).where(battle_categories.c.battle_id == bid)
            ).scalars()
        )
    assert stored == {"poetry"}
    assert board(store, category="creative").votes == 0


def test_classify_evaluate_prints_the_scores(capsys):
    from tests.test_category_data import DATA

    assert main(["classify", "--evaluate", str(DATA), "--split", "heldout"]) == 0
    out = capsys.readouterr().out
    assert "macro-F1 over the 8 task categories" in out and "reasoning" in out


def test_the_default_board_reads_no_vote_it_keeps_on_sqlite(tmp_path, registry):
    """The default board's reads must not scan every vote (their cost would grow with them):
    the screening finds its votes through indexes that hold only those (hidden battles, banned
    voters, leaks) or through the maintained counts (repeated prompt keys, categories), and the
    page's style check through the index of styled votes. Checked on the query plans SQLite
    picks for the statements really run, on a real file with some of each (the counts and Elo
    reads on the DBAPI cursor are the maintained path's, tested in test_maintained_counts)."""
    import sqlite3

    from sqlalchemy import event

    from arena.config import LIMITS, Settings
    from arena.store import Store

    path = tmp_path / "plans.db"
    settings = Settings(db_url=f"sqlite:///{path}", **dict.fromkeys(LIMITS, 0))
    store = Store.open(settings)
    picture = image(settings)
    ids = [
        play(store, registry, "qwen-vl", "smol", "a", voter=f"v{i % 3}", picture=picture)
        for i in range(12)
    ]
    store.hide(ids[0], "spam", "admin:test")
    store.ban("v1", "bot", "admin:test")
    store.set_identity_leaks({ids[2]: "named itself"})
    statements = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def grab(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    found = board(store).screened
    board(store, anonymous_only=False)
    assert store.has_style()
    assert found.excluded["hidden"] == 1 and found.excluded["identity_leak"] == 1
    assert found.excluded["banned_voters"] == 4 and found.excluded["duplicates"] == 2
    raw = sqlite3.connect(path)
    reads = [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) >= 6
    partial = ("ix_votes_identity_leak", "ix_battles_hidden", "ix_votes_styled")  # only those
    for statement, parameters in reads:
        for *_, detail in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters):
            whole = detail.startswith(("SCAN votes", "SCAN battles", "SCAN battle_categories"))
            assert not whole or detail.endswith(partial), (detail, statement)
            if "prompt_counts" in detail:  # the keys over the cap (or their rows), not every key
                assert "votes>?" in detail or "prompt_key=?" in detail, detail
    raw.close()
    store.engine.dispose()
