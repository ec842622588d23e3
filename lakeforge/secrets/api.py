"""Databricks Secrets REST API: `/api/2.0/secrets/...` (scopes, values, ACLs)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from lakeforge.server.http import body, call, caller, ok

router = APIRouter(prefix="/api/2.0/secrets")


class CreateScope(BaseModel):
    scope: str
    initial_manage_principal: str | None = None
    scope_backend_type: str | None = None


class Scope(BaseModel):
    scope: str


class PutSecret(BaseModel):
    scope: str
    key: str
    string_value: str | None = None
    bytes_value: str | None = None


class SecretRef(BaseModel):
    scope: str
    key: str


class PutAcl(BaseModel):
    scope: str
    principal: str
    permission: str


class AclRef(BaseModel):
    scope: str
    principal: str


def _svc(request: Request):
    return request.app.state.ctx.secrets


# ---- scopes ------------------------------------------------------------------------------------
@router.post("/scopes/create", name="secrets.scopes.create")
async def create_scope(request: Request):
    req = await body(request, CreateScope)
    return ok(await call(_svc(request).create_scope, caller(request), req.scope, req.initial_manage_principal,
                         req.scope_backend_type))


@router.get("/scopes/list", name="secrets.scopes.list")
def list_scopes(request: Request):
    return ok(_svc(request).list_scopes(caller(request)))


@router.post("/scopes/delete", name="secrets.scopes.delete")
async def delete_scope(request: Request):
    req = await body(request, Scope)
    return ok(await call(_svc(request).delete_scope, caller(request), req.scope))


# ---- secrets -----------------------------------------------------------------------------------
@router.post("/put", name="secrets.put")
async def put_secret(request: Request):
    req = await body(request, PutSecret)
    return ok(await call(_svc(request).put_secret, caller(request), req.scope, req.key, req.string_value,
                         req.bytes_value))


@router.get("/get", name="secrets.get")
def get_secret(request: Request, scope: str, key: str):
    return ok(_svc(request).get_secret(caller(request), scope, key))


@router.get("/list", name="secrets.list")
def list_secrets(request: Request, scope: str):
    return ok(_svc(request).list_secrets(caller(request), scope))


@router.post("/delete", name="secrets.delete")
async def delete_secret(request: Request):
    req = await body(request, SecretRef)
    return ok(await call(_svc(request).delete_secret, caller(request), req.scope, req.key))


# ---- ACLs --------------------------------------------------------------------------------------
@router.post("/acls/put", name="secrets.acls.put")
async def put_acl(request: Request):
    req = await body(request, PutAcl)
    return ok(await call(_svc(request).put_acl, caller(request), req.scope, req.principal, req.permission))


@router.get("/acls/get", name="secrets.acls.get")
def get_acl(request: Request, scope: str, principal: str):
    return ok(_svc(request).get_acl(caller(request), scope, principal))


@router.get("/acls/list", name="secrets.acls.list")
def list_acls(request: Request, scope: str):
    return ok(_svc(request).list_acls(caller(request), scope))


@router.post("/acls/delete", name="secrets.acls.delete")
async def delete_acl(request: Request):
    req = await body(request, AclRef)
    return ok(await call(_svc(request).delete_acl, caller(request), req.scope, req.principal))
