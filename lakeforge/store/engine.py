"""Engine and transactions. Every mutation runs in one transaction: `with db.write() as s:`.

SQLite runs in WAL mode and write transactions start with BEGIN IMMEDIATE, so two writers never
interleave a read-modify-write (plain deferred transactions lose updates under concurrency).

`db.changes` counts write transactions: it moves on after every one ends (committed or not), so a
cache of anything read from the database is valid while the counter is unchanged, provided the
counter was read before the database was. `share_changes` makes it one counter for every server
process on this machine (see store/generation.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, Row
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from lakeforge.errors import AlreadyExists, LakeforgeError
from lakeforge.store.generation import Generation, SharedGeneration

log = logging.getLogger(__name__)


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20,
                           max_overflow=20)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, see _on_begin
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Writes take the write lock up front. Reads run in autocommit: each statement sees a
        # consistent snapshot, and skipping BEGIN/ROLLBACK round trips keeps hot reads cheap.
        if conn.get_execution_options().get("lakeforge_write", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = _sqlite_engine(url)
        else:
            self.engine = create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)
        write_engine = self.engine.execution_options(lakeforge_write=True)
        # Single-statement reads (`read_one`) outside a transaction. SQLite connections already run
        # in autocommit (see _on_connect). On PostgreSQL their own small pool, in autocommit and
        # without the pre-ping (a round trip per checkout): one statement, one round trip; a
        # connection found dropped is replaced and the statement sent again.
        self._autocommit = self.engine if self.is_sqlite else create_engine(
            url, pool_size=4, max_overflow=16, isolation_level="AUTOCOMMIT")
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(write_engine, expire_on_commit=False)
        self.changes: Generation = Generation()

    def share_changes(self, path) -> None:
        """Count write transactions in a file shared with the other server processes of this home."""
        if not isinstance(self.changes, SharedGeneration):
            self.changes = SharedGeneration(path)

    def read_one(self, statement, params: dict | None = None) -> Row | None:
        """The first row of one Core statement, read outside any transaction."""
        for attempt in (1, 2):
            try:
                with self._autocommit.connect() as conn:
                    return conn.execute(statement, params).first()
            except DBAPIError as e:
                if attempt == 2 or not e.connection_invalidated:
                    raise
        return None

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as s:
            try:
                yield s
            finally:
                s.rollback()

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: commit on success, roll back everything on any error."""
        with self._write() as s:
            try:
                yield s
                s.commit()
            except IntegrityError as e:
                s.rollback()
                raise AlreadyExists(_integrity_message(e)) from e
            except BaseException:
                s.rollback()
                raise
            finally:
                # After the commit (or rollback: a failed commit may still have reached the
                # database), before the caller answers: no cached read outlives the change.
                self.changes.bump()

    def dispose(self) -> None:
        self.engine.dispose()
        self._autocommit.dispose()


def _integrity_message(e: IntegrityError) -> str:
    text = str(e.orig).lower()
    if "unique" in text or "duplicate" in text:
        return "The object already exists"
    return "The change conflicts with existing data"


def is_lock_error(e: Exception) -> bool:
    return isinstance(e, OperationalError) and "locked" in str(e).lower()


__all__ = ["Database", "LakeforgeError"]
