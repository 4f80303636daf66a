"""The database, behind one package: schema, migrations, engine and queries."""

from arena.store.store import SideResult, Store

__all__ = ["SideResult", "Store"]
