"""Apply Alembic migrations once at start, under a lock so concurrent starts do not race."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from lakeforge.store.engine import Database

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 0x4C414B45  # "LAKE"


def upgrade(db: Database, lock_dir: Path) -> None:
    with _lock(db, lock_dir) as conn:
        cfg = Config(str(MIGRATIONS / "alembic.ini"))
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@contextlib.contextmanager
def _lock(db: Database, lock_dir: Path):
    if db.is_sqlite:
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / ".migrate.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                with db.engine.connect() as conn:
                    yield conn
                    conn.commit()
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    else:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            try:
                yield conn
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
