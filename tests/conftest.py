"""Shared fixtures: real servers (SQLite and PostgreSQL) and real clients."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.harness import Server, create_pg_database, drop_pg_database, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    """A Lakeforge server on SQLite, shared by the session."""
    srv = start_server(tmp_path_factory.mktemp("lakeforge-sqlite"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory) -> Server:
    """A Lakeforge server on the PostgreSQL running on this machine (a fresh database)."""
    url, name = create_pg_database()
    srv = start_server(tmp_path_factory.mktemp("lakeforge-pg"), database_url=url)
    yield srv
    srv.stop()
    drop_pg_database(name)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def any_server(request) -> Server:
    """Runs the test once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("server" if request.param == "sqlite" else "pg_server")


@pytest.fixture
def admin(server):
    with server.client() as c:
        yield c


@pytest.fixture
def unique():
    import uuid

    return lambda prefix="t": f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def serving_models(server):
    """Registered models for the serving tests (logging them with MLflow takes a while): once per session."""
    from tests.serving_models import register_models

    return register_models(server)


@pytest.fixture
def lf(server):
    """The Lakeforge SDK as the bootstrap admin."""
    from lakeforge import Client

    with Client(server.url, server.admin_token) as c:
        yield c


@pytest.fixture
def cli(server, tmp_path):
    """Runs `lakeforge ARGS` against the server as the admin (or `token`); asserts exit 0 unless `ok=False`."""
    env = {**server.env, "LAKEFORGE_HOST": server.url, "LAKEFORGE_TOKEN": server.admin_token,
           "LAKEFORGE_PROFILES": str(tmp_path / "none.toml"), "COLUMNS": "200"}

    def run(*args: str, input: str | None = None, token: str | None = None,
            ok: bool = True) -> subprocess.CompletedProcess:
        e = {**env, "LAKEFORGE_TOKEN": token} if token else env
        out = subprocess.run([sys.executable, "-m", "lakeforge.cli.main", *args], env=e, input=input,
                             capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
        if ok:
            assert out.returncode == 0, out.stderr + out.stdout
        return out

    return run
