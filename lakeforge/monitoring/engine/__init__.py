"""The monitoring engine: pure computation of profile, drift and model-quality metrics from a monitored
Delta table and mergeable per-window state (no catalog, no HTTP, no metadata database).

Public face: `validate`, `profile_schema_for`, `drift_schema_for`, `refresh` (refresh.py), `RefreshResult`
and `RefreshCancelled`.
"""

from __future__ import annotations

import pyarrow as pa

from lakeforge.monitoring import tables
from lakeforge.monitoring.engine import custom
from lakeforge.monitoring.engine.refresh import RefreshCancelled, RefreshResult, refresh
from lakeforge.monitoring.spec import INFERENCE_LOG, MonitorSpec


def validate(spec: MonitorSpec, schema: pa.Schema, baseline_schema: pa.Schema | None = None) -> None:
    """Raise lakeforge.errors.InvalidParameter naming the first problem of `spec` on a table of `schema`."""
    from lakeforge.monitoring.engine.validation import validate as check
    check(spec, schema, baseline_schema)


def profile_schema_for(spec: MonitorSpec) -> pa.Schema:
    """tables.profile_schema plus one column per custom aggregate, then per derived metric."""
    extra = [(m.name, custom.arrow_type(m.output_type)) for kind in (custom.AGGREGATE, custom.DERIVED)
             for m in spec.custom_metrics if m.type == kind]
    problem_type = spec.problem_type if spec.profile_type == INFERENCE_LOG else None
    model_col = spec.model_id_col if spec.profile_type == INFERENCE_LOG else None
    return tables.profile_schema(model_col, problem_type, extra)


def drift_schema_for(spec: MonitorSpec) -> pa.Schema:
    """tables.drift_schema plus one column per custom drift metric."""
    extra = [(m.name, custom.arrow_type(m.output_type)) for m in spec.custom_metrics if m.type == custom.DRIFT]
    model_col = spec.model_id_col if spec.profile_type == INFERENCE_LOG else None
    return tables.drift_schema(model_col, extra)


__all__ = ["RefreshCancelled", "RefreshResult", "drift_schema_for", "profile_schema_for", "refresh", "validate"]
