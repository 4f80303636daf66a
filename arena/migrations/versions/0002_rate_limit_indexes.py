"""Indexes for the per-session and per-voter rate limits.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_battles_session_created", "battles", ["session_id", "created_at"])
    op.create_index("ix_votes_voter_created", "votes", ["voter_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_votes_voter_created", table_name="votes")
    op.drop_index("ix_battles_session_created", table_name="battles")
