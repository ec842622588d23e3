"""The lean read path for get-table, get-schema and get-catalog (lakeforge/catalog/fast_reads.py):
the same bytes, errors, access decisions and audit records as the FastAPI routes, and no stale
answer after any change, in one server process or across two."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import orjson
import pyarrow as pa
import pytest

from lakeforge import Client
from tests import harness
from tests.harness import Server
from tests.spec import Recorder

UC = "/api/2.1/unity-catalog"
SCIM = "/api/2.0/preview/scim/v2"
COLUMNS = [
    {"name": "id", "type_text": "bigint", "type_name": "LONG", "position": 0, "nullable": False},
    {"name": "name", "type_text": "string", "type_name": "STRING", "position": 1, "comment": "who"},
    {"name": "amount", "type_text": "decimal(12,3)", "type_name": "DECIMAL", "position": 2},
    {"name": "tags", "type_text": "array<string>", "type_name": "ARRAY", "position": 3},
    {"name": "day", "type_text": "date", "type_name": "DATE", "position": 4, "partition_index": 0},
]


def grant(c, kind: str, full_name: str, principal: str, *privileges: str, remove: bool = False) -> None:
    change = {"principal": principal, ("remove" if remove else "add"): list(privileges)}
    r = c.patch(f"{UC}/permissions/{kind}/{full_name}", json={"changes": [change]})
    assert r.status_code == 200, r.text


# ---- the same answers as the routes, byte for byte -----------------------------------------------
def test_lean_reads_answer_exactly_what_the_routes_answer(tmp_path):
    """Every request goes once through the server's stack (lean handler) and once through the same
    platform middleware straight into FastAPI (the route); status, headers, bytes and the audit
    record must be the same."""
    from lakeforge.config import Settings
    from lakeforge.server.app import create_app
    from lakeforge.server.context import AppContext
    from lakeforge.server.middleware import PlatformMiddleware

    settings = Settings(home=tmp_path / "home", admin_token="tok-admin", audit_fsync=False,
                        audit_flush_seconds=3600, tracking_preload=False)
    ctx = AppContext(settings)
    asgi, api = create_app(settings, ctx)
    routes_only = PlatformMiddleware(api, ctx)

    async def main() -> None:
        async with api.router.lifespan_context(api):
            base = "http://127.0.0.1"
            admin = {"Authorization": "Bearer tok-admin"}
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url=base, headers=admin) as fast, \
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=routes_only), base_url=base,
                                      headers=admin) as slow:
                for path, body in [
                    ("/catalogs", {"name": "cat", "comment": "a catalog", "properties": {"k": "v", "n": 1}}),
                    ("/schemas", {"name": "s", "catalog_name": "cat", "properties": {"team": "x"}}),
                    ("/schemas", {"name": "bare", "catalog_name": "cat"}),
                    ("/tables", {"name": "full", "catalog_name": "cat", "schema_name": "s", "table_type": "MANAGED",
                                 "columns": COLUMNS, "comment": "all of it", "properties": {"p": "q"}}),
                    ("/tables", {"name": "bare", "catalog_name": "cat", "schema_name": "bare",
                                 "table_type": "MANAGED", "columns": COLUMNS[1:2]}),
                    ("/tables", {"name": "tä_ü", "catalog_name": "cat", "schema_name": "s", "table_type": "MANAGED",
                                 "columns": COLUMNS[:1]}),
                ]:
                    r = await fast.post(UC + path, json=body)
                    assert r.status_code == 200, r.text
                tokens = {}
                for who in ("nobody", "reader", "schema_user"):
                    name = f"{who}@example.com"
                    uid = (await fast.post(f"{SCIM}/Users", json={"userName": name})).json()["id"]
                    r = await fast.post("/api/2.0/token-management/on-behalf-of/tokens",
                                        json={"application_id": uid, "lifetime_seconds": 3600})
                    tokens[who] = r.json()["token_value"]
                for kind, full, privileges in [("catalog", "cat", ["USE_CATALOG"]), ("schema", "cat.s", ["USE_SCHEMA"]),
                                               ("table", "cat.s.full", ["SELECT"])]:
                    r = await fast.patch(f"{UC}/permissions/{kind}/{full}", json={"changes": [
                        {"principal": "reader@example.com", "add": privileges}]})
                    assert r.status_code == 200, r.text
                r = await fast.patch(f"{UC}/permissions/catalog/cat", json={"changes": [
                    {"principal": "schema_user@example.com", "add": ["USE_CATALOG"]}]})
                r = await fast.patch(f"{UC}/permissions/schema/cat.bare", json={"changes": [
                    {"principal": "schema_user@example.com", "add": ["USE_SCHEMA"]}]})
                assert r.status_code == 200, r.text

                paths = ["/tables/cat.s.full", "/tables/cat.bare.bare", "/tables/cat.s.tä_ü", "/tables/cat.s.missing",
                         "/tables/nocat.s.t", "/tables/cat.s", "/tables/cat.s.full.x", "/tables/cat..full",
                         "/tables/cat.s.t%20x", "/tables/main.default.nothing",
                         ("/tables/cat.s.full?include_browse=true&include_delta_metadata=true"
                          "&include_manifest_capabilities=true"), "/tables/cat.s.full?max_results=x",
                         "/schemas/cat.s", "/schemas/cat.bare", "/schemas/main.default", "/schemas/cat.nope",
                         "/schemas/cat", "/schemas/system.access", "/catalogs/cat", "/catalogs/main",
                         "/catalogs/system", "/catalogs/nope", "/catalogs/a.b", "/catalogs/cat?include_browse=true"]
                callers = {"admin": "tok-admin", **tokens, "bad token": "not-a-token"}
                seen = set()
                n = 0
                for path in paths:
                    for who, token in callers.items():
                        for _ in range(2):  # the second answer comes from the lean path's memory
                            n += 1
                            hdrs = {"Authorization": f"Bearer {token}"}
                            a = await fast.get(UC + path, headers={**hdrs, "x-request-id": f"fast-{n}"})
                            b = await slow.get(UC + path, headers={**hdrs, "x-request-id": f"slow-{n}"})
                            assert (a.status_code, a.content) == (b.status_code, b.content), (path, who)
                            assert a.headers["content-type"] == b.headers["content-type"] == "application/json"
                            assert a.headers["content-length"] == b.headers["content-length"]
                            seen.add((who, a.status_code))
                assert {s for _, s in seen} >= {200, 400, 401, 403, 404}, seen

                # The audit records name the same action, securable, status and error.
                records = {}
                for segment in ctx.audit.wal.dir.glob("*.wal"):  # nothing moved into Delta yet (flush: 1 h)
                    for line in segment.read_bytes().splitlines():
                        record = orjson.loads(line)
                        records[record["request_id"]] = record
                keys = ("principal", "service", "action", "securable", "http_method", "status_code", "error_code")
                for i in range(1, n + 1):
                    a, b = records[f"fast-{i}"], records[f"slow-{i}"]
                    assert {k: a.get(k) for k in keys} == {k: b.get(k) for k in keys}, (a, b)
                    assert a["path"] == b["path"]
                actions = {records[f"fast-{i}"]["action"] for i in range(1, n + 1)}
                assert actions == {"tables.get", "schemas.get", "catalogs.get", "authenticate"}, actions

    asyncio.run(main())


def test_lean_reads_conform_to_the_spec(any_server, unique):
    cat = unique("spec")
    rec = Recorder()
    with any_server.client(event_hooks={"response": [rec]}) as c:
        c.post(f"{UC}/catalogs", json={"name": cat, "comment": "c", "properties": {"a": "b"}}).raise_for_status()
        c.post(f"{UC}/schemas", json={"name": "s", "catalog_name": cat}).raise_for_status()
        c.post(f"{UC}/tables", json={"name": "t", "catalog_name": cat, "schema_name": "s", "table_type": "MANAGED",
                                     "columns": COLUMNS, "properties": {"x": "y"}}).raise_for_status()
        for _ in range(2):
            assert c.get(f"{UC}/tables/{cat}.s.t").status_code == 200
            assert c.get(f"{UC}/schemas/{cat}.s").status_code == 200
            assert c.get(f"{UC}/catalogs/{cat}").status_code == 200
            assert c.get(f"{UC}/tables/{cat}.s.none").status_code == 404
        c.delete(f"{UC}/catalogs/{cat}", params={"force": "true"})
    assert not rec.failures, "\n".join(rec.failures)


# ---- no stale answer after a change ---------------------------------------------------------------
@pytest.fixture
def namespace(any_server: Server, unique):
    cat = unique("fr")
    with any_server.client() as c:
        c.post(f"{UC}/catalogs", json={"name": cat}).raise_for_status()
        c.post(f"{UC}/schemas", json={"name": "s", "catalog_name": cat}).raise_for_status()
        c.post(f"{UC}/tables", json={"name": "t", "catalog_name": cat, "schema_name": "s", "table_type": "MANAGED",
                                     "columns": COLUMNS[:2], "comment": "first"}).raise_for_status()
    yield cat
    with any_server.client() as c:
        for name in (cat, f"{cat}_renamed"):
            c.delete(f"{UC}/catalogs/{name}", params={"force": "true"})


def test_every_change_is_seen_by_the_next_read(any_server, namespace):
    cat = namespace
    t = f"{cat}.s.t"
    with any_server.client() as c:
        def get(path: str) -> httpx.Response:
            return c.get(f"{UC}{path}")

        first = get(f"/tables/{t}").json()
        assert first["comment"] == "first" and get(f"/tables/{t}").json() == first  # now in memory

        # comment
        assert c.patch(f"{UC}/tables/{t}", json={"comment": "second"}).status_code == 200
        assert get(f"/tables/{t}").json()["comment"] == "second"

        # owner
        user, _ = any_server.new_user()
        assert c.patch(f"{UC}/tables/{t}", json={"owner": user}).status_code == 200
        assert get(f"/tables/{t}").json()["owner"] == user

        # the owner's new name (a change to a principal, not to the table)
        uid = c.get(f"{SCIM}/Users", params={"filter": f'userName eq "{user}"'}).json()["Resources"][0]["id"]
        renamed_user = f"renamed-{uuid.uuid4().hex[:6]}@example.com"
        r = c.put(f"{SCIM}/Users/{uid}", json={"userName": renamed_user})
        assert r.status_code == 200, r.text
        assert get(f"/tables/{t}").json()["owner"] == renamed_user

        # columns (schema evolution through a data write)
        with Client(any_server.url, token=any_server.admin_token) as lf:
            lf.tables.write(pa.table({"id": [1], "name": ["a"], "extra": [1.5]}), t, schema_mode="merge")
        assert [col["name"] for col in get(f"/tables/{t}").json()["columns"]] == ["id", "name", "extra"]

        # schema: comment and rename (the table's full name changes with it)
        assert get(f"/schemas/{cat}.s").json().get("comment") is None
        assert c.patch(f"{UC}/schemas/{cat}.s", json={"comment": "sc"}).status_code == 200
        assert get(f"/schemas/{cat}.s").json()["comment"] == "sc"
        assert c.patch(f"{UC}/schemas/{cat}.s", json={"new_name": "s2"}).status_code == 200
        assert get(f"/tables/{t}").status_code == 404
        assert get(f"/schemas/{cat}.s").status_code == 404
        moved = get(f"/tables/{cat}.s2.t").json()
        assert moved["full_name"] == f"{cat}.s2.t" and moved["schema_name"] == "s2" and moved["table_id"] == first["table_id"]

        # catalog: comment and rename
        assert get(f"/catalogs/{cat}").json().get("comment") is None
        assert c.patch(f"{UC}/catalogs/{cat}", json={"comment": "cc"}).status_code == 200
        assert get(f"/catalogs/{cat}").json()["comment"] == "cc"
        new_cat = f"{cat}_renamed"
        assert c.patch(f"{UC}/catalogs/{cat}", json={"new_name": new_cat}).status_code == 200
        assert get(f"/catalogs/{cat}").status_code == 404 and get(f"/tables/{cat}.s2.t").status_code == 404
        t = f"{new_cat}.s2.t"
        moved = get(f"/tables/{t}").json()
        assert moved["catalog_name"] == new_cat and moved["full_name"] == t

        # delete, then a new table under the same name
        assert c.delete(f"{UC}/tables/{t}").status_code == 200
        assert get(f"/tables/{t}").status_code == 404
        assert c.post(f"{UC}/tables", json={"name": "t", "catalog_name": new_cat, "schema_name": "s2",
                                            "table_type": "MANAGED", "columns": COLUMNS[:1]}).status_code == 200
        again = get(f"/tables/{t}").json()
        assert again["table_id"] != first["table_id"] and [col["name"] for col in again["columns"]] == ["id"]
        assert "comment" not in again


def test_access_is_decided_on_every_read(any_server, namespace):
    """The lean path keeps rendered objects in memory, never access decisions."""
    cat = namespace
    t = f"{cat}.s.t"
    user, token = any_server.new_user()
    with any_server.client() as admin, any_server.client(token=token) as c:
        assert admin.get(f"{UC}/tables/{t}").status_code == 200  # in memory now
        assert c.get(f"{UC}/tables/{t}").json()["error_code"] == "PERMISSION_DENIED"
        grant(admin, "catalog", cat, user, "USE_CATALOG")
        grant(admin, "schema", f"{cat}.s", user, "USE_SCHEMA")
        grant(admin, "table", t, user, "SELECT")
        assert c.get(f"{UC}/tables/{t}").json()["name"] == "t"
        grant(admin, "table", t, user, "SELECT", remove=True)
        r = c.get(f"{UC}/tables/{t}")
        assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
        assert c.get(f"{UC}/schemas/{cat}.s").status_code == 200  # USE_SCHEMA shows the schema
        grant(admin, "schema", f"{cat}.s", user, "USE_SCHEMA", remove=True)
        assert c.get(f"{UC}/schemas/{cat}.s").status_code == 403


def test_two_server_processes_see_each_others_changes(tmp_path, monkeypatch):
    """`--workers 2`: a change made through one process is seen at once by reads in the other."""
    wait = harness.wait_ready
    monkeypatch.setattr(harness, "wait_ready", lambda server: wait(server, timeout=240))  # slow on a busy machine
    srv = harness.start_server(tmp_path / "home", workers=2)
    try:
        with srv.client() as c:
            c.post(f"{UC}/catalogs", json={"name": "w"}).raise_for_status()
            c.post(f"{UC}/schemas", json={"name": "s", "catalog_name": "w"}).raise_for_status()
            c.post(f"{UC}/tables", json={"name": "t", "catalog_name": "w", "schema_name": "s", "table_type": "MANAGED",
                                         "columns": COLUMNS[:1], "comment": "v0"}).raise_for_status()

        def read_in_both(path: str) -> dict[str, httpx.Response]:
            """The answer of each worker (fresh connections spread over both)."""
            answers: dict[str, httpx.Response] = {}
            deadline = time.monotonic() + 120  # the second worker may still be starting
            while len(answers) < 2 and time.monotonic() < deadline:
                with srv.client() as fresh:
                    r = fresh.get(UC + path)
                answers.setdefault(r.headers["x-lakeforge-worker"], r)
            assert len(answers) == 2, answers
            return answers

        assert {r.json()["comment"] for r in read_in_both("/tables/w.s.t").values()} == {"v0"}
        for i in range(1, 4):  # each change through whichever worker takes it
            with srv.client() as c:
                assert c.patch(f"{UC}/tables/w.s.t", json={"comment": f"v{i}"}).status_code == 200
            assert {r.json()["comment"] for r in read_in_both("/tables/w.s.t").values()} == {f"v{i}"}
        with srv.client() as c:
            assert c.patch(f"{UC}/schemas/w.s", json={"new_name": "s2"}).status_code == 200
        assert {r.status_code for r in read_in_both("/tables/w.s.t").values()} == {404}
        assert {r.json()["full_name"] for r in read_in_both("/tables/w.s2.t").values()} == {"w.s2.t"}
        with srv.client() as c:
            assert c.delete(f"{UC}/tables/w.s2.t").status_code == 200
        assert {r.status_code for r in read_in_both("/tables/w.s2.t").values()} == {404}
    finally:
        assert srv.stop() == 0


def test_reads_survive_dropped_database_connections(pg_server, unique):
    """The single-statement reads use pooled PostgreSQL connections without a pre-ping: one the
    database dropped is replaced and the read sent again."""
    import psycopg

    cat = unique("drop")
    dbname = pg_server.env["LAKEFORGE_DATABASE_URL"].rsplit("/", 1)[1]
    with pg_server.client() as c:
        c.post(f"{UC}/catalogs", json={"name": cat}).raise_for_status()
        for _ in range(3):
            assert c.get(f"{UC}/catalogs/{cat}_x").status_code == 404  # not kept in memory: reads the database
            with psycopg.connect(harness.PG_ADMIN_URL, autocommit=True) as admin:
                dropped = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                        "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)).fetchone()[0]
            assert dropped >= 1
            assert c.get(f"{UC}/catalogs/{cat}_x").status_code == 404
            assert c.patch(f"{UC}/catalogs/{cat}", json={"comment": "after"}).status_code == 200
            assert c.get(f"{UC}/catalogs/{cat}").json()["comment"] == "after"
        c.delete(f"{UC}/catalogs/{cat}", params={"force": "true"})
