"""The Evidently side of the monitoring benchmark, run in its own venv (evidently 0.7.23 needs pandas<3):

    bench/.venv-evidently/bin/python -m bench.monitoring_evidently DATA_DIR LAYOUT_JSON OUT_JSON

`Report([DataDriftPreset()])` with default methods on reference vs current (all 7 days at once: Evidently
has no windows), columns declared explicitly in a `DataDefinition`. Times its steps from inside (wall and
process CPU) and writes them, with each column's drift score, method, threshold and verdict, to OUT_JSON.
Only the standard library, pandas and evidently are imported here (and they are timed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.monitoring_measure import Steps, peak_rss_mb


def drifted(method: str, score: float, threshold: float) -> bool:
    # Evidently's rule: methods that return a p-value drift below the threshold, distances at or above it.
    return score < threshold if "p_value" in method else score >= threshold


def main() -> None:
    data_dir, layout, out = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()), Path(sys.argv[3])
    step = Steps()
    with step("import"):
        import evidently
        import pandas as pd
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
    # Parquet -> pandas (object strings for the categorical columns). The 25 feature columns only: given the
    # timestamp, Evidently would also draw drift-over-time plots, work the drift verdicts do not need.
    features = layout["numeric"] + layout["categorical"]
    with step("load"):
        reference = pd.read_parquet(data_dir / "reference.parquet", columns=features)
        current = pd.read_parquet(data_dir / "current.parquet", columns=features)
    with step("wrap"):
        definition = DataDefinition(numerical_columns=layout["numeric"], categorical_columns=layout["categorical"])
        ref_ds = Dataset.from_pandas(reference, data_definition=definition)
        cur_ds = Dataset.from_pandas(current, data_definition=definition)
    with step("run"):
        snapshot = Report([DataDriftPreset()]).run(cur_ds, ref_ds)
    with step("extract"):
        result = snapshot.dict()
    columns, drifted_count = {}, None
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            columns[config["column"]] = {"method": config["method"], "threshold": config["threshold"],
                                         "score": metric["value"],
                                         "drifted": bool(drifted(config["method"], metric["value"], config["threshold"]))}
        elif config["type"].endswith(":DriftedColumnsCount"):
            drifted_count = int(metric["value"]["count"])
    flagged = sorted(c for c, r in columns.items() if r["drifted"])
    # Our reading of the per-column verdicts must agree with Evidently's own count.
    assert drifted_count == len(flagged), (drifted_count, flagged)
    out.write_text(json.dumps({
        "versions": {"evidently": evidently.__version__, "pandas": pd.__version__,
                     "numpy": __import__("numpy").__version__, "scipy": __import__("scipy").__version__,
                     "python": sys.version.split()[0]},
        "rows": {"reference": len(reference), "current": len(current)},
        "steps": step.times, "peak_rss_mb": peak_rss_mb(), "flagged": flagged, "columns": columns}, indent=1))


if __name__ == "__main__":
    main()
