"""ACLs of objects outside the catalog tree (experiments, serving endpoints): the Databricks
permissions API shape over GrantRow rows, one level per principal, on a ladder where a higher
level implies the lower ones (see privileges.ACL_LADDERS). Decisions go through the one access
function; this module only reads and writes the grants and renders them.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lakeforge.catalog.access import AccessControl, Securable
from lakeforge.catalog.privileges import ACL_LADDERS, Kind, P
from lakeforge.catalog.store import GrantRow
from lakeforge.errors import InvalidParameter, NotFound
from lakeforge.identity.principal import Principal
from lakeforge.identity.service import IdentityService
from lakeforge.identity.store import GROUP, SERVICE_PRINCIPAL, PrincipalRow
from lakeforge.store import Database


class ObjectAcl:
    def __init__(self, db: Database, access: AccessControl, identity: IdentityService, kind: Kind,
                 object_type: str, object_path: str):
        """`object_type` and `object_path` ("/experiments", "/serving-endpoints") shape the answer."""
        self.db = db
        self.access = access
        self.identity = identity
        self.kind = kind
        self.ladder = ACL_LADDERS[kind]
        self.object_type = object_type
        self.object_path = object_path

    def get(self, caller: Principal, securable: Securable) -> dict:
        self.access.authorize(caller, self.ladder[-1], securable)
        return self.describe(securable.id, securable.owner_id)

    def change(self, caller: Principal, securable: Securable, acl, replace: bool) -> dict:
        """PUT replaces every direct grant with `acl`; PATCH adds or changes the levels named."""
        self.access.authorize(caller, self.ladder[-1], securable)
        if not isinstance(acl, list):
            raise InvalidParameter("access_control_list must be a list")
        with self.db.write() as s:
            wanted = [(self._grantee(s, entry), self._level(entry)) for entry in acl]
            if replace:
                s.execute(delete(GrantRow).where(GrantRow.securable_kind == self.kind.value,
                                                 GrantRow.securable_id == securable.id))
            for pid, level in wanted:
                self.replace(s, securable.id, pid, level)
        self.access.invalidate()
        return self.describe(securable.id, securable.owner_id)

    def levels(self) -> dict:
        return {"permission_levels": [{"permission_level": p.value} for p in self.ladder]}

    def drop(self, s: Session, object_id: str) -> None:
        s.execute(delete(GrantRow).where(GrantRow.securable_kind == self.kind.value, GrantRow.securable_id == object_id))

    def replace(self, s: Session, object_id: str, principal_id: str, level: P) -> None:
        # One level per principal: a new level replaces whatever was there.
        s.execute(delete(GrantRow).where(GrantRow.securable_kind == self.kind.value, GrantRow.securable_id == object_id,
                                         GrantRow.principal_id == principal_id))
        s.add(GrantRow(securable_kind=self.kind.value, securable_id=object_id, principal_id=principal_id,
                       privilege=level.value))

    def describe(self, object_id: str, owner_id: str | None = None) -> dict:
        order = [p.value for p in self.ladder]
        top: dict[str, int] = {}
        if owner_id:
            top[owner_id] = len(order) - 1  # the owner manages, whatever is granted
        with self.db.read() as s:
            rows = s.execute(select(GrantRow.principal_id, GrantRow.privilege).where(
                GrantRow.securable_kind == self.kind.value, GrantRow.securable_id == object_id))
            for pid, priv in rows:
                if priv in order:
                    top[pid] = max(top.get(pid, 0), order.index(priv))
            principals = {r.id: (r.kind, r.name, r.display_name) for r in s.execute(
                select(PrincipalRow.id, PrincipalRow.kind, PrincipalRow.name, PrincipalRow.display_name)
                .where(PrincipalRow.id.in_(set(top))))}
        acl = []
        for pid, i in top.items():
            if pid not in principals:
                continue
            kind, name, display = principals[pid]
            key = {GROUP: "group_name", SERVICE_PRINCIPAL: "service_principal_name"}.get(kind, "user_name")
            acl.append({key: name, "display_name": display or name,
                        "all_permissions": [{"permission_level": order[i], "inherited": False}]})
        acl.sort(key=lambda e: (e.get("user_name") or e.get("group_name") or e.get("service_principal_name")))
        return {"object_id": f"{self.object_path}/{object_id}", "object_type": self.object_type,
                "access_control_list": acl}

    def _grantee(self, s: Session, entry) -> str:
        if not isinstance(entry, dict):
            raise InvalidParameter("Each access control entry must be an object")
        name = entry.get("user_name") or entry.get("group_name") or entry.get("service_principal_name")
        if not name:
            raise InvalidParameter("An access control entry needs user_name, group_name or service_principal_name")
        try:
            return self.identity.find_principal(s, name).id
        except NotFound:
            raise InvalidParameter(f"Principal '{name}' does not exist") from None

    def _level(self, entry: dict) -> P:
        value = str(entry.get("permission_level") or "").upper()
        for level in self.ladder:
            if level.value == value:
                return level
        raise InvalidParameter(f"permission_level must be one of {', '.join(p.value for p in self.ladder)}")
