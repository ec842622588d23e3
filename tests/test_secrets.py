"""Secrets: the Databricks Secrets API through databricks-sdk and raw HTTP, ACLs decided by the one
access function, encryption at rest, no value in logs or the audit table, secret references."""

from __future__ import annotations

import base64
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
from databricks.sdk.errors import NotFound, PermissionDenied, ResourceAlreadyExists, ResourceDoesNotExist
from databricks.sdk.service.workspace import AclPermission
from deltalake import DeltaTable
from sqlalchemy import create_engine, text

from lakeforge.config import Settings
from lakeforge.errors import InvalidParameter, LakeforgeError
from lakeforge.errors import PermissionDenied as Denied
from lakeforge.identity.store import USER
from lakeforge.secrets.crypto import SecretCipher, SecretsKeyError
from lakeforge.secrets.store import SecretRow, SecretScopeRow
from lakeforge.server.context import AppContext
from tests.harness import Server, start_server

SECRETS = "/api/2.0/secrets"


def _value(label: str = "v") -> str:
    """A value that cannot occur anywhere by chance."""
    return f"{label}-{uuid.uuid4().hex}-s3cr3t"


def _scope() -> str:
    return f"scope-{uuid.uuid4().hex[:10]}"


def _new_user(server: Server) -> tuple[str, str]:
    with server.client() as c:
        if c.get("/api/2.0/preview/scim/v2/Users", params={"count": 1}).status_code == 404:
            pytest.skip("needs the SCIM endpoint /api/2.0/preview/scim/v2/Users (server.new_user), not built yet")
    return server.new_user()


def _db_engine(server: Server):
    url = server.env.get("LAKEFORGE_DATABASE_URL") or f"sqlite:///{server.home / 'lakeforge.db'}"
    return create_engine(url)


def _secret_rows(server: Server, scope: str) -> dict[str, tuple[bytes, bytes]]:
    engine = _db_engine(server)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT s.key, s.nonce, s.ciphertext FROM lf_secrets s JOIN lf_secret_scopes c "
                                     "ON c.id = s.scope_id WHERE c.name = :n"), {"n": scope}).all()
        return {k: (bytes(n), bytes(c)) for k, n, c in rows}
    finally:
        engine.dispose()


# ---- the API through databricks-sdk ----------------------------------------------------------------
def test_scope_secret_and_acl_lifecycle(any_server):
    w = any_server.workspace()
    scope = _scope()
    w.secrets.create_scope(scope)
    with pytest.raises(ResourceAlreadyExists):
        w.secrets.create_scope(scope)
    assert {"name": scope, "backend_type": "DATABRICKS"} in [s.as_dict() for s in w.secrets.list_scopes()]
    # the creator holds MANAGE, as in Databricks
    assert [a.as_dict() for a in w.secrets.list_acls(scope)] == [{"principal": "admin", "permission": "MANAGE"}]

    text_value, raw = _value("text"), os.urandom(64)
    w.secrets.put_secret(scope, "api.key", string_value=text_value)
    w.secrets.put_secret(scope, "blob_1", bytes_value=base64.b64encode(raw).decode())
    got = w.secrets.get_secret(scope, "api.key")
    assert got.key == "api.key" and base64.b64decode(got.value).decode() == text_value  # base64 on the wire
    assert base64.b64decode(w.secrets.get_secret(scope, "blob_1").value) == raw
    listed = list(w.secrets.list_secrets(scope))
    assert [s.key for s in listed] == ["api.key", "blob_1"]
    assert all(s.last_updated_timestamp > 1_600_000_000_000 for s in listed)
    assert text_value not in str([s.as_dict() for s in listed])

    newer = _value("newer")
    w.secrets.put_secret(scope, "api.key", string_value=newer)  # overwrite
    assert base64.b64decode(w.secrets.get_secret(scope, "api.key").value).decode() == newer
    w.secrets.delete_secret(scope, "blob_1")
    with pytest.raises(ResourceDoesNotExist):
        w.secrets.get_secret(scope, "blob_1")
    with pytest.raises(ResourceDoesNotExist):
        w.secrets.delete_secret(scope, "blob_1")

    w.secrets.put_acl(scope, "users", AclPermission.READ)
    assert w.secrets.get_acl(scope, "users").permission == AclPermission.READ
    w.secrets.put_acl(scope, "users", AclPermission.WRITE)  # put replaces the level
    acls = {a.principal: a.permission for a in w.secrets.list_acls(scope)}
    assert acls == {"admin": AclPermission.MANAGE, "users": AclPermission.WRITE}
    w.secrets.delete_acl(scope, "users")
    with pytest.raises(ResourceDoesNotExist):
        w.secrets.get_acl(scope, "users")
    with pytest.raises(ResourceDoesNotExist):
        w.secrets.delete_acl(scope, "users")

    w.secrets.delete_scope(scope)
    assert scope not in [s.name for s in w.secrets.list_scopes()]
    with pytest.raises(ResourceDoesNotExist):
        w.secrets.list_secrets(scope)
    with pytest.raises(NotFound):
        w.secrets.delete_scope(scope)
    assert _secret_rows(any_server, scope) == {}


