"""The `lakeforge` CLI against a real server: each area, JSON output, errors in one line."""

from __future__ import annotations

import json
import subprocess
import sys


def test_catalog_schema_grant_flow(cli, unique):
    cat = unique("cli")
    assert cat in cli("catalogs", "create", cat, "--comment", "from the CLI").stdout
    cli("schemas", "create", f"{cat}.s")
    listed = json.loads(cli("schemas", "list", cat, "-o", "json").stdout)
    assert [s["full_name"] for s in listed] == [f"{cat}.s"]
    cli("grants", "grant", "schema", f"{cat}.s", "users", "USE_SCHEMA", "SELECT")
    grants = json.loads(cli("grants", "get", "schema", f"{cat}.s", "-o", "json").stdout)
    assert grants == [{"principal": "users", "privileges": ["SELECT", "USE_SCHEMA"]}]
    cli("grants", "revoke", "schema", f"{cat}.s", "users", "SELECT")
    assert "SELECT" not in cli("grants", "get", "schema", f"{cat}.s").stdout
    cli("catalogs", "delete", cat, "--force")
    missing = cli("catalogs", "get", cat, ok=False)
    assert missing.returncode == 1 and missing.stderr.startswith("error: NOT_FOUND") and "Traceback" not in missing.stderr


def test_users_tokens_and_denial(cli, unique):
    name = f"{unique('cliuser')}@example.com"
    out = cli("users", "create", name, "--token").stdout
    token = out.split("token (shown once): ")[1].split()[0]
    me = json.loads(cli("users", "me", "-o", "json", token=token).stdout)
    assert me["userName"] == name
    denied = cli("catalogs", "create", unique("nope"), token=token, ok=False)
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr
    issued = json.loads(cli("tokens", "create", "--comment", "ci", "--lifetime-seconds", "600", "-o", "json",
                            token=token).stdout)
    assert issued["token_value"] and issued["token_info"]["comment"] == "ci"
    ids = [t["token_id"] for t in json.loads(cli("tokens", "list", "-o", "json", token=token).stdout)]
    assert issued["token_info"]["token_id"] in ids
    cli("tokens", "revoke", issued["token_info"]["token_id"], token=token)
    gone = cli("users", "me", token=issued["token_value"], ok=False)
    assert gone.returncode == 1 and "UNAUTHENTICATED" in gone.stderr
    group = unique("cligroup")
    cli("groups", "create", group)
    cli("groups", "add-member", group, name)
    assert group in {g["display"] for g in json.loads(cli("users", "me", "-o", "json", token=token).stdout)["groups"]}
    cli("users", "delete", name)


def test_secrets_from_stdin_never_echoed(cli, unique):
    scope = unique("cliscope")
    cli("secrets", "create-scope", scope)
    put = cli("secrets", "put", scope, "db-password", input="hunter2\n")
    assert "hunter2" not in put.stdout + put.stderr
    assert cli("secrets", "get", scope, "db-password").stdout.strip() == "hunter2"
    keys = json.loads(cli("secrets", "list", scope, "-o", "json").stdout)
    assert [k["key"] for k in keys] == ["db-password"] and "hunter2" not in json.dumps(keys)
    cli("secrets", "put-acl", scope, "users", "read")
    assert {"principal": "users", "permission": "READ"} in json.loads(cli("secrets", "list-acls", scope, "-o", "json").stdout)
    cli("secrets", "delete-scope", scope)


def test_volumes_files_and_tables(cli, unique, tmp_path):
    cat = unique("clivol")
    cli("catalogs", "create", cat)
    cli("schemas", "create", f"{cat}.s")
    cli("volumes", "create", f"{cat}.s.raw")
    src = tmp_path / "data.csv"
    src.write_text("a,b\n1,2\n")
    cli("volumes", "upload", str(src), f"/Volumes/{cat}/s/raw/in/data.csv")
    files = json.loads(cli("volumes", "ls", f"/Volumes/{cat}/s/raw/in", "-o", "json").stdout)
    assert [f["name"] for f in files] == ["data.csv"]
    dst = tmp_path / "back.csv"
    cli("volumes", "download", f"/Volumes/{cat}/s/raw/in/data.csv", str(dst))
    assert dst.read_text() == src.read_text()
    tables = json.loads(cli("tables", "list", "system.access", "-o", "json").stdout)
    assert "system.access.audit" in {t["full_name"] for t in tables}
    assert "event_time" in cli("tables", "get", "system.access.audit").stdout
    cli("catalogs", "delete", cat, "--force")


