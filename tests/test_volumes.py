"""Volumes and the files in them through the real clients: databricks-sdk (`w.volumes`, `w.files`),
unitycatalog-client, and raw HTTP validated against the spec."""

from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path

import httpx
import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import BadRequest, NotFound, PermissionDenied, ResourceConflict
from databricks.sdk.service.catalog import VolumeType

from tests.harness import Server
from tests.spec import Recorder

UC = "/api/2.1/unity-catalog"
FS = "/api/2.0/fs"


def file_path(uri: str) -> Path:
    assert uri.startswith("file:///"), uri
    return Path(uri[len("file://"):])


def error_code(r: httpx.Response) -> str:
    body = r.json()
    assert set(body) >= {"error_code", "message"} and "detail" not in body, body
    return body["error_code"]


@pytest.fixture
def namespace(any_server: Server, unique):
    cat = unique("vol")
    with any_server.client() as c:
        c.post(f"{UC}/catalogs", json={"name": cat}).raise_for_status()
        c.post(f"{UC}/schemas", json={"name": "s", "catalog_name": cat}).raise_for_status()
    yield cat, "s"
    with any_server.client() as c:
        c.delete(f"{UC}/catalogs/{cat}", params={"force": "true"})


@pytest.fixture
def volume(server: Server, unique):
    """A managed volume on the SQLite server: (full name, /Volumes path, directory)."""
    cat = unique("fs")
    with server.client() as c:
        c.post(f"{UC}/catalogs", json={"name": cat}).raise_for_status()
        c.post(f"{UC}/schemas", json={"name": "s", "catalog_name": cat}).raise_for_status()
        v = c.post(f"{UC}/volumes", json={"catalog_name": cat, "schema_name": "s", "name": "v",
                                          "volume_type": "MANAGED"})
        v.raise_for_status()
    yield f"{cat}.s.v", f"/Volumes/{cat}/s/v", file_path(v.json()["storage_location"])
    with server.client() as c:
        c.delete(f"{UC}/catalogs/{cat}", params={"force": "true"})


# ---- volumes -------------------------------------------------------------------------------------
def test_managed_volume_lifecycle(any_server, namespace):
    cat, sch = namespace
    w = any_server.workspace()
    v = w.volumes.create(catalog_name=cat, schema_name=sch, name="raw", volume_type=VolumeType.MANAGED,
                         comment="landing zone")
    assert v.full_name == f"{cat}.{sch}.raw" and v.volume_type == VolumeType.MANAGED and v.volume_id
    assert v.owner == "admin" and v.comment == "landing zone" and isinstance(v.created_at, int)
    directory = file_path(v.storage_location)
    assert directory.is_dir() and "__unitystorage" in directory.parts
    assert w.volumes.read(v.full_name).volume_id == v.volume_id
    w.volumes.create(catalog_name=cat, schema_name=sch, name="other", volume_type=VolumeType.MANAGED)
    assert [x.name for x in w.volumes.list(catalog_name=cat, schema_name=sch)] == ["other", "raw"]
    with pytest.raises(ResourceConflict):
        w.volumes.create(catalog_name=cat, schema_name=sch, name="raw", volume_type=VolumeType.MANAGED)

    w.files.upload(f"/Volumes/{cat}/{sch}/raw/a.txt", io.BytesIO(b"kept across rename"))
    renamed = w.volumes.update(v.full_name, new_name="landing", comment="renamed", owner="admins")
    assert renamed.full_name == f"{cat}.{sch}.landing" and renamed.comment == "renamed"
    assert renamed.owner == "admins" and renamed.storage_location == v.storage_location
    assert w.files.download(f"/Volumes/{cat}/{sch}/landing/a.txt").contents.read() == b"kept across rename"
    with pytest.raises(NotFound):
        w.volumes.read(v.full_name)
    w.volumes.delete(renamed.full_name)
    assert not directory.exists()  # managed files go with the volume
    with pytest.raises(NotFound):
        w.volumes.read(renamed.full_name)
    with pytest.raises(NotFound):
        w.volumes.delete(renamed.full_name)


