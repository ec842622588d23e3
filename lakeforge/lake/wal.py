"""A segmented append-only write-ahead log with group commit.

`append()` returns only once the record is written to the log file, so a record acknowledged to a
client survives a crash of the process. With `fsync=True` it also waits for the disk (surviving a
machine crash); a writer thread then batches concurrent appends into one fsync (group commit).
Without fsync the write happens inline: a ~300-byte write() costs microseconds, while handing it
to a thread costs more than the write. Segments are numbered; `seal()` closes the active one so a
sink can move sealed segments into a table and then `drop()` them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import orjson

log = logging.getLogger(__name__)
SUFFIX = ".wal"


class WriteAheadLog:
    def __init__(self, directory: Path, *, fsync: bool = True, first_seq: int = 1):
        """`first_seq`: the lowest number the next segment may take (a sink passes one past what
        its table already holds, so numbering never restarts after a clean stop)."""
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._cond = threading.Condition()
        self._pending: deque[tuple[bytes, object]] = deque()
        self._closed = False
        existing = self.segments()
        self._seq = max(existing[-1] + 1 if existing else 1, first_seq)
        self._file = open(self._path(self._seq), "ab")
        self._records_in_active = 0
        self._thread = None
        if fsync:
            self._thread = threading.Thread(target=self._run, name=f"wal-{directory.name}", daemon=True)
            self._thread.start()

    # ---- writing -------------------------------------------------------------------------------
    async def append(self, record: dict) -> None:
        line = orjson.dumps(record) + b"\n"
        if not self.fsync:
            self._write_inline(line)
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._enqueue(line, (loop, fut))
        await fut

    def _write_inline(self, line: bytes) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("write-ahead log is closed")
            self._file.write(line)
            self._file.flush()
            self._records_in_active += 1

    def append_sync(self, record: dict) -> None:
        if not self.fsync:
            self._write_inline(orjson.dumps(record) + b"\n")
            return
        done = threading.Event()
        box: list[BaseException] = []
        self._enqueue(orjson.dumps(record) + b"\n", (done, box))
        done.wait()
        if box:
            raise box[0]

    def _enqueue(self, line: bytes, waiter) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("write-ahead log is closed")
            self._pending.append((line, waiter))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                batch = list(self._pending)
                self._pending.clear()
                error: BaseException | None = None
                try:
                    self._file.write(b"".join(line for line, _ in batch))
                    self._file.flush()
                    if self.fsync:
                        os.fsync(self._file.fileno())
                    self._records_in_active += len(batch)
                except BaseException as e:  # a disk error fails every waiting request, loudly
                    log.exception("write-ahead log append failed")
                    error = e
            for _, waiter in batch:
                _resolve(waiter, error)

    # ---- segments ------------------------------------------------------------------------------
    def _path(self, seq: int) -> Path:
        return self.dir / f"{seq:012d}{SUFFIX}"

    def segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.dir.glob(f"*{SUFFIX}") if p.stem.isdigit())

    def seal(self) -> list[int]:
        """Close the active segment if it has records; return all sealed segment numbers."""
        with self._cond:
            if self._closed:  # after close every segment is sealed
                return self.segments()
            if self._records_in_active:
                self._file.close()
                self._seq += 1
                self._file = open(self._path(self._seq), "ab")
                self._records_in_active = 0
            active = self._seq
        return [seq for seq in self.segments() if seq < active]

    def read(self, seq: int) -> Iterator[dict]:
        with open(self._path(seq), "rb") as f:
            for line in f:
                if line.endswith(b"\n"):  # a torn last line was never acknowledged
                    yield orjson.loads(line)

    def read_bytes(self, seq: int) -> bytes:
        """The segment's complete lines (a torn last line was never acknowledged)."""
        data = self._path(seq).read_bytes()
        return data[: data.rfind(b"\n") + 1]

    def drop(self, seq: int) -> None:
        self._path(seq).unlink(missing_ok=True)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._file.close()


def _resolve(waiter, error: BaseException | None) -> None:
    a, b = waiter
    if isinstance(a, threading.Event):
        if error is not None:
            b.append(error)
        a.set()
        return
    loop, fut = a, b

    def done():
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

    try:
        loop.call_soon_threadsafe(done)
    except RuntimeError:  # the loop has closed; nobody is waiting any more
        pass
