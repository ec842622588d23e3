"""Unity Catalog REST: registered models, model versions, aliases and model version credentials.

Beyond the spec (new endpoint, no changed meaning):
- `PUT|GET|DELETE /models/{full_name}/aliases/{alias}`: the Databricks shape MLflow's proto defines.
- `GET /models/{full_name}/versions/{version}/verify`: re-hashes a READY version's files against the
  sha256 manifest recorded at finalize; 200 `{verified: true, file_count, size_bytes}`, or 400
  FAILED_PRECONDITION naming each modified, missing or unexpected file.

MLflow repeats path parameters as query parameters and in PATCH/DELETE bodies; they are ignored.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from lakeforge.server.http import body, call, caller, ok

PREFIX = "/api/2.1/unity-catalog"
router = APIRouter(prefix=PREFIX)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateRegisteredModel(_Wire):
    name: str
    catalog_name: str
    schema_name: str
    comment: str | None = None


class UpdateRegisteredModel(_Wire):
    new_name: str | None = None
    comment: str | None = None
    owner: str | None = None


class CreateModelVersion(_Wire):
    model_name: str
    catalog_name: str
    schema_name: str
    source: str
    run_id: str | None = None
    comment: str | None = None


class UpdateModelVersion(_Wire):
    comment: str | None = None


class SetAlias(_Wire):
    version_num: Any = None


class ModelVersionCredential(_Wire):
    catalog_name: str
    schema_name: str
    model_name: str
    version: Any
    operation: str | None = None


def _models(request: Request):
    return request.app.state.ctx.models


def _versions(request: Request):
    return request.app.state.ctx.model_versions


# ---- registered models ---------------------------------------------------------------------------
@router.post("/models", name="models.create")
async def create_model(request: Request):
    req = await body(request, CreateRegisteredModel)
    return ok(await call(_models(request).create, caller(request), req.catalog_name, req.schema_name, req.name,
                         req.comment))


@router.get("/models", name="models.list")
def list_models(request: Request, catalog_name: str | None = None, schema_name: str | None = None,
                max_results: int | None = None, page_token: str | None = None, include_aliases: bool = False):
    return ok(_models(request).list(caller(request), catalog_name or None, schema_name or None, max_results,
                                    page_token, include_aliases))


@router.get("/models/{full_name}", name="models.get")
def get_model(request: Request, full_name: str, include_aliases: bool = False):
    return ok(_models(request).get(caller(request), full_name, include_aliases))


@router.patch("/models/{full_name}", name="models.update")
async def update_model(request: Request, full_name: str):
    req = await body(request, UpdateRegisteredModel)
    return ok(await call(_models(request).update, caller(request), full_name, req.new_name, req.comment, req.owner))


@router.delete("/models/{full_name}", name="models.delete")
async def delete_model(request: Request, full_name: str, force: bool = False):
    await call(_models(request).delete, caller(request), full_name, force)
    return ok()


# ---- aliases -------------------------------------------------------------------------------------
@router.put("/models/{full_name}/aliases/{alias}", name="models.set_alias")
async def set_alias(request: Request, full_name: str, alias: str):
    req = await body(request, SetAlias)
    return ok(await call(_models(request).set_alias, caller(request), full_name, alias, req.version_num))


@router.delete("/models/{full_name}/aliases/{alias}", name="models.delete_alias")
async def delete_alias(request: Request, full_name: str, alias: str):
    await call(_models(request).delete_alias, caller(request), full_name, alias)
    return ok()


@router.get("/models/{full_name}/aliases/{alias}", name="model_versions.get_by_alias")
def get_by_alias(request: Request, full_name: str, alias: str, include_aliases: bool = False):
    return ok(_versions(request).get_by_alias(caller(request), full_name, alias, include_aliases))


# ---- model versions ------------------------------------------------------------------------------
@router.post("/models/versions", name="model_versions.create")
async def create_version(request: Request):
    req = await body(request, CreateModelVersion)
    return ok(await call(_versions(request).create, caller(request), req.catalog_name, req.schema_name,
                         req.model_name, req.source, req.run_id, req.comment))


@router.get("/models/{full_name}/versions", name="model_versions.list")
def list_versions(request: Request, full_name: str, max_results: int | None = None, page_token: str | None = None,
                  include_aliases: bool = False):
    return ok(_versions(request).list(caller(request), full_name, max_results, page_token, include_aliases))


@router.get("/models/{full_name}/versions/{version}", name="model_versions.get")
def get_version(request: Request, full_name: str, version: str, include_aliases: bool = False):
    return ok(_versions(request).get(caller(request), full_name, version, include_aliases))


@router.patch("/models/{full_name}/versions/{version}", name="model_versions.update")
async def update_version(request: Request, full_name: str, version: str):
    req = await body(request, UpdateModelVersion)
    return ok(await call(_versions(request).update, caller(request), full_name, version, req.comment))


@router.delete("/models/{full_name}/versions/{version}", name="model_versions.delete")
async def delete_version(request: Request, full_name: str, version: str):
    await call(_versions(request).delete, caller(request), full_name, version)
    return ok()


@router.patch("/models/{full_name}/versions/{version}/finalize", name="model_versions.finalize")
async def finalize_version(request: Request, full_name: str, version: str):
    return ok(await call(_versions(request).finalize, caller(request), full_name, version))


@router.get("/models/{full_name}/versions/{version}/verify", name="model_versions.verify")
async def verify_version(request: Request, full_name: str, version: str):
    return ok(await call(_versions(request).verify, caller(request), full_name, version))


# ---- credentials ---------------------------------------------------------------------------------
@router.post("/temporary-model-version-credentials", name="model_versions.credentials")
async def model_version_credentials(request: Request):
    req = await body(request, ModelVersionCredential)
    return ok(await call(_versions(request).credentials, caller(request), req.catalog_name, req.schema_name,
                         req.model_name, req.version, req.operation))
