"""Experiment access rules. Every decision goes through the one access function on
`Kind.EXPERIMENT` (ladder CAN_READ < CAN_EDIT < CAN_MANAGE; admins hold everything).

Permissions are GrantRow rows (securable_kind "experiment", one level per principal). The creator
of an experiment gets CAN_MANAGE: that grant is what makes them its owner. The Default experiment
(id 0, created by MLflow) is shared: the `users` group holds CAN_EDIT on it, so every user may read
it and log to it; only admins manage it.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from lakeforge.catalog.access import AccessControl, Securable
from lakeforge.catalog.object_acl import ObjectAcl
from lakeforge.catalog.privileges import ACL_LADDERS, Kind, P
from lakeforge.catalog.store import GrantRow
from lakeforge.errors import ResourceDoesNotExist
from lakeforge.identity.principal import USERS_GROUP, Principal
from lakeforge.identity.service import IdentityService
from lakeforge.identity.store import GROUP, PrincipalRow
from lakeforge.store import Database
from lakeforge.tracking.lookup import ExperimentLookup

KIND = Kind.EXPERIMENT
LADDER = ACL_LADDERS[Kind.EXPERIMENT]  # CAN_READ, CAN_EDIT, CAN_MANAGE
DEFAULT_EXPERIMENT_ID = "0"


class ExperimentPermissions:
    def __init__(self, db: Database, access: AccessControl, identity: IdentityService, lookup: ExperimentLookup):
        self.db = db
        self.access = access
        self.identity = identity
        self.lookup = lookup
        self.acl = ObjectAcl(db, access, identity, KIND, "mlflowExperiment", "/experiments")

    # ---- decisions -----------------------------------------------------------------------------
    @staticmethod
    def securable(experiment_id: str, name: str | None = None) -> Securable:
        return Securable(KIND, str(experiment_id), name or f"experiment {experiment_id}", None)

    def authorize(self, principal: Principal, level: P, experiment_id: str, name: str | None = None) -> None:
        self.access.authorize(principal, level, self.securable(experiment_id, name))

    def allowed(self, principal: Principal, level: P, experiment_id: str) -> bool:
        return self.access.allowed(principal, level, self.securable(experiment_id))

    # ---- grants written by the platform --------------------------------------------------------
    def make_owner(self, principal: Principal, experiment_id: str) -> None:
        """Called once MLflow created the experiment. Grants left on the id drop first: SQLite
        reuses the highest id after `mlflow gc` removes that experiment for good."""
        with self.db.write() as s:
            s.execute(delete(GrantRow).where(GrantRow.securable_kind == KIND.value,
                                             GrantRow.securable_id == str(experiment_id)))
            self.acl.replace(s, str(experiment_id), principal.id, P.CAN_MANAGE)
        self.access.invalidate()

    def share_default_experiment(self) -> None:
        """Idempotent; run once MLflow's tables (and its Default experiment) exist."""
        with self.db.write() as s:
            users = s.scalar(select(PrincipalRow.id).where(PrincipalRow.kind == GROUP,
                                                           PrincipalRow.name == USERS_GROUP))
            if users is None:
                return
            held = s.scalar(select(GrantRow.privilege).where(
                GrantRow.securable_kind == KIND.value, GrantRow.securable_id == DEFAULT_EXPERIMENT_ID,
                GrantRow.principal_id == users))
            if held is None:
                s.add(GrantRow(securable_kind=KIND.value, securable_id=DEFAULT_EXPERIMENT_ID, principal_id=users,
                               privilege=P.CAN_EDIT.value))
        self.access.invalidate()

    # ---- the permissions API (Databricks shape) ------------------------------------------------
    def get(self, caller: Principal, experiment_id: str) -> dict:
        exp = self._existing(experiment_id)
        return self.acl.get(caller, self.securable(exp.id, exp.name))

    def change(self, caller: Principal, experiment_id: str, acl: list, replace: bool) -> dict:
        """PUT replaces every direct grant with `acl`; PATCH adds or changes the levels named."""
        exp = self._existing(experiment_id)
        return self.acl.change(caller, self.securable(exp.id, exp.name), acl, replace)

    def _existing(self, experiment_id: str):
        exp = self.lookup.experiment(experiment_id)
        if exp is None:
            raise ResourceDoesNotExist(f"Experiment '{experiment_id}' does not exist")
        return exp
