"""The background side of monitoring in one server process: the refresh executor and the scheduler.

Refreshes are rows in the metadata database. Every server process runs a runtime that claims
PENDING refreshes with a conditional UPDATE (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so several
processes or replicas share the work and each refresh runs once. A claimed refresh runs in a worker
thread (`monitoring_refresh_threads` at a time): it brings an unpacked inference table up to date
when the monitored table is one, lines the metric tables' columns up with the config, calls
`engine.refresh`, evaluates the alert rules, and records RUNNING -> SUCCESS | FAILED | CANCELED with
start and end times (SUCCESS after the alerts: a client that sees it also sees the breaches). While
it runs, the event loop writes a heartbeat every few seconds and watches for a cancel request (which
the engine polls between steps); progress goes to the row as `progress` / `progress_message`.

A refresh left RUNNING by a process that is gone is marked FAILED ("server stopped during the
refresh"): at start for processes of this machine that no longer exist, and by any process once its
heartbeat is older than STALE_SECONDS. A refresh runs with the rights of the monitor's owner: it
fails if the owner lost SELECT on the table or MODIFY on the metric tables.

The scheduler looks every `monitoring_scheduler_seconds` for monitors whose `next_run_at` has
passed and queues a SCHEDULE refresh, advancing `next_run_at` to the next fire time after now in the
same conditional UPDATE, so one due time queues one refresh whichever process sees it first; fire
times missed while the server was down, or while a refresh of the monitor was still pending or
running, are skipped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
from sqlalchemy import select, update

from lakeforge import clock
from lakeforge.catalog import securables as sec
from lakeforge.catalog.privileges import Kind, P
from lakeforge.catalog.store import SecurableRow
from lakeforge.errors import AlreadyExists, InvalidParameter, LakeforgeError, NotFound
from lakeforge.lake import delta
from lakeforge.monitoring import config as cfg
from lakeforge.monitoring import schedule
from lakeforge.monitoring.alerts import AlertEvaluator
from lakeforge.monitoring.service import (
    DRIFT,
    PROFILE,
    engine,
    same_columns,
    state_dir,
    table_path,
)
from lakeforge.monitoring.store import MonitorRow, RefreshRow

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0  # also how soon a cancel made through another server process is seen
STALE_SECONDS = 60.0
POLL_SECONDS = 2.0  # how often PENDING refreshes queued by other processes are looked for
PROGRESS_SECONDS = 1.0  # progress is written at most this often
STOPPED = "server stopped during the refresh"


@dataclass(frozen=True)
class Job:
    refresh_id: int
    monitor_id: str
    full: bool


class Cancelled(Exception):
    """The refresh was cancelled, or its monitor deleted, before the engine started."""


class MonitoringRuntime:
    def __init__(self, settings, db, identity, catalog, table_data, alerts: AlertEvaluator, services=None):
        self.settings = settings
        self.db = db
        self.identity = identity
        self.catalog = catalog
        self.table_data = table_data  # resets a metric table's columns (on the owner's behalf)
        self.alerts = alerts
        self.services = services  # what inference.sync_before_refresh receives (the app context)
        self.threads = max(1, int(settings.monitoring_refresh_threads))
        self.tick = max(0.1, float(settings.monitoring_scheduler_seconds))
        self.runner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._running: dict[int, tuple[str, threading.Event]] = {}  # refresh id -> (monitor id, cancel)
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.alerts.sender.start()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="lf-monitor-refresh")
        try:
            await asyncio.to_thread(self._recover, True)
        except Exception:
            log.exception("monitoring: recovering refreshes left running failed")
        self._task = asyncio.create_task(self._forever())

    async def stop(self, grace: float = 10.0) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
        for _, event in list(self._running.values()):
            event.set()  # the engine stops at its next step; recorded as FAILED (STOPPED)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        if self._pool:
            self._pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.alerts.sender.stop)

    # ---- called from request threads -----------------------------------------------------------
    def wake(self) -> None:
        """Look for PENDING refreshes now (one was just queued)."""
        if self.loop is not None and self._wake is not None:
            self.loop.call_soon_threadsafe(self._wake.set)

    def cancel(self, refresh_id: int) -> None:
        """Stop a refresh running in this process at the engine's next step (the request is also in
        the database, for the process running it when that is another one)."""
        running = self._running.get(refresh_id)
        if running:
            running[1].set()

    def forget(self, monitor_id: str) -> None:
        """The monitor was deleted: stop its refresh if it runs here."""
        for mid, event in list(self._running.values()):
            if mid == monitor_id:
                event.set()

    # ---- the loop ------------------------------------------------------------------------------
    async def _forever(self) -> None:
        last_tick = 0.0
        while True:
            self._wake.clear()
            try:
                if time.monotonic() - last_tick >= self.tick:
                    last_tick = time.monotonic()
                    await asyncio.to_thread(self._recover, False)
                    await asyncio.to_thread(self._schedule_due)
                while len(self._running) < self.threads and not self._stopping:
                    job = await asyncio.to_thread(self._claim)
                    if job is None:
                        break
                    event = threading.Event()
                    self._running[job.refresh_id] = (job.monitor_id, event)
                    task = asyncio.create_task(self._run(job, event))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("monitoring runtime tick failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=min(self.tick, POLL_SECONDS))
            except TimeoutError:
                pass

    async def _run(self, job: Job, cancel: threading.Event) -> None:
        try:
            future = self.loop.run_in_executor(self._pool, self._execute, job, cancel)
            while True:
                done, _ = await asyncio.wait({future}, timeout=HEARTBEAT_SECONDS)
                if done:
                    break
                if not await asyncio.to_thread(self._heartbeat, job.refresh_id):
                    cancel.set()
            future.result()
        except Exception:
            log.exception("monitoring: refresh %s failed outside the engine", job.refresh_id)
        finally:
            self._running.pop(job.refresh_id, None)
            self.wake()  # a thread is free

    # ---- claiming and bookkeeping --------------------------------------------------------------
    def _claim(self) -> Job | None:
        # A read first: an idle runtime must not take the write lock (and bump db.changes, which drops
        # every process's read caches) at each poll.
        if self.db.read_one(select(RefreshRow.id).where(RefreshRow.state == cfg.PENDING).limit(1)) is None:
            return None
        with self.db.write() as s:
            q = select(RefreshRow.id, RefreshRow.monitor_id, RefreshRow.full).where(
                RefreshRow.state == cfg.PENDING).order_by(RefreshRow.id).limit(1)
            if not self.db.is_sqlite:
                q = q.with_for_update(skip_locked=True)
            found = s.execute(q).first()
            if found is None:
                return None
            now = clock.now()
            claimed = s.execute(update(RefreshRow).where(RefreshRow.id == found.id, RefreshRow.state == cfg.PENDING)
                                .values(state=cfg.RUNNING, runner=self.runner, started_at=now, heartbeat_at=now,
                                        progress=0.0, progress_message="starting"))
            return Job(found.id, found.monitor_id, bool(found.full)) if claimed.rowcount == 1 else None

    def _heartbeat(self, refresh_id: int) -> bool:
        """Refresh the heartbeat; False when the refresh should stop (cancelled, or deleted)."""
        with self.db.write() as s:
            s.execute(update(RefreshRow).where(RefreshRow.id == refresh_id, RefreshRow.runner == self.runner,
                                               RefreshRow.state == cfg.RUNNING).values(heartbeat_at=clock.now()))
            row = s.execute(select(RefreshRow.state, RefreshRow.cancel_requested)
                            .where(RefreshRow.id == refresh_id)).first()
        return row is not None and row.state == cfg.RUNNING and not row.cancel_requested

    def _progress(self, refresh_id: int):
        last = [0.0]

        def report(fraction: float, message: str) -> None:
            now = time.monotonic()
            if now - last[0] < PROGRESS_SECONDS and fraction < 1:
                return
            last[0] = now
            try:
                with self.db.write() as s:
                    s.execute(update(RefreshRow).where(RefreshRow.id == refresh_id, RefreshRow.state == cfg.RUNNING)
                              .values(progress=max(0.0, min(1.0, float(fraction))), progress_message=str(message)))
            except Exception:
                log.warning("could not record the progress of refresh %s", refresh_id, exc_info=True)
        return report

    def _finish(self, job: Job, state: str, message: str | None, result: dict | None = None,
                failure_status: str | None = None) -> None:
        now = clock.now()
        with self.db.write() as s:
            values = {"state": state, "active_monitor_id": None, "message": message, "ended_at": now,
                      "heartbeat_at": now}
            if result is not None:
                values.update(result=json.dumps(result), progress=1.0, progress_message="done")
            done = s.execute(update(RefreshRow).where(RefreshRow.id == job.refresh_id, RefreshRow.state == cfg.RUNNING,
                                                      RefreshRow.runner == self.runner).values(**values))
            if done.rowcount != 1:
                return
            if state == cfg.SUCCESS:
                s.execute(update(MonitorRow).where(MonitorRow.id == job.monitor_id)
                          .values(status=cfg.ACTIVE, failure_message=None))
            elif state == cfg.FAILED:
                s.execute(update(MonitorRow).where(MonitorRow.id == job.monitor_id)
                          .values(status=failure_status or cfg.ERROR, failure_message=message))
        if state == cfg.FAILED:
            log.warning("monitoring: refresh %s of monitor %s failed: %s", job.refresh_id, job.monitor_id, message)

    def _recover(self, at_start: bool) -> None:
        """Mark FAILED the refreshes left RUNNING by processes that are gone."""
        now = clock.now()
        stale_before = now - timedelta(seconds=STALE_SECONDS)
        with self.db.read() as s:
            rows = s.execute(select(RefreshRow.id, RefreshRow.monitor_id, RefreshRow.runner, RefreshRow.heartbeat_at)
                             .where(RefreshRow.state == cfg.RUNNING)).all()
        for r in rows:
            if r.runner == self.runner and r.id in self._running:
                continue
            gone = (at_start and self._gone(r.runner)) or r.heartbeat_at is None or r.heartbeat_at < stale_before
            if not gone:
                continue
            with self.db.write() as s:
                done = s.execute(update(RefreshRow).where(RefreshRow.id == r.id, RefreshRow.state == cfg.RUNNING,
                                                          RefreshRow.runner == r.runner,
                                                          RefreshRow.heartbeat_at == r.heartbeat_at)
                                 .values(state=cfg.FAILED, active_monitor_id=None, message=STOPPED, ended_at=now))
                if done.rowcount == 1:
                    s.execute(update(MonitorRow).where(MonitorRow.id == r.monitor_id)
                              .values(status=cfg.ERROR, failure_message=STOPPED))
                    log.warning("monitoring: refresh %s was left running by %s; marked FAILED", r.id, r.runner)

    def _gone(self, runner: str | None) -> bool:
        """True when `runner` was a process of this machine that no longer exists (or an earlier
        process with this process's id)."""
        try:
            host, pid, _boot = (runner or "").rsplit(":", 2)
            pid = int(pid)
        except ValueError:
            return True
        if host != socket.gethostname():
            return False
        if pid == os.getpid():
            return runner != self.runner
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    # ---- scheduling ----------------------------------------------------------------------------
    def _schedule_due(self) -> None:
        now = clock.now()
        with self.db.read() as s:
            due = s.execute(select(MonitorRow.id, MonitorRow.next_run_at, MonitorRow.config, MonitorRow.table_id)
                            .where(MonitorRow.next_run_at.is_not(None), MonitorRow.next_run_at <= now)).all()
        queued = False
        for m in due:
            config = json.loads(m.config)
            sched = cfg.active_schedule(config)
            try:
                following = schedule.next_after(sched["quartz_cron_expression"], sched["timezone_id"], now) \
                    if sched else None
            except InvalidParameter as e:  # a stored schedule that stopped parsing (tz data changed)
                log.warning("monitor %s: schedule ignored: %s", m.id, e.message)
                following = None
            try:
                with self.db.write() as s:
                    taken = s.execute(update(MonitorRow).where(MonitorRow.id == m.id,
                                                               MonitorRow.next_run_at == m.next_run_at)
                                      .values(next_run_at=following))
                    if taken.rowcount != 1 or sched is None:
                        continue  # another process took this due time, or the schedule went away
                    active = s.scalar(select(RefreshRow.id).where(RefreshRow.monitor_id == m.id,
                                                                  RefreshRow.state.in_(cfg.ACTIVE_STATES)))
                    if active is not None:
                        log.info("monitor %s: scheduled refresh skipped, refresh %s is still active", m.id, active)
                        continue
                    s.add(RefreshRow(monitor_id=m.id, active_monitor_id=m.id, state=cfg.PENDING, trigger=cfg.SCHEDULE,
                                     full=False, cancel_requested=False, created_at=now))
                    queued = True
            except AlreadyExists:  # queued concurrently by a request: this due time is tried again
                continue
        if queued:
            self.wake()

    # ---- running one refresh (in a worker thread) ----------------------------------------------
    def _execute(self, job: Job, cancel: threading.Event) -> None:
        try:
            result, evaluate = self._refresh(job, cancel)
        except Exception as e:
            log.debug("monitoring: refresh %s ended without success", job.refresh_id, exc_info=True)
            self._failed(job, cancel, e)
            return
        try:  # before SUCCESS is recorded, so a client that saw SUCCESS also sees the breaches
            evaluate()
        except Exception:
            log.exception("monitoring: evaluating the alerts after refresh %s failed", job.refresh_id)
        message = (f"Read {result.get('rows_read')} rows of table version {result.get('source_version')}; "
                   f"recomputed {result.get('windows_recomputed')} windows" + (" (full)" if result.get("full") else ""))
        self._finish(job, cfg.SUCCESS, message, result)

    def _failed(self, job: Job, cancel: threading.Event, e: Exception) -> None:
        cancelled_error = getattr(_engine_or_none(), "RefreshCancelled", None)
        if isinstance(e, Cancelled) or (cancelled_error is not None and isinstance(e, cancelled_error)):
            if self._stopping:
                self._finish(job, cfg.FAILED, STOPPED)
            else:
                self._finish(job, cfg.CANCELED, "Canceled")
            return
        if isinstance(e, LakeforgeError):
            message = e.message
            # The config no longer fits the table (a column dropped, a type changed): the monitor FAILED
            # until it is updated; anything else is an ERROR the next refresh may not meet.
            status = cfg.FAILED_STATUS if isinstance(e, (InvalidParameter, NotFound)) else cfg.ERROR
        else:
            log.error("monitoring: refresh %s failed", job.refresh_id, exc_info=e)
            message, status = _first_line(e), cfg.ERROR
        self._finish(job, cfg.FAILED, message, failure_status=status)

    def _refresh(self, job: Job, cancel: threading.Event):
        eng = engine()
        with self.db.read() as s:
            monitor = s.get(MonitorRow, job.monitor_id)
            if monitor is None:
                raise Cancelled()
            table = s.get(SecurableRow, monitor.table_id)
            if table is None:
                raise InvalidParameter("The monitored table no longer exists")
            owner = self.identity.principal_by_id(monitor.owner_id)
            self.catalog.check(s, owner, P.SELECT, table)
            config = json.loads(monitor.config)
            spec = cfg.to_spec(config, monitor.monitor_version)
            baseline = None
            if config.get("baseline_table_name"):
                baseline_row = sec.get_row(s, Kind.TABLE, config["baseline_table_name"])
                self.catalog.check(s, owner, P.SELECT, baseline_row)
                baseline = str(table_path(baseline_row))
            metric_tables = {}
            for kind, name in ((PROFILE, monitor.profile_table_name), (DRIFT, monitor.drift_table_name)):
                try:
                    row = sec.get_row(s, Kind.TABLE, name)
                except NotFound:
                    raise InvalidParameter(f"The {kind} metrics table '{name}' no longer exists; delete the "
                                           "monitor and create it again") from None
                self.catalog.check(s, owner, P.MODIFY, row)
                metric_tables[kind] = (name, table_path(row))
            s.expunge_all()
        self._sync_inference(table.full_name, owner)
        for kind, schema in ((PROFILE, eng.profile_schema_for(spec)), (DRIFT, eng.drift_schema_for(spec))):
            self._line_up(owner, *metric_tables[kind], schema)
        if cancel.is_set():
            raise Cancelled()
        outcome = eng.refresh(str(table_path(table)), spec,
                              state_dir=state_dir(Path(self.settings.home), monitor.id),
                              profile_path=str(metric_tables[PROFILE][1]), drift_path=str(metric_tables[DRIFT][1]),
                              baseline=baseline, full=job.full, progress=self._progress(job.refresh_id),
                              cancelled=cancel.is_set)
        result = _result(outcome)
        paths = {k: str(p) for k, (_, p) in metric_tables.items()}

        def evaluate() -> None:
            self.alerts.evaluate(monitor, table.full_name, spec, job.refresh_id, paths)
        return result, evaluate

    def _line_up(self, owner, full_name: str, path: Path, schema: pa.Schema) -> None:
        """Give a metric table the columns the config needs (after an update changed them): its rows
        are replaced by the next refresh anyway, so it is emptied with the new schema."""
        if same_columns(delta.arrow_schema(path), schema):
            return
        spool = Path(self.settings.home) / "tmp"
        spool.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=spool, suffix=".arrows") as f:
            with pa.ipc.new_stream(f, schema):
                pass
            f.flush()
            self.table_data.write(owner, full_name, Path(f.name), mode="overwrite", schema_mode="overwrite")
        log.info("monitoring: metric table %s now has the columns of the monitor's configuration", full_name)

    def _sync_inference(self, table_full_name: str, owner) -> None:
        """Bring an unpacked inference table up to date first (inference.py), as the monitor's owner."""
        try:
            from lakeforge.monitoring import inference
        except ImportError:
            return
        sync = getattr(inference, "sync_before_refresh", None)
        if sync is not None and self.services is not None:
            sync(self.services, table_full_name, owner)


def _engine_or_none():
    try:
        return engine()
    except (ImportError, LakeforgeError):
        return None


def _result(outcome) -> dict:
    """The engine's RefreshResult as the refresh's extension fields."""
    data = dataclasses.asdict(outcome) if dataclasses.is_dataclass(outcome) else dict(vars(outcome))
    out = {k: data.get(k) for k in ("rows_read", "windows_recomputed", "full", "source_version", "profile_rows",
                                    "drift_rows") if k in data}
    if "source_version" in out:
        out["logging_table_commit_version"] = out["source_version"]
    return out


def _first_line(e: Exception) -> str:
    text = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


__all__ = ["STOPPED", "MonitoringRuntime"]
