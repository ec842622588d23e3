"""MLflow's registry REST API (`/api/2.0/mlflow/...` and the UI's `/ajax-api/2.0/mlflow/...`
twins), answered by the catalog, plus the routes that serve registered versions' files: as proxied
artifacts (`/api/2.0/mlflow-artifacts/artifacts/_lakeforge_registry/...`, what MLflow's client
loads) and for the web UI (`/model-versions/get-artifact?name=&version=&path=`).

GET requests carry their fields in the query string, others in a JSON body (MLflow's client
sends DELETE bodies too). Errors use MLflow's codes: RESOURCE_DOES_NOT_EXIST, RESOURCE_ALREADY_EXISTS,
INVALID_PARAMETER_VALUE, PERMISSION_DENIED, INVALID_STATE.
"""

from __future__ import annotations

import functools
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import Match

from lakeforge.errors import LakeforgeError
from lakeforge.models import artifacts
from lakeforge.models import schema as w
from lakeforge.server.http import call, caller, ok, parse, read_json

M = TypeVar("M", bound=BaseModel)
PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
_LISTS = {"order_by", "stages"}
# Catalog codes in MLflow's spelling (its client branches on RESOURCE_* codes); MLflow's server
# answers RESOURCE_ALREADY_EXISTS with 400.
_MLFLOW_CODES = {"NOT_FOUND": ("RESOURCE_DOES_NOT_EXIST", 404), "ALREADY_EXISTS": ("RESOURCE_ALREADY_EXISTS", 400),
                 "RESOURCE_ALREADY_EXISTS": ("RESOURCE_ALREADY_EXISTS", 400),
                 "FAILED_PRECONDITION": ("INVALID_STATE", 400)}

router = APIRouter()


def _svc(request: Request):
    return request.app.state.ctx.registry


async def _params(request: Request, model: type[M]) -> M:
    data: dict = {}
    for key, value in request.query_params.multi_items():
        data.setdefault(key, []).append(value)
    data = {k: (v if k in _LISTS else v[0]) for k, v in data.items()}
    if request.method != "GET":
        data.update(await read_json(request))
    return parse(model, data)


