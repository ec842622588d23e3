"""(g) Retraining: a challenger fitted on recent labeled traffic, validated against the champion on a
held-out recent day, and promoted (alias `champion` moved, endpoint updated) only if it wins.

The decision is written on the challenger's model version as tags, so a second run finds it, says it
again and only repairs what is missing (the alias, the endpoint's version).
"""

from __future__ import annotations

import pandas as pd

from lakeforge.demo import INFERENCE, MODEL, data, train
from lakeforge.demo.steps import Progress, serve, tagged_version
from lakeforge.demo.workspace import Workspace

METRIC = "roc_auc"  # the promotion metric: ranking quality, independent of the 0.5 threshold


def retrain(ws: Workspace, progress: Progress) -> str:
    import mlflow

    client = mlflow.MlflowClient()
    version = tagged_version(client, "demo.role", "challenger")
    if version is None:
        version = _train_challenger(ws, client, progress)
        reused = False
    else:
        reused = True
    tags = client.get_model_version(MODEL, version).tags
    won = tags["demo.decision"] == "promoted"
    champion = tags["demo.champion_version"]
    verdict = (f"challenger v{version} {METRIC.upper().replace('_', ' ')} {float(tags['demo.challenger_' + METRIC]):.3f}"
               f" vs champion v{champion} {float(tags['demo.champion_' + METRIC]):.3f} on {tags['demo.holdout_day']}")
    if won:
        progress(0.8, f"promoting version {version}")
        client.set_registered_model_alias(MODEL, "champion", version)
        served = serve(ws, version)
        ws.report["champion"] = version
        decision = (f"{verdict}: promoted, {MODEL}@champion = v{version}, "
                    f"endpoint {'serves it' if served == 'reused' else 'updated to it'}")
    else:
        ws.report["champion"] = champion
        decision = f"{verdict}: kept the champion (v{champion})"
    ws.report["decision"] = decision
    ws.report["promoted"] = won
    ws.report["challenger"] = version
    return decision + (" (reused)" if reused else "")


def _train_challenger(ws: Workspace, client, progress: Progress) -> str:
    champion = str(client.get_model_version_by_alias(MODEL, "champion").version)
    progress(0.1, f"reading labeled rows of {INFERENCE}")
    frame = ws.lf.tables.read(INFERENCE).to_pandas()
    frame = frame[frame["label"].notna()].rename(columns={"timestamp": data.EVENT_TIME})
    frame[data.LABEL] = frame["label"].astype("int64")
    since = pd.Timestamp(ws.report["drift_since"], tz="UTC") if ws.report.get("drift_since") else None
    fit_rows, holdout, day = holdout_split(frame, since)
    progress(0.3, f"training on {len(fit_rows):,} recent rows, holding out {day}")
    challenger = train.fit(fit_rows)
    mine = train.evaluate(challenger, holdout)
    theirs = train.evaluate(train.load(champion), holdout)
    won = mine[METRIC] > theirs[METRIC]
    progress(0.6, "logging the run and registering the challenger")
    version, run_path = train.log_and_register(
        challenger, fit_rows, source_table=INFERENCE, run_name="challenger",
        params={"model": "logistic_regression", "rows": len(fit_rows), "since": str(since.date()) if since else "",
                "holdout_day": day},
        metrics={f"holdout_{k}": v for k, v in mine.items()} | {f"champion_holdout_{k}": v for k, v in theirs.items()},
        tags={"demo.role": "challenger", "demo.decision": "promoted" if won else "kept",
              "demo.champion_version": champion, "demo.holdout_day": day,
              f"demo.challenger_{METRIC}": f"{mine[METRIC]:.4f}", f"demo.champion_{METRIC}": f"{theirs[METRIC]:.4f}"})
    client.set_registered_model_alias(MODEL, "challenger", version)
    ws.report["challenger_run"] = run_path
    return version


def holdout_split(frame: pd.DataFrame, since: pd.Timestamp | None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The last labeled day is held out to compare both models; the challenger trains on the labeled
    days before it, from `since` (the first day the drift alert fired) when there are such days."""
    days = frame[data.EVENT_TIME].dt.floor("D")
    last = days.max()
    earlier = days < last
    fit_rows = frame[earlier & (days >= since)] if since is not None else frame[earlier]
    if fit_rows.empty:
        fit_rows = frame[earlier]
    return fit_rows, frame[days == last], last.date().isoformat()
