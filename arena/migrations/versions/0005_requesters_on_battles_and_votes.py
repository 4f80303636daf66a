"""Battles and votes carry who asked: battles the voter id and client key, votes the session id
and client key (a keyed hash of the client's address, never the address), each indexed with its
time for the rate limits that count them.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = {
    "battles": {"voter_id": sa.String(200), "client_key": sa.String(64)},
    "votes": {"session_id": sa.String(64), "client_key": sa.String(64)},
}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, kind in columns.items():
                batch.add_column(sa.Column(name, kind, nullable=True))
        for name in columns:
            short = "client" if name == "client_key" else name.removesuffix("_id")
            op.create_index(f"ix_{table}_{short}_created", table, [name, "created_at"])


def downgrade() -> None:
    for table, columns in COLUMNS.items():
        for name in columns:
            short = "client" if name == "client_key" else name.removesuffix("_id")
            op.drop_index(f"ix_{table}_{short}_created", table)
        with op.batch_alter_table(table) as batch:
            for name in columns:
                batch.drop_column(name)
