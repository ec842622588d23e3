"""The application context: builds every service with its collaborators and runs start-up."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from lakeforge.audit import log as audit_log
from lakeforge.audit.service import AuditQueries
from lakeforge.catalog.access import AccessControl
from lakeforge.catalog.functions import FunctionService
from lakeforge.catalog.model_versions import ModelVersionService
from lakeforge.catalog.models import RegisteredModelService
from lakeforge.catalog.service import CatalogService
from lakeforge.catalog.storage import ManagedStorage, to_path
from lakeforge.catalog.system_tables import ensure_system_table
from lakeforge.catalog.table_data import TableDataService
from lakeforge.catalog.tables import TableService
from lakeforge.catalog.volumes import VolumeService
from lakeforge.config import Settings
from lakeforge.errors import LakeforgeError
from lakeforge.identity.directory import Directory
from lakeforge.identity.principal import USERS_GROUP, Principal
from lakeforge.identity.service import IdentityService
from lakeforge.identity.token_service import TokenService
from lakeforge.lake.delta_sink import drain_orphans
from lakeforge.lineage.service import LineageService
from lakeforge.models.service import RegistryService
from lakeforge.monitoring.alerts import AlertEvaluator, AlertRules
from lakeforge.monitoring.runtime import MonitoringRuntime
from lakeforge.monitoring.service import MonitoringService
from lakeforge.monitoring.webhooks import WebhookSender
from lakeforge.secrets.crypto import SecretCipher
from lakeforge.secrets.service import SecretsService
from lakeforge.serving import usage as serving_usage
from lakeforge.serving.invocations import Invocations
from lakeforge.serving.limits import RateLimiter
from lakeforge.serving.runtime import ServingRuntime
from lakeforge.serving.service import ServingService
from lakeforge.sql.service import SqlService
from lakeforge.store import Database
from lakeforge.store.generation import SharedGeneration
from lakeforge.store.migrate import startup_lock, upgrade
from lakeforge.tracking.service import TrackingService

log = logging.getLogger(__name__)


class HomeNotWritable(LakeforgeError):
    error_code = "FAILED_PRECONDITION"


@dataclass
class Bootstrap:
    admin_token: str | None  # set only at first start, to be shown once
    token_file: Path


class AppContext:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.home = settings.home
        self.db = Database(settings.resolved_database_url)
        self.extensions: list = []  # services with start()/stop() run with the server
        # identity and the one access function
        # One change counter for every cache of identities and grants, shared by the worker processes.
        self.generation = SharedGeneration(self.home / ".cache-generation")
        self.identity = IdentityService(self.db, settings.auth_cache_seconds, self.generation)
        self.access = AccessControl(self.db, settings.auth_cache_seconds, self.generation)
        self.directory = Directory(self.identity, self.access.invalidate)
        self.token_service = TokenService(self.identity, self.access.invalidate)
        # the catalog
        self.storage = ManagedStorage(settings.storage_root_path)
        self.catalog = CatalogService(self.db, self.access, self.identity, self.storage,
                                      settings.default_page_size, settings.max_page_size)
        self.tables = TableService(self.catalog, self.home)
        self.table_data = TableDataService(self.tables, settings)
        self.volumes = VolumeService(self.catalog, self.home)
        self.functions = FunctionService(self.catalog)
        self.models = RegisteredModelService(self.catalog)
        self.model_versions = ModelVersionService(self.models)
        # platform services
        self.secrets = SecretsService(self.db, self.access, self.identity, SecretCipher.from_settings(settings))
        self.lineage = LineageService(self.db, self.access, self.catalog, settings).registered(self.extensions)
        self.sql = SqlService(self.tables, self.lineage).registered(self.extensions)
        self.tracking = TrackingService(settings, self.db, self.access, self.identity).registered(self.extensions)
        self.registry = RegistryService(self.models, self.model_versions, self.lineage, settings, lambda: self.tracking)
        # model serving: endpoints, their worker pools (started by the server's event loop), the scoring path
        self.rate_limiter = RateLimiter(settings.redis_url)
        self.serving_usage = serving_usage.UsageCounters()
        self.serving_runtime = ServingRuntime(settings, self.db, self.identity, self.secrets.references, self.tables,
                                              self.lineage)
        self.serving = ServingService(self.db, self.access, self.identity, self.catalog, self.secrets.references,
                                      self.serving_runtime, self.serving_usage, self.rate_limiter)
        self.usage_log: serving_usage.UsageLog | None = None  # opened at start, once its table exists
        # monitoring: monitors, their refreshes and schedules (run by the runtime), alert rules and webhooks
        alerts = AlertEvaluator(self.db, WebhookSender(self.db, self.secrets.references, self.identity))
        self.monitoring_runtime = MonitoringRuntime(settings, self.db, self.identity, self.catalog, self.table_data,
                                                    alerts, services=self)
        self.monitoring = MonitoringService(self.db, self.catalog, self.tables, self.monitoring_runtime, self.home)
        self.monitor_alerts = AlertRules(self.db, self.monitoring, self.secrets.references)
        self.invocations = Invocations(self.serving_runtime, self.access, self.rate_limiter, self.serving_usage,
                                       lambda: self.usage_log, settings)
        self.audit: audit_log.AuditLog | None = None  # opened at start, once its table exists
        self.audit_queries: AuditQueries | None = None

    def start(self) -> Bootstrap:
        check_writable(self.home)
        self.storage.root.mkdir(parents=True, exist_ok=True)
        upgrade(self.db, self.home)
        # Worker processes (and replicas) starting together bootstrap one at a time.
        with startup_lock(self.db, self.home):
            boot = self._bootstrap()
            with self.db.write() as s:
                admin = self.identity.find_principal(s, "admin")
                location = ensure_system_table(s, self.catalog, audit_log.TABLE, audit_log.SCHEMA, admin,
                                               "Every API request, allowed or denied")
                usage_location = ensure_system_table(s, self.catalog, serving_usage.USAGE_TABLE,
                                                     serving_usage.USAGE_SCHEMA, admin,
                                                     "Serving endpoint calls, when usage tracking is on")
            table = to_path(location)
            settings = self.settings
            drain_orphans(self.home / "wal", "audit", settings.workers, lambda path, i: audit_log.AuditLog(
                path, table, app_id=settings.log_app_id("audit", i)).sink)
            self.audit = audit_log.AuditLog(settings.log_dir("audit"), table, app_id=settings.log_app_id("audit"),
                                            fsync=settings.audit_fsync, flush_seconds=settings.audit_flush_seconds)
            self.audit.start()
            self.usage_log = serving_usage.UsageLog(settings.log_dir("usage"), to_path(usage_location),
                                                    app_id=settings.log_app_id("usage"),
                                                    flush_seconds=settings.serving_log_flush_seconds)
            self.usage_log.start()
            self.audit_queries = AuditQueries(self.catalog, self.audit)
            for ext in self.extensions:
                ext.start()
        return boot

    def _bootstrap(self) -> Bootstrap:
        token_file = self.home / "admin-token"
        with self.db.write() as s:
            admin, created = self.identity.ensure_admin(s)
            users = self.identity.ensure_group(s, USERS_GROUP)
            self.catalog.bootstrap(s, Principal(id=admin.id, kind=admin.kind, name=admin.name), users.id)
            token = None
            if created:
                token, _ = self.identity.issue_token(s, admin.id, comment="bootstrap admin token",
                                                     value=self.settings.admin_token or None)
        if token:
            fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")
            os.chmod(token_file, 0o600)
        return Bootstrap(token, token_file)

    def stop(self) -> None:
        for ext in reversed(self.extensions):
            try:
                ext.stop()
            except Exception:
                log.exception("error stopping %s", ext)
        if self.usage_log:
            self.usage_log.close()
        self.rate_limiter.close()
        if self.audit:
            self.audit.close()
        self.db.dispose()


def check_writable(home: Path) -> None:
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise HomeNotWritable(f"Lakeforge home {home} is not writable: {e.strerror}") from None
