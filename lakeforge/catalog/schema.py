"""Wire requests of the catalog API (Unity Catalog spec). Unknown fields are ignored: clients
repeat path parameters in bodies and send fields of newer API versions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateCatalog(Request):
    name: str
    comment: str | None = None
    properties: dict[str, Any] | None = None
    storage_root: str | None = None


class UpdateSecurable(Request):
    new_name: str | None = None
    comment: str | None = None
    properties: dict[str, Any] | None = None
    owner: str | None = None


class CreateSchema(Request):
    name: str
    catalog_name: str
    comment: str | None = None
    properties: dict[str, Any] | None = None
    storage_root: str | None = None


class PermissionsChange(Request):
    principal: str
    add: list[str] | None = None
    remove: list[str] | None = None


class UpdatePermissions(Request):
    changes: list[PermissionsChange] = []
