"""The privilege matrix: for every endpoint, a principal without the privilege gets 403 and, after
being granted exactly the privileges listed, the same request succeeds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import httpx
import pytest

UC = "/api/2.1/unity-catalog"
COLS = [{"name": "id", "type_text": "bigint", "type_name": "LONG", "position": 0}]


@dataclass
class Case:
    id: str
    method: str
    path: str
    body: dict | bytes | None = None
    # (securable type, full name, privileges) granted before the second try; "{c}" is the catalog.
    grants: list[tuple[str, str, list[str]]] = field(default_factory=list)
    admin_only: bool = False  # no grant suffices: only metastore admins (checked with a group join)
    ok: int = 200


USE = [("catalog", "{c}", ["USE_CATALOG"]), ("schema", "{c}.s", ["USE_SCHEMA"])]

CASES = [
    # metastore and catalogs
    Case("catalogs.create", "POST", "/catalogs", {"name": "{c}_new"}, [("metastore", "metastore", ["CREATE_CATALOG"])]),
    Case("catalogs.get", "GET", "/catalogs/{c}", grants=[("catalog", "{c}", ["USE_CATALOG"])]),
    Case("catalogs.update", "PATCH", "/catalogs/{c}", {"comment": "x"}, [("catalog", "{c}", ["MANAGE"])]),
    Case("catalogs.delete", "DELETE", "/catalogs/{c}_empty", grants=[("catalog", "{c}_empty", ["MANAGE"])]),
    # schemas
    Case("schemas.create", "POST", "/schemas", {"name": "s_new", "catalog_name": "{c}"},
         [("catalog", "{c}", ["USE_CATALOG", "CREATE_SCHEMA"])]),
    Case("schemas.list", "GET", "/schemas?catalog_name={c}", grants=[("catalog", "{c}", ["USE_CATALOG"])]),
    Case("schemas.get", "GET", "/schemas/{c}.s", grants=USE),
    Case("schemas.update", "PATCH", "/schemas/{c}.s", {"comment": "x"},
         [("catalog", "{c}", ["USE_CATALOG"]), ("schema", "{c}.s", ["MANAGE"])]),
    Case("schemas.delete", "DELETE", "/schemas/{c}.s_empty",
         grants=[("catalog", "{c}", ["USE_CATALOG"]), ("schema", "{c}.s_empty", ["MANAGE"])]),
    # grants
    Case("grants.get", "GET", "/permissions/table/{c}.s.t", grants=[*USE, ("table", "{c}.s.t", ["SELECT"])]),
    Case("grants.update", "PATCH", "/permissions/table/{c}.s.t",
         {"changes": [{"principal": "users", "add": ["SELECT"]}]}, [*USE, ("table", "{c}.s.t", ["MANAGE"])]),
    # tables
    Case("tables.create", "POST", "/tables", {"name": "t_new", "catalog_name": "{c}", "schema_name": "s",
                                              "table_type": "MANAGED", "data_source_format": "DELTA", "columns": COLS},
         [*USE, ("schema", "{c}.s", ["CREATE_TABLE"])]),
    Case("tables.get", "GET", "/tables/{c}.s.t", grants=[*USE, ("table", "{c}.s.t", ["SELECT"])]),
    Case("tables.get via schema SELECT", "GET", "/tables/{c}.s.t", grants=[*USE, ("schema", "{c}.s", ["SELECT"])]),
    Case("tables.exists", "GET", "/tables/{c}.s.t/exists", grants=[*USE, ("table", "{c}.s.t", ["SELECT"])]),
    Case("tables.update", "PATCH", "/tables/{c}.s.t", {"comment": "x"}, [*USE, ("table", "{c}.s.t", ["MANAGE"])]),
    Case("tables.delete", "DELETE", "/tables/{c}.s.t_del", grants=[*USE, ("table", "{c}.s.t_del", ["MANAGE"])]),
    Case("table credentials READ", "POST", "/temporary-table-credentials",
         {"table_id": "{t_id}", "operation": "READ"}, [*USE, ("table", "{c}.s.t", ["SELECT"])]),
    Case("table credentials READ_WRITE", "POST", "/temporary-table-credentials",
         {"table_id": "{t_id}", "operation": "READ_WRITE"}, [*USE, ("table", "{c}.s.t", ["SELECT", "MODIFY"])]),
    # volumes and their files
    Case("volumes.create", "POST", "/volumes", {"name": "v_new", "catalog_name": "{c}", "schema_name": "s",
                                                "volume_type": "MANAGED"}, [*USE, ("schema", "{c}.s", ["CREATE_VOLUME"])]),
    Case("volumes.get", "GET", "/volumes/{c}.s.v", grants=[*USE, ("volume", "{c}.s.v", ["READ_VOLUME"])]),
    Case("volumes.update", "PATCH", "/volumes/{c}.s.v", {"comment": "x"}, [*USE, ("volume", "{c}.s.v", ["MANAGE"])]),
    Case("volumes.delete", "DELETE", "/volumes/{c}.s.v_del", grants=[*USE, ("volume", "{c}.s.v_del", ["MANAGE"])]),
    Case("volume credentials", "POST", "/temporary-volume-credentials",
         {"volume_id": "{v_id}", "operation": "READ_VOLUME"}, [*USE, ("volume", "{c}.s.v", ["READ_VOLUME"])]),
    Case("files.upload", "PUT", "/api/2.0/fs/files/Volumes/{c}/s/v/new.txt?overwrite=true", b"hello",
         [*USE, ("volume", "{c}.s.v", ["WRITE_VOLUME"])]),
    Case("files.download", "GET", "/api/2.0/fs/files/Volumes/{c}/s/v/hello.txt",
         grants=[*USE, ("volume", "{c}.s.v", ["READ_VOLUME"])]),
    Case("directories.list", "GET", "/api/2.0/fs/directories/Volumes/{c}/s/v",
         grants=[*USE, ("volume", "{c}.s.v", ["READ_VOLUME"])]),
    Case("files.delete", "DELETE", "/api/2.0/fs/files/Volumes/{c}/s/v/del.txt",
         grants=[*USE, ("volume", "{c}.s.v", ["WRITE_VOLUME"])]),
    # functions
    Case("functions.create", "POST", "/functions", {"function_info": {
        "name": "f_new", "catalog_name": "{c}", "schema_name": "s", "data_type": "INT", "full_data_type": "INT",
        "routine_body": "SQL", "routine_definition": "1", "parameter_style": "S", "is_deterministic": True,
        "sql_data_access": "NO_SQL", "is_null_call": False, "security_type": "DEFINER", "specific_name": "f_new",
        "input_params": {"parameters": []}}}, [*USE, ("schema", "{c}.s", ["CREATE_FUNCTION"])]),
    Case("functions.get", "GET", "/functions/{c}.s.f", grants=[*USE, ("function", "{c}.s.f", ["EXECUTE"])]),
    Case("functions.delete", "DELETE", "/functions/{c}.s.f_del", grants=[*USE, ("function", "{c}.s.f_del", ["MANAGE"])]),
    # registered models, versions, aliases
    Case("models.create", "POST", "/models", {"name": "m_new", "catalog_name": "{c}", "schema_name": "s"},
         [*USE, ("schema", "{c}.s", ["CREATE_MODEL"])]),
    Case("models.get", "GET", "/models/{c}.s.m", grants=[*USE, ("registered_model", "{c}.s.m", ["EXECUTE"])]),
    Case("models.update", "PATCH", "/models/{c}.s.m", {"comment": "x"},
         [*USE, ("registered_model", "{c}.s.m", ["MANAGE"])]),
    Case("models.delete", "DELETE", "/models/{c}.s.m_del", grants=[*USE, ("registered_model", "{c}.s.m_del", ["MANAGE"])]),
    Case("model_versions.create", "POST", "/models/versions",
         {"model_name": "m", "catalog_name": "{c}", "schema_name": "s", "source": "file:///tmp/x"},
         [*USE, ("schema", "{c}.s", ["CREATE_MODEL"])]),
    Case("model_versions.get", "GET", "/models/{c}.s.m/versions/1",
         grants=[*USE, ("registered_model", "{c}.s.m", ["EXECUTE"])]),
    Case("model_versions.list", "GET", "/models/{c}.s.m/versions",
         grants=[*USE, ("registered_model", "{c}.s.m", ["EXECUTE"])]),
    Case("aliases.set", "PUT", "/models/{c}.s.m/aliases/champion", {"version_num": 1},
         [*USE, ("registered_model", "{c}.s.m", ["MANAGE"])]),
    Case("model version credentials", "POST", "/temporary-model-version-credentials",
         {"catalog_name": "{c}", "schema_name": "s", "model_name": "m", "version": 1,
          "operation": "READ_MODEL_VERSION"}, [*USE, ("registered_model", "{c}.s.m", ["EXECUTE"])]),
    # platform APIs outside the catalog tree
    Case("audit.search", "GET", "/api/2.0/lakeforge/audit?limit=1",
         grants=[("catalog", "system", ["USE_CATALOG"]), ("schema", "system.access", ["USE_SCHEMA"]),
                 ("table", "system.access.audit", ["SELECT"])]),
    Case("secrets.put", "POST", "/api/2.0/secrets/put", {"scope": "{scope}", "key": "k2", "string_value": "v"},
         [("secret_scope", "{scope}", ["WRITE"])]),
    Case("secrets.get", "GET", "/api/2.0/secrets/get?scope={scope}&key=k", grants=[("secret_scope", "{scope}", ["READ"])]),
    Case("secrets.list", "GET", "/api/2.0/secrets/list?scope={scope}", grants=[("secret_scope", "{scope}", ["READ"])]),
    Case("secrets.acls.put", "POST", "/api/2.0/secrets/acls/put",
         {"scope": "{scope}", "principal": "users", "permission": "READ"}, [("secret_scope", "{scope}", ["MANAGE"])]),
    Case("lineage.record", "POST", "/api/2.0/lineage/edges", {
        "edges": [{"source": {"type": "table", "name": "{c}.s.t"}, "target": {"type": "table", "name": "{c}.s.t2"}}],
        "entity_type": "QUERY", "entity_id": "q1"}, [*USE, ("table", "{c}.s.t2", ["MODIFY"])]),
    Case("scim.users.create", "POST", "/api/2.0/preview/scim/v2/Users", {"userName": "{c}-new@example.com"},
         admin_only=True, ok=201),
    Case("token_management.obo", "POST", "/api/2.0/token-management/on-behalf-of/tokens",
         {"application_id": "{sp_id}", "lifetime_seconds": 60}, admin_only=True),
]


def _fill(value, names: dict):
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    return value


@pytest.fixture(scope="module")
def world(server):
    """Objects every case acts on, created by the admin."""
    c = f"mx_{uuid.uuid4().hex[:8]}"
    names = {"c": c}
    with server.client() as a:
        def post(path, body):
            r = a.post(path, json=body)
            assert r.status_code in (200, 201), r.text
            return r.json()

        post(UC + "/catalogs", {"name": c})
        post(UC + "/catalogs", {"name": f"{c}_empty"})
        for s in ("s", "s_empty"):
            post(UC + "/schemas", {"name": s, "catalog_name": c})
        for t in ("t", "t2", "t_del"):
            info = post(UC + "/tables", {"name": t, "catalog_name": c, "schema_name": "s", "table_type": "MANAGED",
                                         "data_source_format": "DELTA", "columns": COLS})
            names.setdefault("t_id", info["table_id"])
        for v in ("v", "v_del"):
            info = post(UC + "/volumes", {"name": v, "catalog_name": c, "schema_name": "s", "volume_type": "MANAGED"})
            names.setdefault("v_id", info["volume_id"])
        for name in ("hello.txt", "del.txt"):
            a.put(f"/api/2.0/fs/files/Volumes/{c}/s/v/{name}", content=b"hi").raise_for_status()
        for f in ("f", "f_del"):
            post(UC + "/functions", {"function_info": {
                "name": f, "catalog_name": c, "schema_name": "s", "data_type": "INT", "full_data_type": "INT",
                "routine_body": "SQL", "routine_definition": "1", "parameter_style": "S", "is_deterministic": True,
                "sql_data_access": "NO_SQL", "is_null_call": False, "security_type": "DEFINER",
                "specific_name": f, "input_params": {"parameters": []}}})
        for m in ("m", "m_del"):
            post(UC + "/models", {"name": m, "catalog_name": c, "schema_name": "s"})
        post(UC + "/models/versions", {"model_name": "m", "catalog_name": c, "schema_name": "s", "source": "x"})
        a.patch(f"{UC}/models/{c}.s.m/versions/1/finalize", json={}).raise_for_status()
        scope = f"{c}_scope"
        post("/api/2.0/secrets/scopes/create", {"scope": scope})
        post("/api/2.0/secrets/put", {"scope": scope, "key": "k", "string_value": "v"})
        names["scope"] = scope
        names["sp_id"] = post("/api/2.0/preview/scim/v2/ServicePrincipals", {"displayName": f"{c}-sp"})["applicationId"]
    return names


def _grant(server, principal: str, securable_type: str, name: str, privileges: list[str]) -> None:
    with server.client() as a:
        if securable_type == "secret_scope":
            for p in privileges:
                a.post("/api/2.0/secrets/acls/put", json={"scope": name, "principal": principal,
                                                           "permission": p}).raise_for_status()
            return
        a.patch(f"{UC}/permissions/{securable_type}/{name}",
                json={"changes": [{"principal": principal, "add": privileges}]}).raise_for_status()


def _call(server, token: str, case: Case, names: dict) -> httpx.Response:
    path = _fill(case.path, names)
    url = path if path.startswith("/api/2.0") else UC + path
    with server.client(token=token) as c:
        if isinstance(case.body, bytes):
            return c.request(case.method, url, content=case.body)
        return c.request(case.method, url, json=_fill(case.body, names) if case.body is not None else None)


def _join_admins(server, user: str) -> None:
    with server.client() as a:
        uid = a.get("/api/2.0/preview/scim/v2/Users", params={"filter": f'userName eq "{user}"'}).json()["Resources"][0]["id"]
        gid = a.get("/api/2.0/preview/scim/v2/Groups", params={"filter": 'displayName eq "admins"'}).json()["Resources"][0]["id"]
        a.patch(f"/api/2.0/preview/scim/v2/Groups/{gid}", json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]}).raise_for_status()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_denied_without_privilege_allowed_with_it(server, world, case):
    user, token = server.new_user()
    denied = _call(server, token, case, world)
    assert denied.status_code == 403, f"{case.id}: expected 403, got {denied.status_code} {denied.text}"
    assert denied.json()["error_code"] == "PERMISSION_DENIED"
    if case.admin_only:
        _join_admins(server, user)
    for securable_type, name, privileges in case.grants:
        _grant(server, user, securable_type, _fill(name, world), privileges)
    allowed = _call(server, token, case, world)
    assert allowed.status_code == case.ok, f"{case.id}: expected {case.ok}, got {allowed.status_code} {allowed.text}"


def test_every_case_names_its_grants():
    """A case that needs no grant would prove nothing about the privilege."""
    for case in CASES:
        assert case.grants or case.admin_only, case.id
