"""SCIM 2.0 REST under /api/2.0/preview/scim/v2: Me, Users, Groups, ServicePrincipals."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from lakeforge.errors import InvalidParameter
from lakeforge.identity import scim
from lakeforge.identity.directory import Directory
from lakeforge.identity.store import GROUP, SERVICE_PRINCIPAL, USER
from lakeforge.server.http import JSON, call, caller, ok, read_json

PREFIX = "/api/2.0/preview/scim/v2"
# databricks-sdk's get_workspace_id() reads this header of /Me; the same id as /.well-known/databricks-config.
ORG_ID = "1"

router = APIRouter(prefix=PREFIX)


def _svc(request: Request) -> Directory:
    return request.app.state.ctx.directory


@router.get("/Me", name="scim.me")
def me(request: Request, attributes: str | None = None,
       excluded: str | None = Query(None, alias="excludedAttributes")):
    resource = _svc(request).me(caller(request))
    return ok(scim.project(resource, attributes, excluded), headers={"X-Databricks-Org-Id": ORG_ID})


def _descending(sort_order: str | None) -> bool:
    if sort_order is None or sort_order.lower() in ("", "ascending"):
        return False
    if sort_order.lower() == "descending":
        return True
    raise InvalidParameter(f"sortOrder must be 'ascending' or 'descending', not '{sort_order}'")


def _resource_routes(kind: str, path: str, label: str) -> None:
    """The same five routes for each resource type."""

    @router.post(f"/{path}", name=f"scim.{label}.create")
    async def create(request: Request):
        attrs = scim.parse_resource(kind, await read_json(request), replace=True)
        # SCIM provisioning clients (RFC 7644 §3.3) expect 201 Created.
        return JSON(await call(_svc(request).create, caller(request), kind, attrs), status_code=201)

    @router.get(f"/{path}", name=f"scim.{label}.list")
    def list_(request: Request, filter: str | None = None, attributes: str | None = None,
              excluded: str | None = Query(None, alias="excludedAttributes"),
              start_index: int | None = Query(None, alias="startIndex"), count: int | None = None,
              sort_by: str | None = Query(None, alias="sortBy"),
              sort_order: str | None = Query(None, alias="sortOrder")):
        page = _svc(request).list(caller(request), kind, filter=filter, sort_by=sort_by,
                                  descending=_descending(sort_order), start_index=start_index, count=count)
        page["Resources"] = [scim.project(r, attributes, excluded) for r in page["Resources"]]
        return ok(page)

    @router.get(f"/{path}/{{principal_id}}", name=f"scim.{label}.get")
    def get(request: Request, principal_id: str, attributes: str | None = None,
            excluded: str | None = Query(None, alias="excludedAttributes")):
        return ok(scim.project(_svc(request).get(caller(request), kind, principal_id), attributes, excluded))

    @router.put(f"/{path}/{{principal_id}}", name=f"scim.{label}.update")
    async def replace(request: Request, principal_id: str):
        attrs = scim.parse_resource(kind, await read_json(request), replace=True)
        return ok(await call(_svc(request).replace, caller(request), kind, principal_id, attrs))

    @router.patch(f"/{path}/{{principal_id}}", name=f"scim.{label}.patch")
    async def patch(request: Request, principal_id: str):
        operations = scim.parse_patch(await read_json(request))
        return ok(await call(_svc(request).patch, caller(request), kind, principal_id, operations))

    @router.delete(f"/{path}/{{principal_id}}", name=f"scim.{label}.delete")
    async def delete(request: Request, principal_id: str):
        await call(_svc(request).delete, caller(request), kind, principal_id)
        return ok()


_resource_routes(USER, "Users", "users")
_resource_routes(GROUP, "Groups", "groups")
_resource_routes(SERVICE_PRINCIPAL, "ServicePrincipals", "service_principals")
