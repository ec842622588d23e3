"""Model Serving from the SDK: endpoints that serve registered model versions, and queries to them.

    ep = lf.serving.create("churn", model="main.ml.churn", version=1)        # waits until deployed
    r = lf.serving.query("churn", df)                                        # a pandas DataFrame
    print(r.predictions, r.served_model_name)

The REST API is the Databricks serving-endpoints shape; `create` and `update` build its bodies
from a few keyword arguments and, like databricks-sdk's `*_and_wait`, wait until the endpoint's
`config_update` leaves IN_PROGRESS.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from lakeforge.client.catalog import _Area
from lakeforge.client.connection import ApiError, Record

BASE = "/api/2.0/serving-endpoints"
LEVELS = ("CAN_VIEW", "CAN_QUERY", "CAN_MANAGE")


class UpdateFailed(ApiError):
    """A config could not be deployed; the endpoint keeps serving its previous config, if any."""


class Serving(_Area):
    # ---- endpoints -----------------------------------------------------------------------------
    def create(self, name: str, entities: list[dict] | None = None, *, model: str | None = None,
               version: int | str | None = None, served_name: str | None = None,
               traffic: Mapping[str, int] | None = None, inference_table: str | dict | None = None,
               rate_limits: list[dict] | None = None, usage_tracking: bool = False, wait: bool = True,
               timeout: float = 300) -> Record:
        """Create an endpoint serving `entities` (served_entities dicts: entity_name, entity_version,
        name, workload_size, ...) or the one `model` at `version`. `traffic` maps served entity
        names to percentages (default: an even split); `inference_table` is "catalog.schema" or an
        inference_table_config dict; `rate_limits` are ai_gateway rate limit dicts."""
        gateway: dict[str, Any] = {}
        if inference_table:
            gateway["inference_table_config"] = _table_config(inference_table)
        if rate_limits:
            gateway["rate_limits"] = list(rate_limits)
        if usage_tracking:
            gateway["usage_tracking_config"] = {"enabled": True}
        body = {"name": name, "config": _config(entities, model, version, served_name, traffic)}
        if gateway:
            body["ai_gateway"] = gateway
        endpoint = self._c.request("POST", BASE, json=body)
        return self.wait(name, timeout) if wait else endpoint

    def get(self, name: str) -> Record:
        return self._c.request("GET", f"{BASE}/{name}")

    def list(self) -> list[Record]:
        return self._c.request("GET", BASE).get("endpoints", [])

    def update(self, name: str, entities: list[dict] | None = None, *, model: str | None = None,
               version: int | str | None = None, served_name: str | None = None,
               traffic: Mapping[str, int] | None = None, wait: bool = True, timeout: float = 300) -> Record:
        """Replace the served entities and traffic split. The old config serves until the new one is
        up; a config that fails to deploy raises UpdateFailed and leaves the old one serving."""
        endpoint = self._c.request("PUT", f"{BASE}/{name}/config",
                                   json=_config(entities, model, version, served_name, traffic))
        return self.wait(name, timeout) if wait else endpoint

    def wait(self, name: str, timeout: float = 300) -> Record:
        """Poll until `config_update` is NOT_UPDATING; raise UpdateFailed on UPDATE_FAILED."""
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            endpoint = self.get(name)
            state = endpoint.get("state") or {}
            if state.get("config_update") == "UPDATE_FAILED":
                raise UpdateFailed(200, "UPDATE_FAILED", f"endpoint '{name}' could not deploy its new config: "
                                   f"{state.get('config_update_message') or 'no reason given'}")
            if state.get("config_update") != "IN_PROGRESS":
                return endpoint
            if time.monotonic() > deadline:
                raise TimeoutError(f"endpoint '{name}' is still updating after {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)

    def delete(self, name: str) -> None:
        self._c.request("DELETE", f"{BASE}/{name}")

    # ---- scoring -------------------------------------------------------------------------------
    def query(self, name: str, data: Any, served_model: str | None = None) -> Record:
        """Score `data`: a pandas DataFrame (sent as dataframe_split), a list of row dicts
        (dataframe_records), or a whole request body dict ({"inputs": ...}, {"instances": ...}, ...).
        Returns the response JSON (`predictions`) and `served_model_name`, the entity that answered."""
        path = f"/serving-endpoints/{name}" + (f"/served-models/{served_model}" if served_model else "") + \
            "/invocations"
        resp = self._c.request("POST", path, content=_body(data), raw=True)
        answer = resp.json() if resp.content else {}
        out = Record(answer if isinstance(answer, dict) else {"predictions": answer})
        out["served_model_name"] = resp.headers.get("served-model-name")
        return out

    # ---- operations ----------------------------------------------------------------------------
    def logs(self, name: str, served_model: str) -> str:
        """The tail of the served entity's worker log (needs CAN_MANAGE)."""
        return self._c.request("GET", f"{BASE}/{name}/served-models/{served_model}/logs").get("logs", "")

    def usage(self, name: str) -> Record:
        """Requests, errors, bytes and latency percentiles per served entity and per requester, counted
        by the server process that answers (since it started or the endpoint was created)."""
        return self._c.request("GET", f"{BASE}/{name}/usage")

    def put_ai_gateway(self, name: str, **config: Any) -> Record:
        """Replace the endpoint's AI gateway settings (`rate_limits`, `inference_table_config`,
        `usage_tracking_config`): anything not passed is switched off, as in Databricks' PUT."""
        return self._c.request("PUT", f"{BASE}/{name}/ai-gateway", json=config)

    def permissions(self, name: str) -> Record:
        return self._c.request("GET", f"/api/2.0/permissions/serving-endpoints/{self.get(name).id}")

    def grant(self, name: str, principal: str, level: str) -> Record:
        """Give `principal` (user, group or service principal) CAN_VIEW, CAN_QUERY or CAN_MANAGE,
        replacing the level it had; other principals' levels stay."""
        level = level.upper()
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, got '{level}'")
        # The server resolves the name as a user, service principal or group, so one key serves all.
        return self._c.request("PATCH", f"/api/2.0/permissions/serving-endpoints/{self.get(name).id}", json={
            "access_control_list": [{"user_name": principal, "permission_level": level}]})


