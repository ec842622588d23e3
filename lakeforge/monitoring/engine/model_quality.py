"""Model quality per group of an inference log: feeds the rows of each group to quality.QualityState.

Only rows with a label take part (QualityState skips null labels and predictions). A probability column
of doubles is the positive class's probability (binary); an array column (one probability per class)
cannot be aligned with classes the monitor does not name, so it is left out, and ROC AUC and log loss
stay null for such monitors.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakeforge.errors import InvalidParameter
from lakeforge.monitoring.engine.quality import QualityState
from lakeforge.monitoring.spec import MonitorSpec


def _numpy(column) -> np.ndarray:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_decimal(arr.type):
        arr = pc.cast(arr, pa.float64())
    return arr.to_numpy(zero_copy_only=False)


class QualityUpdater:
    """The label, prediction and probability values of one chunk, cut per group."""

    def __init__(self, chunk, spec: MonitorSpec):
        self.problem_type = spec.problem_type
        self.labels = _numpy(chunk.column(spec.label_col))
        self.predictions = _numpy(chunk.column(spec.prediction_col))
        self.proba = None
        if spec.prediction_proba_col:
            column = chunk.column(spec.prediction_proba_col)
            if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_decimal(
                    column.type):
                self.proba = _numpy(column).astype(np.float64)
        self.labeled = np.asarray(chunk.column(spec.label_col).is_valid())

    def partial(self, rows: np.ndarray) -> bytes | None:
        rows = rows[self.labeled[rows]]
        if len(rows) == 0:
            return None
        state = QualityState.empty(self.problem_type)
        try:
            state.update(self.labels[rows], self.predictions[rows],
                         self.proba[rows] if self.proba is not None else None)
        except ValueError as exc:
            raise InvalidParameter(f"Model quality could not be computed: {exc}") from None
        return state.to_bytes()


def merge(a: bytes, b: bytes) -> bytes:
    return QualityState.from_bytes(a).merge(QualityState.from_bytes(b)).to_bytes()


def metrics(data: bytes | None, problem_type: str) -> dict:
    state = QualityState.from_bytes(data) if data is not None else QualityState.empty(problem_type)
    return state.to_metrics()


def with_labels(spec: MonitorSpec) -> bool:
    return bool(spec.label_col and spec.prediction_col and spec.problem_type)