def test_volumes_match_spec_and_page(any_server, namespace, tmp_path):
    cat, sch = namespace
    rec = Recorder()
    ext = tmp_path / "ext"
    ext.mkdir()
    (ext / "existing.csv").write_text("a,b\n1,2\n")
    with httpx.Client(base_url=any_server.url + UC, headers={"Authorization": f"Bearer {any_server.admin_token}"},
                      event_hooks={"response": [rec]}, timeout=60) as c:
        for i in range(5):
            r = c.post("/volumes", json={"catalog_name": cat, "schema_name": sch, "name": f"v{i}",
                                         "volume_type": "MANAGED"})
            assert r.status_code == 200, r.text
        r = c.post("/volumes", json={"catalog_name": cat, "schema_name": sch, "name": "ext", "volume_type": "EXTERNAL",
                                     "storage_location": str(ext), "comment": "outside"})
        assert r.status_code == 200, r.text
        assert r.json()["storage_location"] == ext.resolve().as_uri() and r.json()["volume_type"] == "EXTERNAL"
        seen, token = [], None
        while True:
            params = {"catalog_name": cat, "schema_name": sch, "max_results": 2}
            if token:
                params["page_token"] = token
            body = c.get("/volumes", params=params).json()
            seen += [v["name"] for v in body["volumes"]]
            token = body.get("next_page_token")
            if not token:
                break
        assert seen == ["ext", "v0", "v1", "v2", "v3", "v4"]
        c.get(f"/volumes/{cat}.{sch}.ext")
        c.patch(f"/volumes/{cat}.{sch}.v0", json={"comment": "c"})
        c.patch(f"/volumes/{cat}.{sch}.v0", json={"new_name": "w0"})
        c.delete(f"/volumes/{cat}.{sch}.w0")
        c.delete(f"/volumes/{cat}.{sch}.ext")
    assert not rec.failures, "\n".join(rec.failures)
    assert (ext / "existing.csv").read_text() == "a,b\n1,2\n"  # external files are never deleted


def test_bad_volume_requests(any_server, namespace, tmp_path):
    cat, sch = namespace
    base = {"catalog_name": cat, "schema_name": sch, "name": "v"}
    with any_server.client() as c:
        managed = c.post(f"{UC}/volumes", json={**base, "name": "m", "volume_type": "MANAGED"}).json()
        cases = [
            ({**base}, 400, "volume_type"),
            ({**base, "volume_type": "SHARED"}, 400, "volume_type"),
            ({**base, "volume_type": "MANAGED", "storage_location": tmp_path.as_uri()}, 400, "no storage_location"),
            ({**base, "volume_type": "EXTERNAL"}, 400, "storage_location is required"),
            ({**base, "volume_type": "EXTERNAL", "storage_location": (tmp_path / "nope").as_uri()}, 400,
             "not an existing directory"),
            ({**base, "volume_type": "EXTERNAL", "storage_location": managed["storage_location"]}, 400,
             "managed storage"),
            ({**base, "volume_type": "EXTERNAL", "storage_location": str(any_server.home)}, 400, "Lakeforge"),
            ({**base, "volume_type": "EXTERNAL", "storage_location": "s3://bucket/dir"}, 400, "Unsupported"),
            ({**base, "schema_name": "nope", "volume_type": "MANAGED"}, 404, "does not exist"),
            ({**base, "name": "a/b", "volume_type": "MANAGED"}, 400, "Invalid volume name"),
        ]
        for payload, status, words in cases:
            r = c.post(f"{UC}/volumes", json=payload)
            assert r.status_code == status and words in r.json()["message"], (payload, r.text)
            error_code(r)
        # An external volume may not overlap another one.
        outer = tmp_path / "outer"
        (outer / "inner").mkdir(parents=True)
        ok = c.post(f"{UC}/volumes", json={**base, "name": "outer", "volume_type": "EXTERNAL",
                                           "storage_location": outer.as_uri()})
        assert ok.status_code == 200
        r = c.post(f"{UC}/volumes", json={**base, "name": "inner", "volume_type": "EXTERNAL",
                                          "storage_location": (outer / "inner").as_uri()})
        assert r.status_code == 400 and f"{cat}.{sch}.outer" in r.json()["message"]
        assert c.get(f"{UC}/volumes/{cat}.{sch}.missing").status_code == 404
        assert c.get(f"{UC}/volumes/{cat}.{sch}").status_code == 400
        assert c.get(f"{UC}/volumes", params={"catalog_name": cat}).status_code == 400
        assert c.patch(f"{UC}/volumes/{cat}.{sch}.m", json={"new_name": "outer"}).status_code == 409
        assert c.patch(f"{UC}/volumes/{cat}.{sch}.m", json={"owner": "no-such-user"}).status_code == 404
        # No leftovers from the refused creates.
        assert [p.name for p in file_path(managed["storage_location"]).parent.iterdir()] == [managed["volume_id"]]


