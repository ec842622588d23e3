"""Serving endpoints: create, read, update, delete, ACLs, in the Databricks wire shape.

Everything a config needs is checked before anything is stored, so a bad config creates nothing:
each served model version exists and is READY, the creator holds EXECUTE on its model, every
secret reference exists and the creator may READ it, and the inference table can be created (or is
an inference table the owner may MODIFY). Deployment then runs in the background (see runtime.py):
the answer says `config_update: IN_PROGRESS` until the workers are up.

Access: endpoints carry an ACL (CAN_VIEW < CAN_QUERY < CAN_MANAGE); the creator owns the endpoint
and manages it. Models run on the owner's behalf (secrets are resolved with the owner's rights).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select

from lakeforge import clock
from lakeforge.audit.context import note_securable
from lakeforge.catalog import securables as sec
from lakeforge.catalog.access import AccessControl, Securable
from lakeforge.catalog.model_versions import READY
from lakeforge.catalog.models import get_model, get_version
from lakeforge.catalog.object_acl import ObjectAcl
from lakeforge.catalog.privileges import Kind, P
from lakeforge.catalog.store import SecurableRow
from lakeforge.errors import (
    InvalidParameter,
    NotFound,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceConflict,
    ResourceDoesNotExist,
)
from lakeforge.identity.principal import Principal
from lakeforge.serving import config as cfg
from lakeforge.serving import limits, metrics
from lakeforge.serving import pool as pool_states
from lakeforge.serving.inference_log import PAYLOAD_SCHEMA
from lakeforge.serving.runtime import IN_PROGRESS, NOT_UPDATING, UPDATE_FAILED, ServingRuntime
from lakeforge.serving.store import ServingEndpointRow
from lakeforge.store import new_id

KIND = Kind.SERVING_ENDPOINT


class ServingService:
    def __init__(self, db, access: AccessControl, identity, catalog, secret_refs, runtime: ServingRuntime, usage,
                 limiter):
        self.db = db
        self.access = access
        self.identity = identity
        self.catalog = catalog
        self.secret_refs = secret_refs
        self.runtime = runtime
        self.usage = usage
        self.limiter = limiter
        self.acl = ObjectAcl(db, access, identity, KIND, "serving-endpoint", "/serving-endpoints")

    @staticmethod
    def securable(row: ServingEndpointRow) -> Securable:
        return Securable(KIND, row.id, row.name, row.owner_id)

    # ---- create --------------------------------------------------------------------------------
    def create(self, caller: Principal, body: dict) -> dict:
        name = cfg.check_endpoint_name(body.get("name"))
        note_securable(name)
        config = cfg.endpoint_config(body.get("config"))
        gateway = cfg.ai_gateway(_with_legacy_limits(body.get("ai_gateway"), body.get("rate_limits")))
        tags = _tags(body.get("tags"))
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise InvalidParameter("description must be a string")
        self._check_config(caller, caller, config, gateway, name)
        now = clock.now()
        config = self._stamp(config, None, caller, 1, now)
        with self.db.write() as s:
            if s.scalar(select(ServingEndpointRow.id).where(ServingEndpointRow.name == name)):
                raise ResourceAlreadyExists(f"Serving endpoint '{name}' already exists")
            row = ServingEndpointRow(id=new_id(), name=name, owner_id=caller.id, creator=caller.name,
                                     description=description, config=None, pending_config=json.dumps(config),
                                     config_update=IN_PROGRESS, ai_gateway=json.dumps(gateway) if gateway else None,
                                     tags=json.dumps(tags) if tags else None, created_at=now, updated_at=now)
            s.add(row)
            s.flush()
            s.expunge(row)
        self.runtime.schedule_update(row.id)
        return self.render(row)

    def _check_config(self, caller: Principal, owner: Principal, config: dict, gateway: dict, name: str) -> None:
        with self.db.read() as s:
            for e in config["served_entities"]:
                what = f"Served entity '{e['name']}'"
                try:
                    model = get_model(s, e["entity_name"])
                except NotFound:
                    raise InvalidParameter(f"{what}: registered model '{e['entity_name']}' does not exist") from None
                self.catalog.check(s, caller, P.EXECUTE, model)
                try:
                    version = get_version(s, model, int(e["entity_version"]))
                except NotFound:
                    raise InvalidParameter(f"{what}: model version '{e['entity_name']}/{e['entity_version']}' "
                                           "does not exist") from None
                if version.status != READY:
                    raise InvalidParameter(f"{what}: model version '{e['entity_name']}/{e['entity_version']}' is "
                                           f"{version.status}, not READY")
            self._check_table(s, owner, config, gateway, name)
        for e in config["served_entities"]:
            for key, value in (e.get("environment_vars") or {}).items():
                try:
                    self.secret_refs.check_readable(value, owner)
                except PermissionDenied as err:
                    # A config the owner cannot run is a bad config, refused like any other.
                    raise InvalidParameter(f"Served entity '{e['name']}', environment variable {key}: "
                                           f"{err.message}") from None

    def _check_table(self, s, owner: Principal, config: dict, gateway: dict, name: str) -> None:
        table_cfg = cfg.inference_table(config, gateway)
        if table_cfg is None:
            return
        full_name = cfg.payload_table_name(table_cfg, name)
        existing = s.scalar(select(SecurableRow).where(SecurableRow.kind == Kind.TABLE.value,
                                                       SecurableRow.full_name == full_name))
        if existing is not None:
            self.catalog.check(s, owner, P.MODIFY, existing)
            have = {c["name"] for c in sec.load_json(existing.spec).get("columns", [])}
            if not set(PAYLOAD_SCHEMA.names) <= have:
                raise InvalidParameter(f"Table '{full_name}' exists but is not an inference table; choose another "
                                       "table_name_prefix")
            return
        try:
            schema_row = sec.get_parent_row(s, Kind.TABLE, table_cfg["catalog_name"], table_cfg["schema_name"])
        except NotFound as e:
            raise InvalidParameter(f"Inference table: {e.message}") from None
        self.catalog.check(s, owner, P.CREATE_TABLE, schema_row)

    @staticmethod
    def _stamp(config: dict, previous: dict | None, caller: Principal, version: int, now) -> dict:
        """Give each served entity an id (kept when the same model version stays under the same name)
        and its creator; give the config its version."""
        before = {e["name"]: e for e in (previous or {}).get("served_entities", [])}
        for e in config["served_entities"]:
            old = before.get(e["name"])
            same = old and old["entity_name"] == e["entity_name"] and old["entity_version"] == e["entity_version"]
            e["id"] = old["id"] if same else uuid.uuid4().hex
            e["creator"] = old["creator"] if same else caller.name
            e["creation_timestamp"] = old["creation_timestamp"] if same else clock.to_ms(now)
        return {**config, "config_version": version, "start_time": clock.to_ms(now)}

    # ---- read ----------------------------------------------------------------------------------
    def _get_row(self, s, name: str) -> ServingEndpointRow:
        note_securable(name)
        row = s.scalar(select(ServingEndpointRow).where(ServingEndpointRow.name == name))
        if row is None:
            raise ResourceDoesNotExist(f"Serving endpoint '{name}' does not exist")
        return row

    def _authorized(self, caller: Principal, name: str, level: P) -> ServingEndpointRow:
        with self.db.read() as s:
            row = self._get_row(s, name)
            s.expunge(row)
        self.access.authorize(caller, level, self.securable(row))
        return row

    def get(self, caller: Principal, name: str) -> dict:
        return self.render(self._authorized(caller, name, P.CAN_VIEW))

    def list(self, caller: Principal) -> dict:
        with self.db.read() as s:
            rows = list(s.scalars(select(ServingEndpointRow).order_by(ServingEndpointRow.name)))
            for r in rows:
                s.expunge(r)
        visible = [r for r in rows if self.access.allowed(caller, P.CAN_VIEW, self.securable(r))]
        return {"endpoints": [self.render(r, summary=True) for r in visible]}

    # ---- update --------------------------------------------------------------------------------
    def update_config(self, caller: Principal, name: str, body: dict) -> dict:
        row = self._authorized(caller, name, P.CAN_MANAGE)
        if row.config_update == IN_PROGRESS:
            raise ResourceConflict(f"Serving endpoint '{name}' is being updated; wait until config_update is "
                                   "NOT_UPDATING")
        current = json.loads(row.config) if row.config else None
        config = cfg.endpoint_config(body)
        if "auto_capture_config" not in config and current and current.get("auto_capture_config"):
            config["auto_capture_config"] = current["auto_capture_config"]
        gateway = json.loads(row.ai_gateway) if row.ai_gateway else {}
        owner = self.identity.principal_by_id(row.owner_id)
        self._check_config(caller, owner, config, gateway, name)
        versions = [c["config_version"] for c in (current, json.loads(row.pending_config or "null")) if c]
        now = clock.now()
        config = self._stamp(config, current, caller, max(versions, default=0) + 1, now)
        with self.db.write() as s:
            live = s.get(ServingEndpointRow, row.id)
            if live is None:
                raise ResourceDoesNotExist(f"Serving endpoint '{name}' does not exist")
            if live.config_update == IN_PROGRESS:
                raise ResourceConflict(f"Serving endpoint '{name}' is being updated")
            live.pending_config, live.config_update, live.update_message = json.dumps(config), IN_PROGRESS, None
            live.updated_at = now
            s.flush()
            s.expunge(live)
        self.runtime.schedule_update(row.id)
        return self.render(live)

    def put_ai_gateway(self, caller: Principal, name: str, body: dict) -> dict:
        row = self._authorized(caller, name, P.CAN_MANAGE)
        gateway = cfg.ai_gateway(body)
        owner = self.identity.principal_by_id(row.owner_id)
        with self.db.read() as s:
            self._check_table(s, owner, json.loads(row.config or row.pending_config or "{}"), gateway, name)
        with self.db.write() as s:
            live = s.get(ServingEndpointRow, row.id)
            live.ai_gateway = json.dumps(gateway) if gateway else None
            live.updated_at = clock.now()
        before = json.loads(row.ai_gateway).get("rate_limits") if row.ai_gateway else None
        if before != gateway.get("rate_limits"):
            self.limiter.reset(limits.endpoint_prefix(name))  # new limits start from a clean count
        if row.config:
            self.runtime.refresh(row.id)
        return gateway

    def put_rate_limits(self, caller: Principal, name: str, body: dict) -> dict:
        """The legacy endpoint-level limits: stored as AI gateway rate limits."""
        row = self._authorized(caller, name, P.CAN_MANAGE)
        gateway = json.loads(row.ai_gateway) if row.ai_gateway else {}
        gateway = self.put_ai_gateway(caller, name, {**gateway, "rate_limits": body.get("rate_limits") or []})
        return {"rate_limits": gateway.get("rate_limits", [])}

    def patch_tags(self, caller: Principal, name: str, body: dict) -> dict:
        row = self._authorized(caller, name, P.CAN_MANAGE)
        add = _tags(body.get("add_tags"))
        remove = body.get("delete_tags") or []
        if not isinstance(remove, list) or not all(isinstance(k, str) for k in remove):
            raise InvalidParameter("delete_tags must be a list of tag keys")
        with self.db.write() as s:
            live = s.get(ServingEndpointRow, row.id)
            tags = {t["key"]: t for t in (json.loads(live.tags) if live.tags else [])}
            for key in remove:
                tags.pop(key, None)
            tags.update({t["key"]: t for t in add})
            live.tags = json.dumps(list(tags.values())) if tags else None
            live.updated_at = clock.now()
        return {"tags": list(tags.values())}

    # ---- delete --------------------------------------------------------------------------------
    def delete(self, caller: Principal, name: str) -> None:
        row = self._authorized(caller, name, P.CAN_MANAGE)
        with self.db.write() as s:
            live = s.get(ServingEndpointRow, row.id)
            if live is not None:
                s.delete(live)
            self.acl.drop(s, row.id)
        self.access.invalidate()
        self.runtime.remove(name)
        self.usage.forget(name)
        self.limiter.reset(limits.endpoint_prefix(name))

    # ---- operations ----------------------------------------------------------------------------
    def logs(self, caller: Principal, name: str, served: str) -> dict:
        self._authorized(caller, name, P.CAN_MANAGE)
        d = self.runtime.deployments.get(name)
        pool = d.pools.get(served) if d else None
        if pool is None:
            raise ResourceDoesNotExist(f"Served model '{served}' of endpoint '{name}' is not deployed")
        return {"logs": pool.logs()}

    def usage_of(self, caller: Principal, name: str) -> dict:
        self._authorized(caller, name, P.CAN_VIEW)
        return self.usage.snapshot(name)

    def readiness(self, visible: set[str]) -> dict[str, float]:
        """Prometheus gauges: 1 when a served entity has a connected model worker in this process."""
        out = {}
        for name, d in list(self.runtime.deployments.items()):
            if name in visible:
                for served, pool in d.pools.items():
                    key = metrics.series("lakeforge_serving_entity_ready", endpoint=name, served_entity=served)
                    out[key] = 1 if pool.ready else 0
        return out

    # ---- permissions ---------------------------------------------------------------------------
    def _by_id_or_name(self, key: str) -> ServingEndpointRow:
        with self.db.read() as s:
            row = s.get(ServingEndpointRow, key) or s.scalar(
                select(ServingEndpointRow).where(ServingEndpointRow.name == key))
            if row is None:
                raise ResourceDoesNotExist(f"Serving endpoint '{key}' does not exist")
            s.expunge(row)
        note_securable(row.name)
        return row

    def get_permissions(self, caller: Principal, key: str) -> dict:
        return self.acl.get(caller, self.securable(self._by_id_or_name(key)))

    def change_permissions(self, caller: Principal, key: str, acl: Any, replace: bool) -> dict:
        return self.acl.change(caller, self.securable(self._by_id_or_name(key)), acl, replace)

    # ---- rendering -----------------------------------------------------------------------------
    def render(self, row: ServingEndpointRow, summary: bool = False) -> dict:
        d = self.runtime.deployments.get(row.name)
        live = d if d is not None and d.endpoint_id == row.id else None
        config = json.loads(row.config) if row.config else None
        pending = json.loads(row.pending_config) if row.pending_config else None
        gateway = json.loads(row.ai_gateway) if row.ai_gateway else None
        ready = live is not None and any(p.ready for n, p in live.pools.items()
                                         if _share(live.config, n) > 0)
        out: dict[str, Any] = {
            "name": row.name, "id": row.id, "creator": row.creator,
            "creation_timestamp": clock.to_ms(row.created_at), "last_updated_timestamp": clock.to_ms(row.updated_at),
            "state": {"ready": "READY" if ready else "NOT_READY", "config_update": row.config_update},
            "tags": json.loads(row.tags) if row.tags else None, "description": row.description,
            "ai_gateway": gateway, "route_optimized": False,
        }
        if row.update_message:
            out["state"]["config_update_message"] = row.update_message
        if summary:
            shown = config or pending
            if shown:
                out["config"] = {"served_entities": [
                    {"name": e["name"], "entity_name": e["entity_name"], "entity_version": e["entity_version"]}
                    for e in shown["served_entities"]]}
            return out
        if config:
            out["config"] = self._render_config(row, config, live, gateway, pending=False)
        if pending:
            failed = row.config_update == UPDATE_FAILED
            out["pending_config"] = self._render_config(row, pending, None, gateway, pending=True,
                                                        failure=row.update_message if failed else None)
        return out

    def _render_config(self, row, config: dict, live, gateway, *, pending: bool, failure: str | None = None) -> dict:
        entities = []
        for e in config["served_entities"]:
            shown = {k: v for k, v in e.items() if k not in ("id",)}
            if failure is not None:
                state = {"deployment": pool_states.FAILED, "deployment_state_message": failure}
            elif pending:
                state = {"deployment": pool_states.CREATING, "deployment_state_message": "starting model workers"}
            else:
                pool = live.pools.get(e["name"]) if live else None
                if pool is None:
                    state = {"deployment": pool_states.CREATING, "deployment_state_message": "not yet deployed on "
                             "this server"}
                else:
                    state = {"deployment": pool.state}
                    if pool.message:
                        state["deployment_state_message"] = pool.message
            entities.append({**shown, "state": state})
        out = {"served_entities": entities, "traffic_config": config["traffic_config"],
               "config_version": config["config_version"]}
        out["served_models"] = [{"name": e["name"], "model_name": e["entity_name"], "model_version": e["entity_version"],
                                 "workload_size": e["workload_size"], "scale_to_zero_enabled": e["scale_to_zero_enabled"],
                                 "state": e["state"]} for e in entities]
        if pending:
            out["start_time"] = config.get("start_time")
        table = cfg.inference_table(config, gateway)
        if table:
            full = cfg.payload_table_name(table, row.name)
            out["auto_capture_config"] = {**table, "state": {"payload_table": {"name": full.split(".")[-1],
                                                                                "status": "ACTIVE"}}}
        return out


def _share(config: dict, entity: str) -> int:
    return sum(r["traffic_percentage"] for r in config["traffic_config"]["routes"] if r["served_entity_name"] == entity)


def _tags(raw: Any) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidParameter("tags must be a list of {key, value}")
    out = []
    for i, t in enumerate(raw):
        if not isinstance(t, dict) or not isinstance(t.get("key"), str) or not t["key"]:
            raise InvalidParameter(f"tags[{i}] needs a non-empty key")
        if t.get("value") is not None and not isinstance(t["value"], str):
            raise InvalidParameter(f"tags[{i}].value must be a string")
        out.append({"key": t["key"], **({"value": t["value"]} if t.get("value") is not None else {})})
    return out


def _with_legacy_limits(gateway: Any, rate_limits: Any) -> Any:
    """The deprecated top-level `rate_limits` of create become AI gateway limits."""
    if not rate_limits:
        return gateway
    if gateway is not None and not isinstance(gateway, dict):
        return gateway
    return {**(gateway or {}), "rate_limits": (gateway or {}).get("rate_limits") or rate_limits}


__all__ = ["NOT_UPDATING", "ServingService"]
