"""Lakeforge extension: unpacked inference logs (see monitoring/inference.py).

POST {PREFIX}                  {endpoint_name | payload_table, target_table, labels_table?,
                                labels_request_id_col?, labels_label_col?}  -> spec, state and the first sync
POST {PREFIX}/sync             {target_table}                               -> counts of the sync
GET  {PREFIX}/{target_table}                                                -> spec and state
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from lakeforge.monitoring.inference import InferenceLogService
from lakeforge.server.http import call, caller, ok, read_json

PREFIX = "/api/2.0/lakeforge/inference-logs"
router = APIRouter(prefix=PREFIX)


def _svc(request: Request) -> InferenceLogService:
    return InferenceLogService.of(request.app.state.ctx)


@router.post("", name="inferenceLogs.register")
async def register(request: Request):
    return ok(await call(_svc(request).register, caller(request), await read_json(request)))


@router.post("/sync", name="inferenceLogs.sync")
async def sync(request: Request):
    body = await read_json(request)
    return ok(await call(_svc(request).sync, caller(request), body.get("target_table")))


@router.get("/{target_table}", name="inferenceLogs.get")
async def get(request: Request, target_table: str):
    return ok(await call(_svc(request).get, caller(request), target_table))
