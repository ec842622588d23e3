"""Model quality of an inference log, as mergeable per-window state.

`QualityState` counts what the metrics need, window by window; two states merge by adding, and the
metrics are pure functions of a state. Every count and sum is exact (sums of floats through
`exactsum`), so a state merged from parts gives the same bits as one built in a single pass.

Rows whose label is null or NaN are skipped (labels often arrive later); so are rows whose prediction
is null or NaN. `num_labeled` counts the rows the metrics were computed over.

Classification (labels and predictions compared as strings: integral floats are written as integers,
so a label 1.0 read from a column with nulls matches a prediction 1; booleans as true/false):

- `confusion_matrix`: counts[i][j] = rows with label labels[i] predicted as labels[j]; `labels` are the
  sorted union of the labels and predictions seen (scikit-learn's default order).
- `accuracy_score`: the diagonal's share of all rows.
- `precision`, `recall`, `f1_score`: per class one-vs-all, tp / (tp + fp), tp / (tp + fn) and
  2 tp / (2 tp + fp + fn), 0 where the denominator is 0 (scikit-learn's `zero_division` default);
  `macro` is their plain mean over the classes of the confusion matrix, `weighted` the mean weighted by
  each class's number of labels (support).
- `roc_auc_score` (needs probabilities): the area under the ROC curve from histograms of the scores on
  `BINS` equal bins of [0, 1]: P(score of a positive > score of a negative) + P(same bin) / 2. Scores in
  the same bin count as tied, so it differs from the exact AUC by at most half the share of
  (positive, negative) pairs that share a bin (under 1e-3 for spread-out scores); ties that are exact
  in the data are scored exactly as scikit-learn does. Binary: `proba` is the positive class's
  probability, the positive class being the greater label in sorted order (of `classes`, or else of the
  labels and predictions seen); rows with any other label count as negatives. Multiclass: `proba` rows
  are aligned with `classes`, and the score is the one-vs-rest macro average over the classes that have
  both positive and negative rows.
- `log_loss` (needs probabilities): the mean of -ln(clip(p_true, eps, 1 - eps)) with eps the float64
  machine epsilon, p_true the probability given to the row's label (binary: p for the positive class,
  1 - p otherwise), as scikit-learn's `log_loss`. Multiclass rows whose label is not in `classes` are
  left out of it.
- Rows whose probability is missing (NaN) are left out of ROC AUC and log loss only.

Regression (e = label - prediction):

- `mean_squared_error` = sum e^2 / n, `root_mean_squared_error` its square root,
  `mean_absolute_error` = sum |e| / n.
- `mean_absolute_percentage_error` = sum |e / y| / n_y over the rows whose label y is not 0, a fraction
  (not percent), as scikit-learn's but without its division by machine epsilon where y = 0.
- `r2_score` = 1 - SS_res / SS_tot with SS_res = sum e^2 and SS_tot = sum y^2 - (sum y)^2 / n, computed
  exactly from the exact sums; 1.0 if both are 0 and 0.0 if only SS_tot is (as scikit-learn); None
  under two rows.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pyarrow as pa

from lakeforge.monitoring.engine.exactsum import (
    SCALE_BITS,
    exact_square_sum,
    exact_sum,
    to_float,
)
from lakeforge.monitoring.spec import CLASSIFICATION, REGRESSION

BINS = 1000  # equal-width score bins on [0, 1] for the binned ROC AUC
_EPS = float(np.finfo(np.float64).eps)  # scikit-learn's log-loss clip
_FORMAT = 1  # of to_bytes

# The regression sums: e = label - prediction.
_SUMS = ("n", "abs_error", "squared_error", "n_nonzero_label", "abs_percentage_error", "label", "squared_label")


@dataclass
class QualityState:
    problem_type: str
    classes: list[str] | None = None
    # classification
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)   # (label, prediction) -> rows
    proba_kind: str | None = None   # "binary" (1-D positive-class probability) | "multiclass" (rows by class)
    # binary: true label -> histogram of the positive-class probability;
    # multiclass: class -> [histogram over rows with that label, histogram over the others] of its probability
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    # binary: label -> [rows, exact sum of -ln(clip(p)), exact sum of -ln(clip(1 - p))];
    # multiclass: "" -> [rows, exact sum of -ln(clip(p_true)), 0]
    log_loss: dict[str, list[int]] = field(default_factory=dict)
    # regression: exact sums (units of 2**-SCALE_BITS) and counts
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_SUMS, 0))

    @classmethod
    def empty(cls, problem_type: str, classes: list[str] | None = None) -> QualityState:
        if problem_type not in (CLASSIFICATION, REGRESSION):
            raise ValueError(f"problem_type must be {CLASSIFICATION} or {REGRESSION}, not {problem_type!r}")
        return cls(problem_type, [str(c) for c in classes] if classes is not None else None)

    # ---- update ----

    def update(self, labels: np.ndarray, predictions: np.ndarray, proba: np.ndarray | None = None) -> None:
        """Add rows (aligned arrays); rows with a null/NaN label or prediction are skipped."""
        if self.problem_type == REGRESSION:
            self._update_regression(np.asarray(labels), np.asarray(predictions))
            return
        y, pred = as_strings(labels), as_strings(predictions)
        keep = (y != None) & (pred != None)  # elementwise on object arrays
        if proba is not None:
            proba = np.asarray(proba, dtype=np.float64)[keep]
        y, pred = y[keep].astype(str), pred[keep].astype(str)
        if y.size == 0:
            return
        values, codes = np.unique(np.concatenate([y, pred]), return_inverse=True)
        k = len(values)
        pairs = np.bincount(codes[:y.size] * k + codes[y.size:], minlength=k * k)
        for index in np.flatnonzero(pairs).tolist():
            key = (str(values[index // k]), str(values[index % k]))
            self.confusion[key] = self.confusion.get(key, 0) + int(pairs[index])
        if proba is not None:
            self._update_scores(y, pred, proba)

    def _update_scores(self, y: np.ndarray, pred: np.ndarray, proba: np.ndarray) -> None:
        if proba.ndim == 2 and self.classes is not None and len(self.classes) == 2 and proba.shape[1] == 2:
            proba = proba[:, self.classes.index(sorted(self.classes)[1])]  # binary, given as both columns
        kind = "binary" if proba.ndim == 1 else "multiclass"
        if self.proba_kind not in (None, kind):
            raise ValueError(f"probabilities were {self.proba_kind}, now {kind}")
        self.proba_kind = kind
        if kind == "binary":
            finite = np.isfinite(proba)
            y, p = y[finite], np.clip(proba[finite], 0.0, 1.0)
            for label in np.unique(y).tolist():
                mine = p[y == label]
                self._add_hist(label, _histogram(mine))
                row = self.log_loss.setdefault(label, [0, 0, 0])
                row[0] += mine.size
                row[1] += exact_sum(-np.log(np.clip(mine, _EPS, 1 - _EPS)))
                row[2] += exact_sum(-np.log(np.clip(1 - mine, _EPS, 1 - _EPS)))
            return
        if self.classes is None or proba.shape[1] != len(self.classes):
            raise ValueError(f"probability rows have {proba.shape[1]} values for "
                             f"{len(self.classes) if self.classes else 'no'} classes")
        finite = np.isfinite(proba).all(axis=1)
        y, p = y[finite], np.clip(proba[finite], 0.0, 1.0)
        index = {c: i for i, c in enumerate(self.classes)}
        known = np.array([label in index for label in y.tolist()], dtype=bool)
        for i, cls in enumerate(self.classes):
            positive = y == cls
            self._add_hist(cls, np.stack([_histogram(p[positive, i]), _histogram(p[~positive, i])]))
        rows = np.flatnonzero(known)
        p_true = p[rows, [index[label] for label in y[rows].tolist()]]
        row = self.log_loss.setdefault("", [0, 0, 0])
        row[0] += rows.size
        row[1] += exact_sum(-np.log(np.clip(p_true, _EPS, 1 - _EPS)))

    def _add_hist(self, key: str, hist: np.ndarray) -> None:
        self.scores[key] = self.scores[key] + hist if key in self.scores else hist

    def _update_regression(self, labels: np.ndarray, predictions: np.ndarray) -> None:
        try:
            y = np.asarray(labels, dtype=np.float64)
            pred = np.asarray(predictions, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"regression labels and predictions must be numeric: {exc}") from None
        keep = np.isfinite(y) & np.isfinite(pred)
        y, pred = y[keep], pred[keep]
        e = y - pred
        nonzero = y != 0
        s = self.sums
        s["n"] += y.size
        s["abs_error"] += exact_sum(np.abs(e))
        s["squared_error"] += exact_square_sum(e)
        s["n_nonzero_label"] += int(nonzero.sum())
        s["abs_percentage_error"] += exact_sum(np.abs(e[nonzero]) / np.abs(y[nonzero]))
        s["label"] += exact_sum(y)
        s["squared_label"] += exact_square_sum(y)

    # ---- merge ----

    def merge(self, other: QualityState) -> QualityState:
        """A new state holding the rows of both (same problem type and classes)."""
        if other.problem_type != self.problem_type or (
                self.classes is not None and other.classes is not None and self.classes != other.classes):
            raise ValueError("cannot merge quality states of different problem types or classes")
        if None not in (self.proba_kind, other.proba_kind) and self.proba_kind != other.proba_kind:
            raise ValueError("cannot merge binary and multiclass probability state")
        merged = QualityState(self.problem_type, self.classes if self.classes is not None else other.classes)
        merged.proba_kind = self.proba_kind or other.proba_kind
        for part in (self, other):
            for key, n in part.confusion.items():
                merged.confusion[key] = merged.confusion.get(key, 0) + n
            for key, hist in part.scores.items():
                merged._add_hist(key, hist.copy())
            for key, row in part.log_loss.items():
                merged.log_loss[key] = [a + b for a, b in zip(merged.log_loss.get(key, [0, 0, 0]), row)]
            for key, total in part.sums.items():
                merged.sums[key] += total
        return merged

    # ---- metrics ----

    def to_metrics(self) -> dict:
        """The metric columns of lakeforge.monitoring.tables (CLASSIFICATION_METRICS or REGRESSION_METRICS,
        and num_labeled); None where a metric is undefined."""
        if self.problem_type == REGRESSION:
            return self._regression_metrics()
        return self._classification_metrics()

    def _classification_metrics(self) -> dict:
        labels = sorted({label for pair in self.confusion for label in pair})
        index = {label: i for i, label in enumerate(labels)}
        counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
        for (label, prediction), n in self.confusion.items():
            counts[index[label], index[prediction]] = n
        total = int(counts.sum())
        metrics = {"num_labeled": total, "accuracy_score": None, "precision": None, "recall": None,
                   "f1_score": None, "roc_auc_score": None, "log_loss": None,
                   "confusion_matrix": {"labels": labels, "counts": counts.tolist()}}
        if total == 0:
            return metrics
        tp = np.diag(counts).astype(np.float64)
        support = counts.sum(axis=1).astype(np.float64)   # rows per label
        predicted = counts.sum(axis=0).astype(np.float64)  # rows per prediction
        metrics["accuracy_score"] = float(tp.sum() / total)
        metrics["precision"] = _averaged(labels, _ratio(tp, predicted), support)
        metrics["recall"] = _averaged(labels, _ratio(tp, support), support)
        metrics["f1_score"] = _averaged(labels, _ratio(2 * tp, support + predicted), support)
        metrics["roc_auc_score"], metrics["log_loss"] = self._probability_metrics(labels)
        return metrics

    def _probability_metrics(self, labels: list[str]) -> tuple[float | None, float | None]:
        if self.proba_kind == "multiclass":
            aucs = [auc for cls in self.classes if cls in self.scores
                    if (auc := binned_auc(self.scores[cls][0], self.scores[cls][1])) is not None]
            rows, loss, _ = self.log_loss.get("", [0, 0, 0])
            return (float(np.mean(aucs)) if aucs else None), (to_float(loss, rows) if rows else None)
        if self.proba_kind != "binary":
            return None, None
        known = sorted(set(self.classes if self.classes is not None else labels))
        if len(known) < 2:
            return None, None
        positive = known[-1]
        negatives = [hist for label, hist in self.scores.items() if label != positive]
        auc = None
        if positive in self.scores and negatives:
            auc = binned_auc(self.scores[positive], np.sum(negatives, axis=0))
        rows = sum(row[0] for row in self.log_loss.values())
        loss = sum(row[1] if label == positive else row[2] for label, row in self.log_loss.items())
        return auc, (to_float(loss, rows) if rows else None)

    def _regression_metrics(self) -> dict:
        s = self.sums
        n = s["n"]
        metrics = {"num_labeled": n, "mean_squared_error": None, "root_mean_squared_error": None,
                   "mean_absolute_error": None, "mean_absolute_percentage_error": None, "r2_score": None}
        if n == 0:
            return metrics
        mse = to_float(s["squared_error"], n)
        metrics.update(mean_squared_error=mse, root_mean_squared_error=math.sqrt(mse),
                       mean_absolute_error=to_float(s["abs_error"], n))
        if s["n_nonzero_label"]:
            metrics["mean_absolute_percentage_error"] = to_float(s["abs_percentage_error"], s["n_nonzero_label"])
        if n >= 2:
            unit = 1 << SCALE_BITS
            ss_res = Fraction(s["squared_error"], unit)
            ss_tot = Fraction(s["squared_label"], unit) - Fraction(s["label"], unit) ** 2 / n
            if ss_tot == 0:
                metrics["r2_score"] = 1.0 if ss_res == 0 else 0.0
            else:
                metrics["r2_score"] = float(1 - ss_res / ss_tot)
        return metrics

    # ---- bytes ----

    def to_bytes(self) -> bytes:
        """Deterministic serialization (zlib-compressed JSON; Python's json keeps the big integers exact)."""
        doc = {
            "format": _FORMAT, "problem_type": self.problem_type, "classes": self.classes,
            "confusion": sorted([label, prediction, n] for (label, prediction), n in self.confusion.items()),
            "proba_kind": self.proba_kind,
            "scores": {key: hist.tolist() for key, hist in sorted(self.scores.items())},
            "log_loss": dict(sorted(self.log_loss.items())),
            "sums": self.sums,
        }
        return zlib.compress(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(), 6)

    @classmethod
    def from_bytes(cls, data: bytes) -> QualityState:
        doc = json.loads(zlib.decompress(data))
        if doc.get("format") != _FORMAT:
            raise ValueError(f"unknown quality state format {doc.get('format')!r}")
        state = cls(doc["problem_type"], doc["classes"])
        state.confusion = {(label, prediction): n for label, prediction, n in doc["confusion"]}
        state.proba_kind = doc["proba_kind"]
        state.scores = {key: np.array(hist, dtype=np.int64) for key, hist in doc["scores"].items()}
        state.log_loss = doc["log_loss"]
        state.sums = doc["sums"]
        return state


def binned_auc(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """ROC AUC from score histograms on the same bins: P(pos > neg) + P(same bin) / 2; None without
    positives or negatives."""
    pos, neg = positive.astype(np.float64), negative.astype(np.float64)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return None
    below = np.cumsum(neg) - neg  # negatives in lower bins
    return float(np.sum(pos * (below + neg / 2)) / (n_pos * n_neg))


def as_strings(values: np.ndarray) -> np.ndarray:
    """Labels or predictions as an object array of strings, None where null/NaN (module docstring)."""
    values = np.asarray(values)
    if values.dtype.kind == "b":
        return np.where(values, "true", "false").astype(object)
    if values.dtype.kind in "iu":
        return values.astype(str).astype(object)
    if values.dtype.kind == "f":
        out = np.full(values.shape, None, dtype=object)
        finite = np.isfinite(values)
        integral = finite & (values == np.round(values)) & (np.abs(values) < 2.0 ** 53)
        out[integral] = values[integral].astype(np.int64).astype(str)
        rest = finite & ~integral
        out[rest] = [repr(v) for v in values[rest].tolist()]
        return out
    if values.dtype.kind in "US":
        return values.astype(str).astype(object)
    try:  # object arrays of one kind (strings or numbers with None/NaN): through Arrow, vectorised
        arrow = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arrow = None
    if arrow is not None and (pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type)):
        return arrow.to_numpy(zero_copy_only=False)
    if arrow is not None and (pa.types.is_integer(arrow.type) or pa.types.is_floating(arrow.type)
                              or pa.types.is_boolean(arrow.type)) and arrow.null_count == 0:
        return as_strings(arrow.to_numpy(zero_copy_only=False))
    return np.array([_as_string(v) for v in values.tolist()], dtype=object)


def _as_string(value) -> str | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == round(value) and abs(value) < 2.0 ** 53:
        return str(int(value))
    return str(value)


def _histogram(scores: np.ndarray) -> np.ndarray:
    bins = np.minimum((scores * BINS).astype(np.int64), BINS - 1)
    return np.bincount(bins, minlength=BINS).astype(np.int64)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _averaged(labels: list[str], values: np.ndarray, support: np.ndarray) -> dict:
    weighted = float(np.sum(values * support) / support.sum()) if support.sum() > 0 else 0.0
    return {"one_vs_all": {label: float(v) for label, v in zip(labels, values)},
            "macro": float(values.mean()), "weighted": weighted}
