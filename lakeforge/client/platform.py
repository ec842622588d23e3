"""Platform areas of the SDK: identity, tokens, secrets, audit, lineage."""

from __future__ import annotations

import base64

from lakeforge.client.catalog import _Area
from lakeforge.client.connection import Record

SCIM = "/api/2.0/preview/scim/v2"


class _Scim(_Area):
    resource = ""

    def list(self, filter: str | None = None) -> list[Record]:
        return self._c.request("GET", f"{SCIM}/{self.resource}", params={"filter": filter}).get("Resources", [])

    def get(self, id: str) -> Record:
        return self._c.request("GET", f"{SCIM}/{self.resource}/{id}")

    def delete(self, id: str) -> None:
        self._c.request("DELETE", f"{SCIM}/{self.resource}/{id}")


class Users(_Scim):
    resource = "Users"

    def create(self, user_name: str, display_name: str | None = None) -> Record:
        return self._c.request("POST", f"{SCIM}/Users", json={"userName": user_name, "displayName": display_name})

    def find(self, user_name: str) -> Record | None:
        found = self.list(filter=f'userName eq "{user_name}"')
        return found[0] if found else None

    def me(self) -> Record:
        return self._c.request("GET", f"{SCIM}/Me")


class Groups(_Scim):
    resource = "Groups"

    def create(self, name: str, members: list[str] | None = None) -> Record:
        return self._c.request("POST", f"{SCIM}/Groups", json={
            "displayName": name, "members": [{"value": m} for m in members or []]})

    def find(self, name: str) -> Record | None:
        found = self.list(filter=f'displayName eq "{name}"')
        return found[0] if found else None

    def add_member(self, group_id: str, member_id: str) -> None:
        self._patch(group_id, "add", member_id)

    def remove_member(self, group_id: str, member_id: str) -> None:
        self._patch(group_id, "remove", member_id)

    def _patch(self, group_id: str, op: str, member_id: str) -> None:
        value = [{"value": member_id}]
        operation = {"op": op, "path": "members", "value": value} if op == "add" else \
            {"op": op, "path": f'members[value eq "{member_id}"]'}
        self._c.request("PATCH", f"{SCIM}/Groups/{group_id}", json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [operation]})


class ServicePrincipals(_Scim):
    resource = "ServicePrincipals"

    def create(self, display_name: str) -> Record:
        return self._c.request("POST", f"{SCIM}/ServicePrincipals", json={"displayName": display_name})


class Tokens(_Area):
    def create(self, comment: str | None = None, lifetime_seconds: int | None = None) -> Record:
        return self._c.request("POST", "/api/2.0/token/create",
                               json={"comment": comment, "lifetime_seconds": lifetime_seconds})

    def list(self) -> list[Record]:
        return self._c.request("GET", "/api/2.0/token/list").get("token_infos", [])

    def revoke(self, token_id: str) -> None:
        self._c.request("POST", "/api/2.0/token/delete", json={"token_id": token_id})

    def create_for(self, principal_id: str, comment: str | None = None, lifetime_seconds: int | None = None) -> Record:
        """Admins: a token on behalf of a service principal (or user)."""
        return self._c.request("POST", "/api/2.0/token-management/on-behalf-of/tokens", json={
            "application_id": principal_id, "comment": comment, "lifetime_seconds": lifetime_seconds})


class Secrets(_Area):
    def create_scope(self, scope: str) -> None:
        self._c.request("POST", "/api/2.0/secrets/scopes/create", json={"scope": scope})

    def list_scopes(self) -> list[Record]:
        return self._c.request("GET", "/api/2.0/secrets/scopes/list").get("scopes", [])

    def delete_scope(self, scope: str) -> None:
        self._c.request("POST", "/api/2.0/secrets/scopes/delete", json={"scope": scope})

    def put(self, scope: str, key: str, value: str | bytes) -> None:
        body = {"scope": scope, "key": key}
        if isinstance(value, bytes):
            body["bytes_value"] = base64.b64encode(value).decode()
        else:
            body["string_value"] = value
        self._c.request("POST", "/api/2.0/secrets/put", json=body)

    def get(self, scope: str, key: str) -> bytes:
        value = self._c.request("GET", "/api/2.0/secrets/get", params={"scope": scope, "key": key})["value"]
        return base64.b64decode(value)

    def list(self, scope: str) -> list[Record]:
        return self._c.request("GET", "/api/2.0/secrets/list", params={"scope": scope}).get("secrets", [])

    def delete(self, scope: str, key: str) -> None:
        self._c.request("POST", "/api/2.0/secrets/delete", json={"scope": scope, "key": key})

    def put_acl(self, scope: str, principal: str, permission: str) -> None:
        self._c.request("POST", "/api/2.0/secrets/acls/put",
                        json={"scope": scope, "principal": principal, "permission": permission})

    def list_acls(self, scope: str) -> list[Record]:
        return self._c.request("GET", "/api/2.0/secrets/acls/list", params={"scope": scope}).get("items", [])


class Audit(_Area):
    def search(self, *, principal: str | None = None, action: str | None = None, securable: str | None = None,
               service: str | None = None, status_code: int | None = None, since_ms: int | None = None,
               limit: int = 100) -> list[Record]:
        return self._c.request("GET", "/api/2.0/lakeforge/audit", params={
            "principal": principal, "action": action, "securable": securable, "service": service,
            "status_code": status_code, "since_ms": since_ms, "limit": limit}).get("events", [])


class Lineage(_Area):
    def graph(self, name: str, securable_type: str | None = None, direction: str = "both", depth: int = 3) -> Record:
        """`securable_type` is inferred from the catalog when not given."""
        return self._c.request("GET", "/api/2.0/lineage/graph", params={
            "type": securable_type, "name": name, "direction": direction, "depth": depth})

    def record(self, source: tuple[str, str], target: tuple[str, str], entity_type: str,
               entity_id: str | None = None) -> Record:
        return self._c.request("POST", "/api/2.0/lineage/edges", json={
            "edges": [{"source": {"type": source[0], "name": source[1]},
                       "target": {"type": target[0], "name": target[1]}}],
            "entity_type": entity_type, "entity_id": entity_id})


__all__ = ["Users", "Groups", "ServicePrincipals", "Tokens", "Secrets", "Audit", "Lineage"]
