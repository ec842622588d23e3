"""The live side of serving in one server process: which endpoints are deployed here, with which
worker pools, router, inference log and limits.

A config update builds the new deployment next to the old one (reusing pools whose served entity
did not change), waits until every new worker answers, then swaps the deployment in one assignment
and stops what is no longer used: requests in flight finish on the old pools, new requests go to
the new ones. A failed update stops only what it started; the old deployment keeps serving and the
endpoint records UPDATE_FAILED with the reason.

Several server processes (`--workers N`) each run their own runtime: the process that accepted an
update deploys it and records the outcome; the others follow the stored config within a couple of
seconds (`reconcile`). After a restart, endpoints come back from the database, and an update that a
crash interrupted is resumed by worker 0.

Stopping cancels whatever is deploying (an update cut short stays IN_PROGRESS and resumes at the
next start) and stops every model worker this process started, loading ones included, so that the
server exits within seconds and leaves no worker behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from lakeforge import clock
from lakeforge.catalog.model_manifest import verify_manifest
from lakeforge.catalog.models import get_model, get_version
from lakeforge.catalog.storage import to_path
from lakeforge.errors import LakeforgeError, TemporarilyUnavailable
from lakeforge.serving import config as cfg
from lakeforge.serving import limits
from lakeforge.serving.inference_log import (
    InferenceLog,
    InferenceLogFlusher,
    ensure_payload_table,
)
from lakeforge.serving.pool import DeploymentFailed, EntitySpec, ServedEntityPool
from lakeforge.serving.router import TrafficRouter
from lakeforge.serving.store import ServingEndpointRow

log = logging.getLogger(__name__)

NOT_UPDATING, IN_PROGRESS, UPDATE_FAILED = "NOT_UPDATING", "IN_PROGRESS", "UPDATE_FAILED"
RECONCILE_SECONDS = 2.0
# How long stop() waits for cancelled deployments to finish their clean-up (stopping the workers
# they started takes at most pool.LOADING_GRACE, or a ready worker's 10 s grace).
STOP_WAIT_SECONDS = 12.0
# Never handed to model code: the server's own credentials and keys.
_PRIVATE_ENV = ("LAKEFORGE_", "DATABRICKS_", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD")


@dataclass
class Deployment:
    endpoint_id: str
    name: str
    owner_id: str
    config_version: int
    config: dict
    gateway: dict
    pools: dict[str, ServedEntityPool]
    entity_ids: dict[str, str]  # served entity name -> served_entity_id
    router: TrafficRouter
    inference: InferenceLog | None = None
    rules: list = field(default_factory=list)
    usage_enabled: bool = False

    @property
    def signature(self) -> tuple:
        return self.config_version, json.dumps(self.gateway, sort_keys=True)

    def entity(self, name: str) -> dict | None:
        return next((e for e in self.config["served_entities"] if e["name"] == name), None)


class ServingRuntime:
    def __init__(self, settings, db, identity, secret_refs, tables, lineage):
        self.settings = settings
        self.db = db
        self.identity = identity
        self.secret_refs = secret_refs
        self.tables = tables  # registers inference tables in the catalog
        self.lineage = lineage
        self.deployments: dict[str, Deployment] = {}
        self.flusher = InferenceLogFlusher(settings.serving_log_flush_seconds)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._counter = 0
        self._socket_dir: Path | None = None
        self._reconciler: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()  # updates, refreshes and removals running in this process
        self._pools: set[ServedEntityPool] = set()  # every pool started here and not stopped yet
        self._stopping = False
        self._busy: set[str] = set()  # endpoint ids with an update running in this process
        self._failed: dict[str, tuple] = {}  # endpoint name -> config signature that failed to deploy here

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        # Unix socket paths are limited to ~107 bytes: keep them under a short temporary directory.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="lf-serving-"))
        self.flusher.start()
        self._reconciler = asyncio.create_task(self._restore_then_reconcile())

    async def _restore_then_reconcile(self) -> None:
        """Bring stored endpoints back in the background: the server answers (health, API) at once,
        an endpoint answers 503 (which clients retry) until its model workers are up."""
        rows = await asyncio.to_thread(self._rows)
        resume = [r for r in rows if r.config_update == IN_PROGRESS and r.pending_config]
        await asyncio.gather(*(self._follow(r) for r in rows if r.config), return_exceptions=True)
        if self.settings.worker_id == 0:
            for r in resume:
                self.schedule_update(r.id)
        await self._reconcile_forever()

    async def stop(self) -> None:
        """Cancel what is deploying, then stop every pool: deployed, being built, or left over by a
        cancelled swap or removal. Loading workers get SIGTERM, then SIGKILL after a short grace."""
        self._stopping = True
        tasks = [t for t in (self._reconciler, *self._tasks) if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        self.deployments = {}
        await asyncio.gather(self._ended(tasks), *(p.stop() for p in list(self._pools)), return_exceptions=True)
        # a pool that a cancelled task created after the first round
        await asyncio.gather(*(p.stop() for p in self._pools if not p.stopped), return_exceptions=True)
        self._pools.clear()
        await asyncio.to_thread(self.flusher.stop)
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    @staticmethod
    async def _ended(tasks: list[asyncio.Task]) -> None:
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=STOP_WAIT_SECONDS)
        for t in pending:
            log.warning("serving task %s did not end within %.0f s of its cancellation", t.get_coro(),
                        STOP_WAIT_SECONDS)

    # ---- updates (called from request threads) -------------------------------------------------
    def schedule_update(self, endpoint_id: str) -> None:
        """Deploy the endpoint's pending config in the background (the API answers IN_PROGRESS).
        While the server stops nothing starts; the update stays IN_PROGRESS and resumes at the next start."""
        self._submit(self._update(endpoint_id))

    def refresh(self, endpoint_id: str, timeout: float = 120) -> None:
        """Apply a changed ai_gateway (or tags) to the live deployment now, reusing its pools."""
        self._wait(self._submit(self._refresh(endpoint_id)), timeout)

    def remove(self, name: str, timeout: float = 60) -> None:
        self._wait(self._submit(self._remove(name)), timeout)

    def _submit(self, coro) -> concurrent.futures.Future:
        """Run `coro` as a task of the runtime's loop that stop() cancels and waits for (from any thread)."""
        outcome: concurrent.futures.Future = concurrent.futures.Future()

        def spawn() -> None:
            if self._stopping:
                coro.close()
                outcome.cancel()
                return
            task = self.loop.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(lambda t: (self._tasks.discard(t), _copy_outcome(t, outcome)))

        self.loop.call_soon_threadsafe(spawn)
        return outcome

    @staticmethod
    def _wait(outcome: concurrent.futures.Future, timeout: float) -> None:
        try:
            outcome.result(timeout)
        except concurrent.futures.CancelledError:
            raise TemporarilyUnavailable("The server is shutting down; the change applies when it starts again") \
                from None

    def _lock(self, endpoint_id: str) -> asyncio.Lock:
        return self._locks.setdefault(endpoint_id, asyncio.Lock())

    async def _update(self, endpoint_id: str) -> None:
        async with self._lock(endpoint_id):
            self._busy.add(endpoint_id)
            try:
                row = await asyncio.to_thread(self._row, endpoint_id)
                if row is None or not row.pending_config or row.config_update != IN_PROGRESS:
                    return
                pending = json.loads(row.pending_config)
                try:
                    deployment = await self._build(row, pending)
                except (DeploymentFailed, LakeforgeError) as e:
                    reason = e.message if isinstance(e, LakeforgeError) else str(e)
                    log.warning("endpoint %s: update to config %s failed: %s", row.name, pending["config_version"],
                                reason)
                    await asyncio.to_thread(self._finish, endpoint_id, pending["config_version"], reason)
                    return
                except Exception as e:
                    log.exception("endpoint %s: update failed", row.name)
                    await asyncio.to_thread(self._finish, endpoint_id, pending["config_version"],
                                            f"internal error while deploying: {type(e).__name__}")
                    return
                if await asyncio.to_thread(self._row, endpoint_id) is None:  # deleted while it deployed
                    await asyncio.gather(*(p.stop() for p in deployment.pools.values()
                                           if p not in self._live_pools(row.name)), return_exceptions=True)
                    return
                await self._swap(deployment)
                await asyncio.to_thread(self._finish, endpoint_id, pending["config_version"], None)
                await asyncio.to_thread(self._record_lineage, deployment)
            finally:
                self._busy.discard(endpoint_id)

    def _live_pools(self, name: str) -> list[ServedEntityPool]:
        d = self.deployments.get(name)
        return list(d.pools.values()) if d else []

    async def _refresh(self, endpoint_id: str) -> None:
        async with self._lock(endpoint_id):
            row = await asyncio.to_thread(self._row, endpoint_id)
            if row is not None and row.config:
                await self._swap(await self._build(row, json.loads(row.config)))

    async def _follow(self, row: ServingEndpointRow) -> None:
        """Deploy the stored config here (another process accepted it, or the server restarted)."""
        async with self._lock(row.id):
            try:
                await self._swap(await self._build(row, json.loads(row.config)))
                self._failed.pop(row.name, None)
            except Exception as e:
                self._failed[row.name] = _signature(row)
                log.error("endpoint %s: cannot deploy its config in this process: %s", row.name,
                          getattr(e, "message", e))

    async def _remove(self, name: str) -> None:
        d = self.deployments.pop(name, None)
        if d is None:
            return
        await asyncio.gather(*(p.stop() for p in d.pools.values()), return_exceptions=True)
        if d.inference is not None:
            self.flusher.logs.pop(d.endpoint_id, None)
            await asyncio.to_thread(d.inference.close)

    async def _swap(self, new: Deployment) -> None:
        old = self.deployments.get(new.name)
        self.deployments[new.name] = new
        if new.inference is not None:
            self.flusher.logs[new.endpoint_id] = new.inference
        if old is None:
            return
        kept = {id(p) for p in new.pools.values()}
        await asyncio.gather(*(p.stop() for p in old.pools.values() if id(p) not in kept), return_exceptions=True)
        if old.inference is not None and old.inference is not new.inference:
            if new.inference is None:
                self.flusher.logs.pop(old.endpoint_id, None)
            await asyncio.to_thread(old.inference.close)

    # ---- building a deployment -----------------------------------------------------------------
    async def _build(self, row: ServingEndpointRow, config: dict) -> Deployment:
        gateway = json.loads(row.ai_gateway) if row.ai_gateway else {}
        current = self.deployments.get(row.name)
        owner = await asyncio.to_thread(self.identity.principal_by_id, row.owner_id)
        pools: dict[str, ServedEntityPool] = {}
        started: list[ServedEntityPool] = []
        try:
            starts = []
            for entity in config["served_entities"]:
                reusable = current.pools.get(entity["name"]) if current else None
                if reusable and current.entity(entity["name"]) == entity and reusable.ready:
                    pools[entity["name"]] = reusable
                    continue
                spec = await self._spec(row, entity, owner)
                pool = self._new_pool(spec, self._log_path(row, entity))
                pools[entity["name"]] = pool
                started.append(pool)
                starts.append(self._start(pool, entity["name"]))
            await asyncio.gather(*starts)
            inference = await asyncio.to_thread(self._inference_log, row, config, gateway, owner, current)
        except BaseException:
            await asyncio.gather(*(p.stop() for p in started), return_exceptions=True)
            raise
        routes = [(r["served_entity_name"], r["traffic_percentage"]) for r in config["traffic_config"]["routes"]]
        return Deployment(
            endpoint_id=row.id, name=row.name, owner_id=row.owner_id, config_version=config["config_version"],
            config=config, gateway=gateway, pools=pools,
            entity_ids={e["name"]: e.get("id", e["name"]) for e in config["served_entities"]},
            router=TrafficRouter(routes), inference=inference,
            rules=limits.parse_rules(gateway.get("rate_limits") or []),
            usage_enabled=bool((gateway.get("usage_tracking_config") or {}).get("enabled")))

    def _new_pool(self, spec: EntitySpec, log_path: Path) -> ServedEntityPool:
        self._pools = {p for p in self._pools if not p.stopped}
        pool = ServedEntityPool(spec, self._socket_dir, log_path, self.settings.serving_load_timeout_seconds)
        self._pools.add(pool)
        return pool

    async def _start(self, pool: ServedEntityPool, name: str) -> None:
        try:
            await pool.start()
        except DeploymentFailed as e:
            raise DeploymentFailed(f"served entity '{name}': {e}") from None

    async def _spec(self, row: ServingEndpointRow, entity: dict, owner) -> EntitySpec:
        model_dir = await asyncio.to_thread(self._verified_model_dir, entity)
        env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV)}
        env.setdefault("OMP_NUM_THREADS", "1")  # one request at a time per worker: no thread oversubscription
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        for key, value in (entity.get("environment_vars") or {}).items():
            # Secrets are resolved on behalf of the endpoint's owner, at deploy time, into the worker's
            # environment only; the stored config keeps the reference.
            env[key] = await asyncio.to_thread(self.secret_refs.resolve, value, owner)
        python = sys.executable
        if entity.get("environment") == "virtualenv":
            from lakeforge.serving.environments import ensure_environment

            python = str(await asyncio.to_thread(ensure_environment, model_dir,
                                                 self.settings.home / "serving" / "environments"))
        self._counter += 1
        key = f"{row.id[:8]}-{self._counter}"
        return EntitySpec(key=key, model_dir=model_dir, workers=cfg.workers_of(entity), python=python, env=env,
                          max_batch_size=entity["max_batch_size"], max_batch_wait_ms=entity["max_batch_wait_ms"])

    def _verified_model_dir(self, entity: dict) -> Path:
        """The version's catalog-owned copy, checked against its manifest before any worker loads it."""
        with self.db.read() as s:
            model = get_model(s, entity["entity_name"])
            version = get_version(s, model, int(entity["entity_version"]))
            s.expunge(version)
        try:
            verify_manifest(version, f"{entity['entity_name']}/{entity['entity_version']}")
        except LakeforgeError as e:
            raise DeploymentFailed(e.message) from None
        return to_path(version.storage_location)

    def _log_path(self, row: ServingEndpointRow, entity: dict) -> Path:
        return self.settings.home / "serving" / "logs" / row.id / f"{entity['name']}.log"

    def _inference_log(self, row, config, gateway, owner, current: Deployment | None) -> InferenceLog | None:
        table_cfg = cfg.inference_table(config, gateway)
        if table_cfg is None:
            return None
        full_name = cfg.payload_table_name(table_cfg, row.name)
        location = ensure_payload_table(self.tables, owner, full_name)
        path = to_path(location)
        if current is not None and current.inference is not None and current.inference.table_path == path:
            return current.inference
        suffix = hashlib.sha1(full_name.encode()).hexdigest()[:8]
        name = f"inference-{row.id}-{suffix}"
        inference = InferenceLog(self.settings.log_dir(name), path, app_id=self.settings.log_app_id(name),
                                 fsync=self.settings.inference_log_fsync)
        inference.flush()  # what a crash left in the log reaches the table before anything new
        return inference

    # ---- bookkeeping in the database -----------------------------------------------------------
    def _rows(self) -> list[ServingEndpointRow]:
        with self.db.read() as s:
            rows = list(s.scalars(select(ServingEndpointRow)))
            for r in rows:
                s.expunge(r)
            return rows

    def stored(self, name: str) -> ServingEndpointRow | None:
        with self.db.read() as s:
            row = s.scalar(select(ServingEndpointRow).where(ServingEndpointRow.name == name))
            if row is not None:
                s.expunge(row)
            return row

    def _row(self, endpoint_id: str) -> ServingEndpointRow | None:
        with self.db.read() as s:
            row = s.get(ServingEndpointRow, endpoint_id)
            if row is not None:
                s.expunge(row)
            return row

    def _finish(self, endpoint_id: str, version: int, failure: str | None) -> None:
        with self.db.write() as s:
            row = s.get(ServingEndpointRow, endpoint_id)
            if row is None or not row.pending_config:
                return
            pending = json.loads(row.pending_config)
            if pending.get("config_version") != version:
                return  # a newer update replaced this one
            if failure is None:
                row.config, row.pending_config, row.update_message = row.pending_config, None, None
                row.config_update = NOT_UPDATING
            else:
                row.config_update, row.update_message = UPDATE_FAILED, failure
            row.updated_at = clock.now()

    def _record_lineage(self, d: Deployment) -> None:
        try:
            owner = self.identity.principal_by_id(d.owner_id)
            edges = [("REGISTERED_MODEL", e["entity_name"], "SERVING_ENDPOINT", d.name)
                     for e in d.config["served_entities"]]
            if d.inference is not None:
                table_cfg = cfg.inference_table(d.config, d.gateway)
                edges.append(("SERVING_ENDPOINT", d.name, "TABLE", cfg.payload_table_name(table_cfg, d.name)))
            self.lineage.record(owner, edges, "SERVING_ENDPOINT", f"{d.name}/config/{d.config_version}")
        except Exception:
            log.exception("endpoint %s: recording lineage failed", d.name)

    # ---- following other processes -------------------------------------------------------------
    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_SECONDS)
            try:
                await self.reconcile()
                await self._scale_idle_to_zero()
            except Exception:
                log.exception("serving reconcile failed")

    async def _scale_idle_to_zero(self) -> None:
        idle_limit = self.settings.serving_scale_to_zero_seconds
        for d in list(self.deployments.values()):
            for name, pool in d.pools.items():
                entity = d.entity(name) or {}
                if entity.get("scale_to_zero_enabled") and not pool.scaled_down and pool.idle_seconds > idle_limit:
                    await pool.scale_down(idle_limit)

    async def reconcile(self) -> None:
        rows = {r.name: r for r in await asyncio.to_thread(self._rows)}
        for name in [n for n in self.deployments if n not in rows]:
            await self._remove(name)
        for row in rows.values():
            if not row.config or row.id in self._busy:
                continue
            d = self.deployments.get(row.name)
            wanted = _signature(row)
            if self._failed.get(row.name) == wanted:
                continue  # it failed here already; a new config or gateway change retries
            if d is None or d.endpoint_id != row.id or d.signature != wanted:
                await self._follow(row)


def _copy_outcome(task: asyncio.Task, outcome: concurrent.futures.Future) -> None:
    if task.cancelled():
        outcome.cancel()
    elif task.exception() is not None:
        outcome.set_exception(task.exception())
    else:
        outcome.set_result(task.result())


def _signature(row: ServingEndpointRow) -> tuple:
    return (json.loads(row.config)["config_version"],
            json.dumps(json.loads(row.ai_gateway) if row.ai_gateway else {}, sort_keys=True))
