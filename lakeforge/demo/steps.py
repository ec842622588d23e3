"""The demo's steps, in order. Each looks at what exists first, reuses it when it is right and creates
or fixes only what is missing, then checks its result; it returns one line saying what it did.

Every step talks to the server like a user would: the Lakeforge SDK for tables and SQL, stock MLflow
for tracking and the registry, databricks-sdk for serving endpoints and monitors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lakeforge.client import ApiError
from lakeforge.demo import (
    CATALOG,
    CUSTOMERS,
    ENDPOINT,
    ENDPOINT_TAG,
    LABELS,
    MODEL,
    PAYLOAD,
    SCHEMA,
    data,
    replay,
    train,
)
from lakeforge.demo.workspace import Workspace

Progress = Callable[[float, str], None]  # (fraction done, what is happening)
FIRST_DAY = "lakeforge.demo.first_day"    # schema property: the first simulated day of traffic


class DemoError(Exception):
    """A step could not reach its expected result; the message says what is wrong."""


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    run: Callable[[Workspace, Progress], str]


# ---- (a) schema and training data ------------------------------------------------------------------
def dataset(ws: Workspace, progress: Progress) -> str:
    ws.first_day = _schema(ws)
    rows = ws.shape.rows
    if ws.table_exists(CUSTOMERS):
        have = ws.sql(f"SELECT count(*) AS n FROM {CUSTOMERS}")[0]["n"]
        if have == rows:
            return f"{CUSTOMERS}: {rows:,} customers (reused)"
        progress(0.2, f"{CUSTOMERS} has {have:,} rows, expected {rows:,}: rewriting")
    progress(0.3, f"generating {rows:,} customers")
    frame = data.training_customers(rows, ws.first_day)
    progress(0.6, f"writing {CUSTOMERS}")
    result = ws.lf.tables.write(frame, CUSTOMERS, mode="overwrite")
    _expect(result["num_rows"] == rows, f"{CUSTOMERS} took {result['num_rows']} rows, expected {rows}")
    return f"{CUSTOMERS}: {rows:,} customers over {data.TRAINING_DAYS} days (Delta version {result['version']})"


def _schema(ws: Workspace) -> datetime:
    """The demo schema, created once; it remembers the first simulated day so reruns replay the same
    dates (the week before the demo first ran)."""
    try:
        schema = ws.lf.schemas.get(SCHEMA)
    except ApiError as e:
        if e.status != 404:
            raise
        first = data.utc_midnight(datetime.now(UTC)) - timedelta(days=ws.shape.days)
        schema = ws.lf.schemas.create(SCHEMA, comment="The Lakeforge demo: churn model, endpoint, monitor",
                                      properties={FIRST_DAY: first.date().isoformat()})
    value = (schema.get("properties") or {}).get(FIRST_DAY)
    if not value:
        raise DemoError(f"schema {SCHEMA} exists but was not made by the demo (no {FIRST_DAY} property); "
                        "drop it or start with another --home")
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


# ---- (b) champion: trained, tracked, registered, aliased --------------------------------------------
def champion(ws: Workspace, progress: Progress) -> str:
    import mlflow

    client = mlflow.MlflowClient()
    current = _alias_version(client, "champion")
    if current is not None:
        ws.report["champion"] = current
        return f"{MODEL}@champion is version {current} (reused)"
    # The alias is gone: it goes back to the promoted challenger, else the first champion.
    version = tagged_version(client, "demo.decision", "promoted") or \
        tagged_version(client, "demo.role", "first-champion")
    if version is None:
        progress(0.1, f"reading {CUSTOMERS}")
        frame = ws.lf.tables.read(CUSTOMERS).to_pandas()
        # The last tenth of the period validates; the model then trains on everything before it.
        cut = frame[data.EVENT_TIME].quantile(0.9)
        fit_rows, check_rows = frame[frame[data.EVENT_TIME] < cut], frame[frame[data.EVENT_TIME] >= cut]
        progress(0.3, f"training on {len(fit_rows):,} rows")
        model = train.fit(fit_rows)
        metrics = {f"val_{k}": v for k, v in train.evaluate(model, check_rows).items()}
        progress(0.6, "logging the run and registering the model")
        version, run_path = train.log_and_register(
            model, fit_rows, source_table=CUSTOMERS, run_name="champion",
            params={"model": "logistic_regression", "rows": len(fit_rows), "features": ",".join(data.FEATURES)},
            metrics=metrics, tags={"demo.role": "first-champion", "demo.val_roc_auc": f"{metrics['val_roc_auc']:.4f}"})
        ws.report["champion_run"] = run_path
        note = f"trained (validation ROC AUC {metrics['val_roc_auc']:.3f})"
    else:
        note = "alias restored"
    client.set_registered_model_alias(MODEL, "champion", version)
    ws.report["champion"] = version
    return f"{MODEL} version {version} @champion, {note}"


def _alias_version(client, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(MODEL, alias).version)
    except MlflowException:
        return None


def first_champion(ws: Workspace) -> str | None:
    """The version the demo trained first: it served the replayed traffic."""
    import mlflow

    return tagged_version(mlflow.MlflowClient(), "demo.role", "first-champion")


def tagged_version(client, key: str, value: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{MODEL}'")
    except MlflowException:
        return None
    found = [v for v in versions if (v.tags or {}).get(key) == value and v.status == "READY"]
    return str(max(int(v.version) for v in found)) if found else None


# ---- (c) serving endpoint with its inference table --------------------------------------------------
def endpoint(ws: Workspace, progress: Progress) -> str:
    version = ws.report["champion"]
    progress(0.1, f"endpoint {ENDPOINT} serving {MODEL} version {version}")
    # Ready is checked, not a test query: every request lands in the inference table and the monitor.
    note = serve(ws, version)
    return f"endpoint {ENDPOINT}: {MODEL} version {version}, READY, logging to {PAYLOAD} ({note})"


def serve(ws: Workspace, version: str) -> str:
    """Make the endpoint serve `version` of the model and wait until it is ready."""
    from databricks.sdk.service.serving import (
        AutoCaptureConfigInput,
        EndpointCoreConfigInput,
        EndpointTag,
        ServedEntityInput,
    )

    entity = ServedEntityInput(entity_name=MODEL, entity_version=version, workload_size="Small",
                               scale_to_zero_enabled=False)
    existing = _endpoint(ws)
    if existing is None:
        capture = AutoCaptureConfigInput(catalog_name=CATALOG, schema_name=SCHEMA.split(".")[1],
                                         table_name_prefix=ENDPOINT, enabled=True)
        ws.w.serving_endpoints.create_and_wait(
            ENDPOINT, config=EndpointCoreConfigInput(name=ENDPOINT, served_entities=[entity],
                                                     auto_capture_config=capture),
            tags=[EndpointTag(key=ENDPOINT_TAG, value="true")], timeout=timedelta(minutes=5))
        return "created"
    if ENDPOINT_TAG not in {t.get("key") for t in existing.get("tags") or []}:
        raise DemoError(f"serving endpoint '{ENDPOINT}' exists and is not the demo's; delete it "
                        f"(lakeforge serving delete {ENDPOINT}) or start with another --home")
    existing = ws.lf.serving.wait(ENDPOINT)
    served = [e.get("entity_version") for e in (existing.get("config") or {}).get("served_entities", [])]
    if served != [version]:
        ws.w.serving_endpoints.update_config_and_wait(ENDPOINT, served_entities=[entity],
                                                      timeout=timedelta(minutes=5))
        return f"updated from version {', '.join(map(str, served))}"
    _wait_ready(ws)
    return "reused"


def _endpoint(ws: Workspace):
    try:
        return ws.lf.serving.get(ENDPOINT)
    except ApiError as e:
        if e.status == 404:
            return None
        raise


def _wait_ready(ws: Workspace, timeout: float = 300) -> None:
    """After a restart endpoints come back in the background; wait for the workers."""
    deadline = time.monotonic() + timeout
    while (ws.lf.serving.get(ENDPOINT).get("state") or {}).get("ready") != "READY":
        if time.monotonic() > deadline:
            raise DemoError(f"endpoint {ENDPOINT} is not READY after {timeout:.0f} s "
                            f"(see: lakeforge serving get {ENDPOINT})")
        time.sleep(0.5)


# ---- (d) simulated days of traffic, labels a day late -----------------------------------------------
def traffic(ws: Workspace, progress: Progress) -> str:
    shape = ws.shape
    total = shape.days * shape.batches_per_day
    progress(0.0, "checking the inference table")
    already = replay.sent_requests(ws)
    labeled = replay.labeled_days(ws)
    sent = len([r for r in already if replay.day_of(r) <= shape.days])
    new_requests = new_labels = 0

    def tick() -> None:
        nonlocal sent
        sent += 1
        progress(sent / total * 0.95, f"day {day} of {shape.days}: {sent}/{total} requests")

    for day in range(1, shape.days + 1):
        todo = [(rid, rows) for rid, rows in replay.batches(ws, day) if rid not in already]
        new_requests += replay.send(ws, todo, tick)
        # Yesterday's outcomes are known today, after today's traffic.
        if day >= 2 and day - 1 not in labeled:
            ws.lf.tables.write(replay.labels(ws, day - 1), LABELS)
            new_labels += 1
    progress(0.96, f"waiting for {PAYLOAD} to hold every request")
    _wait_for(lambda: len(replay.sent_requests(ws)) >= total, f"{PAYLOAD} to hold all {total} requests")
    drifted = shape.days - shape.drift_day + 1
    ws.report["traffic_changed"] = bool(new_requests or new_labels)
    what = (f"{new_requests} requests sent, {new_labels} days of labels written" if ws.report["traffic_changed"]
            else "reused")
    return (f"{shape.days} days x {shape.per_day:,} customers in {total} requests, drift from day "
            f"{shape.drift_day} ({drifted} days); labels for days 1-{shape.days - 1} in {LABELS} ({what})")


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1.0)


def _expect(ok: bool, message: str) -> None:
    if not ok:
        raise DemoError(message)
