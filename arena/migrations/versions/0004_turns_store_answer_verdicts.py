"""Turns store whether each answer finished (ok_a, ok_b), decided by the one Python rule
(arena.battle.sides.answer_finished): SQL's trim() strips only spaces, so a newline-only answer
passed the vote's old SQL check and failed the page's. Every stored turn is backfilled in batches.

Revision ID: 0004
Revises: 0003
"""

import logging

import sqlalchemy as sa
from alembic import op

from arena.battle.sides import answer_finished

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

log = logging.getLogger("arena.migrations")
BATCH = 10_000


def upgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        for side in ("a", "b"):
            batch.add_column(
                sa.Column(f"ok_{side}", sa.Boolean, nullable=False, server_default=sa.false())
            )
    turns = sa.table(
        "turns",
        *map(sa.column, ("id", "answer_a", "error_a", "answer_b", "error_b", "ok_a", "ok_b")),
    )
    conn = op.get_bind()
    total = conn.execute(sa.select(sa.func.count()).select_from(turns)).scalar_one()
    done, last = 0, None
    while True:
        query = sa.select(
            turns.c.id, turns.c.answer_a, turns.c.error_a, turns.c.answer_b, turns.c.error_b
        )
        if last is not None:
            query = query.where(turns.c.id > last)
        rows = conn.execute(query.order_by(turns.c.id).limit(BATCH)).all()
        if not rows:
            break
        for side, answer, error in (("a", 1, 2), ("b", 3, 4)):
            ids = [row[0] for row in rows if answer_finished(row[answer], row[error])]
            if ids:
                conn.execute(turns.update().where(turns.c.id.in_(ids)).values({f"ok_{side}": True}))
        done += len(rows)
        last = rows[-1][0]
        log.info("migration 0004: answer verdicts of %d of %d turns", done, total)


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        for side in ("a", "b"):
            batch.drop_column(f"ok_{side}")
