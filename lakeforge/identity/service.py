"""Identity domain logic: principals, membership, tokens, authentication."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lakeforge import clock
from lakeforge.errors import (
    InvalidParameter,
    NotFound,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    Unauthenticated,
)
from lakeforge.identity import tokens as tokenlib
from lakeforge.identity.principal import ADMINS_GROUP, USERS_GROUP, Principal
from lakeforge.identity.store import (
    GROUP,
    SERVICE_PRINCIPAL,
    USER,
    GroupMemberRow,
    PrincipalRow,
    TokenRow,
)
from lakeforge.store import Database, new_id
from lakeforge.store.generation import Generation

log = logging.getLogger(__name__)
KINDS = (USER, GROUP, SERVICE_PRINCIPAL)


def new_principal_id(s: Session) -> str:
    """A numeric id, like Databricks' principal ids: databricks-sdk reads a token's owner_id and
    created_by_id as int64, and 16 digits stay exact as JavaScript numbers."""
    while True:
        pid = str(10**15 + secrets.randbelow(2**53 - 10**15))
        if s.get(PrincipalRow, pid) is None:
            return pid


def require_admin(principal: Principal, action: str = "manage users, groups, service principals and their tokens") -> None:
    """The one check for identity administration: only metastore admins may do it."""
    if not principal.is_admin:
        raise PermissionDenied(f"Only metastore admins (members of the '{ADMINS_GROUP}' group) may {action}; "
                               f"'{principal.name}' is not one")


class IdentityService:
    def __init__(self, db: Database, cache_seconds: float = 2.0, generation: Generation | None = None):
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, int, Principal, float | None]] = {}
        # Shared with the access cache and, through a file, with the other worker processes.
        self.generation = generation or Generation()
        self._lock = threading.Lock()
        self._names: dict[str, tuple[float, int, str]] = {}  # principal id -> (expires, generation, name)

    # ---- caching -------------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Called after any change to principals, membership or tokens."""
        self.generation.bump()
        with self._lock:
            self._cache.clear()
            self._names.clear()

    # ---- authentication ------------------------------------------------------------------------
    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthenticated("Missing credentials: send 'Authorization: Bearer <token>'")
        digest = tokenlib.hash_token(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit and hit[0] > now and hit[1] == self.generation.value:
            expires_epoch = hit[3]
            if expires_epoch is None or expires_epoch > time.time():
                return hit[2]
        gen = self.generation.value
        with self.db.read() as s:
            row = s.scalar(select(TokenRow).where(TokenRow.token_hash == digest))
            if row is None or row.revoked_at is not None:
                raise Unauthenticated("Invalid access token")
            if row.expires_at is not None and row.expires_at <= clock.now():
                raise Unauthenticated("Access token has expired")
            p = s.get(PrincipalRow, row.principal_id)
            if p is None or not p.active:
                raise Unauthenticated("The token's principal is inactive or deleted")
            principal = self._resolve(s, p)
            expires = row.expires_at.timestamp() if row.expires_at else None
        with self._lock:
            if gen == self.generation.value:
                self._cache[digest] = (now + self.cache_seconds, gen, principal, expires)
        return principal

    def _resolve(self, s: Session, p: PrincipalRow) -> Principal:
        group_ids = self._groups_of(s, p.id)
        names = frozenset(s.scalars(select(PrincipalRow.name).where(PrincipalRow.id.in_(group_ids)))) if group_ids else frozenset()
        return Principal(id=p.id, kind=p.kind, name=p.name, display_name=p.display_name,
                         group_ids=frozenset(group_ids), group_names=names, is_admin=ADMINS_GROUP in names)

    @staticmethod
    def _groups_of(s: Session, principal_id: str) -> set[str]:
        """Transitive closure of group membership (groups nest)."""
        seen: set[str] = set()
        frontier = {principal_id}
        while frontier:
            parents = set(s.scalars(select(GroupMemberRow.group_id).where(GroupMemberRow.member_id.in_(frontier))))
            frontier = parents - seen
            seen |= parents
        return seen

    def principal_by_id(self, principal_id: str) -> Principal:
        with self.db.read() as s:
            p = s.get(PrincipalRow, principal_id)
            if p is None:
                raise NotFound(f"Principal {principal_id} does not exist")
            return self._resolve(s, p)

    # ---- principals ----------------------------------------------------------------------------
    def create_principal(self, s: Session, kind: str, name: str, display_name: str | None = None,
                         attributes: dict | None = None, external_id: str | None = None,
                         active: bool = True) -> PrincipalRow:
        if kind not in KINDS:
            raise InvalidParameter(f"Unknown principal kind '{kind}'")
        if not name or not name.strip():
            raise InvalidParameter("A principal needs a name")
        if s.scalar(select(PrincipalRow.id).where(PrincipalRow.kind == kind, PrincipalRow.name == name)):
            label = {USER: "User", GROUP: "Group", SERVICE_PRINCIPAL: "Service principal"}[kind]
            raise ResourceAlreadyExists(f"{label} '{name}' already exists")
        now = clock.now()
        row = PrincipalRow(id=new_principal_id(s), kind=kind, name=name, display_name=display_name or name, active=active,
                           external_id=external_id, attributes=json.dumps(attributes) if attributes else None,
                           created_at=now, updated_at=now)
        s.add(row)
        s.flush()
        if kind != GROUP:
            users = s.scalar(select(PrincipalRow.id).where(PrincipalRow.kind == GROUP, PrincipalRow.name == USERS_GROUP))
            if users is not None:
                s.add(GroupMemberRow(group_id=users, member_id=row.id))
        return row

    def find_principal(self, s: Session, name: str) -> PrincipalRow:
        """Resolve a grant principal string: a user name, a service principal's application id or
        display name, or a group name (in that order)."""
        rows = s.scalars(select(PrincipalRow).where(PrincipalRow.name == name)).all()
        by_kind = {r.kind: r for r in rows}
        for kind in (USER, SERVICE_PRINCIPAL, GROUP):
            if kind in by_kind:
                return by_kind[kind]
        sp = s.scalar(select(PrincipalRow).where(PrincipalRow.kind == SERVICE_PRINCIPAL,
                                                 PrincipalRow.display_name == name))
        if sp is not None:
            return sp
        raise NotFound(f"Principal '{name}' does not exist")

    def names_of(self, s: Session, ids: set[str]) -> dict[str, str]:
        """Display names of principals (owners, grantees), cached like authentication."""
        now = time.monotonic()
        out, missing = {}, set()
        for pid in ids:
            hit = self._names.get(pid)
            if hit and hit[0] > now and hit[1] == self.generation.value:
                out[pid] = hit[2]
            else:
                missing.add(pid)
        if missing:
            gen = self.generation.value
            found = {pid: name for pid, name in
                     s.execute(select(PrincipalRow.id, PrincipalRow.name).where(PrincipalRow.id.in_(missing)))}
            with self._lock:
                if gen == self.generation.value:
                    for pid, name in found.items():
                        self._names[pid] = (now + self.cache_seconds, gen, name)
            out.update(found)
        return out

    def add_member(self, s: Session, group_id: str, member_id: str) -> None:
        if group_id == member_id:
            raise InvalidParameter("A group cannot contain itself")
        if group_id in self._members_closure(s, member_id):
            raise InvalidParameter("Adding this member would create a membership cycle")
        if s.get(GroupMemberRow, (group_id, member_id)) is None:
            s.add(GroupMemberRow(group_id=group_id, member_id=member_id))

    @staticmethod
    def _members_closure(s: Session, group_id: str) -> set[str]:
        seen: set[str] = {group_id}
        frontier = {group_id}
        while frontier:
            kids = set(s.scalars(select(GroupMemberRow.member_id).where(GroupMemberRow.group_id.in_(frontier))))
            frontier = kids - seen
            seen |= kids
        return seen

    def remove_member(self, s: Session, group_id: str, member_id: str) -> None:
        s.execute(delete(GroupMemberRow).where(GroupMemberRow.group_id == group_id,
                                               GroupMemberRow.member_id == member_id))

    # ---- tokens --------------------------------------------------------------------------------
    def issue_token(self, s: Session, principal_id: str, *, comment: str | None = None,
                    lifetime_seconds: int | None = None, created_by: str | None = None,
                    value: str | None = None) -> tuple[str, TokenRow]:
        if lifetime_seconds is not None and lifetime_seconds < 0:
            raise InvalidParameter("lifetime_seconds must not be negative")
        value = value or tokenlib.generate()
        now = clock.now()
        row = TokenRow(id=new_id(), principal_id=principal_id, token_hash=tokenlib.hash_token(value),
                       comment=comment, created_at=now, created_by=created_by,
                       expires_at=now + timedelta(seconds=lifetime_seconds) if lifetime_seconds else None,
                       revoked_at=None)
        s.add(row)
        s.flush()
        return value, row

    def revoke_token(self, s: Session, token_id: str, caller: Principal, *, any_owner: bool = False) -> None:
        row = s.get(TokenRow, token_id)
        # Someone else's token answers like an unknown one: token ids are not for guessing.
        if row is None or row.revoked_at is not None or not (any_owner or row.principal_id == caller.id):
            raise ResourceDoesNotExist(f"Token {token_id} does not exist")
        row.revoked_at = clock.now()

    # ---- bootstrap -----------------------------------------------------------------------------
    def ensure_group(self, s: Session, name: str) -> PrincipalRow:
        group = s.scalar(select(PrincipalRow).where(PrincipalRow.kind == GROUP, PrincipalRow.name == name))
        return group if group is not None else self.create_principal(s, GROUP, name)

    def ensure_admin(self, s: Session) -> tuple[PrincipalRow, bool]:
        """The bootstrap admin user, the admins and users groups; returns (admin, created)."""
        self.ensure_group(s, USERS_GROUP)
        group = self.ensure_group(s, ADMINS_GROUP)
        admin = s.scalar(select(PrincipalRow).where(PrincipalRow.kind == USER, PrincipalRow.name == "admin"))
        created = admin is None
        if created:
            admin = self.create_principal(s, USER, "admin", "Lakeforge admin")
            self.add_member(s, group.id, admin.id)
        return admin, created
