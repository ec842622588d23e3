"""Secret scopes, encrypted values and scope ACLs (the Databricks Secrets API).

Every decision goes through the one access function on `Kind.SECRET_SCOPE`, whose ACL ladder is
READ < WRITE < MANAGE. ACLs are GrantRow rows (securable_kind "secret_scope"), one level per
principal. The creator of a scope gets MANAGE (as in Databricks, where that ACL can later be
removed; admins keep full access), so scopes have no separate owner.

Values are decrypted here and nowhere else: `reveal()` is the one way out, used by `get_secret`
and by secret references. No value ever goes into a log line, an error message or an audit row.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lakeforge import clock
from lakeforge.audit.context import note_securable
from lakeforge.catalog.access import AccessControl, Securable
from lakeforge.catalog.privileges import ACL_LADDERS, Kind, P
from lakeforge.catalog.store import GrantRow
from lakeforge.errors import AlreadyExists, InvalidParameter, NotFound, ResourceAlreadyExists, ResourceDoesNotExist
from lakeforge.identity.principal import Principal
from lakeforge.identity.service import IdentityService
from lakeforge.secrets.crypto import SecretCipher
from lakeforge.secrets.references import SecretReferences
from lakeforge.secrets.store import SecretRow, SecretScopeRow
from lakeforge.store import Database, new_id

log = logging.getLogger(__name__)

# Databricks: alphanumerics, dashes, underscores and periods, at most 128 characters.
NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
MAX_VALUE_BYTES = 128 * 1024
BACKEND = "DATABRICKS"
LADDER = ACL_LADDERS[Kind.SECRET_SCOPE]  # READ, WRITE, MANAGE
KIND = Kind.SECRET_SCOPE.value


class ScopeAlreadyExists(ResourceAlreadyExists):
    status = 400  # what Databricks answers; clients map the error by its code


def check_name(value, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidParameter(f"{what} is required")
    if not NAME.match(value):
        raise InvalidParameter(f"Invalid {what} '{value[:140]}': use 1-128 letters, digits, dashes, "
                               f"underscores and periods")
    return value


def value_bytes(string_value: str | None, bytes_value: str | None) -> bytes:
    """The secret's bytes from exactly one of the two wire fields. Messages never quote the value."""
    if (string_value is None) == (bytes_value is None):
        raise InvalidParameter("Exactly one of string_value or bytes_value must be given")
    if string_value is not None:
        try:
            data = string_value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidParameter("string_value is not valid UTF-8 text") from None
    else:
        try:
            data = base64.b64decode(bytes_value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidParameter("bytes_value must be base64-encoded") from None
    if len(data) > MAX_VALUE_BYTES:
        raise InvalidParameter(f"The secret value is {len(data)} bytes; the limit is {MAX_VALUE_BYTES} bytes")
    return data


def parse_permission(value) -> P:
    level = str(value or "").strip().upper()
    if level not in {p.value for p in LADDER}:
        raise InvalidParameter(f"Invalid permission '{value}': expected READ, WRITE or MANAGE")
    return P(level)


class SecretsService:
    def __init__(self, db: Database, access: AccessControl, identity: IdentityService, cipher: SecretCipher):
        self.db = db
        self.access = access
        self.identity = identity
        self.cipher = cipher
        # `{{secrets/scope/key}}` in configs of endpoints, the gateway, jobs.
        self.references = SecretReferences(self)

    # ---- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _scope(s: Session, name: str) -> SecretScopeRow:
        check_name(name, "scope")
        row = s.scalar(select(SecretScopeRow).where(SecretScopeRow.name == name))
        if row is None:
            raise ResourceDoesNotExist(f"Scope {name} does not exist!")
        return row

    @staticmethod
    def securable(row: SecretScopeRow) -> Securable:
        return Securable(Kind.SECRET_SCOPE, row.id, row.name, None)

    def authorized_scope(self, s: Session, caller: Principal, name: str, level: P) -> SecretScopeRow:
        row = self._scope(s, name)
        self.access.authorize(caller, level, self.securable(row))
        return row

    def _principal_id(self, s: Session, name) -> str:
        if not isinstance(name, str) or not name.strip():
            raise InvalidParameter("principal is required")
        try:
            return self.identity.find_principal(s, name).id
        except NotFound:
            raise InvalidParameter(f"Principal '{name}' does not exist") from None

    # ---- scopes --------------------------------------------------------------------------------
    def create_scope(self, caller: Principal, scope: str, initial_manage_principal: str | None = None,
                     scope_backend_type: str | None = None) -> dict:
        check_name(scope, "scope")
        if (scope_backend_type or BACKEND).upper() != BACKEND:
            raise InvalidParameter(f"Only {BACKEND}-backed secret scopes are supported")
        note_securable(scope)
        try:
            with self.db.write() as s:
                if s.scalar(select(SecretScopeRow.id).where(SecretScopeRow.name == scope)) is not None:
                    raise ScopeAlreadyExists(f"Scope {scope} already exists!")
                manager = (self._principal_id(s, initial_manage_principal) if initial_manage_principal
                           else caller.id)
                row = SecretScopeRow(id=new_id(), name=scope, backend_type=BACKEND, created_at=clock.now(),
                                     created_by=caller.id)
                s.add(row)
                s.flush()
                s.add(GrantRow(securable_kind=KIND, securable_id=row.id, principal_id=manager,
                               privilege=P.MANAGE.value))
        except ScopeAlreadyExists:
            raise
        except AlreadyExists:  # a concurrent create won the unique name
            raise ScopeAlreadyExists(f"Scope {scope} already exists!") from None
        self.access.invalidate()
        return {}

    def list_scopes(self, caller: Principal) -> dict:
        with self.db.read() as s:
            rows = s.scalars(select(SecretScopeRow).order_by(SecretScopeRow.name)).all()
            visible = [r for r in rows if self.access.allowed(caller, P.READ, self.securable(r))]
            return {"scopes": [{"name": r.name, "backend_type": r.backend_type} for r in visible]}

    def delete_scope(self, caller: Principal, scope: str) -> dict:
        with self.db.write() as s:
            row = self.authorized_scope(s, caller, scope, P.MANAGE)
            s.execute(delete(SecretRow).where(SecretRow.scope_id == row.id))
            s.execute(delete(GrantRow).where(GrantRow.securable_kind == KIND, GrantRow.securable_id == row.id))
            s.delete(row)
        self.access.invalidate()
        return {}

    # ---- secrets -------------------------------------------------------------------------------
    def put_secret(self, caller: Principal, scope: str, key: str, string_value: str | None = None,
                   bytes_value: str | None = None) -> dict:
        check_name(scope, "scope")
        check_name(key, "key")
        data = value_bytes(string_value, bytes_value)
        note_securable(f"{scope}/{key}")
        try:
            self._store(caller, scope, key, data)
        except AlreadyExists:  # a concurrent first put of the same key won; this one becomes an update
            self._store(caller, scope, key, data)
        return {}

    def _store(self, caller: Principal, scope: str, key: str, data: bytes) -> None:
        with self.db.write() as s:
            row = self.authorized_scope(s, caller, scope, P.WRITE)
            nonce, ciphertext = self.cipher.encrypt(row.id, key, data)  # a fresh nonce on every write
            secret = s.get(SecretRow, (row.id, key))
            if secret is None:
                s.add(SecretRow(scope_id=row.id, key=key, nonce=nonce, ciphertext=ciphertext, updated_at=clock.now()))
            else:
                secret.nonce, secret.ciphertext, secret.updated_at = nonce, ciphertext, clock.now()

    def reveal(self, caller: Principal, scope: str, key: str) -> bytes:
        """The decrypted value, for a caller holding READ on the scope. The only way a value leaves."""
        check_name(scope, "scope")
        check_name(key, "key")
        note_securable(f"{scope}/{key}")
        with self.db.read() as s:
            row = self.authorized_scope(s, caller, scope, P.READ)
            secret = s.get(SecretRow, (row.id, key))
            if secret is None:
                raise ResourceDoesNotExist(f"Secret {key} does not exist in scope {scope}!")
            return self.cipher.decrypt(row.id, key, secret.nonce, secret.ciphertext)

    def get_secret(self, caller: Principal, scope: str, key: str) -> dict:
        # Databricks answers the bytes base64-encoded; clients decode them.
        return {"key": key, "value": base64.b64encode(self.reveal(caller, scope, key)).decode("ascii")}

    def list_secrets(self, caller: Principal, scope: str) -> dict:
        with self.db.read() as s:
            row = self.authorized_scope(s, caller, scope, P.READ)
            secrets = s.execute(select(SecretRow.key, SecretRow.updated_at)
                                .where(SecretRow.scope_id == row.id).order_by(SecretRow.key)).all()
        return {"secrets": [{"key": k, "last_updated_timestamp": clock.to_ms(t)} for k, t in secrets]}

    def delete_secret(self, caller: Principal, scope: str, key: str) -> dict:
        check_name(key, "key")
        note_securable(f"{scope}/{key}")
        with self.db.write() as s:
            row = self.authorized_scope(s, caller, scope, P.WRITE)
            secret = s.get(SecretRow, (row.id, key))
            if secret is None:
                raise ResourceDoesNotExist(f"Secret {key} does not exist in scope {scope}!")
            s.delete(secret)
        return {}

    # ---- ACLs ----------------------------------------------------------------------------------
    def put_acl(self, caller: Principal, scope: str, principal: str, permission: str) -> dict:
        level = parse_permission(permission)
        with self.db.write() as s:
            row = self.authorized_scope(s, caller, scope, P.MANAGE)
            pid = self._principal_id(s, principal)
            # One level per principal: put replaces whatever was there.
            s.execute(delete(GrantRow).where(GrantRow.securable_kind == KIND, GrantRow.securable_id == row.id,
                                             GrantRow.principal_id == pid))
            s.add(GrantRow(securable_kind=KIND, securable_id=row.id, principal_id=pid, privilege=level.value))
        self.access.invalidate()
        return {}

    def get_acl(self, caller: Principal, scope: str, principal: str) -> dict:
        with self.db.read() as s:
            row = self.authorized_scope(s, caller, scope, P.MANAGE)
            pid = self._principal_id(s, principal)
            items = self._acls(s, row, pid)
        if not items:
            raise ResourceDoesNotExist(f"No ACL for principal {principal} on scope {scope}")
        return items[0]

    def list_acls(self, caller: Principal, scope: str) -> dict:
        with self.db.read() as s:
            row = self.authorized_scope(s, caller, scope, P.MANAGE)
            return {"items": self._acls(s, row)}

    def delete_acl(self, caller: Principal, scope: str, principal: str) -> dict:
        with self.db.write() as s:
            row = self.authorized_scope(s, caller, scope, P.MANAGE)
            pid = self._principal_id(s, principal)
            gone = s.execute(delete(GrantRow).where(GrantRow.securable_kind == KIND, GrantRow.securable_id == row.id,
                                                    GrantRow.principal_id == pid)).rowcount
            if not gone:
                raise ResourceDoesNotExist(f"No ACL for principal {principal} on scope {scope}")
        self.access.invalidate()
        return {}

    def _acls(self, s: Session, row: SecretScopeRow, principal_id: str | None = None) -> list[dict]:
        q = select(GrantRow.principal_id, GrantRow.privilege).where(GrantRow.securable_kind == KIND,
                                                                   GrantRow.securable_id == row.id)
        if principal_id is not None:
            q = q.where(GrantRow.principal_id == principal_id)
        top: dict[str, int] = {}
        order = [p.value for p in LADDER]
        for pid, priv in s.execute(q):
            if priv in order:
                top[pid] = max(top.get(pid, 0), order.index(priv))
        names = self.identity.names_of(s, set(top))
        items = [{"principal": names.get(pid, pid), "permission": order[i]} for pid, i in top.items()]
        return sorted(items, key=lambda item: item["principal"])


__all__ = ["MAX_VALUE_BYTES", "ScopeAlreadyExists", "SecretsService"]
