"""Moderation: battles can be hidden (kept, but left out of every board and export) and have
their prompts and answers erased; images can have their bytes erased (images.data becomes
NULLable); banned_voters, battle_reports (a voter's "Report this battle"), audit (every action:
who, when, what, why) and terms_accepted (which terms a voter accepted).

SQLite: battles gets its columns by plain ALTER TABLE ADD COLUMN. The NOT NULL of images.data is
dropped by rewriting the table's definition in sqlite_schema, SQLite's documented procedure for
removing a NOT NULL constraint (https://www.sqlite.org/lang_altertable.html#otheralter): the
stored rows do not change. A batch copy of images cannot work inside the migration's transaction:
with foreign keys on (arena.store.engine turns them on, and PRAGMA foreign_keys cannot change
inside a transaction), dropping the old images table fails on the battles that reference it.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_STAMP = sa.DateTime(timezone=True)
_HIDDEN = sa.text("hidden_reason IS NOT NULL")


def upgrade() -> None:
    for name, kind in (
        ("hidden_reason", sa.Text),
        ("hidden_at", _STAMP),
        ("text_erased_at", _STAMP),
    ):
        op.add_column("battles", sa.Column(name, kind, nullable=True))
    op.create_index(
        "ix_battles_hidden",
        "battles",
        ["hidden_at"],
        sqlite_where=_HIDDEN,
        postgresql_where=_HIDDEN,
    )
    op.add_column("images", sa.Column("erased_at", _STAMP, nullable=True))
    _images_data_nullable(True)
    op.create_table(
        "banned_voters",
        sa.Column("voter_id", sa.String(200), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("banned_at", _STAMP, nullable=False),
        sa.Column("banned_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "battle_reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "battle_id",
            sa.String(32),
            sa.ForeignKey("battles.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", _STAMP, nullable=False),
        sa.Column("voter_id", sa.String(200), nullable=True),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("client_key", sa.String(64), nullable=True),
    )
    op.create_index("ix_battle_reports_battle", "battle_reports", ["battle_id"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", _STAMP, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
    )
    op.create_index("ix_audit_at", "audit", ["at"])
    op.create_table(
        "terms_accepted",
        sa.Column("voter_id", sa.String(200), primary_key=True),
        sa.Column("terms_sha256", sa.String(64), primary_key=True),
        sa.Column("accepted_at", _STAMP, nullable=False),
    )


def _images_data_nullable(nullable: bool) -> None:
    """images.data NULL allowed or not. PostgreSQL: ALTER COLUMN. SQLite: the table's CREATE
    statement rewritten in sqlite_schema, with the schema version bumped so every connection
    reads it again (the procedure of SQLite's documentation, see the module docstring)."""
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("images", "data", existing_type=sa.LargeBinary, nullable=nullable)
        return
    conn = op.get_bind()
    ddl = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'images'"
    ).scalar_one()
    strict, loose = "data BLOB NOT NULL", "data BLOB"
    old, new = (strict, loose) if nullable else (loose + ",", strict + ",")
    if ddl.count(old) != 1:
        raise RuntimeError(f"migration 0009: unexpected definition of images: {ddl}")
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    conn.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'images'",
        (ddl.replace(old, new),),
    )
    conn.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    conn.exec_driver_sql("PRAGMA writable_schema = OFF")


def downgrade() -> None:
    for table in ("terms_accepted", "audit", "battle_reports", "banned_voters"):
        op.drop_table(table)
    # an erased image keeps no bytes: an empty value lets the NOT NULL of 0008 hold again
    op.get_bind().execute(
        sa.text("UPDATE images SET data = :empty WHERE data IS NULL"), {"empty": b""}
    )
    _images_data_nullable(False)
    op.drop_index("ix_battles_hidden", "battles")
    # plain DROP COLUMN (SQLite 3.35+): no batch copy of a table (see upgrade)
    op.execute("ALTER TABLE images DROP COLUMN erased_at")
    for column in ("text_erased_at", "hidden_at", "hidden_reason"):
        op.execute(f"ALTER TABLE battles DROP COLUMN {column}")
