"""Endpoint configuration in the Databricks wire shape: parsed, validated and normalized.

Pure functions: nothing here reads the database. The service checks what needs the catalog
(model versions exist, EXECUTE, secrets readable, CREATE_TABLE for inference tables).

Choices where Databricks leaves room:
- A served entity's default name is `<model name>-<version>` (the last part of the three-level name).
- Without `traffic_config`, traffic is split evenly (the remainder goes to the first entities).
- `workload_size` maps to model worker processes: Small 1, Medium 2, Large 4.
- Lakeforge extensions per served entity: `max_batch_size` (default 64) and `max_batch_wait_ms`
  (default 0: a lone request never waits; requests that queue while the model is busy are merged).
"""

from __future__ import annotations

import re
from typing import Any

from lakeforge import names
from lakeforge.errors import InvalidParameter
from lakeforge.serving import limits

ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
WORKLOAD_SIZES = {"Small": 1, "Medium": 2, "Large": 4}
WORKLOAD_TYPES = {"CPU"}
MAX_ENTITIES = 15
MAX_BATCH_SIZE = 1024
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def check_endpoint_name(name: Any) -> str:
    if not isinstance(name, str) or not ENDPOINT_NAME.match(name):
        raise InvalidParameter(f"Invalid endpoint name '{name}': 1-63 letters, digits, '-' or '_', "
                               "starting with a letter or digit")
    return name


def _bool(value: Any, what: str, default: bool = False) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidParameter(f"{what} must be true or false")
    return value


