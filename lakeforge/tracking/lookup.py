"""Finds the experiment a run, logged model or trace belongs to, reading MLflow's tables (they
live in the platform's database) through Lakeforge's own engine: one indexed primary-key query,
cheaper than MLflow's store, which loads a run with all its metrics, params and tags."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import text

from lakeforge.store import Database

_CACHE_SIZE = 50_000


@dataclass(frozen=True)
class Experiment:
    id: str
    name: str


def as_experiment_id(value) -> int | None:
    """MLflow's experiment ids are integers on the wire as strings; anything else names nothing."""
    s = str(value).strip()
    return int(s) if s.isdigit() and len(s) < 19 else None


class ExperimentLookup:
    def __init__(self, db: Database):
        self.db = db
        # A run, logged model or trace never moves to another experiment: cache them for good.
        self._owner_of: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def experiment(self, experiment_id) -> Experiment | None:
        eid = as_experiment_id(experiment_id)
        if eid is None:
            return None
        return self._one("SELECT experiment_id, name FROM experiments WHERE experiment_id = :v", eid)

    def by_name(self, name: str) -> Experiment | None:
        return self._one("SELECT experiment_id, name FROM experiments WHERE name = :v", str(name))

    def names(self, ids: set[str]) -> dict[str, str]:
        keys = [i for i in (as_experiment_id(x) for x in ids) if i is not None]
        if not keys:
            return {}
        with self.db.read() as s:
            rows = s.execute(text("SELECT experiment_id, name FROM experiments WHERE experiment_id IN :ids")
                             .bindparams(_expanding("ids")), {"ids": keys})
            return {str(r[0]): r[1] for r in rows}

    def of_run(self, run_id: str) -> str | None:
        return self._owner("run", "SELECT experiment_id FROM runs WHERE run_uuid = :v", run_id)

    def of_model(self, model_id: str) -> str | None:
        return self._owner("model", "SELECT experiment_id FROM logged_models WHERE model_id = :v", model_id)

    def of_trace(self, trace_id: str) -> str | None:
        return self._owner("trace", "SELECT experiment_id FROM trace_info WHERE request_id = :v", trace_id)

    def _one(self, sql: str, value) -> Experiment | None:
        with self.db.read() as s:
            row = s.execute(text(sql), {"v": value}).first()
        return Experiment(str(row[0]), row[1]) if row else None

    def _owner(self, kind: str, sql: str, key: str) -> str | None:
        key = str(key)
        with self._lock:
            hit = self._owner_of.get((kind, key))
            if hit is not None:
                self._owner_of.move_to_end((kind, key))
                return hit
        with self.db.read() as s:
            value = s.execute(text(sql), {"v": key}).scalar()
        if value is None:
            return None
        with self._lock:
            self._owner_of[(kind, key)] = str(value)
            if len(self._owner_of) > _CACHE_SIZE:
                self._owner_of.popitem(last=False)
        return str(value)


def _expanding(name: str):
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)
