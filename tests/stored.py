"""What the tests read back from a store's database, to check what the app wrote.

The app itself asks the store (arena/store); these reads exist for the tests only, so they live here.
"""

from __future__ import annotations

from sqlalchemy import func, select

from arena.store.schema import battles, images, turns, votes


def count_rows(store, table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def stored_battle(store, battle_id: str) -> dict | None:
    """The battle row with its turns (in order) and its vote (None if it has none)."""
    with store.engine.connect() as conn:
        row = conn.execute(select(battles).where(battles.c.id == battle_id)).mappings().first()
        if row is None:
            return None
        result = dict(row)
        query = select(turns).where(turns.c.battle_id == battle_id).order_by(turns.c.idx)
        result["turns"] = [dict(t) for t in conn.execute(query).mappings()]
        vote = conn.execute(select(votes).where(votes.c.battle_id == battle_id)).mappings().first()
        result["vote"] = dict(vote) if vote else None
        return result


def votes_in_order(store, anonymous_only=True, since=None, until=None) -> list[tuple]:
    """(model_a, model_b, winner label, created_at) of the votes that pass the filters, by
    (created_at, id), read through plain SQLAlchemy rows: the slow, obvious way."""
    from arena.kinds import Outcome

    query = select(votes.c.model_a, votes.c.model_b, votes.c.outcome, votes.c.created_at)
    if anonymous_only:
        query = query.where(votes.c.mode == "anonymous")
    if since is not None:
        query = query.where(votes.c.created_at >= since)
    if until is not None:
        query = query.where(votes.c.created_at < until)
    with store.engine.connect() as conn:
        rows = conn.execute(query.order_by(votes.c.created_at, votes.c.id)).all()
    return [(a, b, Outcome(o).winner_label, t) for a, b, o, t in rows]


def image_data(store, sha256: str) -> bytes | None:
    with store.engine.connect() as conn:
        return conn.execute(select(images.c.data).where(images.c.sha256 == sha256)).scalar()


def write_at_0001(engine, carried: list[tuple[str, str, str]], answers: list[str]) -> dict:
    """Battles, turns and votes as the code of revision 0001 wrote them (its columns only), one
    per (model_a, model_b, mode) of `carried`, the left answer of each from `answers`.
    Returns {battle_id: (model_a, model_b, mode)}."""
    from datetime import UTC, datetime

    from sqlalchemy import insert

    now = datetime.now(UTC)
    expected = {}
    with engine.begin() as conn:
        conn.execute(
            insert(images).values(
                sha256="0" * 64, format="PNG", width=1, height=1, data=b"png", created_at=now
            )
        )
        for i, ((a, b, mode), answer) in enumerate(zip(carried, answers, strict=True)):
            bid = f"old{i:029d}"
            conn.execute(
                insert(battles).values(
                    id=bid,
                    created_at=now,
                    mode=mode,
                    model_a=a,
                    model_b=b,
                    image_sha256="0" * 64,
                    session_id="s-old",
                    source="arena",
                    question_id=None,
                )
            )
            conn.execute(
                insert(turns).values(
                    battle_id=bid,
                    idx=0,
                    created_at=now,
                    prompt="what?",
                    answer_a=answer,
                    error_a=None,
                    answer_b="right",
                    error_b=None,
                    ttft_a=0.1,
                    ttft_b=0.1,
                    total_a=0.2,
                    total_b=0.2,
                    tokens_a=3,
                    tokens_b=3,
                )
            )
            conn.execute(
                insert(votes).values(battle_id=bid, outcome="a", created_at=now, voter_id=None)
            )
            expected[bid] = (a, b, mode)
    return expected


def answered_battle(
    store,
    *,
    mode,
    model_a,
    model_b,
    image,
    prompt,
    result_a,
    result_b,
    session_id=None,
    voter_id=None,
    client_key=None,
) -> str:
    """A battle with its first turn answered, stored the way the page stores it: the battle's
    slot first (Store.start_battle), then the turn. Returns the battle id."""
    from arena.kinds import Requester

    requester = Requester(session_id=session_id, voter_id=voter_id, client_key=client_key)
    battle_id = store.start_battle(
        mode=mode, model_a=model_a, model_b=model_b, image=image, requester=requester
    )
    store.add_turn(battle_id, prompt, result_a, result_b)
    return battle_id
