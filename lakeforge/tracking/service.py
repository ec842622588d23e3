"""Tracking's domain logic: which experiments a request to MLflow acts on, whether the caller may,
and what the platform does around MLflow's answer (owners for new experiments, searches filtered
to what the caller may read). MLflow itself stores and serves the data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lakeforge.catalog.access import AccessControl
from lakeforge.catalog.privileges import P
from lakeforge.config import Settings
from lakeforge.errors import (
    InvalidParameter,
    LakeforgeError,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
)
from lakeforge.identity.principal import Principal
from lakeforge.identity.service import IdentityService
from lakeforge.store import Database
from lakeforge.tracking import graphql
from lakeforge.tracking.lookup import ExperimentLookup, as_experiment_id
from lakeforge.tracking.permissions import ExperimentPermissions
from lakeforge.tracking.rules import Rule, Special, Target, native_rule, rule_for
from lakeforge.tracking.runtime import MlflowRuntime


@dataclass
class Params:
    """Everything a request says, wherever it says it: path variables, query string, JSON body."""

    view_args: dict[str, Any] = field(default_factory=dict)
    query: dict[str, list[str]] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def values(self, *keys: str) -> list[str]:
        out: list[str] = []
        for key in keys:
            for source in (self.view_args, self.body):
                v = source.get(key)
                if isinstance(v, list):
                    out += [str(x) for x in v if x is not None and not isinstance(x, (dict, list))]
                elif v is not None and not isinstance(v, dict):
                    out.append(str(v))
            out += self.query.get(key, [])
        return [v for v in out if v != ""]

    def first(self, *keys: str) -> str | None:
        found = self.values(*keys)
        return found[0] if found else None


class After:
    """What to do with MLflow's answer before it reaches the client."""

    NOTHING = None
    MAKE_OWNER = "make_owner"
    FILTER_EXPERIMENTS = "filter_experiments"