def test_duplicate_scope_is_400_resource_already_exists(server):
    scope = _scope()
    with server.client() as c:
        assert c.post(f"{SECRETS}/scopes/create", json={"scope": scope}).status_code == 200
        r = c.post(f"{SECRETS}/scopes/create", json={"scope": scope})
        assert r.status_code == 400 and r.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"


def test_bad_input_is_400_and_missing_is_404(server):
    scope = _scope()
    value = _value()
    with server.client() as c:
        c.post(f"{SECRETS}/scopes/create", json={"scope": scope}).raise_for_status()

        def bad(method, path, **kw):
            r = c.request(method, SECRETS + path, **kw)
            assert r.status_code == 400, (path, kw, r.text)
            assert r.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "MALFORMED_REQUEST"), r.text
            assert value not in r.text
            return r.json()["message"]

        for name in ("has space", "slash/inside", "x" * 129, "", "ünïcode", "semi;colon"):
            bad("POST", "/scopes/create", json={"scope": name})
        bad("POST", "/scopes/create", json={})
        bad("POST", "/scopes/create", json={"scope": _scope(), "scope_backend_type": "AZURE_KEYVAULT"})
        bad("POST", "/scopes/create", json={"scope": _scope(), "initial_manage_principal": "nobody-like-this"})
        bad("POST", "/scopes/create", content=b"{not json", headers={"content-type": "application/json"})
        c.post(f"{SECRETS}/scopes/create", json={"scope": "a" * 128}).raise_for_status()  # 128 is allowed
        c.post(f"{SECRETS}/scopes/delete", json={"scope": "a" * 128}).raise_for_status()

        assert "Exactly one" in bad("POST", "/put", json={"scope": scope, "key": "k"})
        assert "Exactly one" in bad("POST", "/put", json={"scope": scope, "key": "k", "string_value": value,
                                                          "bytes_value": "dg=="})
        bad("POST", "/put", json={"scope": scope, "key": "k", "bytes_value": value + "!"})  # not base64
        bad("POST", "/put", json={"scope": scope, "key": "bad key", "string_value": value})
        bad("POST", "/put", json={"scope": scope, "key": "k", "string_value": 12345})
        bad("POST", "/put", json={"scope": scope, "key": "k", "string_value": value + "x" * (128 * 1024)})
        limit = base64.b64encode(b"x" * (128 * 1024)).decode()
        c.post(f"{SECRETS}/put", json={"scope": scope, "key": "big", "bytes_value": limit}).raise_for_status()
        bad("GET", "/get", params={"scope": scope})  # key missing
        bad("GET", "/get", params={"scope": scope, "key": "bad key"})
        bad("POST", "/acls/put", json={"scope": scope, "principal": "users", "permission": "OWNER"})
        bad("POST", "/acls/put", json={"scope": scope, "principal": "no-such-principal", "permission": "READ"})

        missing = _scope()
        for method, path, kw in [
            ("POST", "/put", {"json": {"scope": missing, "key": "k", "string_value": value}}),
            ("GET", "/get", {"params": {"scope": missing, "key": "k"}}),
            ("GET", "/list", {"params": {"scope": missing}}),
            ("GET", "/get", {"params": {"scope": scope, "key": "nope"}}),
            ("POST", "/delete", {"json": {"scope": scope, "key": "nope"}}),
            ("GET", "/acls/list", {"params": {"scope": missing}}),
            ("POST", "/scopes/delete", {"json": {"scope": missing}}),
        ]:
            r = c.request(method, SECRETS + path, **kw)
            assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", (path, r.text)
        c.post(f"{SECRETS}/scopes/delete", json={"scope": scope}).raise_for_status()


