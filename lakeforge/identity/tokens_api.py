"""Token REST: /api/2.0/token (your own tokens) and /api/2.0/token-management (admins)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from lakeforge.identity import schema as wire
from lakeforge.identity.token_service import TokenService
from lakeforge.server.http import body, call, caller, ok

router = APIRouter()


def _svc(request: Request) -> TokenService:
    return request.app.state.ctx.token_service


@router.post("/api/2.0/token/create", name="tokens.create")
async def create_token(request: Request):
    req = await body(request, wire.CreateToken)
    return ok(await call(_svc(request).create, caller(request), req.comment, req.lifetime_seconds))


@router.get("/api/2.0/token/list", name="tokens.list")
def list_tokens(request: Request):
    return ok(_svc(request).list_own(caller(request)))


@router.post("/api/2.0/token/delete", name="tokens.delete")
async def delete_token(request: Request):
    req = await body(request, wire.RevokeToken)
    await call(_svc(request).revoke_own, caller(request), req.token_id)
    return ok()


@router.post("/api/2.0/token-management/on-behalf-of/tokens", name="token_management.create_obo")
async def create_obo_token(request: Request):
    req = await body(request, wire.CreateOboToken)
    return ok(await call(_svc(request).create_on_behalf_of, caller(request), req.application_id, req.comment,
                         req.lifetime_seconds))


@router.get("/api/2.0/token-management/tokens", name="token_management.list")
def list_all_tokens(request: Request, created_by_id: str | None = None, created_by_username: str | None = None):
    return ok(_svc(request).list_all(caller(request), created_by_id, created_by_username))


@router.get("/api/2.0/token-management/tokens/{token_id}", name="token_management.get")
def get_token(request: Request, token_id: str):
    return ok(_svc(request).get(caller(request), token_id))


@router.delete("/api/2.0/token-management/tokens/{token_id}", name="token_management.delete")
async def delete_any_token(request: Request, token_id: str):
    await call(_svc(request).revoke, caller(request), token_id)
    return ok()
