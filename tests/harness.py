"""Starts real Lakeforge servers for tests: a subprocess on a free loopback port, its own home."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PG_ADMIN_URL = os.environ.get("LAKEFORGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    home: Path
    admin_token: str
    proc: subprocess.Popen
    env: dict = field(default_factory=dict)
    log_path: Path | None = None

    def client(self, token: str | None = None, **kw) -> httpx.Client:
        token = self.admin_token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)

    def workspace(self, token: str | None = None):
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.config import Config

        cfg = Config(host=self.url, token=token or self.admin_token, retry_timeout_seconds=15,
                     http_timeout_seconds=60)
        return WorkspaceClient(config=cfg)

    def new_user(self, name: str | None = None) -> tuple[str, str]:
        """Create a user (SCIM) and a token for it; returns (user name, token)."""
        name = name or f"user-{uuid.uuid4().hex[:8]}@example.com"
        with self.client() as c:
            r = c.post("/api/2.0/preview/scim/v2/Users", json={"userName": name})
            r.raise_for_status()
            uid = r.json()["id"]
            r = c.post("/api/2.0/token-management/on-behalf-of/tokens",
                       json={"application_id": uid, "comment": "test", "lifetime_seconds": 3600})
            r.raise_for_status()
            return name, r.json()["token_value"]

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def stop(self, sig=signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(home: Path, *, database_url: str | None = None, env: dict | None = None,
                 admin_token: str | None = None, port: int | None = None, workers: int = 1) -> Server:
    port = port or free_port()
    token = admin_token or f"test-admin-{secrets.token_hex(8)}"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "LAKEFORGE_", "MLFLOW_"))}
    full_env.update({"LAKEFORGE_HOME": str(home), "LAKEFORGE_ADMIN_TOKEN": token,
                     "LAKEFORGE_AUDIT_FLUSH_SECONDS": "0.5", "LAKEFORGE_LOG_LEVEL": "warning",
                     # Most test servers never see an MLflow call; the ones that do load it then.
                     "LAKEFORGE_TRACKING_PRELOAD": "false",
                     # Endpoints that ask for scale-to-zero reach it within a test's patience.
                     "LAKEFORGE_SERVING_SCALE_TO_ZERO_SECONDS": "4"})
    if database_url:
        full_env["LAKEFORGE_DATABASE_URL"] = database_url
    full_env.update(env or {})
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "lakeforge.cli.main", "up", "--port", str(port),
                             "--workers", str(workers)],
                            env=full_env, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    server = Server(url=url, home=home, admin_token=token, proc=proc, env=full_env, log_path=log_path)
    wait_ready(server)
    return server


def wait_ready(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}:\n{server.logs()}")
        try:
            if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"server not ready after {timeout}s:\n{server.logs()}")


def create_pg_database() -> tuple[str, str]:
    """A fresh PostgreSQL database for one test session; returns (sqlalchemy url, name)."""
    import psycopg

    name = f"lakeforge_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}", name


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