def test_profile_file(server, tmp_path, unique):
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f'[default]\nhost = "http://127.0.0.1:1"\n\n[ci]\nhost = "{server.url}"\n'
                        f'token = "{server.admin_token}"\n')
    env = {k: v for k, v in server.env.items() if not k.startswith("LAKEFORGE_")}
    env["LAKEFORGE_PROFILES"] = str(profiles)
    out = subprocess.run([sys.executable, "-m", "lakeforge.cli.main", "--profile", "ci", "catalogs", "list", "-o",
                          "json"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "main" in {c["name"] for c in json.loads(out.stdout)}


def test_lineage_command(cli, server, unique):
    cat = unique("clilin")
    cli("catalogs", "create", cat)
    cli("schemas", "create", f"{cat}.s")
    cols = [{"name": "id", "type_text": "bigint", "type_name": "LONG", "position": 0}]
    with server.client() as c:
        for t in ("src", "dst"):
            c.post("/api/2.1/unity-catalog/tables", json={
                "name": t, "catalog_name": cat, "schema_name": "s", "table_type": "MANAGED",
                "data_source_format": "DELTA", "columns": cols}).raise_for_status()
        c.post("/api/2.0/lineage/edges", json={
            "edges": [{"source": {"type": "table", "name": f"{cat}.s.src"},
                       "target": {"type": "table", "name": f"{cat}.s.dst"}}],
            "entity_type": "QUERY", "entity_id": "q-1"}).raise_for_status()
    graph = json.loads(cli("lineage", f"{cat}.s.dst", "--direction", "upstream", "-o", "json").stdout)
    assert graph["root"]["type"].lower() == "table"  # inferred from the catalog
    assert {(e["source"]["name"], e["target"]["name"]) for e in graph["edges"]} == {(f"{cat}.s.src", f"{cat}.s.dst")}
    assert f"{cat}.s.src" in cli("lineage", f"{cat}.s.dst").stdout
    missing = cli("lineage", f"{cat}.s.nothing", ok=False)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    cli("catalogs", "delete", cat, "--force")


def test_token_never_sent_to_another_host(tmp_path, monkeypatch):
    from lakeforge.client.connection import resolve

    (tmp_path / "profiles.toml").write_text('[default]\nhost = "http://a:1"\ntoken = "tok-a"\n'
                                            '[b]\nhost = "http://b:2"\ntoken = "tok-b"\n')
    monkeypatch.setenv("LAKEFORGE_PROFILES", str(tmp_path / "profiles.toml"))
    monkeypatch.setenv("LAKEFORGE_HOME", str(tmp_path))
    for var in ("LAKEFORGE_HOST", "LAKEFORGE_TOKEN", "LAKEFORGE_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    assert resolve() == ("http://a:1", "tok-a")
    assert resolve(host="http://other:9") == ("http://other:9", None)
    monkeypatch.setenv("LAKEFORGE_TOKEN", "tok-env")
    assert resolve(profile="b") == ("http://b:2", "tok-b")  # an explicit profile beats the environment
    assert resolve(profile="b", token="tok-arg") == ("http://b:2", "tok-arg")


def test_listen_host_is_not_the_client_url(tmp_path):
    """LAKEFORGE_HOST is the URL clients use; `up` must not try to listen on it."""
    from tests.harness import Server, free_port, wait_ready

    port = free_port()
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("LAKEFORGE_")}
    env.update(LAKEFORGE_HOST=f"http://127.0.0.1:{port}", LAKEFORGE_ADMIN_TOKEN="t", LAKEFORGE_HOME=str(tmp_path / "h"))
    proc = subprocess.Popen([sys.executable, "-m", "lakeforge.cli.main", "up", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    srv = Server(url=f"http://127.0.0.1:{port}", home=tmp_path / "h", admin_token="t", proc=proc)
    try:
        wait_ready(srv)
    finally:
        srv.stop()
