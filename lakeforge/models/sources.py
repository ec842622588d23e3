"""Where a model version's files come from: MLflow's tracking store on the platform's database.

A `source` names files the server already holds: `models:/m-<id>` (an MLflow 3 logged model),
`runs:/<run id>/<path>`, `mlflow-artifacts:/<path>` (proxied artifacts under
`<storage root>/mlflow-artifacts`), or a local path / file:// URI under the storage root. Anything
else is refused: the registry never reads arbitrary server paths. Reading from an experiment's
files needs CAN_READ on the experiment; other paths under the storage root are for admins only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from sqlalchemy import inspect

from lakeforge.catalog.access import AccessControl, Securable
from lakeforge.catalog.privileges import Kind, P
from lakeforge.config import Settings
from lakeforge.errors import InvalidParameter, PermissionDenied, ResourceDoesNotExist
from lakeforge.identity.principal import Principal
from lakeforge.store import Database

log = logging.getLogger(__name__)

ARTIFACTS_DIR = "mlflow-artifacts"  # proxied artifacts, as the tracking mount stores them


@dataclass(frozen=True)
class ResolvedSource:
    path: Path  # a directory (or file) under the storage root
    run_id: str | None
    model_id: str | None


class TrackingSources:
    def __init__(self, settings: Settings, db: Database, access: AccessControl,
                 tracking: Callable[[], object | None] = lambda: None):
        self.settings = settings
        self.db = db
        self.access = access
        self.tracking = tracking  # the tracking service, once mounted (waits for MLflow's tables)
        self.root = settings.storage_root_path.resolve()
        self.artifacts = self.root / ARTIFACTS_DIR
        self._store = None
        self._lock = threading.Lock()

    # ---- MLflow's tracking store, opened on first use ------------------------------------------
    def store(self):
        with self._lock:
            if self._store is None:
                tracking = self.tracking()
                runtime = getattr(tracking, "runtime", None)
                if runtime is not None:
                    runtime.wait_sync()
                # Never let the store create MLflow's tables itself: the tracking mount does that
                # under the migration lock.
                if not inspect(self.db.engine).has_table("logged_models"):
                    raise InvalidParameter("This server has no MLflow tracking data: register from a "
                                           "mlflow-artifacts:/ path, or log the model to this server first")
                from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

                self._store = SqlAlchemyStore(self.settings.resolved_database_url, "mlflow-artifacts:/")
            return self._store

    def _mlflow_call(self, fn, what: str):
        from mlflow.exceptions import MlflowException

        try:
            return fn()
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise ResourceDoesNotExist(f"{what} does not exist") from None
            raise InvalidParameter(f"Cannot read {what}: {e.message}") from None

    def run(self, caller: Principal, run_id: str):
        run = self._mlflow_call(lambda: self.store().get_run(run_id), f"Run '{run_id}'")
        self._check_experiment(caller, run.info.experiment_id)
        return run

    # ---- resolving a source ----------------------------------------------------------------------
    def resolve(self, caller: Principal, source: str, run_id: str | None, model_id: str | None) -> ResolvedSource:
        if not isinstance(source, str) or not source.strip():
            raise InvalidParameter("source is required")
        source = source.strip()
        if source.startswith("models:/"):
            ident = source[len("models:/"):].strip("/")
            if not ident.startswith("m-") or "/" in ident or "@" in ident:
                raise InvalidParameter(f"Unsupported source '{source}': register from a logged model "
                                       "(models:/m-<id>), a run (runs:/<run id>/<path>) or mlflow-artifacts:/")
            logged = self._mlflow_call(lambda: self.store().get_logged_model(ident), f"Logged model '{ident}'")
            self._check_experiment(caller, logged.experiment_id)
            path = self._local(caller, logged.artifact_location, check=False)
            return ResolvedSource(path, run_id or logged.source_run_id, ident)
        if source.startswith("runs:/"):
            rid, _, sub = source[len("runs:/"):].partition("/")
            if not rid:
                raise InvalidParameter(f"Invalid source '{source}': expected runs:/<run id>/<path>")
            run = self.run(caller, rid)
            base = self._local(caller, run.info.artifact_uri, check=False)
            path = self._local(caller, f"{run.info.artifact_uri.rstrip('/')}/{sub}" if sub else base.as_posix(),
                               check=False, must_exist=False)
            if not path.is_relative_to(base):  # `..` or a link must not leave the run's artifacts
                raise InvalidParameter(f"Source '{source}' leaves the run's artifacts")
            if not path.exists():
                raise InvalidParameter(f"Source '{source}' does not exist")
            return ResolvedSource(path, run_id or rid, model_id)
        return ResolvedSource(self._local(caller, source, check=True), run_id, model_id)

    def _local(self, caller: Principal, uri: str, check: bool, must_exist: bool = True) -> Path:
        """A local path for an mlflow-artifacts:/ URI, file:// URI or absolute path, refused unless it
        lies under the storage root. `check`: also decide access from where it lies."""
        if uri.startswith("mlflow-artifacts:"):
            rel = unquote(urlparse(uri).path).lstrip("/")
            path = self.artifacts / rel
        elif uri.startswith("file:"):
            path = Path(unquote(urlparse(uri).path))
        elif uri.startswith("/"):
            path = Path(uri)
        else:
            raise InvalidParameter(f"Unsupported source '{uri}': expected models:/m-<id>, runs:/, "
                                   "mlflow-artifacts:/ or a path under the server's storage root")
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(self.root):
            raise InvalidParameter(f"Source '{uri}' is outside the server's storage root; the registry only "
                                   "copies files the platform holds")
        if must_exist and not real.exists():
            raise InvalidParameter(f"Source '{uri}' does not exist")
        if check:
            if real.is_relative_to(self.artifacts) and real != self.artifacts:
                head = real.relative_to(self.artifacts).parts[0]
                if head.isdigit():
                    self._check_experiment(caller, head)
                    return real
            if not caller.is_admin:
                raise PermissionDenied("Registering from a storage path outside an experiment's artifacts is "
                                       "available to admins only")
        return real

    def _check_experiment(self, caller: Principal, experiment_id) -> None:
        """CAN_READ on the experiment the files belong to (the tracking mount's permissions)."""
        self.access.authorize(caller, P.CAN_READ, Securable(Kind.EXPERIMENT, str(experiment_id),
                                                            f"experiment {experiment_id}"))

    # ---- lineage: the tables a run read ----------------------------------------------------------
    def input_tables(self, caller: Principal, run_id: str) -> list[tuple[str | None, str | None]]:
        """(delta table name, path) of each Delta dataset the run logged as an input."""
        try:
            run = self.run(caller, run_id)
        except (InvalidParameter, ResourceDoesNotExist):
            log.info("run %s not readable for lineage", run_id)
            return []
        out = []
        for inp in (run.inputs.dataset_inputs if run.inputs else []):
            ds = inp.dataset
            try:
                spec = json.loads(ds.source) if ds.source else {}
            except ValueError:
                continue
            if not isinstance(spec, dict):
                continue
            name = spec.get("delta_table_name") or spec.get("table_name")
            path = spec.get("path") or spec.get("uri") or spec.get("url")
            if name or path:
                out.append((name if isinstance(name, str) else None, path if isinstance(path, str) else None))
        return out
