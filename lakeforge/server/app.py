"""The ASGI application: every service's router behind the platform middleware."""

from __future__ import annotations

import contextlib
import logging

from fastapi import FastAPI

from lakeforge import __version__
from lakeforge.config import Settings
from lakeforge.server import errors
from lakeforge.server.context import AppContext
from lakeforge.server.http import ok
from lakeforge.server.middleware import PlatformMiddleware

log = logging.getLogger(__name__)


def create_app(settings: Settings, ctx: AppContext | None = None):
    ctx = ctx or AppContext(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        boot = ctx.start()
        app.state.bootstrap = boot
        yield
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
    return PlatformMiddleware(api, ctx), api


def _routers():
    from lakeforge.catalog import api as catalog_api

    routers = [catalog_api.router]
    for module in _OPTIONAL_ROUTERS:
        try:
            mod = __import__(module, fromlist=["router"])
        except ModuleNotFoundError as e:
            if e.name and module.startswith(e.name):
                continue  # that service is not built yet
            raise
        routers.append(mod.router)
    return routers


# Each service package exposes `router` in its api module.
_OPTIONAL_ROUTERS = [
    "lakeforge.catalog.tables_api",
    "lakeforge.catalog.volumes_api",
    "lakeforge.catalog.functions_api",
    "lakeforge.catalog.models_api",
    "lakeforge.catalog.credentials_api",
    "lakeforge.catalog.files_api",
    "lakeforge.identity.api",
    "lakeforge.secrets.api",
    "lakeforge.lineage.api",
    "lakeforge.audit.api",
]
