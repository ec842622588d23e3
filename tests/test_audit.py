"""The audit log: one durable record per request, allowed or denied, queryable as a Delta table,
through the API and the CLI, never holding a token."""

from __future__ import annotations

import concurrent.futures
import glob
import os
import signal
import subprocess
import sys
import time

import httpx
from deltalake import DeltaTable

from tests.harness import start_server


def _audit_rows(server) -> list[dict]:
    path = glob.glob(str(server.home / "storage/__unitystorage/catalogs/*/tables/*"))
    rows = []
    for p in path:
        if os.path.isdir(os.path.join(p, "_delta_log")):
            t = DeltaTable(p)
            if "request_id" in t.schema().to_arrow().names:
                rows += t.to_pyarrow_table().to_pylist()
    return rows


def _search(client, **params) -> list[dict]:
    r = client.get("/api/2.0/lakeforge/audit", params=params)
    r.raise_for_status()
    return r.json()["events"]


def test_allowed_and_denied_requests_are_recorded(server, unique):
    name = unique("aud")
    with server.client() as c:
        ok = c.post("/api/2.1/unity-catalog/catalogs", json={"name": name})
        assert ok.status_code == 200
        ok_id = ok.headers["x-request-id"]
        missing = c.get(f"/api/2.1/unity-catalog/catalogs/{name}_missing")
        assert missing.status_code == 404
    with server.client(token="not-a-token") as bad:
        denied = bad.get("/api/2.1/unity-catalog/catalogs")
        assert denied.status_code == 401
    with server.client() as c:
        events = {e["request_id"]: e for e in _search(c, limit=1000)}
    created = events[ok_id]
    assert created["principal"] == "admin" and created["action"] == "catalogs.create"
    assert created["securable"] == name and created["status_code"] == 200
    assert created["service"] == "unityCatalog" and created["source_address"] == "127.0.0.1"
    assert isinstance(created["event_time"], int)
    nf = events[missing.headers["x-request-id"]]
    assert nf["status_code"] == 404 and nf["error_code"] == "NOT_FOUND" and nf["securable"] == f"{name}_missing"
    unauth = events[denied.headers["x-request-id"]]
    assert unauth["status_code"] == 401 and unauth.get("principal") is None and unauth["action"] == "authenticate"


def test_permission_denied_is_recorded_and_audit_needs_select(server):
    user, token = server.new_user()
    with server.client(token=token) as c:
        r = c.post("/api/2.1/unity-catalog/catalogs", json={"name": "not_allowed_cat"})
        assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
        rid = r.headers["x-request-id"]
        # Reading the audit log is reading system.access.audit: SELECT needed.
        assert c.get("/api/2.0/lakeforge/audit").status_code == 403
    with server.client() as c:
        events = _search(c, request_id=rid)
        assert len(events) == 1 and events[0]["principal"] == user and events[0]["status_code"] == 403
        for securable_type, name, privs in (("catalog", "system", ["USE_CATALOG"]),
                                            ("schema", "system.access", ["USE_SCHEMA"]),
                                            ("table", "system.access.audit", ["SELECT"])):
            c.patch(f"/api/2.1/unity-catalog/permissions/{securable_type}/{name}",
                    json={"changes": [{"principal": user, "add": privs}]}).raise_for_status()
    time.sleep(2.5)  # grant caches expire within auth_cache_seconds
    with server.client(token=token) as c:
        assert c.get("/api/2.0/lakeforge/audit", params={"request_id": rid}).status_code == 200


def test_no_token_or_secret_ever_in_audit(server):
    user, token = server.new_user()
    with server.client(token=token) as c:
        c.get("/api/2.1/unity-catalog/catalogs").raise_for_status()
        c.get("/api/2.1/unity-catalog/catalogs", params={"page_token": "x"})
    with server.client() as c:
        _search(c, limit=5)  # forces a flush into the table
    text = repr(_audit_rows(server))
    assert token not in text and server.admin_token not in text
    for wal in glob.glob(str(server.home / "wal/audit/*")):
        data = open(wal, "rb").read()
        assert token.encode() not in data and server.admin_token.encode() not in data
    logs = server.logs()
    # The bootstrap admin token is printed once, at first start, by design; nothing else is.
    assert token not in logs and logs.count(server.admin_token) == 1


def test_audit_cli(server):
    with server.client() as c:
        c.get("/api/2.1/unity-catalog/catalogs").raise_for_status()
    env = {**server.env, "LAKEFORGE_HOST": server.url, "LAKEFORGE_TOKEN": server.admin_token}
    out = subprocess.run([sys.executable, "-m", "lakeforge.cli.main", "audit", "list", "--action", "catalogs.list",
                          "-o", "json"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert '"action": "catalogs.list"' in out.stdout


def test_acknowledged_records_survive_kill_9_exactly_once(tmp_path):
    """Records are in the write-ahead log before the response; after kill -9 and a restart every
    acknowledged request is in system.access.audit exactly once."""
    home = tmp_path / "home"
    # A long flush interval: at the kill, most records exist only in the write-ahead log.
    srv = start_server(home, env={"LAKEFORGE_AUDIT_FLUSH_SECONDS": "3600"})
    ids: list[str] = []

    def hit(i: int) -> str:
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {srv.admin_token}"}) as c:
            r = c.get(f"/api/2.1/unity-catalog/catalogs/cat_{i}")
            assert r.status_code == 404
            return r.headers["x-request-id"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(hit, range(200)))
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait()
    restarted = start_server(home, admin_token=srv.admin_token)
    try:
        with restarted.client() as c:
            events = _search(c, limit=10000, action="catalogs.get")
        seen = [e["request_id"] for e in events]
        assert set(ids) <= set(seen), f"{len(set(ids) - set(seen))} acknowledged records lost"
        assert len(seen) == len(set(seen)), "a record was written twice"
    finally:
        restarted.stop()


def test_records_after_a_clean_restart_still_land(tmp_path):
    """After a clean stop the log is empty; the next segments must be numbered past what the table
    holds, or the sink would take them for already committed and drop them."""
    home = tmp_path / "home"
    first = start_server(home)
    with first.client() as c:
        for _ in range(3):
            c.get(UC_CATALOGS)
    first.stop()
    second = start_server(home, admin_token=first.admin_token)
    try:
        with second.client() as c:
            rid = c.get(UC_CATALOGS).headers["x-request-id"]
            time.sleep(1.5)  # let the flusher (0.5 s in tests) move it, then read straight from Delta
        assert rid in {r["request_id"] for r in _audit_rows(second)}
        third_rid = None
        second.stop()
        third = start_server(home, admin_token=first.admin_token)
        with third.client() as c:
            third_rid = c.get(UC_CATALOGS).headers["x-request-id"]
            assert _search(c, request_id=third_rid) and _search(c, request_id=rid)
        third.stop()
    finally:
        second.stop()


UC_CATALOGS = "/api/2.1/unity-catalog/catalogs"
