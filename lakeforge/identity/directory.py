"""The directory: SCIM administration of users, groups and service principals.

Anyone signed in may read the directory (sharing needs names); only metastore admins change it.
Rules that keep the platform reachable: the built-in groups `admins` and `users` and the bootstrap
user `admin` cannot be deleted or renamed, `admin` stays active and in `admins`, and Lakeforge alone
manages who is in `users` (every user and service principal).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lakeforge import clock
from lakeforge.errors import (
    InvalidParameter,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)
from lakeforge.identity import scim, scim_filter
from lakeforge.identity.principal import ADMINS_GROUP, USERS_GROUP, Principal
from lakeforge.identity.service import IdentityService, require_admin
from lakeforge.identity.store import (
    GROUP,
    SERVICE_PRINCIPAL,
    USER,
    GroupMemberRow,
    PrincipalRow,
)

BOOTSTRAP_ADMIN = "admin"
BUILTIN_GROUPS = (ADMINS_GROUP, USERS_GROUP)
MAX_COUNT = 10_000  # databricks-sdk asks for pages of 10000
LABEL = {USER: "User", GROUP: "Group", SERVICE_PRINCIPAL: "Service principal"}


class Directory:
    def __init__(self, identity: IdentityService, invalidate_access: Callable[[], None]):
        self.identity = identity
        self.db = identity.db
        self._invalidate_access = invalidate_access

    def _changed(self) -> None:
        # Principals and membership decide who a token is and which grants apply to them.
        self.identity.invalidate()
        self._invalidate_access()

    # ---- reads ---------------------------------------------------------------------------------
    def me(self, principal: Principal) -> dict[str, Any]:
        with self.db.read() as s:
            row = s.get(PrincipalRow, principal.id)
            if row is None:
                raise ResourceDoesNotExist(f"Principal {principal.id} does not exist")
            resource = self._render(s, row)
            if row.kind == SERVICE_PRINCIPAL:
                # Code written for Databricks reads `me().user_name`; a service principal's is its applicationId.
                resource["userName"] = row.name
        return resource

    def get(self, principal: Principal, kind: str, principal_id: str) -> dict[str, Any]:
        with self.db.read() as s:
            return self._render(s, self._load(s, kind, principal_id))

    def list(self, principal: Principal, kind: str, *, filter: str | None = None, sort_by: str | None = None,
             descending: bool = False, start_index: int | None = None, count: int | None = None) -> dict[str, Any]:
        predicate = scim_filter.parse(filter) if filter and filter.strip() else None
        with self.db.read() as s:
            rows = s.scalars(select(PrincipalRow).where(PrincipalRow.kind == kind)
                             .order_by(PrincipalRow.created_at, PrincipalRow.id)).all()
            graph = _Graph.whole(s)
            resources = [graph.render(row) for row in rows]
        if predicate is not None:
            resources = [r for r in resources if predicate(r)]
        if sort_by:
            resources = _sorted(resources, sort_by, descending)
        start = max(start_index or 1, 1)  # SCIM: startIndex is 1-based; below 1 means 1
        count = MAX_COUNT if count is None else max(0, min(count, MAX_COUNT))
        return scim.list_response(resources[start - 1:start - 1 + count], len(resources), start)

    # ---- writes --------------------------------------------------------------------------------
    def create(self, principal: Principal, kind: str, attrs: dict[str, Any]) -> dict[str, Any]:
        require_admin(principal)
        name = attrs.get(scim.NAME_ATTRIBUTE[kind])
        if kind == SERVICE_PRINCIPAL and not name:
            name = str(uuid.uuid4())
        if not name or not name.strip():
            raise InvalidParameter(f"'{scim.NAME_ATTRIBUTE[kind]}' is required to create a {LABEL[kind].lower()}")
        display = name if kind == GROUP else attrs.get("displayName")
        extras = {k: attrs[k] for k in scim.EXTRAS if attrs.get(k)}
        with self.db.write() as s:
            row = self.identity.create_principal(s, kind, name, display, attributes=extras or None,
                                                 external_id=attrs.get("externalId"),
                                                 active=attrs.get("active", True) is not False)
            if attrs.get("members"):
                self._set_members(s, row, attrs["members"])
            if attrs.get("groups"):
                self._set_groups(s, row, attrs["groups"])
            resource = self._render(s, row)
        self._changed()
        return resource

    def replace(self, principal: Principal, kind: str, principal_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
        require_admin(principal)
        with self.db.write() as s:
            row = self._load(s, kind, principal_id)
            self._update(s, row, attrs)
            resource = self._render(s, row)
        self._changed()
        return resource

    def patch(self, principal: Principal, kind: str, principal_id: str,
              operations: list[scim.PatchOperation]) -> dict[str, Any]:
        require_admin(principal)
        with self.db.write() as s:
            row = self._load(s, kind, principal_id)
            # Operations apply to what the principal holds itself: direct groups, not inherited ones.
            current = _Graph.around(s, row.id).render(row, direct_only=True)
            self._update(s, row, scim.apply_patch(kind, current, operations))
            resource = self._render(s, row)
        self._changed()
        return resource

    def delete(self, principal: Principal, kind: str, principal_id: str) -> None:
        require_admin(principal)
        with self.db.write() as s:
            row = self._load(s, kind, principal_id)
            if _is_builtin(row):
                raise InvalidParameter(f"The built-in {LABEL[kind].lower()} '{row.name}' cannot be deleted")
            s.delete(row)  # memberships, grants and tokens go with it (ON DELETE CASCADE)
        self._changed()

    # ---- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _load(s: Session, kind: str, principal_id: str) -> PrincipalRow:
        row = s.get(PrincipalRow, principal_id)
        if row is None or row.kind != kind:
            raise ResourceDoesNotExist(f"{LABEL[kind]} {principal_id} does not exist")
        return row

    @staticmethod
    def _render(s: Session, row: PrincipalRow) -> dict[str, Any]:
        return _Graph.around(s, row.id).render(row)

    def _update(self, s: Session, row: PrincipalRow, attrs: dict[str, Any]) -> None:
        name_attr = scim.NAME_ATTRIBUTE[row.kind]
        if name_attr in attrs:
            self._rename(s, row, attrs[name_attr])
        if row.kind != GROUP and "displayName" in attrs:
            row.display_name = attrs["displayName"] or row.name
        if "active" in attrs:
            if attrs["active"] is None:
                raise InvalidParameter("'active' cannot be removed; set it to true or false")
            if not attrs["active"] and _is_builtin(row):
                raise InvalidParameter(f"The bootstrap user '{row.name}' cannot be deactivated")
            row.active = attrs["active"]
        if "externalId" in attrs:
            row.external_id = attrs["externalId"]
        if any(k in attrs for k in scim.EXTRAS):
            extras = scim.extras_of(row)
            for key in scim.EXTRAS:
                if key in attrs:
                    if attrs[key]:
                        extras[key] = attrs[key]
                    else:
                        extras.pop(key, None)
            row.attributes = json.dumps(extras) if extras else None
        if "members" in attrs:
            self._set_members(s, row, attrs["members"] or [])
        if "groups" in attrs:
            self._set_groups(s, row, attrs["groups"] or [])
        row.updated_at = clock.now()

    @staticmethod
    def _rename(s: Session, row: PrincipalRow, new: str | None) -> None:
        attr = scim.NAME_ATTRIBUTE[row.kind]
        if not new or not new.strip():
            raise InvalidParameter(f"'{attr}' cannot be empty")
        if new == row.name:
            return
        if _is_builtin(row):
            raise InvalidParameter(f"The built-in {LABEL[row.kind].lower()} '{row.name}' cannot be renamed")
        taken = s.scalar(select(PrincipalRow.id).where(PrincipalRow.kind == row.kind, PrincipalRow.name == new))
        if taken:
            raise ResourceAlreadyExists(f"{LABEL[row.kind]} '{new}' already exists")
        if row.kind == GROUP or row.display_name == row.name:
            row.display_name = new  # a display name that only echoed the old name follows it
        row.name = new

    def _set_members(self, s: Session, group: PrincipalRow, values: list[dict]) -> None:
        if group.kind != GROUP:
            raise InvalidParameter(f"Only groups have members; '{group.name}' is a {LABEL[group.kind].lower()}")
        wanted = {v["value"] for v in values}
        current = set(s.scalars(select(GroupMemberRow.member_id).where(GroupMemberRow.group_id == group.id)))
        for member_id in sorted(wanted - current):
            self._link(s, group, _principal(s, member_id), add=True)
        for member_id in sorted(current - wanted):
            self._link(s, group, s.get(PrincipalRow, member_id), add=False)

    def _set_groups(self, s: Session, member: PrincipalRow, values: list[dict]) -> None:
        wanted = {v["value"] for v in values}
        current = set(s.scalars(select(GroupMemberRow.group_id).where(GroupMemberRow.member_id == member.id)))
        if member.kind != GROUP:
            # Users and service principals belong to `users` whatever the request lists.
            users = s.scalar(select(PrincipalRow.id).where(PrincipalRow.kind == GROUP,
                                                           PrincipalRow.name == USERS_GROUP))
            wanted.discard(users)
            current.discard(users)
        for group_id in sorted(wanted - current):
            self._link(s, _principal(s, group_id), member, add=True)
        for group_id in sorted(current - wanted):
            self._link(s, s.get(PrincipalRow, group_id), member, add=False)

    def _link(self, s: Session, group: PrincipalRow, member: PrincipalRow, *, add: bool) -> None:
        if group.kind != GROUP:
            raise InvalidParameter(f"'{group.name}' ({group.id}) is not a group")
        if group.name == USERS_GROUP:
            raise InvalidParameter(f"Lakeforge manages the membership of '{USERS_GROUP}': "
                                   "every user and service principal belongs to it")
        if not add and group.name == ADMINS_GROUP and member.kind == USER and member.name == BOOTSTRAP_ADMIN:
            raise InvalidParameter(f"The bootstrap user '{BOOTSTRAP_ADMIN}' stays in '{ADMINS_GROUP}'")
        if add:
            self.identity.add_member(s, group.id, member.id)  # refuses cycles with a 400
        else:
            self.identity.remove_member(s, group.id, member.id)


def _principal(s: Session, principal_id: str) -> PrincipalRow:
    row = s.get(PrincipalRow, principal_id)
    if row is None:
        raise ResourceDoesNotExist(f"Principal {principal_id} does not exist")
    return row


def _is_builtin(row: PrincipalRow) -> bool:
    return (row.kind == GROUP and row.name in BUILTIN_GROUPS) or (row.kind == USER and row.name == BOOTSTRAP_ADMIN)


def _sorted(resources: list[dict], sort_by: str, descending: bool) -> list[dict]:
    def key(r):
        values = scim_filter.values_at(r, sort_by)
        return str(values[0]).casefold() if values and values[0] is not None else None

    present = [r for r in resources if key(r) is not None]
    absent = [r for r in resources if key(r) is None]  # SCIM: resources without the attribute go last
    return sorted(present, key=key, reverse=descending) + absent


class _Graph:
    """The membership edges and names needed to render some principals."""

    def __init__(self, parents: dict[str, set[str]], children: dict[str, set[str]],
                 info: dict[str, tuple[str, str]]):
        self.parents = parents  # member id -> ids of the groups it is directly in
        self.children = children  # group id -> ids of its direct members
        self.info = info  # principal id -> (kind, display)

    @classmethod
    def whole(cls, s: Session) -> _Graph:
        parents: dict[str, set[str]] = {}
        children: dict[str, set[str]] = {}
        for group_id, member_id in s.execute(select(GroupMemberRow.group_id, GroupMemberRow.member_id)):
            parents.setdefault(member_id, set()).add(group_id)
            children.setdefault(group_id, set()).add(member_id)
        return cls(parents, children, _info(s, None))

    @classmethod
    def around(cls, s: Session, principal_id: str) -> _Graph:
        """Only what one principal's resource shows: its groups (transitively) and its members."""
        parents: dict[str, set[str]] = {}
        frontier, seen = {principal_id}, {principal_id}
        while frontier:
            edges = s.execute(select(GroupMemberRow.group_id, GroupMemberRow.member_id)
                              .where(GroupMemberRow.member_id.in_(frontier))).all()
            for group_id, member_id in edges:
                parents.setdefault(member_id, set()).add(group_id)
            frontier = {g for g, _ in edges} - seen
            seen |= frontier
        members = set(s.scalars(select(GroupMemberRow.member_id).where(GroupMemberRow.group_id == principal_id)))
        return cls(parents, {principal_id: members}, _info(s, seen | members))

    def render(self, row: PrincipalRow, direct_only: bool = False) -> dict[str, Any]:
        direct = self.parents.get(row.id, set())
        groups = [self._ref(g, True) for g in direct]
        if not direct_only:
            groups += [self._ref(g, False) for g in self._ancestors(row.id) - direct]
        members = [self._ref(m, True) for m in self.children.get(row.id, ())] if row.kind == GROUP else None
        return scim.render(row, groups=sorted(groups, key=_by_display),
                           members=sorted(members, key=_by_display) if members is not None else None)

    def _ancestors(self, principal_id: str) -> set[str]:
        seen: set[str] = set()
        frontier = set(self.parents.get(principal_id, ()))
        while frontier:
            seen |= frontier
            frontier = {p for f in frontier for p in self.parents.get(f, ())} - seen
        return seen

    def _ref(self, principal_id: str, direct: bool) -> scim.Ref:
        kind, display = self.info.get(principal_id, (USER, principal_id))
        return scim.Ref(principal_id, kind, display, direct)


def _by_display(ref: scim.Ref) -> tuple[str, str]:
    return ref.display.casefold(), ref.id


def _info(s: Session, ids: set[str] | None) -> dict[str, tuple[str, str]]:
    q = select(PrincipalRow.id, PrincipalRow.kind, PrincipalRow.name, PrincipalRow.display_name)
    if ids is not None:
        if not ids:
            return {}
        q = q.where(PrincipalRow.id.in_(ids))
    return {pid: (kind, name if kind == GROUP else (display or name)) for pid, kind, name, display in s.execute(q)}
