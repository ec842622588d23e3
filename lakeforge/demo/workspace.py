"""What every demo step shares: the server, the clients a user would use, the dataset's shape."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path

from lakeforge.client import Client


@dataclass(frozen=True)
class Shape:
    """How big the demo is. The defaults are the quickstart's; tests pass smaller ones."""

    rows: int = 200_000      # training customers
    days: int = 7            # simulated days of traffic
    per_day: int = 3_000     # customers scored per day
    batch: int = 50          # rows per scoring request

    @property
    def drift_day(self) -> int:
        """The first drifted day: 4 of 7, 3 of 5; never day 1, so some days look like training."""
        return max(2, self.days // 2 + 1)

    @property
    def batches_per_day(self) -> int:
        return -(-self.per_day // self.batch)


@dataclass
class Workspace:
    url: str
    token: str
    shape: Shape
    token_file: Path | None = None
    first_day: datetime | None = None       # the first simulated day of traffic (UTC midnight)
    report: dict = field(default_factory=dict)  # what the steps found or did, for the summary

    def __post_init__(self) -> None:
        # Stock MLflow finds the server (tracking and registry) and the token in its usual variables.
        os.environ["MLFLOW_TRACKING_URI"] = self.url
        os.environ["MLFLOW_TRACKING_TOKEN"] = self.token

    @cached_property
    def lf(self) -> Client:
        return Client(self.url, token=self.token, timeout=300)

    @cached_property
    def w(self):
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.config import Config

        return WorkspaceClient(config=Config(host=self.url, token=self.token, auth_type="pat",
                                             http_timeout_seconds=300))

    def sql(self, statement: str, **params) -> list[dict]:
        return self.lf.sql(statement, **params).to_pylist()

    def table_exists(self, name: str) -> bool:
        return self.lf.tables.exists(name)
