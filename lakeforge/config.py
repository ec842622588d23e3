"""One Settings object for the whole platform (env prefix LAKEFORGE_), passed in, never a global."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LAKEFORGE_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".lakeforge")
    # Where the server listens. Not LAKEFORGE_HOST: clients read that as the server's URL.
    listen_host: str = "127.0.0.1"
    port: int = 8080
    # SQLite under `home` unless a URL is given (postgresql+psycopg://user@host/db).
    database_url: str | None = None
    # Local directory or file:// URI; defaults to `home`/storage.
    storage_root: str | None = None
    # Bootstrap admin token used at first start instead of a generated one.
    admin_token: str | None = None
    # Base64 32-byte key for secrets; otherwise a generated key file under `home`.
    secrets_key: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    # Table data uploads (Arrow streams) are spooled to disk and bounded separately.
    max_table_upload_bytes: int = 2 * 1024**3
    # Audit records reach the write-ahead log file before each response, so they survive a crash of
    # the server process. With fsync they also survive a crash of the machine, at the cost of one
    # disk flush per request (shared by concurrent requests).
    audit_fsync: bool = False
    audit_flush_seconds: float = 2.0
    # How long authentication and grant lookups may be served from the in-process cache.
    auth_cache_seconds: float = 2.0
    # Load MLflow's tracking server at start (in the background) rather than on the first MLflow call.
    tracking_preload: bool = True
    # Server worker processes sharing the port (`lakeforge up --workers N`); each knows its index.
    workers: int = 1
    worker_id: int = 0
    # Model serving: request body limit, how long a model may take to load, how often inference
    # and usage logs are moved into their Delta tables, and Redis for rate-limit counters shared
    # between server processes and replicas (in-process counters without it).
    serving_max_body_bytes: int = 16 * 1024 * 1024
    serving_load_timeout_seconds: float = 300.0
    serving_log_flush_seconds: float = 2.0
    # Served entities with scale_to_zero_enabled stop their workers after this long without a request.
    serving_scale_to_zero_seconds: float = 1800.0
    # Inference-table records reach the write-ahead log file before each response (surviving a
    # crash of the server); with fsync they also survive a crash of the machine (see audit_fsync).
    inference_log_fsync: bool = False
    redis_url: str | None = None
    # Monitoring: how often the scheduler looks for monitors whose schedule is due (and for refreshes
    # left running by a server that is gone), and how many refreshes one server process runs at once.
    monitoring_scheduler_seconds: float = 30.0
    monitoring_refresh_threads: int = 2
    default_page_size: int = 100
    max_page_size: int = 1000
    log_level: str = "info"

    @field_validator("home", mode="before")
    @classmethod
    def _expand_home(cls, v):
        return Path(v).expanduser() if v else v

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'lakeforge.db'}"

    @property
    def storage_root_path(self) -> Path:
        root = self.storage_root
        if not root:
            return self.home / "storage"
        root = root.removeprefix("file://")
        return Path(root).expanduser()

    def log_dir(self, name: str, worker: int | None = None) -> Path:
        """This worker's write-ahead log directory for `name` (worker 0 keeps the plain name)."""
        worker = self.worker_id if worker is None else worker
        return self.home / "wal" / (name if worker == 0 else f"{name}-w{worker}")

    def log_app_id(self, name: str, worker: int | None = None) -> str:
        """The Delta application id under which this worker's log segments are committed."""
        worker = self.worker_id if worker is None else worker
        return f"lakeforge-{name}" if worker == 0 else f"lakeforge-{name}-w{worker}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
