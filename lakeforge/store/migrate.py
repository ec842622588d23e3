"""Apply Alembic migrations once at start, under a lock so concurrent starts do not race."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import re
from pathlib import Path

from sqlalchemy import inspect, text

from lakeforge.store.engine import Database

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 0x4C414B45  # "LAKE"
_PG_STARTUP_KEY = 0x4C414B46
VERSION_TABLE = "lakeforge_alembic_version"  # the same name as in migrations/env.py


def head_revision() -> str:
    """The newest revision, read from the scripts without importing Alembic (it costs ~0.5 s)."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text()
        rev = re.search(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", source, re.M)
        down = re.search(r"^down_revision\s*=\s*['\"]([^'\"]+)['\"]", source, re.M)
        if rev:
            revisions.add(rev.group(1))
        if down:
            parents.add(down.group(1))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"migrations must form one chain; heads: {sorted(heads)}")
    return heads.pop()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade(db: Database, lock_dir: Path) -> None:
    if current_revision(db) == head_revision():
        return
    from alembic import command
    from alembic.config import Config

    with _lock(db, lock_dir) as conn:
        cfg = Config(str(MIGRATIONS / "alembic.ini"))
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@contextlib.contextmanager
def startup_lock(db: Database, lock_dir: Path):
    """Held while a server process bootstraps (first-start objects, system tables, log recovery),
    so worker processes and replicas starting together do it one at a time."""
    with _lock(db, lock_dir, ".startup.lock", _PG_STARTUP_KEY):
        yield


@contextlib.contextmanager
def _lock(db: Database, lock_dir: Path, name: str = ".migrate.lock", pg_key: int = _PG_LOCK_KEY):
    if db.is_sqlite:
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / name, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                with db.engine.connect() as conn:
                    yield conn
                    conn.commit()
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    else:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": pg_key})
            try:
                yield conn
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": pg_key})
                conn.commit()
