"""The tables. Migrations under arena/migrations create and upgrade them; this file must
match the latest migration (a test compares them)."""

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

from arena.style import COUNTS

metadata = MetaData()
REVISION = "0010"  # the latest migration, which these tables match (tests check both)


def style_columns() -> list[Column]:
    """One side's style counts (arena.style.StyleCounts) per side: NULL means "no style data"."""
    return [
        Column(f"style_{name}_{side}", Integer, nullable=True)
        for side in ("a", "b")
        for name in COUNTS
    ]


images = Table(
    "images",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("format", String(8), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("data", LargeBinary, nullable=True),  # NULL once erased (arena.store.moderation)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=True),
)

# model_a is always the LEFT side ("Model A"), model_b the right one.
battles = Table(
    "battles",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("mode", String(16), nullable=False),  # anonymous | named
    Column("model_a", String(200), nullable=False),
    Column("model_b", String(200), nullable=False),
    Column("image_sha256", String(64), ForeignKey("images.sha256"), nullable=True),
    Column("session_id", String(64), nullable=True),
    Column("source", String(200), nullable=False, server_default="arena"),  # arena | import:<file>
    Column("question_id", String(200), nullable=True),
    Column("voter_id", String(200), nullable=True),  # who started it (arena.kinds.Requester)
    Column("client_key", String(64), nullable=True),  # keyed hash of the address, never the address
    # arena.screening.duplicates.prompt_key of the first prompt and the image, set with the first turn
    Column("prompt_key", String(32), nullable=True),
    # why an answer gives a model away (arena.screening.leaks), NULL when none does
    Column("identity_leak", Text, nullable=True),
    # moderation (arena.store.moderation): hidden from every board and export while the reason is
    # set; text_erased_at: its turns' prompts and answers were erased (the rows stay)
    Column("hidden_reason", Text, nullable=True),
    Column("hidden_at", DateTime(timezone=True), nullable=True),
    Column("text_erased_at", DateTime(timezone=True), nullable=True),
    Index("ix_battles_created_at", "created_at"),
    Index("ix_battles_session_created", "session_id", "created_at"),
    Index("ix_battles_voter_created", "voter_id", "created_at"),
    Index("ix_battles_client_created", "client_key", "created_at"),
    Index(
        "ix_battles_hidden",
        "hidden_at",
        sqlite_where=text("hidden_reason IS NOT NULL"),
        postgresql_where=text("hidden_reason IS NOT NULL"),
    ),  # few battles are hidden: the index holds only those
)

# One row per prompt of a battle's conversation; idx 0 is the first question.
turns = Table(
    "turns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("battle_id", String(32), ForeignKey("battles.id", ondelete="CASCADE"), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("prompt", Text, nullable=False),
    *[
        col
        for side in ("a", "b")
        for col in (
            Column(f"answer_{side}", Text, nullable=True),
            Column(f"error_{side}", Text, nullable=True),
            Column(f"ttft_{side}", Float, nullable=True),  # seconds to the first token
            Column(f"total_{side}", Float, nullable=True),  # seconds for the whole answer
            Column(f"tokens_{side}", Integer, nullable=True),
            # the verdict of arena.battle.sides.answer_finished, decided once in Python
            Column(f"ok_{side}", Boolean, nullable=False, server_default=false()),
        )
    ],
    *style_columns(),  # this turn's answers, counted when they are stored
    UniqueConstraint("battle_id", "idx", name="uq_turns_battle_idx"),
)

votes = Table(
    "votes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("battle_id", String(32), ForeignKey("battles.id", ondelete="CASCADE"), nullable=False),
    Column("outcome", String(16), nullable=False),  # a | b | tie | bothbad
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("voter_id", String(200), nullable=True),
    Column("session_id", String(64), nullable=True),
    Column("client_key", String(64), nullable=True),
    # copies of the battle's columns (VOTE_CARRIES), so the leaderboard reads votes alone
    Column("model_a", String(200), nullable=False),
    Column("model_b", String(200), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("prompt_key", String(32), nullable=True),
    Column("identity_leak", Boolean, nullable=False, server_default=false()),
    # the battle's style when it was voted on: the sum over its turns (or an import's conv_metadata)
    *style_columns(),
    UniqueConstraint("battle_id", name="uq_votes_battle"),  # one vote per battle
    Index("ix_votes_created_at", "created_at"),
    Index("ix_votes_voter_created", "voter_id", "created_at"),
    Index("ix_votes_session_created", "session_id", "created_at"),
    Index("ix_votes_client_created", "client_key", "created_at"),
    Index("ix_votes_prompt_key", "prompt_key"),
    Index(
        "ix_votes_identity_leak",
        "identity_leak",
        sqlite_where=text("identity_leak"),
        postgresql_where=text("identity_leak"),
    ),  # few votes are flagged: the index holds only those
    Index(
        "ix_votes_styled",
        "id",
        sqlite_where=text("style_tokens_a IS NOT NULL"),
        postgresql_where=text("style_tokens_a IS NOT NULL"),
    ),  # whether any vote carries style counts, without a scan of them all (migration 0010)
)

# A battle's task categories (arena.categories): one row per category, with who assigned it
# ("rules", "auto" for the multi_turn and sample_image tags, "import", or a classifier model's id).
battle_categories = Table(
    "battle_categories",
    metadata,
    Column("battle_id", String(32), ForeignKey("battles.id", ondelete="CASCADE"), primary_key=True),
    Column("category", String(32), primary_key=True),
    Column("source", String(200), nullable=False),
    Index("ix_battle_categories_category", "category", "battle_id"),
)

# The battle columns every vote row repeats; every writer of votes fills them from the battle
# (votes.identity_leak is whether the battle's identity_leak is set).
VOTE_CARRIES = ("model_a", "model_b", "mode", "prompt_key")

# Kept by the database itself (migration 0007's triggers on votes, in the writer's transaction):
# the votes per (mode, model_a, model_b, outcome), a row gone when its count reaches 0.
vote_counts = Table(
    "vote_counts",
    metadata,
    Column("mode", String(16), primary_key=True),
    Column("model_a", String(200), primary_key=True),
    Column("model_b", String(200), primary_key=True),
    Column("outcome", String(16), primary_key=True),
    Column("votes", Integer, nullable=False),
)

# Kept by the database (migration 0010's triggers on votes and battle_categories): the votes per
# (mode, category) of their battle, and per (mode, prompt key), a row gone at 0. The screening of a
# board without dates reads these instead of every vote (arena.store.screening).
category_counts = Table(
    "category_counts",
    metadata,
    Column("mode", String(16), primary_key=True),
    Column("category", String(32), primary_key=True),
    Column("votes", Integer, nullable=False),
)
prompt_counts = Table(
    "prompt_counts",
    metadata,
    Column("mode", String(16), primary_key=True),
    Column("prompt_key", String(32), primary_key=True),
    Column("votes", Integer, nullable=False),
    Index("ix_prompt_counts_votes", "mode", "votes"),  # the keys over the duplicates cap
)

# One row (id 1): how many stored votes were deleted or changed since the migration (triggers
# count them). An Elo state computed before the latest edit is stale.
vote_edits = Table(
    "vote_edits",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("edits", Integer, nullable=False),
)

# Online Elo to resume instead of replaying every vote: per filter kind (arena.store.maintained),
# the ratings (JSON) after every vote cast at or before last_at, how many votes that was, and
# vote_edits.edits when it was computed. Written by leaderboard reads; a cache the reads check.
elo_state = Table(
    "elo_state",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("ratings", Text, nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=True),
    Column("applied", Integer, nullable=False),
    Column("edits", Integer, nullable=False),
    # a screened board's (arena.screening) fingerprint of the votes it left out up to last_at
    Column("screen", String(64), nullable=True),
)


# ----- moderation (migration 0009; arena.store.moderation reads and writes them) -----------------

# Voters whose votes leave every board and whose new votes are refused (statements.guarded_vote).
banned_voters = Table(
    "banned_voters",
    metadata,
    Column("voter_id", String(200), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("banned_at", DateTime(timezone=True), nullable=False),
    Column("banned_by", String(200), nullable=False),
)

# "Report this battle" from a voter; a reported battle is flagged for the admin's filter.
battle_reports = Table(
    "battle_reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("battle_id", String(32), ForeignKey("battles.id", ondelete="CASCADE"), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("voter_id", String(200), nullable=True),
    Column("session_id", String(64), nullable=True),
    Column("client_key", String(64), nullable=True),
    Index("ix_battle_reports_battle", "battle_id"),
)

# Every moderation action: who ("cli:<user>", "admin:<email>", "admin:token"), when, what, why.
audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(32), nullable=False),
    Column("target", String(200), nullable=False),
    Column("reason", Text, nullable=True),
    Index("ix_audit_at", "at"),
)

# Which version of the terms (their text's sha256) a voter accepted, and when.
terms_accepted = Table(
    "terms_accepted",
    metadata,
    Column("voter_id", String(200), primary_key=True),
    Column("terms_sha256", String(64), primary_key=True),
    Column("accepted_at", DateTime(timezone=True), nullable=False),
)
