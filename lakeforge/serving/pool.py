"""The model worker processes of one served entity, supervised.

Workers are separate Python processes started with exec (never a fork of the server: deltalake and
the server's threads do not survive fork). Each listens on its own Unix socket; the pool keeps one
multiplexed connection per worker and spreads requests round-robin over the connected ones.
A worker that exits is restarted with back-off; while none is connected the entity reports
DEPLOYMENT_RECOVERING and the router sends its traffic elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lakeforge.serving.worker_client import ModelWorkerClient, WorkerUnavailable

log = logging.getLogger(__name__)

CREATING, READY, RECOVERING, FAILED = ("DEPLOYMENT_CREATING", "DEPLOYMENT_READY", "DEPLOYMENT_RECOVERING",
                                       "DEPLOYMENT_FAILED")
_BACKOFF = (0.2, 0.5, 1, 2, 5, 10, 30)  # seconds before restart attempt n
# A worker still loading its model holds no request: after SIGTERM it gets this long to exit (a
# load stuck in native code never sees the signal) before SIGKILL.
LOADING_GRACE = 2.0
_LOG_TAIL = 64 * 1024


class DeploymentFailed(Exception):
    """A served entity could not start; the message says why (shown as the update's failure reason)."""


class EntityUnavailable(Exception):
    """No worker of the entity can take a request right now."""


@dataclass
class EntitySpec:
    key: str  # unique per process: endpoint id, entity name and a deployment counter
    model_dir: Path
    workers: int
    python: str = sys.executable
    env: dict[str, str] = field(default_factory=dict)
    max_batch_size: int = 64
    max_batch_wait_ms: int = 0


class _Worker:
    def __init__(self, index: int, socket_path: str):
        self.index = index
        self.socket_path = socket_path
        self.proc: asyncio.subprocess.Process | None = None
        self.client: ModelWorkerClient | None = None
        self.restarts = 0


class ServedEntityPool:
    def __init__(self, spec: EntitySpec, socket_dir: Path, log_path: Path, load_timeout: float = 120.0):
        self.spec = spec
        self.log_path = log_path
        self.load_timeout = load_timeout
        self.state = CREATING
        self.message: str | None = None
        self._workers = [_Worker(i, str(socket_dir / f"{spec.key}-{i}.sock")) for i in range(spec.workers)]
        self._rr = itertools.count()
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self.started_at = time.time()
        # scale to zero: workers stop after a quiet spell; the next request starts them again
        self.scaled_down = False
        self.last_used = time.monotonic()
        self._inflight = 0
        self._wake = asyncio.Lock()

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every worker and wait until each answers; raise DeploymentFailed otherwise."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            await asyncio.gather(*(self._launch(w) for w in self._workers))
        except DeploymentFailed as e:
            self.state, self.message = FAILED, str(e)
            await self.stop()
            raise
        except BaseException:  # cancelled (the deployment was abandoned) or broken: leave no worker behind
            await self.stop(LOADING_GRACE)
            raise
        if self._stopping:  # stopped while it started
            await self._terminate(LOADING_GRACE)
            raise DeploymentFailed("the served entity was stopped while it started")
        self.state, self.message = READY, None
        self._tasks = [asyncio.create_task(self._supervise(w)) for w in self._workers]

    async def _launch(self, w: _Worker) -> None:
        """Start the worker and wait until it answers. Until then the launch owns the process: a
        failed or cancelled launch ends it (SIGTERM, then SIGKILL after LOADING_GRACE) and every
        task it started."""
        with contextlib.suppress(OSError):
            os.unlink(w.socket_path)
        args = [self.spec.python, "-m", "lakeforge.serving.worker", "--model-dir", str(self.spec.model_dir),
                "--socket", w.socket_path, "--max-batch-size", str(self.spec.max_batch_size),
                "--max-wait-ms", str(self.spec.max_batch_wait_ms)]
        out = open(self.log_path, "ab")
        spawn = asyncio.ensure_future(asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, env=self.spec.env,
            start_new_session=True))
        spawn.add_done_callback(lambda _: out.close())
        try:
            w.proc = await asyncio.shield(spawn)
        except asyncio.CancelledError:
            spawn.add_done_callback(_kill_spawned)  # cancelled while it started: it must not outlive the launch
            raise
        client = ModelWorkerClient(w.socket_path)
        connect = asyncio.create_task(client.connect(self.load_timeout))
        exited = asyncio.create_task(w.proc.wait())
        connected, code = False, None
        try:
            done, _ = await asyncio.wait({connect, exited}, return_when=asyncio.FIRST_COMPLETED)
            connected = connect in done and connect.exception() is None
            code = w.proc.returncode  # None: it did not exit by itself (the load timed out)
        finally:
            for t in (connect, exited):
                t.cancel()
            if not connected:
                await _end(w.proc, LOADING_GRACE, {connect, exited})
                await client.close()
                for t in (connect, exited):
                    if not t.cancelled():
                        t.exception()  # retrieved: the reason is in the worker's log
        if connected:
            w.client = client
            return
        raise DeploymentFailed(self._failure_reason(code))

    def _failure_reason(self, code: int | None) -> str:
        tail = self.logs(4096).strip().splitlines()
        for line in reversed(tail):
            if "failed to load model" in line:
                return line.split("lakeforge-worker: ", 1)[-1][:1000]
        if code is None:
            return f"the model did not load within {self.load_timeout:.0f} s"
        return f"the model worker exited with code {code} while loading" + (f": {tail[-1][:500]}" if tail else "")

    async def _supervise(self, w: _Worker) -> None:
        """Restart a worker whenever it exits, until the pool stops."""
        while not self._stopping:
            await w.proc.wait()
            if self._stopping:
                return
            if w.client:
                await w.client.close()
                w.client = None
            log.warning("model worker %s/%d exited with %s; restarting", self.spec.key, w.index, w.proc.returncode)
            if not self.ready:
                self.state, self.message = RECOVERING, f"model worker exited with code {w.proc.returncode}; restarting"
            while not self._stopping:
                await asyncio.sleep(_BACKOFF[min(w.restarts, len(_BACKOFF) - 1)])
                w.restarts += 1
                try:
                    await self._launch(w)
                    break
                except DeploymentFailed as e:
                    self.message = f"restart failed: {e}"
                except Exception as e:  # keep supervising whatever happened
                    log.exception("restarting model worker %s/%d", self.spec.key, w.index)
                    self.message = f"restart failed: {e}"
            if self.ready:
                self.state, self.message = READY, None

    async def stop(self, grace: float = 10.0) -> None:
        """No new requests; workers get SIGTERM, finish what they hold and answer it, then exit.
        Safe to call more than once, also while the pool starts."""
        self._stopping = True
        await self._terminate(grace)

    @property
    def stopped(self) -> bool:
        """stop() was called and no worker process is left."""
        return self._stopping and not self.pids()

    async def scale_down(self, idle_s: float) -> None:
        """Stop the workers of an idle entity; it stays routable and the next request wakes it."""
        async with self._wake:
            if self.scaled_down or self._stopping:
                return
            self.scaled_down = True
            await self._terminate(10.0)
            self.state, self.message = READY, (f"scaled to zero after {idle_s:.0f} s without requests; the next "
                                               "request starts a model worker")
            log.info("served entity %s scaled to zero", self.spec.key)

    async def _wake_up(self) -> None:
        async with self._wake:
            if not self.scaled_down:
                return
            try:
                await asyncio.gather(*(self._launch(w) for w in self._workers))
            except DeploymentFailed as e:
                await self._terminate(5.0)
                self.message = f"scaled to zero; starting it again failed: {e}"
                raise EntityUnavailable(str(e)) from None
            self.scaled_down, self.state, self.message = False, READY, None
            self._tasks = [asyncio.create_task(self._supervise(w)) for w in self._workers]

    async def _terminate(self, grace: float) -> None:
        """SIGTERM every worker, SIGKILL what is left after `grace` (LOADING_GRACE for a worker
        still loading). Cancelled while it waits, it kills the rest at once."""
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        ends = [_end(w.proc, grace if w.client is not None and w.client.connected else min(grace, LOADING_GRACE))
                for w in self._workers if w.proc is not None]
        if tasks:
            ends.append(asyncio.wait(tasks))  # the supervisors' own clean-up (a restart they had begun)
        await asyncio.gather(*ends)
        for w in self._workers:
            if w.client:
                await w.client.close()
                w.client = None
        for w in self._workers:
            with contextlib.suppress(OSError):
                os.unlink(w.socket_path)

    # ---- requests ------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Routable: a worker is connected, or the entity is scaled to zero and wakes on demand."""
        return not self._stopping and (self.scaled_down or
                                       any(w.client is not None and w.client.connected for w in self._workers))

    @property
    def idle_seconds(self) -> float:
        """0 while a request is in flight (a cold start included)."""
        return 0.0 if self._inflight else time.monotonic() - self.last_used

    async def predict(self, request_id: str, content_type: str, body: bytes) -> tuple[int, bytes]:
        self._inflight += 1
        try:
            return await self._predict(request_id, content_type, body)
        finally:
            self._inflight -= 1
            self.last_used = time.monotonic()  # idle time counts from the last answer, not the last call

    async def _predict(self, request_id: str, content_type: str, body: bytes) -> tuple[int, bytes]:
        if self.scaled_down and not self._stopping:
            await self._wake_up()  # a cold start: this request waits for the model to load
        live = [w for w in self._workers if w.client is not None and w.client.connected]
        if not live or self._stopping:
            raise EntityUnavailable(self.message or "no model worker is ready")
        start = next(self._rr)
        for attempt in range(len(live)):
            w = live[(start + attempt) % len(live)]
            try:
                return await w.client.predict(request_id, content_type, body)
            except WorkerUnavailable:
                continue  # that worker died mid-request; its supervisor restarts it
        raise EntityUnavailable("the model worker stopped while answering; it is being restarted")

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.proc and w.proc.returncode is None]

    def logs(self, limit: int = _LOG_TAIL) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - limit))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


async def _end(proc: asyncio.subprocess.Process, grace: float, tasks=()) -> None:
    """SIGTERM `proc`, SIGKILL it after `grace` s, and wait until it exited and `tasks` (cancelled
    ones that belong to it) ended. If this is cancelled while waiting, the process is killed at
    once and the cancellation propagates."""
    waiter = asyncio.ensure_future(proc.wait())
    try:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            await asyncio.wait({waiter}, timeout=grace)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        await asyncio.wait({waiter, *tasks})
    except BaseException:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        raise
    finally:
        waiter.cancel()


def _kill_spawned(spawn: asyncio.Future) -> None:
    if not spawn.cancelled() and spawn.exception() is None:
        with contextlib.suppress(ProcessLookupError):
            spawn.result().kill()
