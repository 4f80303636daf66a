"""The database, behind one package: schema, migrations, engine and every query.

schema      the tables                      statements  the guarded writes, one statement each
refusals    why a guarded write refused     reads       the leaderboard's scans and cache keys
driver      hot writes on the DBAPI cursor  engine      engine, migrations, retries
maintained  the leaderboard's counts and online Elo state that the database keeps (0007)
store       Store: the one object the app and the command line use
transfer    import and export of votes
moderation  hide, ban, erase, reports, the audit log and the admin's battle browser (0009)
dataset     the dataset: one parquet row per battle (export); dataset_import reads it back
"""

from arena.store.reads import VoteFilter
from arena.store.store import Store

__all__ = ["Store", "VoteFilter"]
