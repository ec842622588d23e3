"""The ASGI application: every service's router behind the platform middleware."""

from __future__ import annotations

import contextlib
import logging

from fastapi import FastAPI

from lakeforge import __version__
from lakeforge.catalog.fast_reads import CatalogReads
from lakeforge.config import Settings
from lakeforge.server import errors
from lakeforge.server.context import AppContext
from lakeforge.server.http import ok
from lakeforge.server.middleware import PlatformMiddleware
from lakeforge.serving.invocations import PREFIX as SCORING_PREFIX
from lakeforge.tracking import api as tracking_api

log = logging.getLogger(__name__)


def create_app(settings: Settings, ctx: AppContext | None = None):
    ctx = ctx or AppContext(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        boot = ctx.start()
        app.state.bootstrap = boot
        await ctx.serving_runtime.start()  # deployed endpoints come back with their model workers
        await ctx.monitoring_runtime.start()  # monitor refreshes and schedules
        yield
        await ctx.monitoring_runtime.stop()
        await ctx.serving_runtime.stop()
        ctx.stop()

    api = FastAPI(title="Lakeforge", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")
    api.state.ctx = ctx
    errors.install(api)

    @api.get("/health", name="health")
    def health():
        return ok({"status": "ok", "version": __version__})

    @api.get("/.well-known/databricks-config", name="databricks_config")
    def databricks_config():
        # databricks-sdk probes this at start; a numeric workspace id stops its warning.
        return ok({"workspace_id": "1"})

    for router in _routers():
        api.include_router(router)

    # MLflow tracking: a catch-all mount at "/", so it must stay after every other router.
    tracking_api.mount(api)
    reads = CatalogReads(ctx.catalog, ctx.tables, settings.auth_cache_seconds, ctx.home / ".data-generation")
    return PlatformMiddleware(ScoringDispatch(api, ctx.invocations, reads), ctx), api


class ScoringDispatch:
    """Model scoring (`/serving-endpoints/...`) and the hot catalog reads (get a table, schema or
    catalog) go straight to their lean ASGI handlers; everything else to the FastAPI application.
    All sit behind the platform middleware."""

    def __init__(self, api, invocations, reads: CatalogReads | None = None):
        self.api = api
        self.invocations = invocations
        self.reads = reads

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            if scope["path"].startswith(SCORING_PREFIX):
                return await self.invocations(scope, receive, send)
            matched = self.reads.match(scope) if self.reads is not None else None
            if matched is not None:
                return await self.reads(scope, send, matched)
        return await self.api(scope, receive, send)


def _routers():
    from lakeforge.audit import api as audit_api
    from lakeforge.catalog import api as catalog_api
    from lakeforge.catalog import (
        credentials_api,
        files_api,
        functions_api,
        models_api,
        table_data_api,
        tables_api,
        volumes_api,
    )
    from lakeforge.identity import api as identity_api
    from lakeforge.lineage import api as lineage_api
    from lakeforge.models import api as registry_api
    from lakeforge.monitoring import api as monitoring_api
    from lakeforge.monitoring import dashboard_api, inference_api
    from lakeforge.secrets import api as secrets_api
    from lakeforge.serving import api as serving_api
    from lakeforge.sql import api as sql_api

    modules = [catalog_api, tables_api, table_data_api, volumes_api, functions_api, models_api, credentials_api,
               files_api, identity_api, secrets_api, lineage_api, audit_api, sql_api, registry_api, serving_api,
               inference_api, monitoring_api, dashboard_api]
    return [m.router for m in modules]
