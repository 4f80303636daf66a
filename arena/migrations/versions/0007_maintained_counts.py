"""The leaderboard's counts kept by the database: vote_counts holds the votes per (mode, model_a,
model_b, outcome), kept exact by triggers on votes in every writer's own transaction; vote_edits
counts the deletions and changes of stored votes; elo_state keeps online Elo resumable.

The triggers are created before the counts are filled, so on PostgreSQL (CREATE TRIGGER locks
votes against writes until this migration commits) no vote falls between the two. PostgreSQL's
are statement triggers over transition tables: a COPY or multi-row INSERT of a million votes
costs one GROUP BY, not a million function calls. SQLite has row triggers only. A PostgreSQL
import sets a transaction-local flag that the insert trigger skips, and adds its own counts in one
upsert just before it commits (the same transaction, so the counts stay exact).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

KEY = ("mode", "model_a", "model_b", "outcome")
DEFER_SETTING = "arena.defer_vote_counts"  # transaction-local; only an import sets it
# the columns whose change moves a vote between counts or in the time order of online Elo
TRACKED = (*KEY, "created_at")

_MATCH = " AND ".join(f"{c} = OLD.{c}" for c in KEY)
_CHANGED = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in TRACKED)
_KEY = ", ".join(KEY)
_NEW = ", ".join(f"NEW.{c}" for c in KEY)

SQLITE = [
    f"""CREATE TRIGGER votes_counted_insert AFTER INSERT ON votes BEGIN
    INSERT INTO vote_counts ({_KEY}, votes) VALUES ({_NEW}, 1)
        ON CONFLICT ({_KEY}) DO UPDATE SET votes = votes + 1;
END""",
    f"""CREATE TRIGGER votes_counted_delete AFTER DELETE ON votes BEGIN
    UPDATE vote_counts SET votes = votes - 1 WHERE {_MATCH};
    DELETE FROM vote_counts WHERE {_MATCH} AND votes <= 0;
    UPDATE vote_edits SET edits = edits + 1;
END""",
    f"""CREATE TRIGGER votes_counted_update AFTER UPDATE OF {", ".join(TRACKED)} ON votes
WHEN {_CHANGED} BEGIN
    UPDATE vote_counts SET votes = votes - 1 WHERE {_MATCH};
    DELETE FROM vote_counts WHERE {_MATCH} AND votes <= 0;
    INSERT INTO vote_counts ({_KEY}, votes) VALUES ({_NEW}, 1)
        ON CONFLICT ({_KEY}) DO UPDATE SET votes = votes + 1;
    UPDATE vote_edits SET edits = edits + 1;
END""",
]


def _pg_add(rows: str) -> str:
    """Add the votes of a transition table (or a query over one) to vote_counts, in key order
    (two bulk writers lock the rows they share in the same order)."""
    return f"""INSERT INTO vote_counts ({_KEY}, votes)
        SELECT {_KEY}, count(*) FROM {rows} AS r GROUP BY {_KEY} ORDER BY {_KEY}
        ON CONFLICT ({_KEY}) DO UPDATE SET votes = vote_counts.votes + excluded.votes;"""


def _pg_subtract(rows: str) -> str:
    """Take the votes of a transition table (or a query over one) off vote_counts: the rows that
    reach 0 are deleted, the others lowered (disjoint rows: one statement's CTEs may not write
    the same row twice)."""
    on = " AND ".join(f"c.{c} = g.{c}" for c in KEY)
    return f"""WITH g AS (SELECT {_KEY}, count(*) AS n FROM {rows} AS r GROUP BY {_KEY}),
        gone AS (DELETE FROM vote_counts AS c USING g WHERE {on} AND c.votes <= g.n)
        UPDATE vote_counts AS c SET votes = c.votes - g.n FROM g WHERE {on} AND c.votes > g.n;"""


_PG_CHANGED = (
    "(SELECT o.* FROM old_votes AS o JOIN new_votes AS n ON n.id = o.id WHERE "
    + " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in TRACKED)
    + ")"
)
_PG_CHANGED_NEW = _PG_CHANGED.replace("SELECT o.*", "SELECT n.*")
_BUMP = "UPDATE vote_edits SET edits = edits + 1;"

POSTGRESQL = [
    # An import counts its own rows at its end, in its own transaction (arena.store.maintained
    # .deferred_counts): holding vote_counts' rows from its first chunk to its commit would make
    # every app vote on those pairs wait for the whole import.
    f"""CREATE FUNCTION votes_counted_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('{DEFER_SETTING}', true) = 'on' THEN
        RETURN NULL;
    END IF;
    {_pg_add("new_votes")}
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION votes_counted_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM old_votes) THEN
        {_pg_subtract("old_votes")}
        {_BUMP}
    END IF;
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION votes_counted_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS {_PG_CHANGED} THEN
        {_pg_subtract(_PG_CHANGED)}
        {_pg_add(_PG_CHANGED_NEW)}
        {_BUMP}
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER votes_counted_insert AFTER INSERT ON votes
    REFERENCING NEW TABLE AS new_votes FOR EACH STATEMENT EXECUTE FUNCTION votes_counted_insert()""",
    """CREATE TRIGGER votes_counted_delete AFTER DELETE ON votes
    REFERENCING OLD TABLE AS old_votes FOR EACH STATEMENT EXECUTE FUNCTION votes_counted_delete()""",
    """CREATE TRIGGER votes_counted_update AFTER UPDATE ON votes
    REFERENCING OLD TABLE AS old_votes NEW TABLE AS new_votes
    FOR EACH STATEMENT EXECUTE FUNCTION votes_counted_update()""",
]

FILL = f"INSERT INTO vote_counts ({_KEY}, votes) SELECT {_KEY}, count(*) FROM votes GROUP BY {_KEY}"
TRIGGERS = ("votes_counted_insert", "votes_counted_delete", "votes_counted_update")


def upgrade() -> None:
    op.create_table(
        "vote_counts",
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("model_a", sa.String(200), nullable=False),
        sa.Column("model_b", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("votes", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint(*KEY, name="pk_vote_counts"),
    )
    op.create_table(
        "vote_edits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("edits", sa.Integer, nullable=False),
    )
    op.create_table(
        "elo_state",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("ratings", sa.Text, nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied", sa.Integer, nullable=False),
        sa.Column("edits", sa.Integer, nullable=False),
    )
    op.execute("INSERT INTO vote_edits (id, edits) VALUES (1, 0)")
    for statement in POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(statement)
    op.execute(FILL)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name}" + (" ON votes" if postgresql else ""))
        if postgresql:
            op.execute(f"DROP FUNCTION {name}()")
    for table in ("elo_state", "vote_edits", "vote_counts"):
        op.drop_table(table)
