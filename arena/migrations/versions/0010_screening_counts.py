"""The screening's counts kept by the database, so that a default board's screening reads no more
than the votes it leaves out: category_counts holds the votes per (mode, category) of their
battle (the page's category list and every board's category_votes), prompt_counts the votes per
(mode, prompt key) (which prompts are repeated beyond the duplicates cap). And ix_votes_styled,
a partial index of the votes that carry style counts: the page asks whether any does on every
open, which without it scanned every vote when none did.

A vote counts under each category its battle has, so both tables that hold a side of that pair
have triggers: a vote counts the categories its battle has when it arrives, a category counts the
vote its battle has when it arrives, and a deletion takes off what the other side still holds.
When a battle is deleted, its vote and its categories go by two cascades in either order: the
first to go takes the pair off and the second finds nothing left, so the pair is counted off once.
That needs each deletion's trigger to fire while the other side is still there: SQLite's row
triggers do; on PostgreSQL, cascaded rows fire their AFTER triggers only at the end of the outer
statement, so deletions use BEFORE ROW triggers there. PostgreSQL's insert and update triggers
are statement triggers over transition tables, as migration 0007's. Two PostgreSQL transactions,
one storing a battle's vote and one relabelling its categories, could otherwise each miss the
other's uncommitted row; every trigger that counts a pair first locks the battle's row (FOR NO
KEY UPDATE, which the foreign keys' KEY SHARE locks do not block), so the second waits for the
first to commit and then sees its row. An import sets 0007's transaction-local flag, which these
insert triggers skip too, and adds its own counts before it commits (arena.store.maintained
.deferred_counts).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

DEFER_SETTING = "arena.defer_vote_counts"  # 0007's flag: an import counts its own votes
_STYLED = sa.text("style_tokens_a IS NOT NULL")


def _sqlite_vote(side: str, sign: str) -> str:
    """Statements adding (sign '+') or taking off ('-') the vote row `side` (NEW or OLD)."""
    if sign == "+":
        return f"""
    INSERT INTO category_counts (mode, category, votes)
        SELECT {side}.mode, category, 1 FROM battle_categories WHERE battle_id = {side}.battle_id
        ON CONFLICT (mode, category) DO UPDATE SET votes = votes + 1;
    INSERT INTO prompt_counts (mode, prompt_key, votes)
        SELECT {side}.mode, {side}.prompt_key, 1 WHERE {side}.prompt_key IS NOT NULL
        ON CONFLICT (mode, prompt_key) DO UPDATE SET votes = votes + 1;"""
    return f"""
    UPDATE category_counts SET votes = votes - 1 WHERE mode = {side}.mode
        AND category IN (SELECT category FROM battle_categories WHERE battle_id = {side}.battle_id);
    DELETE FROM category_counts WHERE votes <= 0;
    UPDATE prompt_counts SET votes = votes - 1
        WHERE mode = {side}.mode AND prompt_key = {side}.prompt_key;
    DELETE FROM prompt_counts
        WHERE mode = {side}.mode AND prompt_key = {side}.prompt_key AND votes <= 0;"""


def _sqlite_category(side: str, sign: str) -> str:
    """Statements adding or taking off the battle_categories row `side` (NEW or OLD)."""
    if sign == "+":
        return f"""
    INSERT INTO category_counts (mode, category, votes)
        SELECT mode, {side}.category, 1 FROM votes WHERE battle_id = {side}.battle_id
        ON CONFLICT (mode, category) DO UPDATE SET votes = votes + 1;"""
    return f"""
    UPDATE category_counts SET votes = votes - 1 WHERE category = {side}.category
        AND mode IN (SELECT mode FROM votes WHERE battle_id = {side}.battle_id);
    DELETE FROM category_counts WHERE votes <= 0;"""


SQLITE = [
    f"CREATE TRIGGER votes_screening_insert AFTER INSERT ON votes BEGIN"
    f"{_sqlite_vote('NEW', '+')}\nEND",
    f"CREATE TRIGGER votes_screening_delete AFTER DELETE ON votes BEGIN"
    f"{_sqlite_vote('OLD', '-')}\nEND",
    "CREATE TRIGGER votes_screening_update AFTER UPDATE OF mode, battle_id, prompt_key ON votes\n"
    "WHEN OLD.mode IS NOT NEW.mode OR OLD.battle_id IS NOT NEW.battle_id\n"
    f"    OR OLD.prompt_key IS NOT NEW.prompt_key BEGIN"
    f"{_sqlite_vote('OLD', '-')}{_sqlite_vote('NEW', '+')}\nEND",
    f"CREATE TRIGGER categories_counted_insert AFTER INSERT ON battle_categories BEGIN"
    f"{_sqlite_category('NEW', '+')}\nEND",
    f"CREATE TRIGGER categories_counted_delete AFTER DELETE ON battle_categories BEGIN"
    f"{_sqlite_category('OLD', '-')}\nEND",
    "CREATE TRIGGER categories_counted_update AFTER UPDATE OF battle_id, category\n"
    "ON battle_categories WHEN OLD.battle_id IS NOT NEW.battle_id\n"
    f"    OR OLD.category IS NOT NEW.category BEGIN"
    f"{_sqlite_category('OLD', '-')}{_sqlite_category('NEW', '+')}\nEND",
]


def _pg_lock(battle_ids: str) -> str:
    """Lock the battles of a pair about to be counted, in id order (two bulk writers meet in the
    same order); a battle this transaction deleted is not found and needs no lock."""
    return f"PERFORM 1 FROM battles WHERE id IN ({battle_ids}) ORDER BY id FOR NO KEY UPDATE;"


def _pg_add_votes(rows: str) -> str:
    """Add the votes of a transition table (or a query over one), grouped, in key order."""
    return f"""
    INSERT INTO category_counts (mode, category, votes)
        SELECT r.mode, c.category, count(*) FROM {rows} AS r
        JOIN battle_categories AS c ON c.battle_id = r.battle_id
        GROUP BY r.mode, c.category ORDER BY r.mode, c.category
        ON CONFLICT (mode, category) DO UPDATE SET votes = category_counts.votes + excluded.votes;
    INSERT INTO prompt_counts (mode, prompt_key, votes)
        SELECT r.mode, r.prompt_key, count(*) FROM {rows} AS r WHERE r.prompt_key IS NOT NULL
        GROUP BY r.mode, r.prompt_key ORDER BY r.mode, r.prompt_key
        ON CONFLICT (mode, prompt_key) DO UPDATE SET votes = prompt_counts.votes + excluded.votes;"""


def _pg_subtract_votes(rows: str) -> str:
    return f"""
    WITH g AS (SELECT r.mode, c.category, count(*) AS n FROM {rows} AS r
               JOIN battle_categories AS c ON c.battle_id = r.battle_id GROUP BY 1, 2)
    UPDATE category_counts AS k SET votes = k.votes - g.n FROM g
        WHERE k.mode = g.mode AND k.category = g.category;
    DELETE FROM category_counts WHERE votes <= 0;
    WITH g AS (SELECT r.mode, r.prompt_key, count(*) AS n FROM {rows} AS r
               WHERE r.prompt_key IS NOT NULL GROUP BY 1, 2)
    UPDATE prompt_counts AS k SET votes = k.votes - g.n FROM g
        WHERE k.mode = g.mode AND k.prompt_key = g.prompt_key;
    DELETE FROM prompt_counts AS k USING {rows} AS r
        WHERE k.mode = r.mode AND k.prompt_key = r.prompt_key AND k.votes <= 0;"""


def _pg_add_categories(rows: str) -> str:
    return f"""
    INSERT INTO category_counts (mode, category, votes)
        SELECT v.mode, r.category, count(*) FROM {rows} AS r
        JOIN votes AS v ON v.battle_id = r.battle_id
        GROUP BY v.mode, r.category ORDER BY v.mode, r.category
        ON CONFLICT (mode, category) DO UPDATE SET votes = category_counts.votes + excluded.votes;"""


def _pg_subtract_categories(rows: str) -> str:
    return f"""
    WITH g AS (SELECT v.mode, r.category, count(*) AS n FROM {rows} AS r
               JOIN votes AS v ON v.battle_id = r.battle_id GROUP BY 1, 2)
    UPDATE category_counts AS k SET votes = k.votes - g.n FROM g
        WHERE k.mode = g.mode AND k.category = g.category;
    DELETE FROM category_counts WHERE votes <= 0;"""


_SKIP = f"""IF current_setting('{DEFER_SETTING}', true) = 'on' THEN
        RETURN NULL;
    END IF;"""
_VOTES_CHANGED = (
    "SELECT {side}.* FROM old_votes AS o JOIN new_votes AS n ON n.id = o.id WHERE "
    "o.mode IS DISTINCT FROM n.mode OR o.battle_id IS DISTINCT FROM n.battle_id "
    "OR o.prompt_key IS DISTINCT FROM n.prompt_key"
)


def _function(name: str, body: str, returns: str = "NULL") -> str:
    return f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {body}
    RETURN {returns};
END $$"""


