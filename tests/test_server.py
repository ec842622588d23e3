"""The server process and the HTTP edge: health, shutdown, start-up errors, bad input."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from tests.harness import free_port, start_server

UC = "/api/2.1/unity-catalog"


def test_health_and_discovery_need_no_token(server):
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    r = httpx.get(server.url + "/.well-known/databricks-config")
    assert r.status_code == 200 and r.json()["workspace_id"]
    r = httpx.get(server.url + UC + "/catalogs")
    assert r.status_code == 401 and r.json()["error_code"] == "UNAUTHENTICATED"


def test_sigterm_shuts_down_cleanly_and_keeps_audit(tmp_path):
    srv = start_server(tmp_path / "h", env={"LAKEFORGE_AUDIT_FLUSH_SECONDS": "3600"})
    with srv.client() as c:
        rid = c.get(UC + "/catalogs").headers["x-request-id"]
    assert srv.stop(signal.SIGTERM) == 0
    assert not list((tmp_path / "h" / "wal" / "audit").glob("*.wal")) or all(
        p.stat().st_size == 0 for p in (tmp_path / "h" / "wal" / "audit").glob("*.wal"))
    again = start_server(tmp_path / "h", admin_token=srv.admin_token)
    try:
        with again.client() as c:
            assert c.get("/api/2.0/lakeforge/audit", params={"request_id": rid}).json()["events"]
    finally:
        again.stop()


def test_bootstrap_token_file_is_private_and_reused(tmp_path):
    home = tmp_path / "h"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEFORGE_")}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lakeforge.cli.main", "up", "--port", str(port), "--home",
                             str(home)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        for line in proc.stdout:
            if "Bootstrap admin token" in line:
                break
        token = (home / "admin-token").read_text().strip()
        assert token in line  # printed once, at first start
        assert oct((home / "admin-token").stat().st_mode & 0o777) == "0o600"
        assert httpx.get(f"http://127.0.0.1:{port}{UC}/catalogs",
                         headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_port_in_use_gives_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "lakeforge.cli.main", "up", "--port", str(port), "--home",
                              str(tmp_path / "h")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert f"port {port}" in out.stderr and "--port" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_home_is_refused(tmp_path):
    home = tmp_path / "ro"
    home.mkdir(mode=0o500)
    out = subprocess.run([sys.executable, "-m", "lakeforge.cli.main", "up", "--port", str(free_port()), "--home",
                          str(home / "x")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "not writable" in out.stderr


def test_unwritable_home_as_file_is_refused(tmp_path):
    home = tmp_path / "afile"
    home.write_text("not a directory")
    out = subprocess.run([sys.executable, "-m", "lakeforge.cli.main", "up", "--port", str(free_port()), "--home",
                          str(home)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "not writable" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("method,path,body,status,code", [
    ("POST", UC + "/catalogs", b'{"name": ', 400, "MALFORMED_REQUEST"),
    ("POST", UC + "/catalogs", b'[1, 2]', 400, "MALFORMED_REQUEST"),
    ("POST", UC + "/catalogs", b'{"name": 5}', 400, "INVALID_PARAMETER_VALUE"),
    ("POST", UC + "/catalogs", b'{}', 400, "INVALID_PARAMETER_VALUE"),
    ("POST", UC + "/catalogs", b'{"name": "has space"}', 400, "INVALID_PARAMETER_VALUE"),
    ("POST", UC + "/catalogs", b'{"name": "a/b"}', 400, "INVALID_PARAMETER_VALUE"),
    ("POST", UC + "/catalogs", b'{"name": "ok", "properties": {"a": {"nested": 1}}}', 400, "INVALID_PARAMETER_VALUE"),
    ("POST", UC + "/schemas", b'{"name": "s"}', 400, "INVALID_PARAMETER_VALUE"),
    ("GET", UC + "/schemas", b'', 400, "INVALID_PARAMETER_VALUE"),
    ("GET", UC + "/catalogs?max_results=ten", b'', 400, "INVALID_PARAMETER_VALUE"),
    ("GET", UC + "/schemas/not_three.parts.here.x", b'', 400, "INVALID_PARAMETER_VALUE"),
    ("GET", UC + "/permissions/galaxy/main", b'', 400, "INVALID_PARAMETER_VALUE"),
    ("PATCH", UC + "/permissions/catalog/main", b'{"changes": [{"principal": "users", "add": ["FLY"]}]}', 400,
     "INVALID_PARAMETER_VALUE"),
    ("PATCH", UC + "/permissions/catalog/main", b'{"changes": [{"principal": "users", "add": ["SELECT"]}]}', 200, None),
    ("PATCH", UC + "/permissions/table/main.default.nope", b'{"changes": []}', 404, "NOT_FOUND"),
    ("PATCH", UC + "/permissions/catalog/main", b'{"changes": [{"principal": "nobody-here", "add": ["SELECT"]}]}',
     404, "NOT_FOUND"),
    ("GET", "/api/2.1/unity-catalog/nothing-here", b'', 404, "ENDPOINT_NOT_FOUND"),
    ("PUT", UC + "/catalogs", b'{}', 405, "METHOD_NOT_ALLOWED"),
    ("GET", UC + "/catalogs/main", b'{"json": "on a GET is tolerated"}', 200, None),
])
def test_bad_input_gets_error_shape(admin, method, path, body, status, code):
    r = admin.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    if code:
        payload = r.json()
        assert payload["error_code"] == code and payload["message"] and "Traceback" not in r.text
        assert set(payload) == {"error_code", "message", "details"}


def test_oversized_body_is_413(admin):
    big = b'{"name": "x", "comment": "' + b"a" * (10 * 1024 * 1024 + 10) + b'"}'
    r = admin.post(UC + "/catalogs", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error_code"] == "REQUEST_TOO_LARGE"


def test_body_limit_is_configurable(tmp_path):
    srv = start_server(tmp_path / "h", env={"LAKEFORGE_MAX_BODY_BYTES": "1000"})
    try:
        with srv.client() as c:
            r = c.post(UC + "/catalogs", json={"name": "x", "comment": "a" * 2000})
            assert r.status_code == 413
            assert c.post(UC + "/catalogs", json={"name": "small"}).status_code == 200
    finally:
        srv.stop()


def test_workers_share_the_port_caches_and_audit(tmp_path):
    """`--workers 2`: both processes serve; a revoked token stops working at once in every worker
    (shared cache generation); requests served by either worker reach the audit table."""
    import subprocess
    import sys
    import time

    from tests.harness import Server, free_port, wait_ready

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEFORGE_")}
    env.update(LAKEFORGE_ADMIN_TOKEN="adm", LAKEFORGE_AUDIT_FLUSH_SECONDS="0.5", LAKEFORGE_HOME=str(tmp_path / "h"))
    proc = subprocess.Popen([sys.executable, "-m", "lakeforge.cli.main", "up", "--port", str(port), "--workers", "2"],
                            env=env, stdout=open(tmp_path / "log", "wb"), stderr=subprocess.STDOUT)
    srv = Server(url=f"http://127.0.0.1:{port}", home=tmp_path / "h", admin_token="adm", proc=proc,
                 log_path=tmp_path / "log")
    try:
        wait_ready(srv)
        time.sleep(1)  # the second worker may still be starting
        user, token = srv.new_user()
        pids = set()
        for _ in range(40):  # fresh connections spread over both workers
            with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}) as c:
                r = c.get("/api/2.0/preview/scim/v2/Me")
                assert r.status_code == 200
                pids.add(r.headers.get("x-lakeforge-worker"))
        assert len(pids) == 2, pids
        with srv.client(token=token) as c:
            tid = c.get("/api/2.0/token/list").json()["token_infos"][0]["token_id"]
        with srv.client() as admin:
            admin.delete(f"/api/2.0/token-management/tokens/{tid}").raise_for_status()
        for _ in range(20):
            with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}) as c:
                assert c.get("/api/2.0/preview/scim/v2/Me").status_code == 401
        with srv.client() as admin:
            events = admin.get("/api/2.0/lakeforge/audit", params={"principal": user, "limit": 1000}).json()["events"]
        time.sleep(1.5)
        with srv.client() as admin:
            events = admin.get("/api/2.0/lakeforge/audit", params={"principal": user, "limit": 1000}).json()["events"]
        assert len([e for e in events if e["action"] == "scim.me"]) == 40
    finally:
        assert srv.stop() == 0
