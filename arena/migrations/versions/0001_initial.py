"""Initial schema: images, battles, turns, votes (one vote per battle).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _side_columns():
    return [
        col
        for side in ("a", "b")
        for col in (
            sa.Column(f"answer_{side}", sa.Text, nullable=True),
            sa.Column(f"error_{side}", sa.Text, nullable=True),
            sa.Column(f"ttft_{side}", sa.Float, nullable=True),
            sa.Column(f"total_{side}", sa.Float, nullable=True),
            sa.Column(f"tokens_{side}", sa.Integer, nullable=True),
        )
    ]


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "battles",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("model_a", sa.String(200), nullable=False),
        sa.Column("model_b", sa.String(200), nullable=False),
        sa.Column("image_sha256", sa.String(64), sa.ForeignKey("images.sha256"), nullable=True),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("source", sa.String(200), nullable=False, server_default="arena"),
        sa.Column("question_id", sa.String(200), nullable=True),
    )
    op.create_index("ix_battles_created_at", "battles", ["created_at"])
    op.create_table(
        "turns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "battle_id",
            sa.String(32),
            sa.ForeignKey("battles.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        *_side_columns(),
        sa.UniqueConstraint("battle_id", "idx", name="uq_turns_battle_idx"),
    )
    op.create_table(
        "votes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "battle_id",
            sa.String(32),
            sa.ForeignKey("battles.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("voter_id", sa.String(200), nullable=True),
        sa.UniqueConstraint("battle_id", name="uq_votes_battle"),
    )
    op.create_index("ix_votes_created_at", "votes", ["created_at"])


def downgrade() -> None:
    op.drop_table("votes")
    op.drop_table("turns")
    op.drop_table("battles")
    op.drop_table("images")