_CHANGED_BATTLES = (
    f"SELECT battle_id FROM ({_VOTES_CHANGED.format(side='o')}) AS c UNION "
    f"SELECT battle_id FROM ({_VOTES_CHANGED.format(side='n')}) AS c"
)  # the battles of the changed votes, before and after the change
_OLD_ROW = "(SELECT OLD.*)"
_OLD_VOTE = "SELECT OLD.battle_id"

POSTGRESQL = [
    _function(
        "votes_screening_insert",
        f"{_SKIP}\n    {_pg_lock('SELECT battle_id FROM new_votes')}{_pg_add_votes('new_votes')}",
    ),
    _function(
        "votes_screening_delete",
        f"{_pg_lock(_OLD_VOTE)}{_pg_subtract_votes(_OLD_ROW)}",
        returns="OLD",
    ),
    _function(
        "votes_screening_update",
        f"""IF EXISTS ({_VOTES_CHANGED.format(side="o")}) THEN
        {_pg_lock(_CHANGED_BATTLES)}
        {_pg_subtract_votes("(" + _VOTES_CHANGED.format(side="o") + ")")}
        {_pg_add_votes("(" + _VOTES_CHANGED.format(side="n") + ")")}
    END IF;""",
    ),
    _function(
        "categories_counted_insert",
        f"{_SKIP}\n    {_pg_lock('SELECT battle_id FROM new_categories')}"
        f"{_pg_add_categories('new_categories')}",
    ),
    _function(
        "categories_counted_delete",
        f"{_pg_lock(_OLD_VOTE)}{_pg_subtract_categories(_OLD_ROW)}",
        returns="OLD",
    ),
    # a row whose battle or category changes: counted off as it was, counted as it is (a row
    # trigger; nothing in the app updates those two columns)
    _function(
        "categories_counted_update",
        f"""IF OLD.battle_id IS DISTINCT FROM NEW.battle_id
            OR OLD.category IS DISTINCT FROM NEW.category THEN
        {_pg_lock("SELECT OLD.battle_id UNION SELECT NEW.battle_id")}
        {_pg_subtract_categories(_OLD_ROW)}
        {_pg_add_categories("(SELECT NEW.*)")}
    END IF;""",
    ),
    """CREATE TRIGGER votes_screening_insert AFTER INSERT ON votes
    REFERENCING NEW TABLE AS new_votes FOR EACH STATEMENT EXECUTE FUNCTION votes_screening_insert()""",
    """CREATE TRIGGER votes_screening_delete BEFORE DELETE ON votes
    FOR EACH ROW EXECUTE FUNCTION votes_screening_delete()""",
    """CREATE TRIGGER votes_screening_update AFTER UPDATE ON votes
    REFERENCING OLD TABLE AS old_votes NEW TABLE AS new_votes
    FOR EACH STATEMENT EXECUTE FUNCTION votes_screening_update()""",
    """CREATE TRIGGER categories_counted_insert AFTER INSERT ON battle_categories
    REFERENCING NEW TABLE AS new_categories
    FOR EACH STATEMENT EXECUTE FUNCTION categories_counted_insert()""",
    """CREATE TRIGGER categories_counted_delete BEFORE DELETE ON battle_categories
    FOR EACH ROW EXECUTE FUNCTION categories_counted_delete()""",
    """CREATE TRIGGER categories_counted_update AFTER UPDATE ON battle_categories
    FOR EACH ROW EXECUTE FUNCTION categories_counted_update()""",
]

