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
from lakeforge.catalog.privileges import ACL_LADDERS, Kind, P
from lakeforge.catalog.store import GrantRow
from lakeforge.errors import InvalidParameter, NotFound, ResourceDoesNotExist
from lakeforge.identity.principal import USERS_GROUP, Principal
from lakeforge.identity.service import IdentityService
from lakeforge.identity.store import GROUP, SERVICE_PRINCIPAL, PrincipalRow
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
            self._replace(s, str(experiment_id), principal.id, P.CAN_MANAGE)
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
        self.authorize(caller, P.CAN_MANAGE, exp.id, exp.name)
        return self._describe(exp.id)

    def change(self, caller: Principal, experiment_id: str, acl: list, replace: bool) -> dict:
        """PUT replaces every direct grant with `acl`; PATCH adds or changes the levels named."""
        exp = self._existing(experiment_id)
        self.authorize(caller, P.CAN_MANAGE, exp.id, exp.name)
        if not isinstance(acl, list):
            raise InvalidParameter("access_control_list must be a list")
        with self.db.write() as s:
            wanted = [(self._grantee(s, entry), self._level(entry)) for entry in acl]
            if replace:
                s.execute(delete(GrantRow).where(GrantRow.securable_kind == KIND.value,
                                                 GrantRow.securable_id == exp.id))
            for pid, level in wanted:
                self._replace(s, exp.id, pid, level)
        self.access.invalidate()
        return self._describe(exp.id)

    def _existing(self, experiment_id: str):
        exp = self.lookup.experiment(experiment_id)
        if exp is None:
            raise ResourceDoesNotExist(f"Experiment '{experiment_id}' does not exist")
        return exp

    def _describe(self, experiment_id: str) -> dict:
        order = [p.value for p in LADDER]
        top: dict[str, int] = {}
        with self.db.read() as s:
            rows = s.execute(select(GrantRow.principal_id, GrantRow.privilege).where(
                GrantRow.securable_kind == KIND.value, GrantRow.securable_id == experiment_id))
            for pid, priv in rows:
                if priv in order:
                    top[pid] = max(top.get(pid, 0), order.index(priv))
            principals = {r.id: (r.kind, r.name, r.display_name) for r in s.execute(
                select(PrincipalRow.id, PrincipalRow.kind, PrincipalRow.name, PrincipalRow.display_name)
                .where(PrincipalRow.id.in_(set(top))))}
        acl = []
        for pid, i in top.items():
            if pid not in principals:
                continue
            kind, name, display = principals[pid]
            key = {GROUP: "group_name", SERVICE_PRINCIPAL: "service_principal_name"}.get(kind, "user_name")
            acl.append({key: name, "display_name": display or name,
                        "all_permissions": [{"permission_level": order[i], "inherited": False}]})
        acl.sort(key=lambda e: (e.get("user_name") or e.get("group_name") or e.get("service_principal_name")))
        return {"object_id": f"/experiments/{experiment_id}", "object_type": "mlflowExperiment",
                "access_control_list": acl}

    def _grantee(self, s, entry) -> str:
        if not isinstance(entry, dict):
            raise InvalidParameter("Each access control entry must be an object")
        name = entry.get("user_name") or entry.get("group_name") or entry.get("service_principal_name")
        if not name:
            raise InvalidParameter("An access control entry needs user_name, group_name or service_principal_name")
        try:
            return self.identity.find_principal(s, name).id
        except NotFound:
            raise InvalidParameter(f"Principal '{name}' does not exist") from None

    @staticmethod
    def _level(entry: dict) -> P:
        value = str(entry.get("permission_level") or "").upper()
        for level in LADDER:
            if level.value == value:
                return level
        raise InvalidParameter(f"permission_level must be one of {', '.join(p.value for p in LADDER)}")

    @staticmethod
    def _replace(s, experiment_id: str, principal_id: str, level: P) -> None:
        # One level per principal: a new level replaces whatever was there.
        s.execute(delete(GrantRow).where(GrantRow.securable_kind == KIND.value, GrantRow.securable_id == experiment_id,
                                         GrantRow.principal_id == principal_id))
        s.add(GrantRow(securable_kind=KIND.value, securable_id=experiment_id, principal_id=principal_id,
                       privilege=level.value))
