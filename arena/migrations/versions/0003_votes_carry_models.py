"""Votes carry their battle's model_a, model_b and mode, so the leaderboard reads votes alone
(no join on the 32-character battle id).

No index on (mode, created_at): at a million votes PostgreSQL's planner never picks it (it scans
ix_votes_created_at for the 90 % of votes that are anonymous) and on SQLite the scan is no faster.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = {"model_a": sa.String(200), "model_b": sa.String(200), "mode": sa.String(16)}


def upgrade() -> None:
    with op.batch_alter_table("votes") as batch:
        for name, kind in COLUMNS.items():
            batch.add_column(sa.Column(name, kind, nullable=True))
    # Backfill from the battles: one UPDATE, a correlated subquery per column (SQLite and PostgreSQL).
    votes = sa.table("votes", sa.column("battle_id"), *map(sa.column, COLUMNS))
    battles = sa.table("battles", sa.column("id"), *map(sa.column, COLUMNS))
    of_battle = battles.c.id == votes.c.battle_id
    copies = {
        name: sa.select(battles.c[name]).where(of_battle).scalar_subquery() for name in COLUMNS
    }
    op.execute(votes.update().values(copies))
    with op.batch_alter_table("votes") as batch:
        for name, kind in COLUMNS.items():
            batch.alter_column(name, existing_type=kind, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("votes") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
