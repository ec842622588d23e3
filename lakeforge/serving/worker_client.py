"""The server's side of a model worker connection: one Unix socket, many concurrent requests.

Each call writes one whole frame (so frames never interleave) and waits on a future keyed by its
sequence number; a single reader task resolves the futures as answers arrive, in any order. When
the connection drops, every waiting call fails at once with WorkerUnavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

import orjson

from lakeforge.serving.protocol import (HEADER, MAX_FRAME, PING, PONG, PREDICT, RESULT, ProtocolError, decode_header,
                                        decode_result, encode_frame, encode_predict)

log = logging.getLogger(__name__)


class WorkerUnavailable(Exception):
    """The worker cannot answer (connection lost, process gone, not answering): retry elsewhere or 503."""


class ModelWorkerClient:
    def __init__(self, socket_path: str):
        self.socket_path = socket_path
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._seq = itertools.count(1)
        self._lost: str | None = "not connected"

    @property
    def connected(self) -> bool:
        return self._lost is None

    async def connect(self, timeout: float) -> dict:
        """Retry until the worker's socket accepts and a PING is answered; returns the PONG.

        A cancellation always ends it. (Not asyncio.wait_for: on Python 3.11 it can turn a
        cancellation that arrives just as the attempt failed into that failure, which this loop
        would retry until the load timeout, keeping the server from shutting down.)"""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last = "the socket never accepted a connection"
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise WorkerUnavailable(f"model worker at {self.socket_path} not ready after {timeout:g} s: {last}")
            try:
                async with asyncio.timeout(remaining):
                    reader, writer = await asyncio.open_unix_connection(self.socket_path)
            except (TimeoutError, OSError) as e:
                last = f"{type(e).__name__}: {e}"
                await asyncio.sleep(min(0.05, max(remaining, 0)))  # the worker is still loading its model
                continue
            self._attach(reader, writer)
            try:
                return await self.ping(timeout=max(deadline - loop.time(), 0.001))
            except WorkerUnavailable as e:
                last = str(e)
                await self.close()

    def _attach(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer, self._lost = writer, None
        self._reader_task = asyncio.create_task(self._read_forever(reader, writer))

    async def predict(self, request_id: str, content_type: str, body: bytes) -> tuple[int, bytes]:
        """(HTTP status, JSON body) for one scoring request."""
        payload = encode_predict(request_id, content_type, body)
        if len(payload) > MAX_FRAME:
            return 413, orjson.dumps({"error_code": "REQUEST_TOO_LARGE",
                                      "message": f"The request body exceeds the model worker's {MAX_FRAME} byte limit"})
        return await self._call(PREDICT, payload)

    async def ping(self, timeout: float = 2.0) -> dict:
        try:
            async with asyncio.timeout(timeout):
                return await self._call(PING, b"")
        except TimeoutError:
            raise WorkerUnavailable(f"model worker at {self.socket_path} did not answer a ping within "
                                    f"{timeout:g} s") from None

    async def close(self) -> None:
        task, writer = self._reader_task, self._writer
        self._reader_task = self._writer = None
        self._fail_all("the client closed the connection")
        if writer is not None:
            writer.close()
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            # Wait for the reader to end without taking on its outcome; a cancellation of the
            # caller still propagates (awaiting the task under suppress(BaseException) swallowed it).
            await asyncio.wait({task})
            if not task.cancelled():
                task.exception()  # retrieved: it ended on its own
        if writer is not None:
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _call(self, kind: int, payload: bytes):
        if self._lost is not None:
            raise WorkerUnavailable(f"model worker at {self.socket_path}: {self._lost}")
        seq = next(self._seq)
        future = asyncio.get_running_loop().create_future()
        self._pending[seq] = future
        try:
            self._writer.write(encode_frame(seq, kind, payload))  # one write per frame: no interleaving
            await self._writer.drain()
            return await future
        except (ConnectionError, OSError) as e:
            self._fail_all(f"connection lost: {e}")
            raise WorkerUnavailable(f"model worker at {self.socket_path}: connection lost: {e}") from None
        finally:
            self._pending.pop(seq, None)

    async def _read_forever(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reason = "the worker closed the connection"
        try:
            while True:
                length, seq, kind = decode_header(await reader.readexactly(HEADER.size))
                payload = await reader.readexactly(length) if length else b""
                future = self._pending.pop(seq, None)
                if future is None or future.done():
                    continue  # its caller gave up (timeout, cancellation)
                if kind == RESULT:
                    future.set_result(decode_result(payload))
                elif kind == PONG:
                    future.set_result(orjson.loads(payload))
                else:
                    raise ProtocolError(f"unexpected frame kind {kind}")
        except asyncio.IncompleteReadError:
            pass
        except (ConnectionError, OSError) as e:
            reason = f"connection lost: {e}"
        except (ProtocolError, orjson.JSONDecodeError) as e:
            reason = f"protocol error: {e}"
            log.warning("model worker at %s: %s", self.socket_path, reason)
        finally:
            if self._writer is writer:  # not already replaced by a reconnect
                self._fail_all(reason)
            writer.close()

    def _fail_all(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(WorkerUnavailable(f"model worker at {self.socket_path}: {reason}"))
