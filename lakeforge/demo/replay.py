"""Replaying simulated days of traffic through the serving endpoint, and the labels that follow.

Each day's customers are sent in scoring requests of `batch` rows. Every request carries its own
`x-request-id` (`demo-d03-b0007`), which the server keeps as the request id of the inference table,
so a row is known as `demo-d03-b0007#12` everywhere: in the unpacked inference table and in the
labels table that arrives a day later. The same ids let a second run find what was already sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import orjson
import pandas as pd

from lakeforge.demo import ENDPOINT, LABELS, PAYLOAD
from lakeforge.demo.data import EVENT_TIME, FEATURES, LABEL, traffic_day
from lakeforge.demo.workspace import Workspace

PREFIX = "demo-"
SENDERS = 4  # concurrent requests: enough to keep a model worker busy without starving the server


def request_id(day: int, batch: int) -> str:
    return f"{PREFIX}d{day:02d}-b{batch:04d}"


def row_id(request: str, index: int) -> str:
    """A scored row's id: its request's id and its position in the request (the unpacker's form)."""
    return f"{request}#{index}"


def day_of(row_or_request: str) -> int:
    return int(row_or_request[len(PREFIX) + 1:len(PREFIX) + 3])


def batches(ws: Workspace, day: int) -> list[tuple[str, pd.DataFrame]]:
    shape = ws.shape
    frame = traffic_day(day, shape.per_day, ws.first_day, shape.drift_day)
    return [(request_id(day, i // shape.batch), frame.iloc[i:i + shape.batch])
            for i in range(0, len(frame), shape.batch)]


def sent_requests(ws: Workspace) -> set[str]:
    """Demo requests the endpoint answered that are already in its inference table."""
    if not ws.table_exists(PAYLOAD):
        return set()
    rows = ws.sql(f"SELECT DISTINCT databricks_request_id AS id FROM {PAYLOAD} "
                  f"WHERE status_code = 200 AND databricks_request_id LIKE '{PREFIX}%'")
    return {r["id"] for r in rows}


def send(ws: Workspace, todo: Iterable[tuple[str, pd.DataFrame]], done: Callable[[], None]) -> int:
    """Score every batch (several at a time); raises on the first request the endpoint refuses."""
    headers = {"Authorization": f"Bearer {ws.token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=ws.url, headers=headers, timeout=60) as http:
        def one(item: tuple[str, pd.DataFrame]) -> None:
            rid, rows = item
            resp = http.post(f"/serving-endpoints/{ENDPOINT}/invocations", content=_body(rows),
                             headers={"x-request-id": rid})
            if resp.status_code != 200:
                raise RuntimeError(f"the endpoint answered {resp.status_code} to {rid}: {resp.text[:300]}")
            done()

        with ThreadPoolExecutor(SENDERS) as pool:
            return sum(1 for _ in pool.map(one, list(todo)))


def _body(rows: pd.DataFrame) -> bytes:
    # The features plus the event time (the model ignores extra columns; the unpacker keeps them).
    columns = FEATURES + [EVENT_TIME]
    data = rows[columns].assign(**{EVENT_TIME: rows[EVENT_TIME].map(lambda t: t.isoformat())})
    return orjson.dumps({"dataframe_split": {"columns": columns, "data": data.to_numpy().tolist()}})


def labeled_days(ws: Workspace) -> set[int]:
    if not ws.table_exists(LABELS):
        return set()
    rows = ws.sql(f"SELECT DISTINCT substr(request_id, 1, {len(PREFIX) + 3}) AS day FROM {LABELS}")
    return {day_of(r["day"]) for r in rows}


def labels(ws: Workspace, day: int) -> pd.DataFrame:
    """Day `day`'s outcomes as they arrive: in the middle of the next (simulated) day."""
    arrived = pd.Timestamp(ws.first_day + timedelta(days=day, hours=12))
    out = []
    for rid, rows in batches(ws, day):
        out.append(pd.DataFrame({"request_id": [row_id(rid, i) for i in range(len(rows))],
                                 LABEL: rows[LABEL].to_numpy(), "arrived_at": arrived}))
    return pd.concat(out, ignore_index=True)