# ---- access ------------------------------------------------------------------------------------------
def test_acl_ladder_decides_access(any_server):
    scope, value = _scope(), _value()
    admin = any_server.workspace()
    admin.secrets.create_scope(scope)
    admin.secrets.put_secret(scope, "k", string_value=value)
    user, token = _new_user(any_server)
    w = any_server.workspace(token)

    def status(method, path, **kw):
        with any_server.client(token) as c:
            r = c.request(method, SECRETS + path, **kw)
            assert value not in r.text
            return r.status_code

    get = ("GET", "/get", {"params": {"scope": scope, "key": "k"}})
    put = ("POST", "/put", {"json": {"scope": scope, "key": "k2", "string_value": "x"}})
    acls = ("GET", "/acls/list", {"params": {"scope": scope}})

    with pytest.raises(PermissionDenied):
        w.secrets.get_secret(scope, "k")
    assert status(*get[:2], **get[2]) == 403
    assert status("GET", "/list", params={"scope": scope}) == 403
    assert status(*put[:2], **put[2]) == 403
    assert scope not in [s.name for s in w.secrets.list_scopes()]  # lists show only readable scopes

    admin.secrets.put_acl(scope, user, AclPermission.READ)
    assert base64.b64decode(w.secrets.get_secret(scope, "k").value).decode() == value
    assert scope in [s.name for s in w.secrets.list_scopes()]
    assert [s.key for s in w.secrets.list_secrets(scope)] == ["k"]
    assert status(*put[:2], **put[2]) == 403
    assert status("POST", "/delete", json={"scope": scope, "key": "k"}) == 403
    assert status(*acls[:2], **acls[2]) == 403

    admin.secrets.put_acl(scope, user, AclPermission.WRITE)
    assert status(*put[:2], **put[2]) == 200
    assert status(*acls[:2], **acls[2]) == 403
    assert status("POST", "/scopes/delete", json={"scope": scope}) == 403

    admin.secrets.put_acl(scope, user, AclPermission.MANAGE)
    assert {a.principal for a in w.secrets.list_acls(scope)} == {"admin", user}
    w.secrets.put_acl(scope, "users", AclPermission.READ)

    admin.secrets.delete_acl(scope, user)
    admin.secrets.delete_acl(scope, "users")
    assert status(*get[:2], **get[2]) == 403  # revocation takes effect at once
    admin.secrets.delete_scope(scope)


def test_any_user_can_create_a_scope_and_manages_it(any_server):
    user, token = _new_user(any_server)
    w = any_server.workspace(token)
    scope, shared = _scope(), _scope()
    w.secrets.create_scope(scope)
    w.secrets.put_secret(scope, "k", string_value="v")
    assert [a.as_dict() for a in w.secrets.list_acls(scope)] == [{"principal": user, "permission": "MANAGE"}]
    # admins hold everything on every scope
    assert base64.b64decode(any_server.workspace().secrets.get_secret(scope, "k").value) == b"v"
    # initial_manage_principal hands MANAGE to a group instead of the creator
    any_server.workspace().secrets.create_scope(shared, initial_manage_principal="users")
    w.secrets.put_secret(shared, "k", string_value="v")
    w.secrets.delete_scope(shared)
    w.secrets.delete_scope(scope)


# ---- at rest, in logs, in the audit table --------------------------------------------------------------
def test_values_are_encrypted_at_rest_and_bound_to_their_row(any_server):
    scope, value = _scope(), _value("at-rest")
    w = any_server.workspace()
    w.secrets.create_scope(scope)
    w.secrets.put_secret(scope, "one", string_value=value)
    w.secrets.put_secret(scope, "two", string_value=value)
    rows = _secret_rows(any_server, scope)
    assert set(rows) == {"one", "two"}
    (n1, c1), (n2, c2) = rows["one"], rows["two"]
    assert len(n1) == 12 and n1 != n2  # a fresh 96-bit nonce per value
    assert value.encode() not in c1 and c1 != c2 and len(c1) == len(value) + 16  # GCM tag
    if "LAKEFORGE_DATABASE_URL" not in any_server.env:
        for path in any_server.home.glob("lakeforge.db*"):  # the database file and its WAL
            assert value.encode() not in path.read_bytes(), path

    # A ciphertext copied onto another key does not decrypt: the key name is bound in.
    engine = _db_engine(any_server)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE lf_secrets SET nonce = :n, ciphertext = :c WHERE key = 'two' AND scope_id = "
                              "(SELECT id FROM lf_secret_scopes WHERE name = :s)"), {"n": n1, "c": c1, "s": scope})
    finally:
        engine.dispose()
    with any_server.client() as c:
        r = c.get(f"{SECRETS}/get", params={"scope": scope, "key": "two"})
        assert r.status_code == 500 and value not in r.text
        assert base64.b64decode(c.get(f"{SECRETS}/get", params={"scope": scope, "key": "one"}).json()["value"]
                                ).decode() == value
    w.secrets.delete_scope(scope)


