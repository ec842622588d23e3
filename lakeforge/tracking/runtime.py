"""MLflow's server, loaded in a background thread at start.

Importing MLflow's server takes several seconds (it pulls in pandas and the GenAI stack), so the
platform does not wait for it: `/health` answers at once and MLflow requests wait until the load
is done. The load also creates or upgrades MLflow's tables (its own Alembic chain and
`alembic_version` table) under Lakeforge's migration lock, so concurrent starts do not race.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable

import anyio

from lakeforge.config import Settings
from lakeforge.errors import LakeforgeError
from lakeforge.store import Database
from lakeforge.store.migrate import _lock as migration_lock
from lakeforge.tracking import environment

log = logging.getLogger(__name__)


class TrackingUnavailable(LakeforgeError):
    error_code = "TEMPORARILY_UNAVAILABLE"
    status = 503


class MlflowRuntime:
    """Holds MLflow's ASGI app and its route map once loaded."""

    def __init__(self, settings: Settings, db: Database, on_ready: Callable[[], None] | None = None):
        self.settings = settings
        self.db = db
        self.on_ready = on_ready
        self.asgi = None
        self.routes = None  # werkzeug MapAdapter over MLflow's Flask routes
        self.load_seconds: float | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._load, name="lakeforge-mlflow-load", daemon=True).start()

    def stop(self) -> None:
        pass  # the loader is a daemon thread; MLflow keeps no other threads of its own here

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            environment.configure(self.settings)
            with migration_lock(self.db, self.settings.home):
                from mlflow.server import handlers

                handlers._get_tracking_store()  # creates or upgrades MLflow's tables
            from mlflow.server import app as flask_app

            with warnings.catch_warnings():  # MLflow's own use of starlette's deprecated WSGI module
                warnings.simplefilter("ignore", DeprecationWarning)
                from mlflow.server.fastapi_app import create_fastapi_app

            self.asgi = create_fastapi_app()
            self.routes = flask_app.url_map.bind("localhost")
            if self.on_ready:
                self.on_ready()
            self.load_seconds = time.perf_counter() - started
            log.info("MLflow tracking server ready in %.2f s", self.load_seconds)
        except BaseException as e:  # kept and reported on every MLflow request
            self._error = e
            log.exception("MLflow tracking server failed to load")
        finally:
            self._done.set()

    def wait_sync(self, timeout: float = 300) -> None:
        self.start()
        if not self._done.wait(timeout):
            raise TrackingUnavailable("The MLflow tracking server is still starting; retry shortly")
        if self._error is not None:
            raise TrackingUnavailable(f"The MLflow tracking server failed to start: {self._error}")

    async def wait(self, timeout: float = 300) -> None:
        if self._done.is_set() and self._error is None:
            return
        await anyio.to_thread.run_sync(self.wait_sync, timeout)