# ---- files ---------------------------------------------------------------------------------------
def test_files_through_databricks_sdk(server, volume):
    full, root, directory = volume
    w = server.workspace()
    data = os.urandom(300_000)
    w.files.upload(f"{root}/dir/sub/data.bin", io.BytesIO(data))
    assert (directory / "dir/sub/data.bin").read_bytes() == data
    got = w.files.download(f"{root}/dir/sub/data.bin")
    assert got.contents.read() == data and got.content_length == len(data)
    assert got.content_type == "application/octet-stream"
    meta = w.files.get_metadata(f"{root}/dir/sub/data.bin")
    assert meta.content_length == len(data) and meta.last_modified

    with pytest.raises(ResourceConflict):
        w.files.upload(f"{root}/dir/sub/data.bin", io.BytesIO(b"x"), overwrite=False)
    w.files.upload(f"{root}/dir/sub/data.bin", io.BytesIO(b"replaced"), overwrite=True)
    assert w.files.download(f"{root}/dir/sub/data.bin").contents.read() == b"replaced"
    w.files.upload(f"{root}/name with spaces & ünïcode %.txt", io.BytesIO(b"odd"))
    assert (directory / "name with spaces & ünïcode %.txt").read_bytes() == b"odd"
    assert w.files.download(f"{root}/name with spaces & ünïcode %.txt").contents.read() == b"odd"
    w.files.upload(f"{root}/empty", io.BytesIO(b""))
    assert w.files.download(f"{root}/empty").contents.read() == b""

    w.files.create_directory(f"{root}/made/a/b")
    w.files.create_directory(f"{root}/made/a/b")  # idempotent
    w.files.get_directory_metadata(f"{root}/made/a")
    entries = {e.name: e for e in w.files.list_directory_contents(root)}
    assert set(entries) == {"dir", "made", "empty", "name with spaces & ünïcode %.txt"}
    assert entries["dir"].is_directory and entries["dir"].path == f"{root}/dir/"
    assert entries["empty"].is_directory is False and entries["empty"].file_size == 0
    assert entries["empty"].last_modified > 1_600_000_000_000 and entries["empty"].path == f"{root}/empty"
    assert [e.name for e in w.files.list_directory_contents(f"{root}/dir/sub")] == ["data.bin"]

    with pytest.raises(NotFound):
        w.files.download(f"{root}/missing.txt")
    with pytest.raises(NotFound):
        w.files.get_directory_metadata(f"{root}/missing")
    with pytest.raises(NotFound):
        list(w.files.list_directory_contents(f"{root}/empty"))  # a file, not a directory
    with pytest.raises(BadRequest):
        w.files.delete_directory(f"{root}/dir")  # not empty
    w.files.delete(f"{root}/dir/sub/data.bin")
    with pytest.raises(NotFound):
        w.files.delete(f"{root}/dir/sub/data.bin")
    w.files.delete_directory(f"{root}/dir/sub")
    w.files.delete_directory(f"{root}/dir")
    assert not (directory / "dir").exists()
    with pytest.raises(NotFound):
        w.files.upload(f"/Volumes/{full.split('.')[0]}/s/nope/x.txt", io.BytesIO(b"x"))


def test_large_uploads_fall_back_from_multipart_to_one_put(server, volume, tmp_path):
    """databricks-sdk sends big files as multipart uploads; without presigned URLs it must fall back."""
    full, root, directory = volume
    cfg = Config(host=server.url, token=server.admin_token, retry_timeout_seconds=15)
    cfg.files_ext_multipart_upload_min_stream_size = 1024 * 1024  # not taken as a constructor argument
    w = WorkspaceClient(config=cfg)
    data = os.urandom(3 * 1024 * 1024 + 17)
    w.files.upload(f"{root}/big/parallel.bin", io.BytesIO(data))
    w.files.upload(f"{root}/big/serial.bin", io.BytesIO(data), use_parallel=False)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    w.files.upload_from(f"{root}/big/from_file.bin", str(source))
    for name in ("parallel.bin", "serial.bin", "from_file.bin"):
        assert (directory / "big" / name).read_bytes() == data, name
    assert w.files.download(f"{root}/big/serial.bin").contents.read() == data
    with server.client() as c:
        r = c.post(f"{FS}/create-download-url", params={"path": f"{root}/big/serial.bin"})
        assert r.status_code == 501 and error_code(r) == "NOT_IMPLEMENTED"
        # The SDK really took the multipart path before falling back (once per upload above).
        deadline = time.monotonic() + 10
        started = []
        while time.monotonic() < deadline and len(started) < 3:
            started = c.get("/api/2.0/lakeforge/audit", params={"action": "files.upload_session",
                                                                 "securable": full, "limit": 10}).json()["events"]
            time.sleep(0.2)
        assert len(started) == 3


