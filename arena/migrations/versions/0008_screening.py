"""Screening and categories: battles and votes carry the prompt key that duplicates are counted
by (arena.screening.duplicates.prompt_key of the first prompt and the image) and whether an
answer gives a model away (arena.screening.leaks); battle_categories holds each battle's task
categories; elo_state keeps screened boards' online Elo with a fingerprint of what they left out.

The prompt keys of stored battles are filled in batches from their first turns, with progress in
the log, and copied to their votes. Identity leaks and categories depend on models.yaml and the
category rules, which a migration does not read: `python -m arena check-leaks` and
`python -m arena classify --all` fill them (README says so).

Revision ID: 0008
Revises: 0007
"""

import logging

import sqlalchemy as sa
from alembic import op

from arena.screening.duplicates import prompt_key

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

log = logging.getLogger("arena.migrations")
BATCH = 20_000


def upgrade() -> None:
    # plain ALTER TABLE ADD COLUMN: a batch copy of votes (which SQLite's batch mode makes for a
    # column with a SQL default) would drop migration 0007's triggers
    op.add_column("battles", sa.Column("prompt_key", sa.String(32), nullable=True))
    op.add_column("battles", sa.Column("identity_leak", sa.Text, nullable=True))
    op.add_column("votes", sa.Column("prompt_key", sa.String(32), nullable=True))
    op.add_column(
        "votes", sa.Column("identity_leak", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.create_index("ix_votes_prompt_key", "votes", ["prompt_key"])
    op.create_index(
        "ix_votes_identity_leak",
        "votes",
        ["identity_leak"],
        sqlite_where=sa.text("identity_leak"),
        postgresql_where=sa.text("identity_leak"),
    )
    op.create_table(
        "battle_categories",
        sa.Column(
            "battle_id",
            sa.String(32),
            sa.ForeignKey("battles.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("category", sa.String(32), primary_key=True),
        sa.Column("source", sa.String(200), nullable=False),
    )
    op.create_index("ix_battle_categories_category", "battle_categories", ["category", "battle_id"])
    op.add_column("elo_state", sa.Column("screen", sa.String(64), nullable=True))
    conn = op.get_bind()
    _fill_prompt_keys(conn)
    # an UPDATE of prompt_key alone: the vote-count triggers watch other columns
    op.execute(
        "UPDATE votes SET prompt_key = "
        "(SELECT b.prompt_key FROM battles AS b WHERE b.id = votes.battle_id)"
    )


def _fill_prompt_keys(conn) -> None:
    battles = sa.table("battles", *map(sa.column, ("id", "image_sha256", "prompt_key")))
    turns = sa.table("turns", *map(sa.column, ("battle_id", "idx", "prompt")))
    write = (
        battles.update()
        .where(battles.c.id == sa.bindparam("battle"))
        .values(prompt_key=sa.bindparam("key"))
    )
    first = turns.c.idx == 0
    total = conn.execute(sa.select(sa.func.count()).select_from(turns).where(first)).scalar_one()
    done, last = 0, None
    while True:
        query = (
            sa.select(battles.c.id, battles.c.image_sha256, turns.c.prompt)
            .select_from(battles.join(turns, turns.c.battle_id == battles.c.id))
            .where(first)
        )
        if last is not None:
            query = query.where(battles.c.id > last)
        rows = conn.execute(query.order_by(battles.c.id).limit(BATCH)).all()
        if not rows:
            break
        conn.execute(
            write, [{"battle": bid, "key": prompt_key(prompt, sha)} for bid, sha, prompt in rows]
        )
        done += len(rows)
        last = rows[-1][0]
        log.info("prompt keys: %d of %d battles", done, total)


def downgrade() -> None:
    op.drop_table("battle_categories")
    op.drop_index("ix_votes_identity_leak", "votes")
    op.drop_index("ix_votes_prompt_key", "votes")
    # plain DROP COLUMN (SQLite 3.35+): a batch copy of votes would lose 0007's triggers
    op.execute("DELETE FROM elo_state WHERE screen IS NOT NULL")
    for table in ("elo_state", "votes", "battles"):
        for column in ("screen",) if table == "elo_state" else ("identity_leak", "prompt_key"):
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
