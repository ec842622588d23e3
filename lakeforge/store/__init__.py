"""Metadata database: engine, sessions, migrations."""

from lakeforge.store.base import Base, new_id
from lakeforge.store.engine import Database

__all__ = ["Base", "Database", "new_id"]
