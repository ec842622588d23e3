"""Tracking's HTTP surface: the experiment permissions API (Databricks shape), the web UI's
sign-in page, and the catch-all mount of MLflow's tracking server."""

from __future__ import annotations

import urllib.parse

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from lakeforge.errors import LakeforgeError
from lakeforge.server.http import call, caller, ok, read_json
from lakeforge.server.middleware import TOKEN_COOKIE
from lakeforge.tracking import login
from lakeforge.tracking.gate import TrackingGate
from lakeforge.tracking.permissions import LADDER

router = APIRouter()
PERMISSIONS = "/api/2.0/permissions/experiments/{experiment_id}"


def _svc(request: Request):
    return request.app.state.ctx.tracking


# ---- experiment permissions --------------------------------------------------------------------
@router.get(PERMISSIONS, name="tracking.permissions.get")
async def get_permissions(request: Request, experiment_id: str):
    return ok(await call(_svc(request).get_permissions, caller(request), experiment_id))


@router.put(PERMISSIONS, name="tracking.permissions.set")
async def set_permissions(request: Request, experiment_id: str):
    acl = (await read_json(request)).get("access_control_list") or []
    return ok(await call(_svc(request).change_permissions, caller(request), experiment_id, acl, True))


@router.patch(PERMISSIONS, name="tracking.permissions.update")
async def update_permissions(request: Request, experiment_id: str):
    acl = (await read_json(request)).get("access_control_list") or []
    return ok(await call(_svc(request).change_permissions, caller(request), experiment_id, acl, False))


@router.get(PERMISSIONS + "/permissionLevels", name="tracking.permissions.levels")
def permission_levels(request: Request, experiment_id: str):
    return ok({"permission_levels": [{"permission_level": p.value} for p in LADDER]})


# ---- the web UI's sign-in ----------------------------------------------------------------------
@router.get("/login", name="tracking.login.page", include_in_schema=False)
def login_page():
    return HTMLResponse(login.page())


@router.post("/login", name="tracking.login", include_in_schema=False)
async def login_submit(request: Request):
    form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    try:
        await call(request.app.state.ctx.identity.authenticate, token)
    except LakeforgeError as e:
        return HTMLResponse(login.page(e.message), status_code=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout", name="tracking.logout", include_in_schema=False)
def logout():
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


def mount(api: FastAPI) -> None:
    """Register tracking on the app. The MLflow mount is a catch-all: call this after every other
    router is included."""
    api.include_router(router)
    api.mount("/", TrackingGate(api.state.ctx.tracking, api.router.routes), name="mlflow")
