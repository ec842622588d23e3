"""Audit log REST: GET /api/2.0/lakeforge/audit."""

from __future__ import annotations

from fastapi import APIRouter, Request

from lakeforge.server.http import call, caller, ok

router = APIRouter(prefix="/api/2.0/lakeforge")


@router.get("/audit", name="audit.search")
async def search(request: Request, principal: str | None = None, service: str | None = None,
                 action: str | None = None, securable: str | None = None, request_id: str | None = None,
                 status_code: int | None = None, since_ms: int | None = None, until_ms: int | None = None,
                 limit: int = 100):
    queries = request.app.state.ctx.audit_queries
    return ok(await call(queries.search, caller(request), principal=principal, service=service, action=action,
                         securable=securable, request_id=request_id, status_code=status_code, since_ms=since_ms,
                         until_ms=until_ms, limit=limit))
