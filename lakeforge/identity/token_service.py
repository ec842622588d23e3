"""Personal access tokens (your own) and token management (admins, everyone's tokens).

A token's value exists only in the response that creates it; the database keeps its hash.
Revoking a token or deactivating its principal stops it at once: both clear the auth cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lakeforge import clock
from lakeforge.errors import InvalidParameter, InvalidState, ResourceDoesNotExist
from lakeforge.identity.principal import Principal
from lakeforge.identity.service import IdentityService, require_admin
from lakeforge.identity.store import GROUP, SERVICE_PRINCIPAL, PrincipalRow, TokenRow

NEVER = -1  # expiry_time of a token without an expiry, as Databricks answers it
MAX_LIFETIME_SECONDS = 100 * 365 * 24 * 3600
WORKSPACE_ID = 1


class TokenService:
    def __init__(self, identity: IdentityService, invalidate_access: Callable[[], None]):
        self.identity = identity
        self.db = identity.db
        self._invalidate_access = invalidate_access

    def _changed(self) -> None:
        self.identity.invalidate()
        self._invalidate_access()

    # ---- your own tokens -----------------------------------------------------------------------
    def create(self, principal: Principal, comment: str | None, lifetime_seconds: int | None) -> dict[str, Any]:
        with self.db.write() as s:
            value, row = self.identity.issue_token(s, principal.id, comment=comment, created_by=principal.id,
                                                   lifetime_seconds=_lifetime(lifetime_seconds))
            info = _public_info(row)
        self._changed()
        return {"token_value": value, "token_info": info}

    def list_own(self, principal: Principal) -> dict[str, Any]:
        with self.db.read() as s:
            rows = s.scalars(select(TokenRow).where(TokenRow.principal_id == principal.id,
                                                    TokenRow.revoked_at.is_(None))
                             .order_by(TokenRow.created_at, TokenRow.id)).all()
            return {"token_infos": [_public_info(r) for r in rows if _valid(r)]}

    def revoke_own(self, principal: Principal, token_id: str) -> None:
        with self.db.write() as s:
            self.identity.revoke_token(s, token_id, principal)
        self._changed()

    # ---- token management (admins) -------------------------------------------------------------
    def create_on_behalf_of(self, principal: Principal, application_id: str, comment: str | None,
                            lifetime_seconds: int | None) -> dict[str, Any]:
        """A token for a service principal, named by its applicationId or its id. Lakeforge extension:
        admins may also name a user's id, which is how a fresh user gets a first token without a password."""
        require_admin(principal, "create tokens on behalf of others")
        with self.db.write() as s:
            owner = s.scalar(select(PrincipalRow).where(PrincipalRow.kind == SERVICE_PRINCIPAL,
                                                        PrincipalRow.name == application_id))
            owner = owner or s.get(PrincipalRow, application_id)
            if owner is None or owner.kind == GROUP:
                raise ResourceDoesNotExist(f"No service principal or user with id '{application_id}'")
            if not owner.active:
                raise InvalidState(f"'{owner.name}' is deactivated; activate it before creating tokens for it")
            value, row = self.identity.issue_token(s, owner.id, comment=comment, created_by=principal.id,
                                                   lifetime_seconds=_lifetime(lifetime_seconds))
            info = _full_info(s, row)
        self._changed()
        return {"token_value": value, "token_info": info}

    def list_all(self, principal: Principal, created_by_id: str | None = None,
                 created_by_username: str | None = None) -> dict[str, Any]:
        require_admin(principal, "list everyone's tokens")
        with self.db.read() as s:
            q = select(TokenRow).where(TokenRow.revoked_at.is_(None)).order_by(TokenRow.created_at, TokenRow.id)
            rows = [r for r in s.scalars(q) if _valid(r)]
            if created_by_id:
                rows = [r for r in rows if _creator(r) == created_by_id]
            if created_by_username:
                ids = set(s.scalars(select(PrincipalRow.id).where(PrincipalRow.name == created_by_username)))
                rows = [r for r in rows if _creator(r) in ids]
            names = self.identity.names_of(s, {_creator(r) for r in rows})
            return {"token_infos": [_full_info(s, r, names) for r in rows]}

    def get(self, principal: Principal, token_id: str) -> dict[str, Any]:
        require_admin(principal, "read other principals' tokens")
        with self.db.read() as s:
            return {"token_info": _full_info(s, _load(s, token_id))}

    def revoke(self, principal: Principal, token_id: str) -> None:
        require_admin(principal, "revoke other principals' tokens")
        with self.db.write() as s:
            self.identity.revoke_token(s, token_id, principal, any_owner=True)
        self._changed()


def _lifetime(seconds: int | None) -> int | None:
    """Seconds until expiry; None (never) when absent, 0 or -1 as Databricks clients send it."""
    if seconds is None or seconds in (0, NEVER):
        return None
    if seconds < 0 or seconds > MAX_LIFETIME_SECONDS:
        raise InvalidParameter(f"lifetime_seconds must be between 1 and {MAX_LIFETIME_SECONDS}, "
                               "or -1 for a token that does not expire")
    return seconds


def _valid(row: TokenRow) -> bool:
    return row.revoked_at is None and (row.expires_at is None or row.expires_at > clock.now())


def _creator(row: TokenRow) -> str:
    return row.created_by or row.principal_id  # the bootstrap token has no creator but its owner


def _number(principal_id: str) -> int | str:
    # Databricks sends these ids as JSON numbers (int64); ids from before numeric ids stay strings.
    return int(principal_id) if principal_id.isdigit() else principal_id


def _load(s: Session, token_id: str) -> TokenRow:
    row = s.get(TokenRow, token_id)
    if row is None or not _valid(row):
        raise ResourceDoesNotExist(f"Token {token_id} does not exist")
    return row


def _public_info(row: TokenRow) -> dict[str, Any]:
    return {"token_id": row.id, "comment": row.comment, "creation_time": clock.to_ms(row.created_at),
            "expiry_time": clock.to_ms(row.expires_at) if row.expires_at else NEVER}


def _full_info(s: Session, row: TokenRow, names: dict[str, str] | None = None) -> dict[str, Any]:
    creator = _creator(row)
    name = (names or {}).get(creator) or s.scalar(select(PrincipalRow.name).where(PrincipalRow.id == creator))
    return {**_public_info(row), "owner_id": _number(row.principal_id), "created_by_id": _number(creator),
            "created_by_username": name, "workspace_id": WORKSPACE_ID}