def entity(model: str, version: int | str, name: str | None = None, **extra: Any) -> dict:
    """One served_entities item: `model` is catalog.schema.model; `extra` adds workload_size,
    max_batch_size, environment_vars, ..."""
    out = {"entity_name": model, "entity_version": str(version), **extra}
    if name:
        out["name"] = name
    return out


def _config(entities: list[dict] | None, model: str | None, version: int | str | None, served_name: str | None,
            traffic: Mapping[str, int] | None) -> dict:
    chosen = list(entities or [])
    if model is not None:
        if version is None:
            raise ValueError("a model needs a version")
        chosen.insert(0, entity(model, version, served_name))
    if not chosen:
        raise ValueError("name at least one served entity: entities=[...] or model= and version=")
    config: dict[str, Any] = {"served_entities": chosen}
    if traffic:
        routes = traffic.get("routes") if isinstance(traffic.get("routes"), list) else [
            {"served_model_name": n, "traffic_percentage": int(p)} for n, p in traffic.items()]
        config["traffic_config"] = {"routes": routes}
    return config


def _table_config(table: str | dict) -> dict:
    if isinstance(table, dict):
        return {"enabled": True, **table}
    parts = table.split(".")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"inference_table is 'catalog.schema', got '{table}'")
    return {"enabled": True, "catalog_name": parts[0], "schema_name": parts[1]}


def _body(data: Any) -> bytes:
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        split = data.to_dict(orient="split")
        data = {"dataframe_split": {"columns": [str(c) for c in split["columns"]], "data": split["data"]}}
    elif isinstance(data, list):
        data = {"dataframe_records": data}
    elif not isinstance(data, Mapping):
        raise ValueError("query data must be a pandas DataFrame, a list of row dicts or a request body dict")
    # orjson writes numpy and pandas values as they are, and NaN as null (JSON has no NaN).
    return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=_default)


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars orjson does not take natively (e.g. float16)
        return value.item()
    raise TypeError(f"cannot send a {type(value).__name__} to a model")


__all__ = ["Serving", "UpdateFailed", "entity"]
