"""Registered models and their aliases (Unity Catalog `/models`).

A registered model is a SecurableRow of kind `registered_model`; its spec holds `managed` (its storage
goes when its catalog or schema is force-deleted) and `max_version` (version numbers are never reused,
even after a version is deleted, so `models:/m/3` never silently changes meaning).

Privileges: CREATE_MODEL on the schema to create; EXECUTE (owners hold it) to read a model, its
versions and aliases; MANAGE to update, delete, and set or delete aliases.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lakeforge import clock, names
from lakeforge.audit.context import note_securable
from lakeforge.catalog import securables as sec
from lakeforge.catalog.access import Securable
from lakeforge.catalog.privileges import Kind, P
from lakeforge.catalog.service import CatalogService
from lakeforge.catalog.storage import to_path
from lakeforge.catalog.store import ModelAliasRow, ModelVersionRow, SecurableRow
from lakeforge.errors import InvalidParameter, NotFound
from lakeforge.identity.principal import Principal
from lakeforge.store import new_id

KIND = Kind.REGISTERED_MODEL

# MLflow's alias rules: word characters and dashes (so no dots), not a version number, and neither
# "latest" nor "v<digits>", which MLflow's `models:/name@alias` resolution reserves.
_ALIAS = re.compile(r"^[\w\-]{1,255}$")
_RESERVED_ALIAS = re.compile(r"^(latest|v\d+|\d+)$", re.IGNORECASE)


def check_alias(alias: str | None) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise InvalidParameter(f"Invalid alias '{alias}': aliases are 1-255 letters, digits, '_' or '-'")
    if _RESERVED_ALIAS.match(alias):
        raise InvalidParameter(f"Invalid alias '{alias}': numbers, 'latest' and 'v<number>' are reserved")
    return alias


def model_spec(row: SecurableRow) -> dict[str, Any]:
    return sec.load_json(row.spec)


def get_model(s: Session, full_name: str, *, lock: bool = False) -> SecurableRow:
    """The model row; `lock` takes a row lock (PostgreSQL) so version numbering is race-free. On
    SQLite, write transactions already run one at a time (BEGIN IMMEDIATE)."""
    if not lock:
        return sec.get_row(s, KIND, full_name)
    names.parse(full_name, 3, "registered model name")
    row = s.scalar(select(SecurableRow).where(SecurableRow.kind == KIND.value, SecurableRow.full_name == full_name)
                   .with_for_update())
    if row is None:
        raise NotFound(f"Registered model '{full_name}' does not exist.")
    return row


def get_version(s: Session, model: SecurableRow, version: int) -> ModelVersionRow:
    row = s.scalar(select(ModelVersionRow).where(ModelVersionRow.model_id == model.id,
                                                 ModelVersionRow.version == version))
    if row is None:
        raise NotFound(f"Model version '{model.full_name}/{version}' does not exist.")
    return row


def aliases_of(s: Session, model_id: str, version: int | None = None) -> list[dict]:
    q = select(ModelAliasRow).where(ModelAliasRow.model_id == model_id)
    if version is not None:
        q = q.where(ModelAliasRow.version == version)
    return [{"alias_name": a.alias, "version_num": a.version} for a in s.scalars(q.order_by(ModelAliasRow.alias))]


def parse_version(value: Any) -> int:
    """Version numbers arrive as path segments, JSON ints or (proto JSON int64) strings."""
    try:
        version = int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidParameter(f"Invalid model version '{value}': expected a positive integer") from None
    if version < 1:
        raise InvalidParameter(f"Invalid model version '{value}': expected a positive integer")
    return version


class RegisteredModelService:
    def __init__(self, catalog: CatalogService):
        self.catalog = catalog
        self.db = catalog.db
        self.access = catalog.access

    # ---- access helpers shared with model versions -----------------------------------------
    def check_create_version(self, s: Session, caller: Principal, model: SecurableRow) -> Securable:
        """Creating (and writing) a version: CREATE_MODEL on the schema, or MANAGE on the model."""
        securable = sec.securable_of(s, model)
        if self.access.allowed(caller, P.CREATE_MODEL, securable.parent):
            note_securable(model.full_name)
        else:
            self.access.authorize(caller, P.MANAGE, securable)
        return securable

    # ---- registered models ---------------------------------------------------------------------
    def create(self, caller: Principal, catalog_name: str, schema_name: str, name: str,
               comment: str | None = None) -> dict:
        note_securable(names.join(catalog_name, schema_name, name))
        with self.db.write() as s:
            schema = sec.get_parent_row(s, KIND, catalog_name, schema_name)
            # Creating inside a schema also takes USE_SCHEMA on it (the rule for anything inside).
            self.catalog.check(s, caller, P.USE_SCHEMA, schema)
            self.catalog.check(s, caller, P.CREATE_MODEL, schema)
            catalog = s.get(SecurableRow, schema.parent_id)
            model_id = new_id()
            location = self.catalog.storage.location("models", model_id, catalog, schema)
            row = sec.create_row(s, KIND, name, schema, caller, comment=comment, storage_location=location,
                                 spec={"managed": True, "max_version": 0}, row_id=model_id)
            # Inside the transaction: if the directory cannot be made, the model is not created.
            to_path(location).mkdir(parents=True, exist_ok=True)
            return self.info(s, row)

    def get(self, caller: Principal, full_name: str, include_aliases: bool = False) -> dict:
        with self.db.read() as s:
            row = get_model(s, full_name)
            self.catalog.check(s, caller, P.EXECUTE, row)
            return self.info(s, row, include_aliases=include_aliases)

    def list(self, caller: Principal, catalog_name: str | None = None, schema_name: str | None = None,
             max_results: int | None = None, page_token: str | None = None,
             include_aliases: bool = False) -> dict:
        """Models the caller may see, in full-name order: in one schema, one catalog, or everywhere."""
        limit = self.catalog.page_size(max_results)
        with self.db.read() as s:
            q = select(SecurableRow).where(SecurableRow.kind == KIND.value)
            if schema_name and not catalog_name:
                raise InvalidParameter("schema_name needs catalog_name")
            if catalog_name and schema_name:
                self.catalog.check(s, caller, P.USE_SCHEMA, sec.get_parent_row(s, KIND, catalog_name, schema_name))
                q = q.where(SecurableRow.catalog_name == catalog_name, SecurableRow.schema_name == schema_name)
            elif catalog_name:
                self.catalog.check(s, caller, P.USE_CATALOG, sec.get_row(s, Kind.CATALOG, catalog_name))
                q = q.where(SecurableRow.catalog_name == catalog_name)
            rows, token = page_by_full_name(s, q, page_token, limit, self.catalog.visible(s, caller))
            owners = self.catalog.owner_names(s, rows)
            return {"registered_models": [self.info(s, r, owners, include_aliases) for r in rows],
                    "next_page_token": token}

    def update(self, caller: Principal, full_name: str, new_name: str | None = None, comment: str | None = None,
               owner: str | None = None) -> dict:
        with self.db.write() as s:
            row = get_model(s, full_name)
            self.catalog.check(s, caller, P.MANAGE, row)
            self.catalog.apply_update(s, caller, row, new_name=new_name, comment=comment, owner=owner)
            return self.info(s, row)

    def delete(self, caller: Principal, full_name: str, force: bool = False) -> None:
        """The model goes with its versions, aliases, grants and files, as on Databricks and in
        MLflow's registry (databricks-sdk has no force flag). `force` is accepted for UC clients."""
        with self.db.write() as s:
            row = get_model(s, full_name)
            self.catalog.check(s, caller, P.MANAGE, row)
            location = row.storage_location
            s.execute(delete(ModelAliasRow).where(ModelAliasRow.model_id == row.id))
            s.execute(delete(ModelVersionRow).where(ModelVersionRow.model_id == row.id))
            sec.delete_rows(s, [row])
        self.catalog.storage.remove(location)
        self.access.invalidate()

    def info(self, s: Session, row: SecurableRow, owners: dict | None = None,
             include_aliases: bool = False) -> dict[str, Any]:
        owners = owners if owners is not None else self.catalog.owner_names(s, [row])
        common = sec.common_fields(row, owners.get(row.owner_id))
        common.pop("properties", None)  # not part of RegisteredModelInfo
        out = {"name": row.name, "catalog_name": row.catalog_name, "schema_name": row.schema_name,
               "full_name": row.full_name, "id": row.id, "storage_location": row.storage_location, **common}
        if include_aliases:
            out["aliases"] = aliases_of(s, row.id)
        return out

    # ---- aliases -------------------------------------------------------------------------------
    def set_alias(self, caller: Principal, full_name: str, alias: str, version_num: Any) -> dict:
        check_alias(alias)
        if version_num is None:
            raise InvalidParameter("version_num is required")
        version = parse_version(version_num)
        with self.db.write() as s:
            model = get_model(s, full_name)
            self.catalog.check(s, caller, P.MANAGE, model)
            get_version(s, model, version)
            row = s.get(ModelAliasRow, (model.id, alias))
            if row is None:
                s.add(ModelAliasRow(model_id=model.id, alias=alias, version=version))
            else:
                row.version = version  # an alias moves: it names exactly one version at a time
            sec.touch(model, caller)
            return {"alias_name": alias, "version_num": version, "catalog_name": model.catalog_name,
                    "schema_name": model.schema_name, "model_name": model.name}

    def delete_alias(self, caller: Principal, full_name: str, alias: str) -> None:
        with self.db.write() as s:
            model = get_model(s, full_name)
            self.catalog.check(s, caller, P.MANAGE, model)
            row = s.get(ModelAliasRow, (model.id, alias))
            if row is None:
                raise NotFound(f"Alias '{alias}' of registered model '{full_name}' does not exist.")
            s.delete(row)
            sec.touch(model, caller)


def page_by_full_name(s: Session, q, page_token: str | None, limit: int,
                      visible) -> tuple[list[SecurableRow], str | None]:
    """One page of `q` in full-name order, filtered by `visible`; the token is the last full name."""
    if page_token:
        q = q.where(SecurableRow.full_name > page_token)
    out: list[SecurableRow] = []
    last = None
    for row in s.scalars(q.order_by(SecurableRow.full_name).execution_options(yield_per=256)):
        last = row.full_name
        if visible(row):
            out.append(row)
            if len(out) == limit:
                break
    more = len(out) == limit and s.scalar(q.where(SecurableRow.full_name > last).with_only_columns(
        SecurableRow.id).limit(1)) is not None
    return out, (out[-1].full_name if more else None)


def bump_version(model: SecurableRow, latest_existing: int | None) -> int:
    """The next version number: above every version the model ever had."""
    spec = model_spec(model)
    version = max(int(spec.get("max_version") or 0), latest_existing or 0) + 1
    spec["max_version"] = version
    model.spec = json.dumps(spec)
    model.updated_at = clock.now()
    return version


__all__ = ["RegisteredModelService", "check_alias", "get_model", "get_version", "aliases_of",
           "parse_version", "bump_version", "page_by_full_name"]
