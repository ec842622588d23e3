"""A change counter shared by every server process on this machine.

Caches of tokens, grants and principal names are valid while the counter is unchanged. A change in
any worker process bumps it, so the other workers drop their caches at their next lookup instead
of serving stale authorizations. The counter is eight bytes in a memory-mapped file under the
home; reading it costs a memory load. (Replicas on other machines still rely on the cache TTL.)
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
from pathlib import Path

_FMT = "<Q"


class Generation:
    """In-process counter: the default when no shared file is configured (tests, embedded use)."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    @property
    def value(self) -> int:
        return self._value

    def bump(self) -> None:
        with self._lock:
            self._value += 1


class SharedGeneration(Generation):
    def __init__(self, path: Path):
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)
            self._map = mmap.mmap(fd, 8)
        finally:
            os.close(fd)
        self._path = path

    @property
    def value(self) -> int:
        return struct.unpack_from(_FMT, self._map)[0]

    def bump(self) -> None:
        # flock makes read-increment-write atomic across processes.
        with open(self._path, "rb") as f, self._lock:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                struct.pack_into(_FMT, self._map, 0, self.value + 1)
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
