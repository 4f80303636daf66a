"""Style counts (arena.style) for style control: every turn stores the counts of its two answers,
every vote the battle's totals over its turns when it was cast (an imported vote, its
conv_metadata). Stored turns are counted in batches from their answers, then stored votes summed
from their turns; both log their progress.

Revision ID: 0006
Revises: 0005
"""

import logging

import sqlalchemy as sa
from alembic import op

from arena.style import COUNTS, count_style

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

log = logging.getLogger("arena.migrations")
BATCH = 20_000
SIDES = ("a", "b")
STYLE = [f"style_{name}_{side}" for side in SIDES for name in COUNTS]


def upgrade() -> None:
    for table in ("turns", "votes"):
        with op.batch_alter_table(table) as batch:
            for name in STYLE:
                batch.add_column(sa.Column(name, sa.Integer, nullable=True))
    conn = op.get_bind()
    _count_turns(conn)
    _sum_votes(conn)


def _count_turns(conn) -> None:
    turns = sa.table(
        "turns", *map(sa.column, ("id", "answer_a", "tokens_a", "answer_b", "tokens_b", *STYLE))
    )
    write = (
        turns.update()
        .where(turns.c.id == sa.bindparam("turn_id"))
        .values({name: sa.bindparam(f"v_{name}") for name in STYLE})
    )
    total = conn.execute(sa.select(sa.func.count()).select_from(turns)).scalar_one()
    done, last = 0, None
    while True:
        query = sa.select(
            turns.c.id, turns.c.answer_a, turns.c.tokens_a, turns.c.answer_b, turns.c.tokens_b
        )
        if last is not None:
            query = query.where(turns.c.id > last)
        rows = conn.execute(query.order_by(turns.c.id).limit(BATCH)).all()
        if not rows:
            break
        params = []
        for turn_id, answer_a, tokens_a, answer_b, tokens_b in rows:
            counted = {
                **count_style(answer_a, tokens_a).columns("a"),
                **count_style(answer_b, tokens_b).columns("b"),
            }
            params.append({"turn_id": turn_id, **{f"v_{k}": v for k, v in counted.items()}})
        conn.execute(write, params)
        done += len(rows)
        last = rows[-1][0]
        log.info("migration 0006: style counts of %d of %d turns", done, total)


def _sum_votes(conn) -> None:
    """UPDATE ... FROM (both SQLite >= 3.33 and PostgreSQL), one range of vote ids at a time."""
    sums = ", ".join(f"sum({name}) AS {name}" for name in STYLE)
    sets = ", ".join(f"{name} = t.{name}" for name in STYLE)
    statement = sa.text(
        f"UPDATE votes SET {sets} FROM (SELECT battle_id, {sums} FROM turns WHERE battle_id IN "
        "(SELECT battle_id FROM votes WHERE id > :lo AND id <= :hi) GROUP BY battle_id) AS t "
        "WHERE t.battle_id = votes.battle_id AND votes.id > :lo AND votes.id <= :hi"
    )
    low, high = conn.execute(sa.text("SELECT min(id), max(id) FROM votes")).one()
    if low is None:
        return
    for start in range(low - 1, high, BATCH):
        conn.execute(statement, {"lo": start, "hi": start + BATCH})
        log.info(
            "migration 0006: style totals of votes up to id %d of %d",
            min(start + BATCH, high),
            high,
        )


def downgrade() -> None:
    for table in ("turns", "votes"):
        with op.batch_alter_table(table) as batch:
            for name in STYLE:
                batch.drop_column(name)