def _mlflow_errors(fn):
    @functools.wraps(fn)
    async def wrapped(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except LakeforgeError as e:
            mapped = _MLFLOW_CODES.get(e.error_code)
            if mapped:
                e.error_code, e.status = mapped
            raise
    return wrapped


def _route(method: str, path: str, name: str):
    """Register a handler at both prefixes under one audit name."""
    def register(fn):
        handler = _mlflow_errors(fn)
        for prefix in PREFIXES:
            router.add_api_route(prefix + path, handler, methods=[method], name=name)
        return fn
    return register


def _tags(tags: list[w.Tag]) -> dict[str, str]:
    return {t.key: t.value or "" for t in tags}


# ---- registered models ---------------------------------------------------------------------------
@_route("POST", "/registered-models/create", "registry.registered_models.create")
async def create_model(request: Request):
    r = await _params(request, w.CreateRegisteredModel)
    return ok({"registered_model": await call(_svc(request).create_model, caller(request), r.name, _tags(r.tags),
                                              r.description)})


@_route("GET", "/registered-models/get", "registry.registered_models.get")
async def get_model(request: Request):
    r = await _params(request, w.Name)
    return ok({"registered_model": await call(_svc(request).get_model, caller(request), r.name)})


@_route("POST", "/registered-models/rename", "registry.registered_models.rename")
async def rename_model(request: Request):
    r = await _params(request, w.RenameRegisteredModel)
    return ok({"registered_model": await call(_svc(request).rename_model, caller(request), r.name, r.new_name)})


@_route("PATCH", "/registered-models/update", "registry.registered_models.update")
async def update_model(request: Request):
    r = await _params(request, w.UpdateRegisteredModel)
    return ok({"registered_model": await call(_svc(request).update_model, caller(request), r.name,
                                              r.description)})


@_route("DELETE", "/registered-models/delete", "registry.registered_models.delete")
async def delete_model(request: Request):
    r = await _params(request, w.Name)
    await call(_svc(request).delete_model, caller(request), r.name)
    return ok()


@_route("GET", "/registered-models/search", "registry.registered_models.search")
async def search_models(request: Request):
    r = await _params(request, w.Search)
    return ok(await call(_svc(request).search_models, caller(request), r.filter, r.max_results, r.order_by,
                         r.page_token))


async def _latest(request: Request):
    r = await _params(request, w.GetLatestVersions)
    return ok(await call(_svc(request).latest_versions, caller(request), r.name, r.stages))


_route("GET", "/registered-models/get-latest-versions", "registry.registered_models.get_latest_versions")(_latest)
_route("POST", "/registered-models/get-latest-versions", "registry.registered_models.get_latest_versions")(_latest)


@_route("POST", "/registered-models/set-tag", "registry.registered_models.set_tag")
async def set_model_tag(request: Request):
    r = await _params(request, w.SetRegisteredModelTag)
    await call(_svc(request).set_model_tag, caller(request), r.name, r.key, r.value)
    return ok()


@_route("DELETE", "/registered-models/delete-tag", "registry.registered_models.delete_tag")
async def delete_model_tag(request: Request):
    r = await _params(request, w.DeleteRegisteredModelTag)
    await call(_svc(request).delete_model_tag, caller(request), r.name, r.key)
    return ok()


@_route("POST", "/registered-models/alias", "registry.registered_models.set_alias")
async def set_alias(request: Request):
    r = await _params(request, w.SetAlias)
    await call(_svc(request).set_alias, caller(request), r.name, r.alias, r.version)
    return ok()


@_route("DELETE", "/registered-models/alias", "registry.registered_models.delete_alias")
async def delete_alias(request: Request):
    r = await _params(request, w.Alias)
    await call(_svc(request).delete_alias, caller(request), r.name, r.alias)
    return ok()


@_route("GET", "/registered-models/alias", "registry.model_versions.get_by_alias")
async def get_by_alias(request: Request):
    r = await _params(request, w.Alias)
    return ok({"model_version": await call(_svc(request).version_by_alias, caller(request), r.name, r.alias)})


# ---- model versions ------------------------------------------------------------------------------
@_route("POST", "/model-versions/create", "registry.model_versions.create")
async def create_version(request: Request):
    r = await _params(request, w.CreateModelVersion)
    return ok({"model_version": await call(_svc(request).create_version, caller(request), r.name, r.source,
                                           r.run_id, _tags(r.tags), r.description, r.model_id)})


@_route("GET", "/model-versions/get", "registry.model_versions.get")
async def get_version(request: Request):
    r = await _params(request, w.Version)
    return ok({"model_version": await call(_svc(request).get_version, caller(request), r.name, r.version)})


@_route("PATCH", "/model-versions/update", "registry.model_versions.update")
async def update_version(request: Request):
    r = await _params(request, w.UpdateModelVersion)
    return ok({"model_version": await call(_svc(request).update_version, caller(request), r.name, r.version,
                                           r.description)})


@_route("DELETE", "/model-versions/delete", "registry.model_versions.delete")
async def delete_version(request: Request):
    r = await _params(request, w.Version)
    await call(_svc(request).delete_version, caller(request), r.name, r.version)
    return ok()


@_route("GET", "/model-versions/search", "registry.model_versions.search")
async def search_versions(request: Request):
    r = await _params(request, w.Search)
    return ok(await call(_svc(request).search_versions, caller(request), r.filter, r.max_results, r.order_by,
                         r.page_token))


@_route("GET", "/model-versions/get-download-uri", "registry.model_versions.get_download_uri")
async def download_uri(request: Request):
    r = await _params(request, w.Version)
    return ok(await call(_svc(request).download_uri, caller(request), r.name, r.version))


@_route("POST", "/model-versions/set-tag", "registry.model_versions.set_tag")
async def set_version_tag(request: Request):
    r = await _params(request, w.SetModelVersionTag)
    await call(_svc(request).set_version_tag, caller(request), r.name, r.version, r.key, r.value)
    return ok()


@_route("DELETE", "/model-versions/delete-tag", "registry.model_versions.delete_tag")
async def delete_version_tag(request: Request):
    r = await _params(request, w.DeleteModelVersionTag)
    await call(_svc(request).delete_version_tag, caller(request), r.name, r.version, r.key)
    return ok()


# ---- registered versions' files, as proxied MLflow artifacts -------------------------------------
class _RegistryListRoute(APIRoute):
    """Matches the artifact list endpoint only for `?path=_lakeforge_registry/...`; every other
    listing falls through to MLflow's own artifact server."""

    def matches(self, scope):
        match, child = super().matches(scope)
        if match is not Match.NONE:
            from urllib.parse import parse_qs

            path = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("path") or [""])[0]
            if path.strip("/").split("/", 1)[0] != artifacts.PREFIX:
                return Match.NONE, {}
        return match, child


@_mlflow_errors
async def list_files(request: Request, path: str = ""):
    return ok(await call(_svc(request).list_files, caller(request), path))


router.add_api_route(ARTIFACTS, list_files, methods=["GET"], name="registry.artifacts.list",
                     route_class_override=_RegistryListRoute)


@router.get("/model-versions/get-artifact", name="registry.model_versions.get_artifact")
@_mlflow_errors
async def version_file(request: Request, name: str, version: str, path: str):
    found = await call(_svc(request).version_file, caller(request), name, version, path)
    return FileResponse(found, media_type="application/octet-stream")


@router.get(f"{ARTIFACTS}/{artifacts.PREFIX}/{{rest:path}}", name="registry.artifacts.download")
@_mlflow_errors
async def download_file(request: Request, rest: str):
    path = await call(_svc(request).file, caller(request), f"{artifacts.PREFIX}/{rest}")
    return FileResponse(path, media_type="application/octet-stream")
