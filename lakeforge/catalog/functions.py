"""Functions (Unity Catalog `/functions`): metadata only. The catalog stores a function's signature and
body; clients such as unitycatalog-ai run the body themselves.

A function is a SecurableRow of kind `function`; every FunctionInfo field beyond the common ones lives
in its spec, kept as the client sent it (properties stay a JSON-encoded *string*, as the spec says).

Privileges: USE_SCHEMA and CREATE_FUNCTION on the schema to create; EXECUTE (owners hold it) to get;
BROWSE to see it in a list; MANAGE to change the owner or delete.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from lakeforge import names
from lakeforge.audit.context import note_securable
from lakeforge.catalog import securables as sec
from lakeforge.catalog.privileges import Kind, P
from lakeforge.catalog.service import CatalogService
from lakeforge.catalog.store import SecurableRow
from lakeforge.errors import InvalidParameter
from lakeforge.identity.principal import Principal
from lakeforge.lake import types

KIND = Kind.FUNCTION

# FunctionInfo fields kept verbatim in the row's spec.
SPEC_FIELDS = ("input_params", "data_type", "full_data_type", "return_params", "routine_body", "routine_definition",
               "routine_dependencies", "parameter_style", "is_deterministic", "sql_data_access", "is_null_call",
               "security_type", "specific_name", "external_language", "properties",
               # Databricks fields outside the UC spec; spec clients ignore unknown fields.
               "external_name", "sql_path")


class FunctionService:
    def __init__(self, catalog: CatalogService):
        self.catalog = catalog
        self.db = catalog.db

    def create(self, caller: Principal, function_info: dict[str, Any]) -> dict:
        """`function_info` is a CreateFunction as a plain dict (enum values already checked)."""
        info = dict(function_info)
        name, catalog_name, schema_name = info.pop("name"), info.pop("catalog_name"), info.pop("schema_name")
        note_securable(names.join(catalog_name, schema_name, name))
        comment = info.pop("comment", None)
        spec = normalise(info)
        with self.db.write() as s:
            schema = sec.get_parent_row(s, KIND, catalog_name, schema_name)
            self.catalog.check(s, caller, P.USE_SCHEMA, schema)
            self.catalog.check(s, caller, P.CREATE_FUNCTION, schema)
            row = sec.create_row(s, KIND, name, schema, caller, comment=comment,
                                 properties=_property_map(spec.get("properties")), spec=spec)
            return self.info(s, row)

    def get(self, caller: Principal, full_name: str) -> dict:
        with self.db.read() as s:
            row = sec.get_row(s, KIND, full_name)
            self.catalog.check(s, caller, P.EXECUTE, row)
            return self.info(s, row)

    def list(self, caller: Principal, catalog_name: str, schema_name: str, max_results: int | None = None,
             page_token: str | None = None) -> dict:
        with self.db.read() as s:
            schema = sec.get_parent_row(s, KIND, catalog_name, schema_name)
            self.catalog.check(s, caller, P.USE_SCHEMA, schema)
            page = sec.list_rows(s, KIND, schema.id, page_token, self.catalog.page_size(max_results),
                                 self.catalog.visible(s, caller))
            owners = self.catalog.owner_names(s, page.rows)
            return {"functions": [self.info(s, r, owners) for r in page.rows], "next_page_token": page.next_page_token}

    def update(self, caller: Principal, full_name: str, owner: str | None = None) -> dict:
        """Only the owner can change (databricks-sdk `functions.update`); a new body is a new function."""
        with self.db.write() as s:
            row = sec.get_row(s, KIND, full_name)
            self.catalog.check(s, caller, P.MANAGE, row)
            self.catalog.apply_update(s, caller, row, owner=owner)
            return self.info(s, row)

    def delete(self, caller: Principal, full_name: str) -> None:
        with self.db.write() as s:
            row = sec.get_row(s, KIND, full_name)
            self.catalog.check(s, caller, P.MANAGE, row)
            sec.delete_rows(s, [row])
        self.catalog.access.invalidate()

    def info(self, s: Session, row: SecurableRow, owners: dict | None = None) -> dict[str, Any]:
        owners = owners if owners is not None else self.catalog.owner_names(s, [row])
        common = sec.common_fields(row, owners.get(row.owner_id))
        common.pop("properties", None)  # FunctionInfo.properties is the stored string, below
        spec = sec.load_json(row.spec)
        return {"name": row.name, "catalog_name": row.catalog_name, "schema_name": row.schema_name,
                "full_name": row.full_name, "function_id": row.id, **common,
                **{k: spec[k] for k in SPEC_FIELDS if k in spec}}


def normalise(info: dict[str, Any]) -> dict[str, Any]:
    """Domain rules of CreateFunction, and the parameter fields every client needs on the way out."""
    spec = {k: v for k, v in info.items() if k in SPEC_FIELDS and v is not None}
    body = spec.get("routine_body")
    if body == "EXTERNAL":
        if not spec.get("external_language"):
            raise InvalidParameter("An EXTERNAL function needs external_language")
        if spec.get("return_params", {}).get("parameters"):
            raise InvalidParameter("An EXTERNAL function cannot have return_params (TABLE return types are SQL only)")
        if spec.setdefault("sql_data_access", "NO_SQL") != "NO_SQL":
            raise InvalidParameter("An EXTERNAL function's sql_data_access must be NO_SQL")
    if isinstance(spec.get("properties"), dict):
        spec["properties"] = json.dumps(spec["properties"])
    for key in ("input_params", "return_params"):
        if key in spec:
            spec[key] = {"parameters": _parameters(spec[key].get("parameters") or [], key)}
    return {k: v for k, v in spec.items() if v is not None}


def _parameters(params: list[dict], what: str) -> list[dict]:
    """unitycatalog-client requires name, type_text, type_json, type_name and position on every
    parameter; fill the derivable ones (type_name, type_json, position) when a client left them out."""
    out, seen = [], set()
    for i, p in enumerate(params):
        p = {k: v for k, v in p.items() if v is not None}
        name = p.get("name")
        if not name or not p.get("type_text"):
            raise InvalidParameter(f"{what}: parameter {i} needs a name and a type_text")
        if name in seen:
            raise InvalidParameter(f"{what}: duplicate parameter name '{name}'")
        seen.add(name)
        p.setdefault("position", i)
        if "type_name" not in p:
            p["type_name"] = types.type_name(p["type_text"])
        if "type_json" not in p:
            p["type_json"] = _type_json(name, p["type_text"])
        out.append(p)
    return sorted(out, key=lambda p: p["position"])


def _type_json(name: str, type_text: str) -> str:
    """Spark StructField JSON for a parameter; a type we cannot parse keeps its text as the type."""
    try:
        return types.column_info(name, types.parse_type(type_text), 0)["type_json"]
    except InvalidParameter:
        return json.dumps({"name": name, "type": type_text.lower(), "nullable": True, "metadata": {}})


def _property_map(properties: str | None) -> dict | None:
    """Also keep a JSON object in the row's properties so catalog-wide features (search) see it."""
    try:
        value = json.loads(properties) if properties else None
    except ValueError:
        return None
    if isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
        return value or None
    return None


__all__ = ["FunctionService", "normalise"]
