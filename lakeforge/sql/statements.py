"""Statements in memory: their state, their result, who may read them. Finished results expire
after a TTL, and the least recently read are dropped first when the held results exceed a byte
budget."""

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
SWEEP_SECONDS = 1.0  # expired statements are looked for at most this often


@dataclass
class Statement:
    statement_id: str
    owner_id: str
    kind: str = "QUERY"  # QUERY, CTAS or INSERT: a write cannot be canceled once it is writing
    state: str = "PENDING"
    error: dict | None = None
    result: pa.Table | None = None
    result_bytes: int = 0  # counted once, when the result lands
    chunks: list = field(default_factory=list)
    manifest: dict | None = None
    truncated: bool = False
    cancel_requested: bool = False
    engine: Any = None  # the running StatementEngine, for cancel
    future: Any = None
    done: threading.Event = field(default_factory=threading.Event)
    finished_at: float | None = None

    _callbacks: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> bool:
        """PENDING -> RUNNING; False when it was canceled first."""
        with self._lock:
            if self.state != "PENDING":
                return False
            self.state = "RUNNING"
            return True

    def finish(self, state: str, error: dict | None = None) -> bool:
        """Move to a terminal state once; False when it already had one (a cancel won the race)."""
        with self._lock:
            if self.state in TERMINAL:
                return False
            self.state, self.error = state, error
            self.finished_at = time.monotonic()
            self.engine = None
            self.done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()
        return True

    def on_done(self, callback) -> None:
        """Call `callback()` once the statement is finished (now, if it already is)."""
        with self._lock:
            if not self.done.is_set():
                self._callbacks.append(callback)
                return
        callback()


class StatementStore:
    def __init__(self, ttl_seconds: float = 3600.0, max_bytes: int = 1 << 30):
        self.ttl = ttl_seconds
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Statement] = OrderedDict()  # least recently used first
        self._bytes = 0
        self._swept = 0.0
        self._lock = threading.RLock()

    def add(self, st: Statement) -> Statement:
        with self._lock:
            self._items[st.statement_id] = st
            if st.result is not None:
                self._count(st)
        return st

    def settled(self, st: Statement) -> None:
        """A statement's result landed: count its bytes and keep the total within budget."""
        with self._lock:
            if st.statement_id in self._items:
                self._count(st)

    def _count(self, st: Statement) -> None:
        if st.result is not None and not st.result_bytes:
            st.result_bytes = st.result.nbytes
            self._bytes += st.result_bytes
        self._evict()

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

    def _drop(self, statement_id: str) -> None:
        st = self._items.pop(statement_id)
        self._bytes -= st.result_bytes

    def _evict(self) -> None:
        now = time.monotonic()
        if now - self._swept >= SWEEP_SECONDS:
            self._swept = now
            for sid in [k for k, v in self._items.items() if v.finished_at and now - v.finished_at > self.ttl]:
                self._drop(sid)
        if self._bytes > self.max_bytes:
            for sid in [k for k, v in self._items.items() if v.finished_at is not None]:
                if self._bytes <= self.max_bytes:
                    break
                self._drop(sid)

    def all(self) -> list[Statement]:
        with self._lock:
            return list(self._items.values())
