"""Shared logic for every catalog object: lookup by full name, the access chain, paging,
creation, deletion and the wire fields all securables have in common."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session, aliased

from lakeforge import clock, names
from lakeforge.audit.context import note_securable
from lakeforge.catalog.access import Securable
from lakeforge.catalog.privileges import Kind
from lakeforge.catalog.store import GrantRow, SecurableRow
from lakeforge.errors import InvalidParameter, NotFound, ResourceAlreadyExists
from lakeforge.identity.principal import Principal
from lakeforge.identity.store import PrincipalRow
from lakeforge.store import Database, new_id

LEVELS = {Kind.CATALOG: 1, Kind.SCHEMA: 2, Kind.TABLE: 3, Kind.VOLUME: 3, Kind.FUNCTION: 3,
          Kind.REGISTERED_MODEL: 3}
LABELS = {Kind.CATALOG: "Catalog", Kind.SCHEMA: "Schema", Kind.TABLE: "Table", Kind.VOLUME: "Volume",
          Kind.FUNCTION: "Function", Kind.REGISTERED_MODEL: "Registered model"}


@dataclass(frozen=True)
class Page:
    rows: list[SecurableRow]
    next_page_token: str | None


def page_size(max_results: int | None, default: int, maximum: int) -> int:
    """0 or absent means the server default; large values are clamped; negative is an error."""
    if max_results is None or max_results == 0:
        return default
    if max_results < 0:
        raise InvalidParameter("max_results must be greater than or equal to 0")
    return min(max_results, maximum)


_PARENT = aliased(SecurableRow)
_GRANDPARENT = aliased(SecurableRow)
# The object with its schema and catalog in one query: the access chain then comes from the
# session's identity map instead of two more round trips.
_WITH_CHAIN = (select(SecurableRow, _PARENT, _GRANDPARENT)
               .outerjoin(_PARENT, _PARENT.id == SecurableRow.parent_id)
               .outerjoin(_GRANDPARENT, _GRANDPARENT.id == _PARENT.parent_id))


def get_row(s: Session, kind: Kind, full_name: str) -> SecurableRow:
    note_securable(full_name)  # the audit log names what was asked for, even when it is missing
    names.parse(full_name, LEVELS[kind], f"{LABELS[kind].lower()} name")
    found = s.execute(_WITH_CHAIN.where(SecurableRow.kind == kind.value, SecurableRow.full_name == full_name)).first()
    if found is None:
        raise NotFound(f"{LABELS[kind]} '{full_name}' does not exist.")
    return found[0]


@dataclass(frozen=True)
class Found:
    """An object read by `find`: its row (the columns of SecurableRow, by name), its owner's name and
    its access chain."""

    row: Row
    owner_name: str | None
    securable: Securable


_T = SecurableRow.__table__
_UP1 = _T.alias("up1")  # the container (schema of a leaf, catalog of a schema)
_UP2 = _T.alias("up2")  # its container (catalog of a leaf)
_OWNER = PrincipalRow.__table__.alias("owner")
# One Core statement (no ORM objects, one round trip): the object, its owner's name, and the kind,
# id, name and owner of each container above it. Catalogs have no container, so two levels up is all.
_FIND = (select(_T, _OWNER.c.name.label("owner_name"),
                _UP1.c.kind.label("up1_kind"), _UP1.c.id.label("up1_id"), _UP1.c.full_name.label("up1_full_name"),
                _UP1.c.owner_id.label("up1_owner_id"),
                _UP2.c.kind.label("up2_kind"), _UP2.c.id.label("up2_id"), _UP2.c.full_name.label("up2_full_name"),
                _UP2.c.owner_id.label("up2_owner_id"))
         .select_from(_T.outerjoin(_UP1, _UP1.c.id == _T.c.parent_id).outerjoin(_UP2, _UP2.c.id == _UP1.c.parent_id)
                      .outerjoin(_OWNER, _OWNER.c.id == _T.c.owner_id))
         .where(_T.c.kind == bindparam("kind"), _T.c.full_name == bindparam("full_name")))


def find(db: Database, kind: Kind, full_name: str) -> Found:
    """`get_row` for reads that need no session: the same checks and errors, one Core query."""
    note_securable(full_name)  # the audit log names what was asked for, even when it is missing
    names.parse(full_name, LEVELS[kind], f"{LABELS[kind].lower()} name")
    r = db.read_one(_FIND, {"kind": kind.value, "full_name": full_name})
    if r is None:
        raise NotFound(f"{LABELS[kind]} '{full_name}' does not exist.")
    up2 = Securable(Kind(r.up2_kind), r.up2_id, r.up2_full_name, r.up2_owner_id) if r.up2_id else None
    up1 = Securable(Kind(r.up1_kind), r.up1_id, r.up1_full_name, r.up1_owner_id, up2) if r.up1_id else None
    return Found(r, r.owner_name, Securable(Kind(r.kind), r.id, r.full_name, r.owner_id, up1))


def get_parent_row(s: Session, kind: Kind, catalog: str, schema: str | None = None) -> SecurableRow:
    """The container a new object goes into: the catalog for schemas, the schema for leaves."""
    if kind == Kind.SCHEMA:
        return get_row(s, Kind.CATALOG, names.check_name(catalog, "catalog_name"))
    names.check_name(catalog, "catalog_name")
    names.check_name(schema, "schema_name")
    get_row(s, Kind.CATALOG, catalog)
    return get_row(s, Kind.SCHEMA, f"{catalog}.{schema}")


def securable_of(s: Session, row: SecurableRow) -> Securable:
    parent = securable_of(s, s.get(SecurableRow, row.parent_id)) if row.parent_id else None
    return Securable(Kind(row.kind), row.id, row.full_name, row.owner_id, parent)


def list_rows(s: Session, kind: Kind, parent_id: str | None, page_token: str | None, limit: int,
              visible=None) -> Page:
    """Children of `parent_id` in name order, `limit` at a time, filtered by `visible(row)`."""
    q = select(SecurableRow).where(SecurableRow.kind == kind.value)
    q = q.where(SecurableRow.parent_id == parent_id) if parent_id else q.where(SecurableRow.parent_id.is_(None))
    if page_token:
        q = q.where(SecurableRow.name > page_token)
    q = q.order_by(SecurableRow.name)
    out: list[SecurableRow] = []
    last = None
    # Read in chunks so filtering by visibility still fills a page.
    for row in s.scalars(q.execution_options(yield_per=256)):
        last = row.name
        if visible is None or visible(row):
            out.append(row)
            if len(out) == limit:
                break
    more = len(out) == limit and last is not None and s.scalar(
        select(SecurableRow.id).where(SecurableRow.kind == kind.value, SecurableRow.parent_id == parent_id,
                                      SecurableRow.name > last).limit(1)) is not None
    return Page(out, out[-1].name if more else None)


def create_row(s: Session, kind: Kind, name: str, parent: SecurableRow | None, caller: Principal, *,
               comment: str | None = None, properties: dict | None = None, storage_root: str | None = None,
               storage_location: str | None = None, spec: dict | None = None,
               row_id: str | None = None) -> SecurableRow:
    names.check_name(name, "name")
    full_name = names.join(parent.full_name if parent else None, name)
    exists = s.scalar(select(SecurableRow.id).where(SecurableRow.kind == kind.value,
                                                    SecurableRow.full_name == full_name))
    if exists:
        raise ResourceAlreadyExists(f"{LABELS[kind]} '{full_name}' already exists.")
    now = clock.now()
    row = SecurableRow(
        id=row_id or new_id(), kind=kind.value, name=name, full_name=full_name,
        catalog_name=parent.catalog_name if parent else name,
        schema_name=(parent.name if parent and parent.kind == Kind.SCHEMA else (name if kind == Kind.SCHEMA else None)),
        parent_id=parent.id if parent else None, owner_id=caller.id, comment=comment,
        properties=dump_properties(properties), storage_root=storage_root, storage_location=storage_location,
        spec=json.dumps(spec) if spec else None, created_at=now, created_by=caller.name, updated_at=now,
        updated_by=caller.name,
    )
    s.add(row)
    s.flush()
    return row


def descendants(s: Session, row: SecurableRow) -> list[SecurableRow]:
    """Everything inside `row` (schemas and their objects for a catalog, objects for a schema)."""
    if row.kind == Kind.CATALOG:
        return list(s.scalars(select(SecurableRow).where(SecurableRow.catalog_name == row.name,
                                                         SecurableRow.id != row.id)))
    if row.kind == Kind.SCHEMA:
        return list(s.scalars(select(SecurableRow).where(SecurableRow.parent_id == row.id)))
    return []


def delete_rows(s: Session, rows: list[SecurableRow]) -> None:
    ids = [r.id for r in rows]
    s.execute(delete(GrantRow).where(GrantRow.securable_id.in_(ids)))
    # One statement; children go too through ON DELETE CASCADE whichever order rows are removed in.
    s.execute(delete(SecurableRow).where(SecurableRow.id.in_(ids)), execution_options={"synchronize_session": False})
    for r in rows:
        if r in s:
            s.expunge(r)


def rename(s: Session, row: SecurableRow, new_name: str, caller: Principal) -> None:
    names.check_name(new_name, "new_name")
    kind = Kind(row.kind)
    old_full = row.full_name
    new_full = names.join(old_full.rsplit(".", 1)[0] if "." in old_full else None, new_name)
    if s.scalar(select(SecurableRow.id).where(SecurableRow.kind == row.kind, SecurableRow.full_name == new_full)):
        raise ResourceAlreadyExists(f"{LABELS[kind]} '{new_full}' already exists.")
    for child in descendants(s, row):
        child.full_name = new_full + child.full_name[len(old_full):]
        if kind == Kind.CATALOG:
            child.catalog_name = new_name
        elif kind == Kind.SCHEMA:
            child.schema_name = new_name
    row.name, row.full_name = new_name, new_full
    if kind == Kind.CATALOG:
        row.catalog_name = new_name
    elif kind == Kind.SCHEMA:
        row.schema_name = new_name
    touch(row, caller)


def touch(row: SecurableRow, caller: Principal) -> None:
    row.updated_at = clock.now()
    row.updated_by = caller.name


def dump_properties(properties: dict | None) -> str | None:
    if not properties:
        return None
    if not isinstance(properties, dict):
        raise InvalidParameter("properties must be an object of string values")
    # Clients rely on string values: coerce scalars, reject nested structures.
    out = {}
    for k, v in properties.items():
        if isinstance(v, (dict, list)):
            raise InvalidParameter(f"Property '{k}' must be a string")
        out[str(k)] = v if isinstance(v, str) else json.dumps(v)
    return json.dumps(out)


def load_json(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}


def common_fields(row: SecurableRow, owner_name: str | None) -> dict[str, Any]:
    return {
        "comment": row.comment,
        "properties": load_json(row.properties) or None,
        "owner": owner_name,
        "created_at": clock.to_ms(row.created_at),
        "created_by": row.created_by,
        "updated_at": clock.to_ms(row.updated_at),
        "updated_by": row.updated_by,
    }


__all__ = ["Found", "Page", "page_size", "get_row", "find", "get_parent_row", "securable_of", "list_rows", "create_row",
           "descendants", "delete_rows", "rename", "touch", "common_fields", "load_json"]