def test_raw_http_files_edge_cases(server, volume):
    _, root, directory = volume
    url = f"{FS}/files{root}"
    with server.client() as c:
        assert c.put(f"{url}/r.txt", content=b"0123456789").status_code == 200
        r = c.get(f"{url}/r.txt", headers={"Range": "bytes=2-4"})
        assert r.status_code == 206 and r.content == b"234" and r.headers["content-range"] == "bytes 2-4/10"
        r = c.get(f"{url}/r.txt", headers={"Range": "bytes=7-"})
        assert r.status_code == 206 and r.content == b"789"
        r = c.get(f"{url}/r.txt", headers={"Range": "bytes=50-"})
        assert r.status_code == 416 and error_code(r) == "INVALID_PARAMETER_VALUE"
        r = c.get(f"{url}/r.txt", headers={"Range": "lines=1-2"})
        assert r.status_code == 400 and error_code(r) == "INVALID_PARAMETER_VALUE"
        r = c.get(f"{url}/r.txt", headers={"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
        assert r.status_code == 412 and error_code(r) == "PRECONDITION_FAILED"
        r = c.get(f"{url}/r.txt", headers={"If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"})
        assert r.status_code == 200 and r.content == b"0123456789"
        r = c.head(f"{url}/r.txt")
        assert r.status_code == 200 and r.headers["content-length"] == "10" and r.headers["last-modified"]
        assert c.head(f"{url}/nope.txt").status_code == 404

        # Conflicts between files and directories.
        assert c.put(f"{FS}/directories{root}/d").status_code == 200
        r = c.put(f"{url}/d", content=b"x")
        assert r.status_code == 409 and error_code(r) == "ALREADY_EXISTS"
        r = c.put(f"{FS}/directories{root}/r.txt/sub")
        assert r.status_code == 409
        r = c.put(f"{url}/r.txt/inner.txt", content=b"x")
        assert r.status_code == 409
        r = c.delete(f"{url}/d")
        assert r.status_code == 400 and "directory" in r.json()["message"]
        r = c.delete(f"{FS}/directories{root}")
        assert r.status_code == 400 and "root" in r.json()["message"]
        assert c.put(f"{url}", content=b"x").status_code == 400  # the volume itself is not a file
        assert c.put(f"{url}/.lf-upload-x", content=b"x").status_code == 400  # reserved for uploads in progress
        # Uploads stream to disk: the JSON body limit (10 MB by default) does not apply.
        big = os.urandom(11 * 1024 * 1024)
        assert c.put(f"{url}/big.bin", content=big).status_code == 200
        assert (directory / "big.bin").read_bytes() == big

        # Paging through a directory.
        for i in range(5):
            c.put(f"{url}/d/f{i}", content=b"x").raise_for_status()
        names, token = [], None
        while True:
            params = {"page_size": 2, **({"page_token": token} if token else {})}
            body = c.get(f"{FS}/directories{root}/d", params=params).json()
            assert len(body["contents"]) <= 2
            names += [e["name"] for e in body["contents"]]
            token = body.get("next_page_token")
            if not token:
                break
        assert names == [f"f{i}" for i in range(5)]
        assert c.get(f"{FS}/directories{root}/d", params={"page_size": -1}).status_code == 400
        r = c.post(f"{url}/x.bin", params={"action": "complete-upload"}, json={"parts": []})
        assert r.status_code == 501


def test_paths_cannot_escape_the_volume(server, volume, tmp_path):
    full, root, directory = volume
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    (directory / "link").symlink_to(outside)
    (directory / "file-link").symlink_to(outside / "secret.txt")
    (directory / "inner").mkdir()
    (directory / "inner" / "ok.txt").write_text("fine")
    (directory / "inner-link").symlink_to(directory / "inner")
    escaping = [
        f"{FS}/files{root}/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
        f"{FS}/files{root}/inner/..%2F..%2Fsecret.txt",
        f"{FS}/files{root}/%2E/inner/ok.txt",
        f"{FS}/files{root}/inner//ok.txt",
        f"{FS}/files//etc/passwd",
        f"{FS}/files/etc/passwd",
        f"{FS}/files/Volumes/{full.split('.')[0]}",
        f"{FS}/files{root}/link/secret.txt",
        f"{FS}/files{root}/file-link",
        f"{FS}/directories{root}/link",
    ]
    with server.client() as c:
        for path in escaping:
            for method in ("GET", "PUT", "DELETE"):
                r = c.request(method, path, content=b"pwned" if method == "PUT" else None)
                assert r.status_code == 400, (method, path, r.text)
                assert error_code(r) == "INVALID_PARAMETER_VALUE"
        assert (outside / "secret.txt").read_text() == "top secret"
        assert sorted(os.listdir(outside)) == ["secret.txt"]
        # Listings leave out links that lead outside; links that stay inside work.
        names = [e["name"] for e in c.get(f"{FS}/directories{root}").json()["contents"]]
        assert names == ["inner", "inner-link"]
        assert c.get(f"{FS}/files{root}/inner-link/ok.txt").content == b"fine"


def test_a_failed_upload_leaves_nothing(server, volume):
    _, root, directory = volume

    def body():
        yield b"x" * (2 * 1024 * 1024)
        raise RuntimeError("client gave up")

    with server.client() as c, pytest.raises(RuntimeError):
        c.put(f"{FS}/files{root}/fail/deep/x.bin", content=body())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(directory.iterdir()):
        time.sleep(0.1)
    assert list(directory.iterdir()) == []


# ---- privileges and audit ------------------------------------------------------------------------
def grant(c: httpx.Client, kind: str, full_name: str, principal: str, *privileges: str) -> None:
    r = c.patch(f"{UC}/permissions/{kind}/{full_name}",
                json={"changes": [{"principal": principal, "add": list(privileges)}]})
    assert r.status_code == 200, r.text


def test_volume_privileges_and_audit(server, volume, tmp_path):
    with server.client() as c:
        if c.get("/api/2.0/preview/scim/v2/Users", params={"count": 1}).status_code != 200:
            pytest.skip("SCIM users API not available yet")
    full, root, directory = volume
    cat = full.split(".")[0]
    (directory / "data.txt").write_text("hello")
    volume_id = server.workspace().volumes.read(full).volume_id
    user, token = server.new_user()
    w = server.workspace(token)
    with server.client(token) as c:
        assert c.get(f"{FS}/files{root}/data.txt").status_code == 403
        with server.client() as admin:
            grant(admin, "catalog", cat, user, "USE_CATALOG")
            grant(admin, "schema", f"{cat}.s", user, "USE_SCHEMA")
        r = c.get(f"{FS}/files{root}/data.txt")
        assert r.status_code == 403 and "READ_VOLUME" in r.json()["message"]
        r = c.post(f"{UC}/volumes", json={"catalog_name": cat, "schema_name": "s", "name": "mine",
                                          "volume_type": "MANAGED"})
        assert r.status_code == 403
        with server.client() as admin:
            grant(admin, "volume", full, user, "READ_VOLUME")
            grant(admin, "schema", f"{cat}.s", user, "CREATE_VOLUME")
        assert w.volumes.read(full).name == "v"
        assert w.files.download(f"{root}/data.txt").contents.read() == b"hello"
        assert [e.name for e in w.files.list_directory_contents(root)] == ["data.txt"]
        with pytest.raises(PermissionDenied):
            w.files.upload(f"{root}/new.txt", io.BytesIO(b"x"))
        with pytest.raises(PermissionDenied):
            w.files.delete(f"{root}/data.txt")
        creds = c.post(f"{UC}/temporary-volume-credentials", json={"volume_id": volume_id, "operation": "READ_VOLUME"})
        assert creds.status_code == 200 and creds.json()["url"] == directory.resolve().as_uri()
        r = c.post(f"{UC}/temporary-volume-credentials", json={"volume_id": volume_id, "operation": "WRITE_VOLUME"})
        assert r.status_code == 403
        with server.client() as admin:
            grant(admin, "volume", full, user, "WRITE_VOLUME")
        w.files.upload(f"{root}/new.txt", io.BytesIO(b"mine"))
        assert (directory / "new.txt").read_bytes() == b"mine"
        r = c.post(f"{UC}/temporary-volume-credentials", json={"volume_id": volume_id, "operation": "WRITE_VOLUME"})
        assert r.status_code == 200
        # Managing the volume stays with its owner; the user owns the volume it creates.
        assert c.patch(f"{UC}/volumes/{full}", json={"comment": "x"}).status_code == 403
        assert c.delete(f"{UC}/volumes/{full}").status_code == 403
        mine = c.post(f"{UC}/volumes", json={"catalog_name": cat, "schema_name": "s", "name": "mine",
                                             "volume_type": "MANAGED"})
        assert mine.status_code == 200 and mine.json()["owner"] == user
        ext = tmp_path / "ext"
        ext.mkdir()
        r = c.post(f"{UC}/volumes", json={"catalog_name": cat, "schema_name": "s", "name": "ext",
                                          "volume_type": "EXTERNAL", "storage_location": ext.as_uri()})
        assert r.status_code == 403  # serving server directories is for admins until external locations exist
        assert c.delete(f"{UC}/volumes/{cat}.s.mine").status_code == 200
        upload_id = c.put(f"{FS}/files{root}/audited.txt", content=b"a").headers["x-request-id"]
    with server.client() as admin:
        deadline = time.monotonic() + 10
        events = []
        while time.monotonic() < deadline and not events:
            events = admin.get("/api/2.0/lakeforge/audit", params={"request_id": upload_id}).json().get("events", [])
            time.sleep(0.2)
    assert events and events[0]["securable"] == full and events[0]["action"] == "files.upload"
    assert events[0]["service"] == "files"


# ---- unitycatalog-client -------------------------------------------------------------------------
def test_unitycatalog_client_volumes_and_credentials(any_server, namespace):
    from unitycatalog.client import ApiClient, Configuration, TemporaryCredentialsApi, VolumesApi
    from unitycatalog.client.exceptions import BadRequestException, NotFoundException
    from unitycatalog.client.models import (
        CreateVolumeRequestContent,
        GenerateTemporaryVolumeCredential,
        UpdateVolumeRequestContent,
    )
    from unitycatalog.client.models import VolumeType as UcVolumeType

    cat, sch = namespace

    async def run():
        api = ApiClient(Configuration(host=any_server.url + UC))
        api.set_default_header("Authorization", f"Bearer {any_server.admin_token}")
        try:
            volumes, creds = VolumesApi(api), TemporaryCredentialsApi(api)
            v = await volumes.create_volume(CreateVolumeRequestContent(
                catalog_name=cat, schema_name=sch, name="ucv", volume_type=UcVolumeType.MANAGED, comment="c"))
            assert v.volume_id and v.full_name == f"{cat}.{sch}.ucv" and v.volume_type == UcVolumeType.MANAGED
            assert (await volumes.get_volume(v.full_name)).comment == "c"
            listed = await volumes.list_volumes(catalog_name=cat, schema_name=sch)
            assert [x.name for x in listed.volumes] == ["ucv"]
            updated = await volumes.update_volume(v.full_name, UpdateVolumeRequestContent(comment="d",
                                                                                          new_name="ucw"))
            assert updated.name == "ucw" and updated.comment == "d"
            for op in ("READ_VOLUME", "WRITE_VOLUME"):
                cred = await creds.generate_temporary_volume_credentials(
                    GenerateTemporaryVolumeCredential(volume_id=v.volume_id, operation=op))
                assert cred.url == v.storage_location and cred.expiration_time > 0
                assert cred.aws_temp_credentials is None
            with pytest.raises(BadRequestException):
                await creds.generate_temporary_volume_credentials(
                    GenerateTemporaryVolumeCredential(volume_id=v.volume_id, operation="UNKNOWN_VOLUME_OPERATION"))
            with pytest.raises(NotFoundException):
                await creds.generate_temporary_volume_credentials(
                    GenerateTemporaryVolumeCredential(volume_id="f" * 32, operation="READ_VOLUME"))
            await volumes.delete_volume(f"{cat}.{sch}.ucw")
            with pytest.raises(NotFoundException):
                await volumes.get_volume(f"{cat}.{sch}.ucw")
        finally:
            await api.close()

    asyncio.run(run())
