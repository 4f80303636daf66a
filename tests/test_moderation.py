"""Moderation on real stored battles, SQLite and PostgreSQL: battles played the way the page
plays them (arena.battle.record), then hidden, their voters banned, their texts and images
erased, reported, and browsed; every action with its audit row; the `moderate` commands."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from arena.battle import Battle, SideResult, cast_vote, save_turn, start
from arena.cli import main
from arena.errors import InputError, VoteError
from arena.kinds import Mode, Outcome, Requester
from arena.registry import load_registry
from arena.samples import sample_paths
from arena.screened import Screen
from arena.store import engine as eng
from arena.store.refusals import BANNED
from arena.store.schema import audit, battles, images
from arena.store.transfer import export_frame
from tests.stored import count_rows, image_data, stored_battle
from tests.test_screened import REGISTRY, board, image, play

ADMIN = "admin:ops@example.org"
# what an erased turn keeps: its timings, token and style counts, verdicts
KEPT = ("idx", "ttft_a", "total_b", "tokens_a", "tokens_b", "ok_a", "ok_b", "style_tokens_a")


@pytest.fixture
def registry(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(REGISTRY)
    return load_registry(path)


def audited(store) -> list[tuple[str, str, str, str | None]]:
    """(actor, action, target, reason) of the audit log, oldest first."""
    return [(a.actor, a.action, a.target, a.reason) for a in reversed(store.audit_log(100))]


def unvoted(store, registry, settings, voter: str, picture=None) -> tuple[Battle, Requester]:
    """A battle answered and ready for its vote, as the page leaves it before the click."""
    requester = Requester(session_id=f"tab-{voter}", voter_id=voter)
    battle = Battle(
        mode="anonymous", spec_a=registry.get("gemma"), spec_b=registry.get("smol"),
        image=picture or image(settings),
    )  # fmt: skip
    start(store, battle, requester)
    battle.prompts.append("what is in this picture?")
    battle.results.append((SideResult("a red square", tokens=3), SideResult("red", tokens=1)))
    battle.unsaved = True
    save_turn(store, battle)
    return battle, requester


# ----- hide -------------------------------------------------------------------------------------


def test_a_hidden_battle_leaves_every_board_and_the_export_until_shown_again(
    store, registry, settings
):
    picture = image(settings)
    ids = [play(store, registry, "qwen-vl", "smol", "a", picture=picture) for _ in range(3)]
    assert store.hide(ids[0], "spam prompt", ADMIN) is True
    for screen in (None, Screen.none()):  # always on, whatever the board's own screening
        shown = board(store, screen=screen)
        assert shown.votes == 2 and shown.to_dict()["excluded"]["hidden"] == 1
    assert "1 of battles an admin hid" in board(store).screened.summary()
    assert len(export_frame(store)) == 2
    assert stored_battle(store, ids[0])["vote"] is not None  # kept, only hidden
    assert store.unhide(ids[0], ADMIN) is True
    assert board(store).votes == 3 and len(export_frame(store)) == 3
    assert audited(store) == [
        (ADMIN, "hide", ids[0], "spam prompt"),
        (ADMIN, "unhide", ids[0], None),
    ]


@pytest.mark.parametrize(
    ("actions", "returns", "reasons"),
    [
        pytest.param(["hide", "hide"], [True, False], ["spam", "spam (already hidden)"], id="hide twice"),
        pytest.param(["unhide"], [False], ["(was not hidden)"], id="unhide a shown battle"),
        pytest.param(
            ["hide", "unhide", "unhide"], [True, True, False], ["spam", None, "(was not hidden)"],
            id="unhide twice",
        ),
    ],
)  # fmt: skip
def test_repeating_an_action_changes_nothing_and_the_audit_says_so(
    store, registry, settings, actions, returns, reasons
):
    bid = play(store, registry, "gemma", "pixie", "a", picture=image(settings))
    done = [
        store.hide(bid, "spam", ADMIN) if a == "hide" else store.unhide(bid, ADMIN) for a in actions
    ]
    assert done == returns
    assert [r for *_, r in audited(store)] == reasons
    assert (stored_battle(store, bid)["hidden_reason"] is not None) == (actions[-1] == "hide")


# ----- ban --------------------------------------------------------------------------------------


def test_a_banned_voter_is_refused_politely_and_their_votes_leave_the_boards(
    store, registry, settings
):
    picture = image(settings)
    bad = "user:bad@example.org"
    for _ in range(2):
        play(store, registry, "qwen-vl", "smol", "a", voter=bad, picture=picture)
    play(store, registry, "gemma", "smol", "b", voter="user:good@example.org", picture=picture)
    assert store.ban(bad, "bought votes", ADMIN) is True
    shown = board(store, screen=Screen.none())
    assert shown.votes == 1 and shown.to_dict()["excluded"]["banned_voters"] == 2
    assert list(export_frame(store)["judge"]) == ["user:good@example.org"]
    battle, requester = unvoted(store, registry, settings, bad)
    with pytest.raises(VoteError) as refused:
        cast_vote(store, battle, Outcome.A, requester)
    assert str(refused.value) == BANNED and "bought" not in BANNED
    assert stored_battle(store, battle.battle_id)["vote"] is None
    assert store.banned_voters() == {bad: "bought votes"}
    assert store.ban(bad, "again", ADMIN) is False  # the first ban stays
    assert store.banned_voters() == {bad: "bought votes"}
    assert store.unban(bad, ADMIN, "appeal granted") is True
    cast_vote(store, battle, Outcome.A, requester)
    assert board(store, screen=Screen.none()).votes == 4
    assert audited(store) == [
        (ADMIN, "ban", bad, "bought votes"),
        (ADMIN, "ban", bad, "again (already banned)"),
        (ADMIN, "unban", bad, "appeal granted"),
    ]


def test_a_ban_refuses_only_that_voter(store, registry, settings):
    play(
        store,
        registry,
        "qwen-vl",
        "smol",
        "a",
        voter="user:bad@example.org",
        picture=image(settings),
    )
    store.ban("user:bad@example.org", "bought votes", ADMIN)
    battle, requester = unvoted(store, registry, settings, "user:other@example.org")
    cast_vote(store, battle, Outcome.B, requester)
    assert stored_battle(store, battle.battle_id)["vote"]["outcome"] == "b"


# ----- erase ------------------------------------------------------------------------------------


def test_erasing_the_text_keeps_the_battle_its_vote_and_its_timings(store, registry, settings):
    bid = play(
        store, registry, "qwen-vl", "smol", "a", picture=image(settings),
        prompts=["my name is Ada Lovelace, what is this?", "and where do I live?"],
        answers=[("A red square, Ada.", "Red."), ("In London.", "Unknown.")],
    )  # fmt: skip
    before = stored_battle(store, bid)
    erased = store.erase(bid, image=False, text=True, actor=ADMIN, reason="request 42")
    assert (erased.turns, erased.image_sha256) == (2, None)
    after = stored_battle(store, bid)
    assert after["text_erased_at"] is not None and after["vote"] == before["vote"]
    for old, new in zip(before["turns"], after["turns"], strict=True):
        assert (new["prompt"], new["answer_a"], new["answer_b"]) == ("", "", "")
        assert {k: new[k] for k in KEPT} == {k: old[k] for k in KEPT}
    assert board(store).votes == 1
    assert store.erase(bid, image=False, text=True, actor=ADMIN).turns == 0  # nothing left
    assert [r for *_, r in audited(store)] == [
        "request 42 (text: removed the prompts and answers of 2 turn(s))",
        "(text: removed nothing (already erased))",
    ]


def test_an_error_text_is_erased_too_and_stays_an_error(store, registry, settings):
    battle, _ = unvoted(store, registry, settings, "user:v@example.org")
    battle.prompts.append("and now?")
    battle.results.append((SideResult("fine"), SideResult("", error="echoed: my secret prompt")))
    battle.unsaved = True
    save_turn(store, battle)
    store.erase(battle.battle_id, image=False, text=True, actor=ADMIN)
    turns = stored_battle(store, battle.battle_id)["turns"]
    assert [(t["error_a"], t["error_b"]) for t in turns] == [(None, None), (None, "")]


def test_erasing_an_image_removes_its_bytes_for_every_battle_that_shows_it(
    store, registry, settings
):
    shared, other = image(settings), image(settings, color=(0, 90, 200))
    first = play(store, registry, "qwen-vl", "smol", "a", picture=shared)
    second = play(store, registry, "gemma", "pixie", "b", picture=shared)
    third = play(store, registry, "gemma", "smol", "a", picture=other)
    erased = store.erase(second, image=True, text=False, actor=ADMIN, reason="privacy")
    assert (erased.image_sha256, erased.image_battles, erased.turns) == (shared.sha256, 2, 0)
    assert image_data(store, shared.sha256) is None and store.image_data(shared.sha256) is None
    assert image_data(store, other.sha256) == other.data
    for bid in (first, second):
        detail = store.battle_detail(bid)
        assert detail.image.size is None and detail.image.erased_at is not None
        assert detail.image.sha256 == shared.sha256 and detail.vote["outcome"] in ("a", "b")
        assert detail.turns[0]["prompt"]  # the text stays
    assert store.battle_detail(third).image.size == len(other.data)
    rows = {r.id: r.image_erased for r in store.battles_page()}
    assert rows == {first: True, second: True, third: False}
    assert board(store, screen=Screen.none()).votes == 3
    again = store.erase(first, image=True, text=False, actor=ADMIN)
    assert again.image_sha256 is None and again.describe() == "nothing (already erased)"


def test_a_shipped_sample_image_cannot_be_erased_but_its_text_can(store, registry, settings):
    from arena.images import check_image

    sample = check_image(sample_paths()[0].read_bytes(), settings, upload=False)
    bid = play(store, registry, "qwen-vl", "smol", "a", picture=sample)
    with pytest.raises(InputError, match="shipped sample image, which cannot be erased"):
        store.erase(bid, image=True, text=True, actor=ADMIN)
    assert stored_battle(store, bid)["turns"][0]["prompt"]  # refused as a whole: nothing erased
    assert audited(store) == []
    assert store.erase(bid, image=False, text=True, actor=ADMIN).turns == 1
    assert image_data(store, sample.sha256) == sample.data


def test_on_sqlite_erased_bytes_leave_the_database_files(tmp_path, registry):
    """Even where SQLite's secure_delete is off (a build option), the erase overwrites what it
    frees and checkpoints the WAL: neither file holds the image or the prompt afterwards."""
    import io
    import os

    from PIL import Image
    from sqlalchemy import event

    from arena.config import LIMITS, Settings
    from arena.images import check_image
    from arena.store import Store

    path = tmp_path / "arena.db"
    settings = Settings(db_url=f"sqlite:///{path}", **dict.fromkeys(LIMITS, 0))
    store = Store.open(settings)
    event.listen(
        store.engine, "connect", lambda c, _: c.execute("PRAGMA secure_delete = OFF")
    )  # every connection from now on, the writer's too
    store.engine.dispose()
    noise = io.BytesIO()
    Image.frombytes("RGB", (64, 48), os.urandom(64 * 48 * 3)).save(noise, "PNG")
    picture = check_image(noise.getvalue(), settings)
    secret = "my passport number is X4711-ZQ-0815"
    bid = play(store, registry, "gemma", "smol", "a", picture=picture, prompts=[secret])
    play(store, registry, "gemma", "pixie", "b", picture=image(settings))  # more rows around it

    def on_disk() -> list[bool]:
        files = [p.read_bytes() for p in (path, tmp_path / "arena.db-wal") if p.exists()]
        return [
            any(needle in f for f in files) for needle in (picture.data[100:164], secret.encode())
        ]

    assert on_disk() == [True, True]
    erased = store.erase(bid, image=True, text=True, actor=ADMIN)
    assert erased.off_disk is True and on_disk() == [False, False]
    store.engine.dispose()


def test_on_postgresql_an_erase_says_the_bytes_wait_for_vacuum(pg_url, registry, tmp_path):
    from arena.config import LIMITS, Settings
    from arena.store import Store

    settings = Settings(db_url=pg_url, **dict.fromkeys(LIMITS, 0))
    store = Store.open(settings)
    bid = play(store, registry, "gemma", "smol", "a", picture=image(settings))
    assert store.erase(bid, image=True, text=True, actor=ADMIN).off_disk is False
    store.engine.dispose()


# ----- errors -----------------------------------------------------------------------------------


VOTER = "user:v@example.org"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda s, b: s.hide("nope", "spam", ADMIN), "No battle 'nope'", id="hide"),
        pytest.param(lambda s, b: s.unhide("nope", ADMIN), "No battle 'nope'", id="unhide"),
        pytest.param(
            lambda s, b: s.erase("nope", image=True, text=False, actor=ADMIN), "No battle 'nope'",
            id="erase",
        ),
        pytest.param(
            lambda s, b: s.report("nope", "rude", Requester(voter_id="v")), "No battle 'nope'",
            id="report",
        ),
        pytest.param(lambda s, b: s.battle_detail("nope"), "No battle 'nope'", id="detail"),
        pytest.param(lambda s, b: s.ban("user:x", "spam", ADMIN), "from voter 'user:x'", id="ban"),
        pytest.param(lambda s, b: s.unban("user:x", ADMIN), "from voter 'user:x'", id="unban"),
        pytest.param(lambda s, b: s.hide(b, "  ", ADMIN), "Give a reason to hide", id="no reason"),
        pytest.param(lambda s, b: s.ban(VOTER, "", ADMIN), "Give a reason to ban", id="no ban reason"),
        pytest.param(
            lambda s, b: s.report(b, "x" * 2001, Requester(voter_id="v")), "keep it under 2,000",
            id="long reason",
        ),
        pytest.param(
            lambda s, b: s.erase(b, image=False, text=False, actor=ADMIN), "Say what to erase",
            id="erase nothing",
        ),
    ],
)  # fmt: skip
def test_a_bad_request_is_one_line_naming_it_and_writes_nothing(
    store, registry, settings, call, message
):
    bid = play(store, registry, "gemma", "smol", "a", voter=VOTER, picture=image(settings))
    with pytest.raises(InputError, match=message) as raised:
        call(store, bid)
    assert "\n" not in str(raised.value)
    assert count_rows(store, audit) == 0 and stored_battle(store, bid)["hidden_reason"] is None


# ----- reports and the browser ------------------------------------------------------------------


def test_reports_flag_a_battle_for_the_browser_once_per_voter(store, registry, settings):
    picture = image(settings)
    reported = play(store, registry, "qwen-vl", "smol", "a", picture=picture)
    clean = play(store, registry, "gemma", "smol", "b", picture=picture)
    first = Requester(session_id="tab-1", voter_id="session:tab-1")
    assert store.report(reported, "insulting answer", first) is True
    assert store.report(reported, "again!", first) is False  # one report per voter
    assert store.report(reported, "offensive", Requester(voter_id="user:b@example.org")) is True
    flagged = store.battles_page(flagged=True)
    assert [(r.id, r.reports, r.flagged) for r in flagged] == [(reported, 2, True)]
    assert [r.id for r in store.battles_page(flagged=False)] == [clean]
    assert [r.reason for r in store.reports()] == ["offensive", "insulting answer"]
    assert [r.reason for r in store.battle_detail(reported).reports] == [
        "offensive",
        "insulting answer",
    ]
    assert audited(store) == [
        ("voter:session:tab-1", "report", reported, "insulting answer"),
        ("voter:user:b@example.org", "report", reported, "offensive"),
    ]
    assert board(store).votes == 2  # a report alone changes no board


def test_hidden_and_leaking_battles_are_flagged_too(store, registry, settings):
    picture = image(settings)
    hidden = play(store, registry, "gemma", "smol", "a", picture=picture)
    leak = play(
        store, registry, "qwen-vl", "smol", "a", picture=picture,
        answers=[("I am Qwen, a model trained by Alibaba.", "A red box.")],
    )  # fmt: skip
    play(store, registry, "gemma", "pixie", "a", picture=picture)
    store.hide(hidden, "off-topic", ADMIN)
    rows = {r.id: (r.hidden, r.identity_leak) for r in store.battles_page(flagged=True)}
    assert rows == {hidden: (True, False), leak: (False, True)}


def test_the_browser_pages_and_filters_battles_most_recent_first(store, registry, settings):
    picture = image(settings)
    played = [
        play(store, registry, "qwen-vl", "smol", "a", picture=picture),
        play(store, registry, "gemma", "smol", "tie", picture=picture, mode="named"),
        play(store, registry, "gemma", "pixie", "b", picture=picture),
        play(store, registry, "pixie", "qwen-vl", "bothbad", picture=picture),
    ]
    waiting, _ = unvoted(store, registry, settings, "user:w@example.org")
    everything = [waiting.battle_id, *reversed(played)]
    rows = store.battles_page()
    assert [r.id for r in rows] == everything
    assert [r.outcome for r in rows] == [None, Outcome.BOTH_BAD, Outcome.B, Outcome.TIE, Outcome.A]
    assert store.battles_count() == 5
    pages = [store.battles_page(limit=2, offset=k) for k in (0, 2, 4)]
    assert [r.id for page in pages for r in page] == everything
    stamps = {r.id: r.created_at for r in rows}
    cases = {
        "model": ({"model": "qwen-vl"}, [played[3], played[0]]),
        "mode": ({"mode": Mode.NAMED}, [played[1]]),
        "voted": ({"voted": True}, everything[1:]),
        "unvoted": ({"voted": False}, [waiting.battle_id]),
        "since": ({"since": stamps[played[2]]}, everything[:3]),
        "until": ({"until": stamps[played[2]]}, [played[1], played[0]]),
        "both": ({"model": "gemma", "mode": Mode.ANONYMOUS}, [waiting.battle_id, played[2]]),
        "empty": ({"until": stamps[played[0]] - timedelta(days=1)}, []),
    }
    for name, (filters, expected) in cases.items():
        assert [r.id for r in store.battles_page(**filters)] == expected, name
        assert store.battles_count(**filters) == len(expected), name


def test_the_detail_has_the_turns_the_vote_and_whether_its_voter_is_banned(
    store, registry, settings
):
    voter = "user:d@example.org"
    bid = play(store, registry, "gemma", "smol", "a", voter=voter, picture=image(settings))
    store.ban(voter, "spam", ADMIN)
    detail = store.battle_detail(bid)
    assert detail.battle["model_a"] == "gemma" and detail.voter_banned is True
    assert detail.vote["voter_id"] == voter and detail.vote["outcome"] == "a"
    (turn,) = detail.turns
    assert turn["prompt"] == "what is in this picture?" and turn["tokens_a"] == 3
    assert detail.image.format == "PNG" and detail.image.erased_at is None


# ----- the command line -------------------------------------------------------------------------


def test_the_moderate_commands_act_and_log_as_the_os_user(
    store, registry, settings, monkeypatch, capsys
):
    monkeypatch.setenv("ARENA_DB_URL", settings.db_url)
    monkeypatch.setattr("getpass.getuser", lambda: "ops")
    voter = "user:c@example.org"
    bid = play(store, registry, "gemma", "smol", "a", voter=voter, picture=image(settings))
    store.report(bid, "spam", Requester(voter_id="session:r"))
    steps = [
        (["hide", bid, "--reason", "spam"], f"hid battle {bid}"),
        (["hide", bid, "--reason", "spam"], "was hidden already"),
        (["unhide", bid], "is shown again"),
        (["ban", voter, "--reason", "bought votes"], f"banned voter {voter}"),
        (["unban", voter, "--reason", "appeal"], "can vote again"),
        (["erase", bid, "--text"], "removed the prompts and answers of 1 turn(s)"),
        (["erase", bid, "--image", "--text"], "(shown by 1 battle(s))"),
        (["reports", "--limit", "5"], f"{bid}  session:r  spam"),
    ]
    for argv, said in steps:
        assert main(["moderate", *argv]) == 0, argv
        assert said in capsys.readouterr().out, argv
    assert main(["moderate", "audit", "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and f"cli:ops  erase {bid}  (image and text: removed " in lines[0]
    assert {a.actor for a in store.audit_log(100)} == {"cli:ops", "voter:session:r"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["hide", "nope", "--reason", "x"], "No battle 'nope' is stored", id="unknown battle"),
        pytest.param(["ban", "user:nobody", "--reason", "x"], "from voter 'user:nobody'", id="unknown voter"),
        pytest.param(["erase", "{bid}"], "erase needs --image, --text or both", id="erase what"),
        pytest.param(["hide", "{bid}", "--reason", ""], "Give a reason to hide", id="empty reason"),
    ],
)  # fmt: skip
def test_a_bad_moderate_command_is_one_line_and_a_non_zero_exit(
    store, registry, settings, monkeypatch, capsys, argv, message
):
    monkeypatch.setenv("ARENA_DB_URL", settings.db_url)
    bid = play(store, registry, "gemma", "smol", "a", picture=image(settings))
    assert main(["moderate", *[bid if a == "{bid}" else a for a in argv]]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert count_rows(store, audit) == 0


# ----- the migration ----------------------------------------------------------------------------


def test_migration_0009_and_back_keeps_battles_and_erased_images(db_url, settings, registry):
    """Down to 0008 an erased image gets empty bytes (its NOT NULL holds again); up again, the
    moderation columns and tables are back and the vote-count triggers still count."""
    from alembic import command

    from arena.store import Store

    store = Store.open(settings)
    bid = play(store, registry, "gemma", "smol", "a", picture=image(settings))
    store.erase(bid, image=True, text=False, actor=ADMIN)
    cfg = eng.alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0008")
    assert count_rows(store, battles) == 1
    with store.engine.connect() as conn:  # the columns of 0008 only
        assert conn.execute(select(images.c.data)).scalar() == b""
    eng.upgrade(store.engine)
    fresh = Store(store.engine, settings)
    play(fresh, registry, "gemma", "smol", "b", picture=image(settings))
    assert board(fresh, screen=Screen.none()).votes == 2
    store.engine.dispose()