class TrackingService:
    def __init__(self, settings: Settings, db: Database, access: AccessControl, identity: IdentityService):
        self.identity = identity
        self.lookup = ExperimentLookup(db)
        self.permissions = ExperimentPermissions(db, access, identity, self.lookup)
        self.runtime = MlflowRuntime(settings, db, on_ready=self.permissions.share_default_experiment)

    # ---- lifecycle (an AppContext extension) ---------------------------------------------------
    def registered(self, extensions: list) -> TrackingService:
        extensions.append(self)
        return self

    def start(self) -> None:
        # Loading MLflow's server takes seconds of CPU; preloading makes the first tracking call
        # fast, and without it the first MLflow request loads it.
        if self.runtime.settings.tracking_preload:
            self.runtime.start()

    def stop(self) -> None:
        self.runtime.stop()

    def signed_in(self, token: str | None) -> Principal | None:
        """The principal of the web UI's sign-in cookie, if it holds a valid token."""
        try:
            return self.identity.authenticate(token) if token else None
        except LakeforgeError:
            return None

    # ---- routing -------------------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[str, dict, Rule | None]:
        """MLflow's endpoint name for a request, its path variables, and its rule (None: unmapped)."""
        from werkzeug.exceptions import MethodNotAllowed as WzMethodNotAllowed
        from werkzeug.exceptions import NotFound as WzNotFound
        from werkzeug.routing import RequestRedirect

        native = native_rule(path)
        if native is not None:
            return native[0], {}, native[1]
        try:
            endpoint, view_args = self.runtime.routes.match(path, method)
        except RequestRedirect:
            return "redirect", {}, Rule(Special.ANY)  # Flask answers with the canonical URL
        except WzMethodNotAllowed:
            raise MethodNotAllowed(f"Method {method} is not allowed on {path}") from None
        except WzNotFound:
            raise NotFound(f"No API found for {method} {path}", error_code="ENDPOINT_NOT_FOUND") from None
        return endpoint, view_args, rule_for(endpoint)

    # ---- the decision --------------------------------------------------------------------------
    def decide(self, principal: Principal, endpoint: str, rule: Rule | None, params: Params) -> str | None:
        """Raise unless `principal` may make this request; return what to do with MLflow's answer."""
        if rule is None:
            if principal.is_admin:
                return After.NOTHING
            raise PermissionDenied(f"MLflow endpoint '{endpoint}' is available to admins only")
        if rule.level is Special.ANY:
            return After.NOTHING
        if rule.level is Special.CREATE_EXPERIMENT:
            # A chosen artifact location could point into another experiment's files (or anywhere
            # on the server); experiments get theirs from the server.
            if params.first("artifact_location") and not principal.is_admin:
                raise InvalidParameter("artifact_location is assigned by the server; leave it unset")
            return After.MAKE_OWNER
        if rule.level is Special.SEARCH_EXPERIMENTS:
            return After.NOTHING if principal.is_admin else After.FILTER_EXPERIMENTS
        if principal.is_admin:
            return After.NOTHING
        level = rule.level
        for experiment_id in self.experiments_of(rule.target, params):
            self.permissions.authorize(principal, level, experiment_id)
        return After.NOTHING

    def experiments_of(self, target: Target, params: Params) -> list[str]:
        """The experiments a request acts on. An id that names nothing resolves to nothing, and
        MLflow answers RESOURCE_DOES_NOT_EXIST for it; a search that names no experiment is refused."""
        T = Target
        lk = self.lookup
        if target is T.EXPERIMENT:
            ids = params.values("experiment_id")[:1]
        elif target is T.EXPERIMENT_NAME:
            name = params.first("experiment_name")
            exp = lk.by_name(name) if name else None
            ids = [exp.id] if exp else []
        elif target is T.EXPERIMENTS:
            ids = params.values("experiment_ids", "experiment_id")
            if not ids:
                raise InvalidParameter("Name the experiments to search in experiment_ids")
        elif target is T.TRACE_LOCATIONS:
            ids = [str(loc.get("mlflow_experiment", {}).get("experiment_id"))
                   for loc in params.body.get("locations") or [] if isinstance(loc, dict)]
            ids += params.values("experiment_ids")
            if not ids:
                raise InvalidParameter("Name the experiments to search in locations")
        elif target is T.NEW_TRACE:
            info = ((params.body.get("trace") or {}).get("trace_info") or {})
            exp = ((info.get("trace_location") or {}).get("mlflow_experiment") or {}).get("experiment_id")
            ids = [str(exp)] if exp is not None else []
            if not ids:
                raise InvalidParameter("A trace must name its experiment in trace_location")
        elif target is T.RUN:
            ids = _some(lk.of_run, params.values("run_id", "run_uuid")[:1])
        elif target is T.RUNS:
            ids = _some(lk.of_run, params.values("run_ids", "run_id"))
        elif target is T.MODEL:
            ids = _some(lk.of_model, params.values("model_id")[:1])
        elif target is T.RUN_OR_MODEL:
            ids = _some(lk.of_run, params.values("run_id")[:1]) + _some(lk.of_model, params.values("model_id")[:1])
        elif target is T.RUN_AND_TRACES:
            ids = _some(lk.of_run, params.values("run_id")[:1]) + _some(lk.of_trace, params.values("trace_ids"))
        elif target is T.TRACE:
            ids = _some(lk.of_trace, params.values("trace_id", "request_id")[:1])
        elif target is T.TRACES:
            ids = _some(lk.of_trace, params.values("trace_ids", "request_ids"))
        elif target is T.ARTIFACT:
            path = params.first("artifact_path", "path") or ""
            head = path.strip("/").split("/", 1)[0]
            if as_experiment_id(head) is None:
                # Proxied artifacts live under <storage root>/mlflow-artifacts/<experiment id>/...
                raise PermissionDenied("Artifact paths outside an experiment are available to admins only")
            ids = [head]
        elif target is T.HEADER:
            ids = [params.headers.get("x-mlflow-experiment-id", "")]
        elif target is T.GRAPHQL:
            ids = [e for inner, body in graphql.reads(params.body) for e in self.experiments_of(inner, Params(body=body))]
        else:  # pragma: no cover - every Target is handled above
            raise PermissionDenied("Unknown request target")
        return list(dict.fromkeys(ids))

    # ---- after MLflow answered -----------------------------------------------------------------
    def make_owner(self, principal: Principal, answer: dict) -> None:
        experiment_id = answer.get("experiment_id")
        if experiment_id is not None:
            self.permissions.make_owner(principal, str(experiment_id))

    def readable_experiments(self, principal: Principal, answer: dict) -> dict:
        experiments = answer.get("experiments") or []
        answer["experiments"] = [e for e in experiments
                                 if self.permissions.allowed(principal, P.CAN_READ, str(e.get("experiment_id")))]
        if not answer["experiments"]:
            del answer["experiments"]
        return answer

    # ---- the permissions API -------------------------------------------------------------------
    def get_permissions(self, caller: Principal, experiment_id: str) -> dict:
        self.runtime.wait_sync()
        return self.permissions.get(caller, experiment_id)

    def change_permissions(self, caller: Principal, experiment_id: str, acl: list, replace: bool) -> dict:
        self.runtime.wait_sync()
        return self.permissions.change(caller, experiment_id, acl, replace)


def _some(resolve, keys: list[str]) -> list[str]:
    return [e for e in (resolve(k) for k in keys) if e is not None]
