"""Serving endpoints REST API (Databricks shape): `/api/2.0/serving-endpoints/...`, the endpoint
permissions API, usage, and Prometheus metrics at `/metrics`. The scoring path itself is
serving/invocations.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lakeforge.catalog.privileges import P
from lakeforge.serving import metrics
from lakeforge.server.http import call, caller, ok, read_json

router = APIRouter()
BASE = "/api/2.0/serving-endpoints"
PERMISSIONS = "/api/2.0/permissions/serving-endpoints/{endpoint_id}"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def _svc(request: Request):
    return request.app.state.ctx.serving


@router.post(BASE, name="serving.create")
async def create(request: Request):
    return ok(await call(_svc(request).create, caller(request), await read_json(request)))


@router.get(BASE, name="serving.list")
async def list_endpoints(request: Request):
    return ok(await call(_svc(request).list, caller(request)))


@router.get(BASE + "/{name}", name="serving.get")
async def get(request: Request, name: str):
    return ok(await call(_svc(request).get, caller(request), name))


@router.delete(BASE + "/{name}", name="serving.delete")
async def delete(request: Request, name: str):
    await call(_svc(request).delete, caller(request), name)
    return ok({})


@router.put(BASE + "/{name}/config", name="serving.updateConfig")
async def update_config(request: Request, name: str):
    return ok(await call(_svc(request).update_config, caller(request), name, await read_json(request)))


@router.put(BASE + "/{name}/ai-gateway", name="serving.putAiGateway")
async def put_ai_gateway(request: Request, name: str):
    return ok(await call(_svc(request).put_ai_gateway, caller(request), name, await read_json(request)))


@router.put(BASE + "/{name}/rate-limits", name="serving.putRateLimits")
async def put_rate_limits(request: Request, name: str):
    return ok(await call(_svc(request).put_rate_limits, caller(request), name, await read_json(request)))


@router.patch(BASE + "/{name}/tags", name="serving.patchTags")
async def patch_tags(request: Request, name: str):
    return ok(await call(_svc(request).patch_tags, caller(request), name, await read_json(request)))


@router.get(BASE + "/{name}/served-models/{served}/logs", name="serving.logs")
async def logs(request: Request, name: str, served: str):
    return ok(await call(_svc(request).logs, caller(request), name, served))


@router.get(BASE + "/{name}/served-models/{served}/build-logs", name="serving.buildLogs")
async def build_logs(request: Request, name: str, served: str):
    await call(_svc(request).logs, caller(request), name, served)  # same access and existence checks
    return ok({"logs": "The model runs in the server's Python environment or a cached uv virtualenv; "
                       "environment builds are logged in the served model's logs."})


@router.get(BASE + "/{name}/usage", name="serving.usage")
async def usage(request: Request, name: str):
    return ok(await call(_svc(request).usage_of, caller(request), name))


@router.get(BASE + "/{name}/metrics", name="serving.exportMetrics")
async def export_metrics(request: Request, name: str):
    svc = _svc(request)
    await call(svc.get, caller(request), name)  # CAN_VIEW
    return Response(metrics.render(svc.usage, endpoints={name}), media_type=PROMETHEUS)


@router.get("/metrics", name="serving.metrics")
async def prometheus(request: Request):
    """Every endpoint the caller may view (an admin's token sees all)."""
    svc = _svc(request)
    visible = {e["name"] for e in (await call(svc.list, caller(request)))["endpoints"]}
    return Response(metrics.render(svc.usage, endpoints=visible, extra=svc.readiness(visible)),
                    media_type=PROMETHEUS)


# ---- permissions -------------------------------------------------------------------------------
@router.get(PERMISSIONS, name="serving.permissions.get")
async def get_permissions(request: Request, endpoint_id: str):
    return ok(await call(_svc(request).get_permissions, caller(request), endpoint_id))


@router.put(PERMISSIONS, name="serving.permissions.set")
async def set_permissions(request: Request, endpoint_id: str):
    acl = (await read_json(request)).get("access_control_list") or []
    return ok(await call(_svc(request).change_permissions, caller(request), endpoint_id, acl, True))


@router.patch(PERMISSIONS, name="serving.permissions.update")
async def update_permissions(request: Request, endpoint_id: str):
    acl = (await read_json(request)).get("access_control_list") or []
    return ok(await call(_svc(request).change_permissions, caller(request), endpoint_id, acl, False))


@router.get(PERMISSIONS + "/permissionLevels", name="serving.permissions.levels")
async def permission_levels(request: Request, endpoint_id: str):
    return ok({"permission_levels": [{"permission_level": p.value} for p in (P.CAN_VIEW, P.CAN_QUERY, P.CAN_MANAGE)]})