def _int(value: Any, what: str, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParameter(f"{what} must be an integer from {low} to {high}")
    return value


def parse_version(value: Any, what: str) -> str:
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not text.isdigit() or int(text) < 1:
        raise InvalidParameter(f"{what} must be a model version number, got '{value}'")
    return str(int(text))


def served_entity(raw: Any, i: int) -> dict:
    what = f"served_entities[{i}]"
    if not isinstance(raw, dict):
        raise InvalidParameter(f"{what} must be an object")
    if raw.get("external_model") or raw.get("foundation_model"):
        raise InvalidParameter(f"{what}: external and foundation models are served by the AI gateway; "
                               "a serving endpoint serves registered models (entity_name)")
    # The legacy `served_models` shape names the model `model_name` / `model_version`.
    entity_name = raw.get("entity_name", raw.get("model_name"))
    full = names.parse(entity_name, 3, f"{what}.entity_name")
    version = parse_version(raw.get("entity_version", raw.get("model_version")), f"{what}.entity_version")
    name = raw.get("name") or f"{full.name}-{version}"
    if not isinstance(name, str) or not ENDPOINT_NAME.match(name):
        raise InvalidParameter(f"Invalid {what}.name '{name}': 1-63 letters, digits, '-' or '_'")
    size = raw.get("workload_size") or "Small"
    if size not in WORKLOAD_SIZES:
        raise InvalidParameter(f"{what}.workload_size must be one of {', '.join(WORKLOAD_SIZES)}")
    wtype = raw.get("workload_type") or "CPU"
    if wtype not in WORKLOAD_TYPES:
        raise InvalidParameter(f"{what}.workload_type '{wtype}' is not available here; use CPU")
    env = raw.get("environment_vars") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise InvalidParameter(f"{what}.environment_vars must be an object of string values")
    for key in env:
        if not _ENV_NAME.match(key) or key.startswith(("LAKEFORGE_", "PYTHON")):
            raise InvalidParameter(f"{what}.environment_vars: invalid or reserved variable name '{key}'")
    out = {"name": name, "entity_name": str(full), "entity_version": version, "workload_size": size,
           "workload_type": wtype,
           "scale_to_zero_enabled": _bool(raw.get("scale_to_zero_enabled"), f"{what}.scale_to_zero_enabled"),
           "max_batch_size": _int(raw.get("max_batch_size"), f"{what}.max_batch_size", 1, MAX_BATCH_SIZE, 64),
           "max_batch_wait_ms": _int(raw.get("max_batch_wait_ms"), f"{what}.max_batch_wait_ms", 0, 1000, 0)}
    if env:
        out["environment_vars"] = dict(env)
    if raw.get("environment") not in (None, "server", "virtualenv"):
        raise InvalidParameter(f"{what}.environment must be 'server' (the server's own Python) or 'virtualenv' "
                               "(built with uv from the model's requirements)")
    out["environment"] = raw.get("environment") or "server"
    return out


def traffic(raw: Any, entities: list[dict]) -> dict:
    names_ = [e["name"] for e in entities]
    if raw is not None and not isinstance(raw, dict):
        raise InvalidParameter("traffic_config must be an object with routes")
    if raw is None or not raw.get("routes"):
        share, extra = divmod(100, len(entities))
        return {"routes": [{"served_model_name": n, "served_entity_name": n,
                            "traffic_percentage": share + (1 if i < extra else 0)} for i, n in enumerate(names_)]}
    if not isinstance(raw, dict) or not isinstance(raw.get("routes"), list):
        raise InvalidParameter("traffic_config.routes must be a list")
    routes, seen = [], set()
    for i, r in enumerate(raw["routes"]):
        if not isinstance(r, dict):
            raise InvalidParameter(f"traffic_config.routes[{i}] must be an object")
        target = r.get("served_entity_name") or r.get("served_model_name")
        if target not in names_:
            raise InvalidParameter(f"traffic_config.routes[{i}] names '{target}', which is not a served entity "
                                   f"of this config ({', '.join(names_)})")
        if target in seen:
            raise InvalidParameter(f"traffic_config.routes names '{target}' twice")
        seen.add(target)
        pct = _int(r.get("traffic_percentage"), f"traffic_config.routes[{i}].traffic_percentage", 0, 100, -1)
        if pct < 0:
            raise InvalidParameter(f"traffic_config.routes[{i}].traffic_percentage is required")
        routes.append({"served_model_name": target, "served_entity_name": target, "traffic_percentage": pct})
    total = sum(r["traffic_percentage"] for r in routes)
    if total != 100:
        raise InvalidParameter(f"traffic_config percentages must sum to 100, got {total}")
    return {"routes": routes}


def endpoint_config(raw: Any) -> dict:
    """A validated config: served_entities, traffic_config, and the legacy auto_capture_config."""
    if not isinstance(raw, dict):
        raise InvalidParameter("config must be an object")
    entities_raw = raw.get("served_entities") or raw.get("served_models")
    if not isinstance(entities_raw, list) or not entities_raw:
        raise InvalidParameter("config.served_entities must name at least one model version")
    if len(entities_raw) > MAX_ENTITIES:
        raise InvalidParameter(f"config.served_entities: at most {MAX_ENTITIES} served entities")
    entities = [served_entity(e, i) for i, e in enumerate(entities_raw)]
    dupes = {e["name"] for e in entities if [x["name"] for x in entities].count(e["name"]) > 1}
    if dupes:
        raise InvalidParameter(f"Served entity names must be unique; repeated: {', '.join(sorted(dupes))}")
    out = {"served_entities": entities, "traffic_config": traffic(raw.get("traffic_config"), entities)}
    capture = raw.get("auto_capture_config")
    if capture:
        out["auto_capture_config"] = table_config(capture, "auto_capture_config")
    return out


def table_config(raw: Any, what: str) -> dict:
    if not isinstance(raw, dict):
        raise InvalidParameter(f"{what} must be an object")
    enabled = _bool(raw.get("enabled"), f"{what}.enabled", default=True)
    out = {"enabled": enabled}
    for key in ("catalog_name", "schema_name", "table_name_prefix"):
        value = raw.get(key)
        if value is not None:
            names.check_name(value, f"{what}.{key}")
            out[key] = value
    if enabled and not (out.get("catalog_name") and out.get("schema_name")):
        raise InvalidParameter(f"{what} needs catalog_name and schema_name when enabled")
    return out


def ai_gateway(raw: Any) -> dict:
    """Rate limits, inference table and usage tracking. Guardrails and fallbacks belong to chat and
    completions traffic (the AI gateway), not to custom models, and are refused rather than ignored."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidParameter("ai_gateway must be an object")
    out: dict[str, Any] = {}
    if raw.get("rate_limits"):
        if not isinstance(raw["rate_limits"], list):
            raise InvalidParameter("ai_gateway.rate_limits must be a list")
        limits.parse_rules(raw["rate_limits"])  # raises naming the bad field
        out["rate_limits"] = [{k: v for k, v in r.items() if v is not None} for r in raw["rate_limits"]]
    if raw.get("inference_table_config"):
        out["inference_table_config"] = table_config(raw["inference_table_config"], "ai_gateway.inference_table_config")
    if raw.get("usage_tracking_config"):
        cfg = raw["usage_tracking_config"]
        if not isinstance(cfg, dict):
            raise InvalidParameter("ai_gateway.usage_tracking_config must be an object")
        out["usage_tracking_config"] = {"enabled": _bool(cfg.get("enabled"), "usage_tracking_config.enabled")}
    for unsupported in ("guardrails", "fallback_config"):
        value = raw.get(unsupported)
        if value and (not isinstance(value, dict) or any(v not in (None, False, [], {}) for v in value.values())):
            raise InvalidParameter(f"ai_gateway.{unsupported} applies to chat and completions models, not to "
                                   "registered models served by this endpoint")
    return out


def inference_table(config: dict | None, gateway: dict | None) -> dict | None:
    """The enabled inference table settings: ai_gateway.inference_table_config wins over the legacy
    auto_capture_config. None when logging is off."""
    for cfg in ((gateway or {}).get("inference_table_config"), (config or {}).get("auto_capture_config")):
        if cfg:
            return cfg if cfg.get("enabled") else None
    return None


def payload_table_name(cfg: dict, endpoint_name: str) -> str:
    prefix = cfg.get("table_name_prefix") or endpoint_name.replace("-", "_")
    return names.join(cfg["catalog_name"], cfg["schema_name"], f"{prefix}_payload")


def workers_of(entity: dict) -> int:
    return WORKLOAD_SIZES[entity["workload_size"]]
