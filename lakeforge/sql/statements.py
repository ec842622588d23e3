"""Statements in memory: their state, their result, who may read them. Finished results expire
after a TTL, and the oldest are dropped first when the held results exceed a byte budget."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from lakeforge.errors import ResourceDoesNotExist
from lakeforge.identity.principal import Principal

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED", "CLOSED")


@dataclass
class Statement:
    statement_id: str
    owner_id: str
    state: str = "PENDING"
    error: dict | None = None
    result: pa.Table | None = None
    chunks: list = field(default_factory=list)
    manifest: dict | None = None
    truncated: bool = False
    cancel_requested: bool = False
    engine: Any = None  # the running StatementEngine, for cancel
    future: Any = None
    done: threading.Event = field(default_factory=threading.Event)
    finished_at: float | None = None

    @property
    def nbytes(self) -> int:
        return self.result.nbytes if self.result is not None else 0

    def finish(self, state: str, error: dict | None = None) -> bool:
        """Move to a terminal state once; False when it already had one (a cancel won the race)."""
        if self.state in TERMINAL:
            return False
        self.state, self.error = state, error
        self.finished_at = time.monotonic()
        self.engine = None
        self.done.set()
        return True


class StatementStore:
    def __init__(self, ttl_seconds: float = 3600.0, max_bytes: int = 1 << 30):
        self.ttl = ttl_seconds
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Statement] = OrderedDict()
        self._lock = threading.RLock()

    def add(self, st: Statement) -> Statement:
        with self._lock:
            self._items[st.statement_id] = st
            self._evict()
        return st

    def get(self, caller: Principal, statement_id: str) -> Statement:
        """Only the submitter or an admin sees a statement; for anyone else it does not exist."""
        with self._lock:
            self._evict()
            st = self._items.get(statement_id)
            if st is not None:
                self._items.move_to_end(statement_id)
        if st is None or (st.owner_id != caller.id and not caller.is_admin):
            raise ResourceDoesNotExist(f"Statement '{statement_id}' does not exist (results expire after "
                                       f"{int(self.ttl)} s).")
        return st

    def settled(self) -> None:
        """Called when a result lands: keep the held bytes within budget."""
        with self._lock:
            self._evict()

    def _evict(self) -> None:
        now = time.monotonic()
        for sid in [k for k, v in self._items.items() if v.finished_at and now - v.finished_at > self.ttl]:
            del self._items[sid]
        total = sum(v.nbytes for v in self._items.values())
        for sid in list(self._items):
            if total <= self.max_bytes:
                break
            st = self._items[sid]
            if st.finished_at is not None:
                total -= st.nbytes
                del self._items[sid]

    def all(self) -> list[Statement]:
        with self._lock:
            return list(self._items.values())