def _delta_tables(home: Path) -> list[Path]:
    return [p.parent for p in home.rglob("_delta_log") if p.is_dir()]


def test_no_value_in_audit_table_logs_or_files(server):
    scope, value = _scope(), _value("audit")
    encoded = base64.b64encode(value.encode()).decode()
    with server.client() as c:
        c.post(f"{SECRETS}/scopes/create", json={"scope": scope}).raise_for_status()
        c.post(f"{SECRETS}/put", json={"scope": scope, "key": "k", "string_value": value}).raise_for_status()
        r = c.get(f"{SECRETS}/get", params={"scope": scope, "key": "k"}, headers={"x-request-id": f"rid-{scope}"})
        assert r.json()["value"] == encoded
        c.post(f"{SECRETS}/put", json={"scope": scope, "key": "k2", "bytes_value": encoded}).raise_for_status()
        c.post(f"{SECRETS}/put", json={"scope": scope, "key": "bad key", "string_value": value})  # a 400

    audit_rows: list[dict] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the flusher runs every 0.5 s in tests
        audit_rows = []
        for path in _delta_tables(server.home):
            rows = DeltaTable(str(path)).to_pyarrow_table().to_pylist()
            blob = repr(rows)
            assert value not in blob and encoded not in blob, path
            audit_rows += [r for r in rows if r.get("request_id") == f"rid-{scope}"]
        if audit_rows:
            break
        time.sleep(0.25)
    assert audit_rows and audit_rows[0]["action"] == "secrets.get" and audit_rows[0]["securable"] == f"{scope}/k"

    for path in server.home.rglob("*"):  # database, write-ahead logs, Delta files, server log
        try:
            data = path.read_bytes() if path.is_file() else b""
        except FileNotFoundError:  # a log segment dropped by the flusher meanwhile
            continue
        assert value.encode() not in data and encoded.encode() not in data, path
    assert value not in server.logs()
    with server.client() as c:
        c.post(f"{SECRETS}/scopes/delete", json={"scope": scope}).raise_for_status()


# ---- the key ---------------------------------------------------------------------------------------------
def test_key_file_is_private_and_survives_restart(tmp_path):
    home = tmp_path / "h"
    srv = start_server(home)
    try:
        key_file = home / "secrets.key"
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        assert len(base64.b64decode(key_file.read_text().strip())) == 32
        with srv.client() as c:
            c.post(f"{SECRETS}/scopes/create", json={"scope": "s"}).raise_for_status()
            c.post(f"{SECRETS}/put", json={"scope": "s", "key": "k", "string_value": "kept"}).raise_for_status()
    finally:
        srv.stop()
    key = key_file.read_text()
    assert key.strip() not in srv.logs()
    again = start_server(home, admin_token=srv.admin_token)
    try:
        with again.client() as c:
            assert c.get(f"{SECRETS}/get", params={"scope": "s", "key": "k"}).json()["value"] == "a2VwdA=="
    finally:
        again.stop()
    assert key_file.read_text() == key

    key_file.chmod(0o644)  # readable by others: refuse to start
    with pytest.raises(RuntimeError, match="chmod 600"):
        start_server(home, admin_token=srv.admin_token)


