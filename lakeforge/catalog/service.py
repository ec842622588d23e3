"""Catalogs, schemas, grants and the metastore summary."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lakeforge.catalog import securables as sec
from lakeforge.audit.context import note_securable
from lakeforge.catalog.access import METASTORE, AccessControl, Securable
from lakeforge.catalog.privileges import GRANTABLE, Kind, P, parse_kind, parse_privilege, to_wire
from lakeforge.catalog.storage import ManagedStorage, check_root, empty_credential
from lakeforge.catalog.store import GrantRow, SecurableRow
from lakeforge.errors import InvalidParameter, InvalidState, NotFound
from lakeforge.identity.principal import Principal
from lakeforge.identity.service import IdentityService
from lakeforge.store import Database
from lakeforge.store.state import get_state, set_state

log = logging.getLogger(__name__)


def render_catalog(row, owner_name: str | None) -> dict[str, Any]:
    """CatalogInfo of a catalog row: a SecurableRow, or a Core row with the same columns (`securables.find`)."""
    return {"name": row.name, "id": row.id, **sec.common_fields(row, owner_name),
            "storage_root": row.storage_root, "storage_location": row.storage_location}


def render_schema(row, owner_name: str | None) -> dict[str, Any]:
    """SchemaInfo of a schema row, as `render_catalog`."""
    return {"name": row.name, "catalog_name": row.catalog_name, "full_name": row.full_name,
            "schema_id": row.id, **sec.common_fields(row, owner_name),
            "storage_root": row.storage_root, "storage_location": row.storage_location}


class CatalogService:
    def __init__(self, db: Database, access: AccessControl, identity: IdentityService, storage: ManagedStorage,
                 default_page: int = 100, max_page: int = 1000):
        self.db = db
        self.access = access
        self.identity = identity
        self.storage = storage
        self.default_page = default_page
        self.max_page = max_page

    # ---- shared helpers for every securable service -------------------------------------------
    def page_size(self, max_results: int | None) -> int:
        return sec.page_size(max_results, self.default_page, self.max_page)

    def owner_names(self, s: Session, rows) -> dict[str, str]:
        return self.identity.names_of(s, {r.owner_id for r in rows})

    def check(self, s: Session, caller: Principal, privilege: P, row: SecurableRow) -> Securable:
        securable = sec.securable_of(s, row)
        self.access.authorize(caller, privilege, securable)
        return securable

    def visible(self, s: Session, caller: Principal):
        """A filter for lists: the rows the caller may see."""
        return lambda row: self.access.allowed(caller, P.BROWSE, sec.securable_of(s, row))

    # ---- catalogs ------------------------------------------------------------------------------
    def create_catalog(self, caller: Principal, name: str, comment: str | None = None,
                       properties: dict | None = None, storage_root: str | None = None) -> dict:
        note_securable(name)
        self.access.authorize(caller, P.CREATE_CATALOG, METASTORE)
        root = check_root(storage_root)
        with self.db.write() as s:
            row = sec.create_row(s, Kind.CATALOG, name, None, caller, comment=comment, properties=properties,
                                 storage_root=root)
            row.storage_location = self.storage.location("", "", row, None).rstrip("/")
            return self.catalog_info(s, row)

    def get_catalog(self, caller: Principal, name: str) -> dict:
        found = self.find_catalog(caller, name)
        return render_catalog(found.row, found.owner_name)

    def find_catalog(self, caller: Principal, name: str) -> sec.Found:
        """The catalog (one query), once the caller may see it (BROWSE)."""
        found = sec.find(self.db, Kind.CATALOG, name)
        self.check_catalog_visible(caller, found.securable)
        return found

    def check_catalog_visible(self, caller: Principal, securable: Securable) -> None:
        self.access.authorize(caller, P.BROWSE, securable)

    def list_catalogs(self, caller: Principal, max_results: int | None, page_token: str | None) -> dict:
        with self.db.read() as s:
            page = sec.list_rows(s, Kind.CATALOG, None, page_token, self.page_size(max_results),
                                 self.visible(s, caller))
            owners = self.owner_names(s, page.rows)
            return {"catalogs": [self.catalog_info(s, r, owners) for r in page.rows],
                    "next_page_token": page.next_page_token}

    def update_catalog(self, caller: Principal, name: str, new_name: str | None = None,
                       comment: str | None = None, properties: dict | None = None, owner: str | None = None) -> dict:
        return self._update(caller, Kind.CATALOG, name, new_name, comment, properties, owner, self.catalog_info)

    def delete_catalog(self, caller: Principal, name: str, force: bool = False) -> None:
        self.delete(caller, Kind.CATALOG, name, force)

    def catalog_info(self, s: Session, row: SecurableRow, owners: dict | None = None) -> dict[str, Any]:
        owners = owners if owners is not None else self.owner_names(s, [row])
        return render_catalog(row, owners.get(row.owner_id))

    # ---- schemas -------------------------------------------------------------------------------
    def create_schema(self, caller: Principal, catalog_name: str, name: str, comment: str | None = None,
                      properties: dict | None = None, storage_root: str | None = None) -> dict:
        note_securable(f"{catalog_name}.{name}")
        root = check_root(storage_root)
        with self.db.write() as s:
            catalog = sec.get_parent_row(s, Kind.SCHEMA, catalog_name)
            self.check(s, caller, P.CREATE_SCHEMA, catalog)
            row = sec.create_row(s, Kind.SCHEMA, name, catalog, caller, comment=comment, properties=properties,
                                 storage_root=root)
            return self.schema_info(s, row)

    def get_schema(self, caller: Principal, full_name: str) -> dict:
        found = self.find_schema(caller, full_name)
        return render_schema(found.row, found.owner_name)

    def find_schema(self, caller: Principal, full_name: str) -> sec.Found:
        """The schema (one query), once the caller may see it."""
        found = sec.find(self.db, Kind.SCHEMA, full_name)
        self.check_schema_visible(caller, found.securable)
        return found

    def check_schema_visible(self, caller: Principal, securable: Securable) -> None:
        # USE_SCHEMA alone lets a user see a schema (Unity Catalog behaviour), as does any privilege.
        if not self.access.allowed(caller, P.USE_SCHEMA, securable):
            self.access.authorize(caller, P.BROWSE, securable)
        else:
            note_securable(securable.full_name)

    def list_schemas(self, caller: Principal, catalog_name: str, max_results: int | None,
                     page_token: str | None) -> dict:
        with self.db.read() as s:
            catalog = sec.get_row(s, Kind.CATALOG, catalog_name)
            self.check(s, caller, P.USE_CATALOG, catalog)
            cat_sec = sec.securable_of(s, catalog)

            def visible(row):
                node = Securable(Kind.SCHEMA, row.id, row.full_name, row.owner_id, cat_sec)
                return self.access.allowed(caller, P.USE_SCHEMA, node) or self.access.allowed(caller, P.BROWSE, node)

            page = sec.list_rows(s, Kind.SCHEMA, catalog.id, page_token, self.page_size(max_results), visible)
            owners = self.owner_names(s, page.rows)
            return {"schemas": [self.schema_info(s, r, owners) for r in page.rows],
                    "next_page_token": page.next_page_token}

    def update_schema(self, caller: Principal, full_name: str, new_name: str | None = None,
                      comment: str | None = None, properties: dict | None = None, owner: str | None = None) -> dict:
        return self._update(caller, Kind.SCHEMA, full_name, new_name, comment, properties, owner, self.schema_info)

    def delete_schema(self, caller: Principal, full_name: str, force: bool = False) -> None:
        self.delete(caller, Kind.SCHEMA, full_name, force)

    def schema_info(self, s: Session, row: SecurableRow, owners: dict | None = None) -> dict[str, Any]:
        owners = owners if owners is not None else self.owner_names(s, [row])
        return render_schema(row, owners.get(row.owner_id))

    # ---- updates and deletes shared by all securable kinds -----------------------------------
    def _update(self, caller, kind, full_name, new_name, comment, properties, owner, render) -> dict:
        with self.db.write() as s:
            row = sec.get_row(s, kind, full_name)
            securable = sec.securable_of(s, row)
            # Changing the owner or the name takes MANAGE (owners hold it); comments too.
            self.access.authorize(caller, P.MANAGE, securable)
            self.apply_update(s, caller, row, new_name=new_name, comment=comment, properties=properties,
                              owner=owner)
            return render(s, row)

    def apply_update(self, s: Session, caller: Principal, row: SecurableRow, *, new_name=None, comment=None,
                     properties=None, owner=None) -> None:
        if comment is not None:
            row.comment = comment
        if properties is not None:
            row.properties = sec.dump_properties(properties)
        if owner is not None:
            row.owner_id = self.identity.find_principal(s, owner).id
        if new_name and new_name != row.name:
            sec.rename(s, row, new_name, caller)
        sec.touch(row, caller)

    def delete(self, caller: Principal, kind: Kind, full_name: str, force: bool = False) -> None:
        """Drop an object (with what it holds, given force). Managed data goes only once the catalog
        entries are gone; external data is never touched."""
        with self.db.write() as s:
            row = sec.get_row(s, kind, full_name)
            self.access.authorize(caller, P.MANAGE, sec.securable_of(s, row))
            inner = sec.descendants(s, row)
            if inner and not force:
                raise InvalidState(f"{sec.LABELS[kind]} '{full_name}' is not empty; use force=true to delete "
                                   f"it with its {len(inner)} object(s)")
            locations = [r.storage_location for r in [*inner, row] if sec.load_json(r.spec).get("managed")]
            sec.delete_rows(s, [*inner, row])
        for uri in locations:
            self.storage.remove(uri)
        self.access.invalidate()

    def row_by_id(self, s: Session, kind: Kind, securable_id: str | None) -> SecurableRow:
        """An object addressed by its id (temporary credentials name tables and volumes that way)."""
        if not securable_id:
            raise InvalidParameter(f"{kind.value}_id is required")
        row = s.get(SecurableRow, str(securable_id))
        if row is None or row.kind != kind.value:
            raise NotFound(f"{sec.LABELS[kind]} with id '{securable_id}' does not exist.")
        note_securable(row.full_name)
        return row

    def temporary_credentials(self, caller: Principal, kind: Kind, securable_id: str | None,
                              privileges: tuple[P, ...]) -> dict:
        """Credentials for the storage of a table or volume addressed by id, once the caller holds
        every privilege the requested operation needs."""
        with self.db.read() as s:
            row = self.row_by_id(s, kind, securable_id)
            for privilege in privileges:
                self.check(s, caller, privilege, row)
            return empty_credential(row.storage_location)

    # ---- grants --------------------------------------------------------------------------------
    def resolve_securable(self, s: Session, securable_type: str, full_name: str) -> tuple[Kind, Securable]:
        kind = parse_kind(securable_type)
        if kind == Kind.METASTORE:
            return kind, METASTORE
        if kind not in sec.LEVELS:
            raise InvalidParameter(f"Securable type '{securable_type}' is not supported")
        return kind, sec.securable_of(s, sec.get_row(s, kind, full_name))

    def get_permissions(self, caller: Principal, securable_type: str, full_name: str,
                        principal: str | None = None, spaces: bool = True) -> dict:
        with self.db.read() as s:
            kind, securable = self.resolve_securable(s, securable_type, full_name)
            if kind == Kind.METASTORE:
                note_securable("metastore")  # metastore grants are readable by every user
            else:
                self.access.authorize(caller, P.BROWSE, securable)
            return {"privilege_assignments": self._assignments(s, kind, securable.id, principal, spaces)}

    def update_permissions(self, caller: Principal, securable_type: str, full_name: str, changes: list[dict],
                           spaces: bool = True) -> dict:
        with self.db.write() as s:
            kind, securable = self.resolve_securable(s, securable_type, full_name)
            self.access.authorize(caller, P.MANAGE, securable)
            for change in changes or []:
                name = change.get("principal")
                if not name:
                    raise InvalidParameter("Each change needs a principal")
                pid = self.identity.find_principal(s, name).id
                for raw in change.get("add") or []:
                    priv = parse_privilege(raw, kind)
                    if s.get(GrantRow, (kind.value, securable.id, pid, priv.value)) is None:
                        s.add(GrantRow(securable_kind=kind.value, securable_id=securable.id, principal_id=pid,
                                       privilege=priv.value))
                for raw in change.get("remove") or []:
                    priv = parse_privilege(raw, kind)
                    s.execute(delete(GrantRow).where(GrantRow.securable_kind == kind.value,
                                                     GrantRow.securable_id == securable.id,
                                                     GrantRow.principal_id == pid, GrantRow.privilege == priv.value))
            s.flush()
            result = {"privilege_assignments": self._assignments(s, kind, securable.id, None, spaces)}
        self.access.invalidate()
        return result

    def _assignments(self, s: Session, kind: Kind, securable_id: str, principal: str | None,
                     spaces: bool) -> list[dict]:
        q = select(GrantRow.principal_id, GrantRow.privilege).where(GrantRow.securable_kind == kind.value,
                                                                   GrantRow.securable_id == securable_id)
        if principal:
            q = q.where(GrantRow.principal_id == self.identity.find_principal(s, principal).id)
        by_principal: dict[str, list[str]] = {}
        for pid, priv in s.execute(q):
            wire = to_wire(priv, spaces)
            if wire is not None:
                by_principal.setdefault(pid, []).append(wire)
        names = self.identity.names_of(s, set(by_principal))
        return [{"principal": names.get(pid, pid), "privileges": sorted(privs)}
                for pid, privs in sorted(by_principal.items(), key=lambda kv: names.get(kv[0], kv[0]))]

    # ---- metastore -----------------------------------------------------------------------------
    def metastore_summary(self, caller: Principal) -> dict:
        note_securable("metastore")
        with self.db.read() as s:
            mid = get_state(s, "metastore_id")
        return {"metastore_id": mid, "name": "lakeforge", "storage_root": self.storage.root.resolve().as_uri(),
                "owner": "admins", "privilege_model_version": "1.0"}

    # ---- first start ---------------------------------------------------------------------------
    def bootstrap(self, s: Session, admin: Principal, users_group_id: str) -> None:
        """The catalogs every installation starts with: main.default, system.access, system.serving.
        Every user may use `main` and `main.default`; `system` is for admins until granted."""
        if get_state(s, "metastore_id") is None:
            from lakeforge.store import new_id

            set_state(s, "metastore_id", new_id())
        for catalog, schema, comment in (("main", "default", "The default catalog"),
                                         ("system", "access", "Platform logs: audit and lineage"),
                                         ("system", "serving", "Serving endpoint usage")):
            cat = s.scalar(select(SecurableRow).where(SecurableRow.kind == Kind.CATALOG.value,
                                                      SecurableRow.full_name == catalog))
            if cat is None:
                cat = sec.create_row(s, Kind.CATALOG, catalog, None, admin, comment=comment)
                cat.storage_location = self.storage.location("", "", cat, None).rstrip("/")
            if s.scalar(select(SecurableRow.id).where(SecurableRow.kind == Kind.SCHEMA.value,
                                                      SecurableRow.full_name == f"{catalog}.{schema}")) is None:
                sch = sec.create_row(s, Kind.SCHEMA, schema, cat, admin, comment=comment if catalog == "system" else None)
                if catalog == "main":
                    s.add(GrantRow(securable_kind=Kind.CATALOG.value, securable_id=cat.id,
                                   principal_id=users_group_id, privilege=P.USE_CATALOG.value))
                    s.add(GrantRow(securable_kind=Kind.SCHEMA.value, securable_id=sch.id,
                                   principal_id=users_group_id, privilege=P.USE_SCHEMA.value))


__all__ = ["CatalogService", "GRANTABLE", "NotFound", "render_catalog", "render_schema"]