FILL = [
    """INSERT INTO category_counts (mode, category, votes)
    SELECT v.mode, c.category, count(*) FROM votes AS v
    JOIN battle_categories AS c ON c.battle_id = v.battle_id GROUP BY v.mode, c.category""",
    """INSERT INTO prompt_counts (mode, prompt_key, votes)
    SELECT mode, prompt_key, count(*) FROM votes WHERE prompt_key IS NOT NULL
    GROUP BY mode, prompt_key""",
]
TRIGGERS = {
    "votes": ("votes_screening_insert", "votes_screening_delete", "votes_screening_update"),
    "battle_categories": (
        "categories_counted_insert",
        "categories_counted_delete",
        "categories_counted_update",
    ),
}


def upgrade() -> None:
    op.create_table(
        "category_counts",
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("votes", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("mode", "category", name="pk_category_counts"),
    )
    op.create_table(
        "prompt_counts",
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("prompt_key", sa.String(32), nullable=False),
        sa.Column("votes", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("mode", "prompt_key", name="pk_prompt_counts"),
    )
    op.create_index("ix_prompt_counts_votes", "prompt_counts", ["mode", "votes"])
    op.create_index(
        "ix_votes_styled", "votes", ["id"], sqlite_where=_STYLED, postgresql_where=_STYLED
    )
    for statement in POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(statement)
    for statement in FILL:
        op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, names in TRIGGERS.items():
        for name in names:
            op.execute(f"DROP TRIGGER {name}" + (f" ON {table}" if postgresql else ""))
            if postgresql:
                op.execute(f"DROP FUNCTION {name}()")
    op.drop_index("ix_votes_styled", table_name="votes")
    op.drop_index("ix_prompt_counts_votes", table_name="prompt_counts")
    op.drop_table("prompt_counts")
    op.drop_table("category_counts")