def test_key_from_settings(tmp_path, monkeypatch):
    for bad in ("not base64!", base64.b64encode(b"k" * 16).decode()):
        monkeypatch.setenv("LAKEFORGE_SECRETS_KEY", bad)
        with pytest.raises(SecretsKeyError, match="LAKEFORGE_SECRETS_KEY") as info:
            AppContext(Settings(home=tmp_path / "bad"))
        assert bad not in info.value.message
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("LAKEFORGE_SECRETS_KEY", key)
    ctx = AppContext(Settings(home=tmp_path / "good"))
    ctx.start()
    try:
        admin = _principals(ctx)[0]
        ctx.secrets.create_scope(admin, "s")
        ctx.secrets.put_secret(admin, "s", "k", string_value="v")
        assert ctx.secrets.get_secret(admin, "s", "k")["value"] == "dg=="
        assert not (tmp_path / "good" / "secrets.key").exists()
        # the value really is under the configured key
        with ctx.db.read() as s:
            scope_id = s.query(SecretScopeRow).filter_by(name="s").one().id
            row = s.get(SecretRow, (scope_id, "k"))
            assert SecretCipher(base64.b64decode(key)).decrypt(scope_id, "k", row.nonce, row.ciphertext) == b"v"
    finally:
        ctx.stop()


# ---- references (the in-process API other services use) ----------------------------------------------
@pytest.fixture
def ctx(tmp_path):
    context = AppContext(Settings(home=tmp_path / "h", audit_flush_seconds=0.5))
    context.start()
    yield context
    context.stop()


def _principals(ctx):
    with ctx.db.write() as s:
        admin_id = ctx.identity.find_principal(s, "admin").id
        user_id = ctx.identity.create_principal(s, USER, f"ref-{uuid.uuid4().hex[:6]}@example.com").id
    return ctx.identity.principal_by_id(admin_id), ctx.identity.principal_by_id(user_id)


def test_references_resolve_and_check(ctx):
    admin, user = _principals(ctx)
    svc, refs = ctx.secrets, ctx.secrets.references
    value, other = _value("ref"), _value("other")
    svc.create_scope(admin, "llm")
    svc.put_secret(admin, "llm", "openai", string_value=value)
    svc.put_secret(admin, "llm", "org", string_value=other)
    svc.put_secret(admin, "llm", "binary", bytes_value=base64.b64encode(b"\xff\xfe").decode())

    config = "Bearer {{secrets/llm/openai}} org={{secrets/llm/org}} again={{secrets/llm/openai}}"
    assert refs.resolve(config, admin) == f"Bearer {value} org={other} again={value}"
    assert refs.check_readable(config, admin) == [("llm", "openai"), ("llm", "org")]
    assert refs.resolve("no references here", admin) == "no references here"
    assert refs.resolve(None, admin) is None

    def error(fn, text, principal, kind):
        with pytest.raises(kind) as info:
            fn(text, principal)
        message = info.value.message
        assert value not in message and other not in message
        return info.value

    for fn in (refs.resolve, refs.check_readable):
        e = error(fn, "x {{secrets/nope/openai}}", admin, InvalidParameter)
        assert e.status == 400 and "{{secrets/nope/openai}}" in e.message and "nope" in e.message
        e = error(fn, "{{secrets/llm/missing}}", admin, InvalidParameter)
        assert "{{secrets/llm/missing}}" in e.message
        e = error(fn, "key={{secrets/llm/openai}}", user, Denied)
        assert e.status == 403 and "{{secrets/llm/openai}}" in e.message and "READ" in e.message
        error(fn, "{{secrets/llm}}", admin, InvalidParameter)  # malformed
        error(fn, "{{ secrets/llm/openai }}", admin, InvalidParameter)
    e = error(refs.resolve, "{{secrets/llm/binary}}", admin, InvalidParameter)
    assert "binary" in e.message
    assert refs.check_readable("{{secrets/llm/binary}}", admin) == [("llm", "binary")]

    svc.put_acl(admin, "llm", user.name, "READ")
    assert refs.resolve("{{secrets/llm/org}}", user) == other

    # check_readable never decrypts: it still passes when the stored ciphertext is unreadable.
    with ctx.db.write() as s:
        for row in s.query(SecretRow).filter(SecretRow.key == "org"):
            row.ciphertext = b"\x00" * len(row.ciphertext)
    assert refs.check_readable("{{secrets/llm/org}}", user) == [("llm", "org")]
    with pytest.raises(LakeforgeError) as info:
        refs.resolve("{{secrets/llm/org}}", user)
    assert info.value.status == 500 and other not in info.value.message


def test_raw_http_is_rejected_without_a_token(server):
    r = httpx.get(server.url + f"{SECRETS}/scopes/list")
    assert r.status_code == 401 and r.json()["error_code"] == "UNAUTHENTICATED"
