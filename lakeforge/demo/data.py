"""The demo's dataset: telecom customers with a churn label, generated deterministically.

Training customers are drawn from one world; the replayed traffic starts in the same world and,
from `drift_day` on, moves to another: prices rise (`monthly_charges`), customers call support more
often (`support_calls`), more of them sign month-to-month contracts (`contract`), and churn becomes
more price-sensitive, so a model trained on the old world loses quality and a retrained one can win.
Every frame comes from a seeded numpy generator: the same arguments give the same rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

NUMERIC = ["tenure_months", "monthly_charges", "data_usage_gb", "support_calls", "age"]
CATEGORICAL = ["contract", "plan", "region", "payment_method"]
FEATURES = NUMERIC + CATEGORICAL
LABEL = "churned"          # 1: the customer left within the month
EVENT_TIME = "event_time"
CUSTOMER_ID = "customer_id"

CONTRACTS = ["month-to-month", "one-year", "two-year"]
PLANS = ["basic", "standard", "premium"]
REGIONS = ["north", "south", "east", "west"]
PAYMENTS = ["card", "bank-transfer", "paypal", "check"]

TRAINING_SEED = 7
TRAINING_DAYS = 90


def training_customers(rows: int, end: datetime) -> pd.DataFrame:
    """`rows` customers whose events fall in the TRAINING_DAYS days before `end`, with their label."""
    rng = np.random.default_rng(TRAINING_SEED)
    frame = _customers(rng, rows, drifted=False)
    offsets = np.sort(rng.integers(0, TRAINING_DAYS * 86_400, rows))
    start = end - timedelta(days=TRAINING_DAYS)
    frame.insert(0, EVENT_TIME, pd.to_datetime(start) + pd.to_timedelta(offsets, unit="s"))
    frame.insert(0, CUSTOMER_ID, [f"C{i:07d}" for i in range(rows)])
    frame[LABEL] = _churn(rng, frame, drifted=False)
    return frame


def traffic_day(day: int, rows: int, first_day: datetime, drift_day: int) -> pd.DataFrame:
    """Day `day` (1-based) of replayed traffic: `rows` customers with event times inside that day,
    drifted from `drift_day` on, and the label they will turn out to have (known only later)."""
    rng = np.random.default_rng(1000 + day)
    drifted = day >= drift_day
    frame = _customers(rng, rows, drifted)
    start = first_day + timedelta(days=day - 1)
    offsets = np.sort(rng.integers(0, 86_400, rows))
    frame.insert(0, EVENT_TIME, pd.to_datetime(start) + pd.to_timedelta(offsets, unit="s"))
    frame.insert(0, CUSTOMER_ID, [f"D{day:02d}-{i:06d}" for i in range(rows)])
    frame[LABEL] = _churn(rng, frame, drifted)
    return frame


def _customers(rng: np.random.Generator, n: int, drifted: bool) -> pd.DataFrame:
    contract_mix = [0.80, 0.13, 0.07] if drifted else [0.45, 0.30, 0.25]
    contract = rng.choice(CONTRACTS, n, p=contract_mix)
    plan = rng.choice(PLANS, n, p=[0.4, 0.4, 0.2])
    plan_price = np.select([plan == "basic", plan == "standard"], [45.0, 70.0], 95.0)
    charges = plan_price + rng.normal(0, 12, n) + (16.0 if drifted else 0.0)
    return pd.DataFrame({
        "tenure_months": np.clip(rng.geometric(1 / 24, n), 1, 72).astype("int64"),
        "monthly_charges": np.round(np.clip(charges, 15, 200), 2),
        "data_usage_gb": np.round(rng.lognormal(2.3, 0.6, n), 2),
        "support_calls": rng.poisson(2.5 if drifted else 1.2, n).astype("int64"),
        "age": rng.integers(18, 80, n).astype("int64"),
        "contract": contract,
        "plan": plan,
        "region": rng.choice(REGIONS, n, p=[0.3, 0.25, 0.25, 0.2]),
        "payment_method": rng.choice(PAYMENTS, n, p=[0.4, 0.3, 0.2, 0.1]),
    })


def _churn(rng: np.random.Generator, f: pd.DataFrame, drifted: bool) -> np.ndarray:
    # After the drift a competitor undercuts on price: expensive plans churn much more.
    price_sensitivity = 0.045 if drifted else 0.02
    z = (-1.4 - (0.5 if drifted else 0.0) + 1.3 * (f["contract"] == "month-to-month") - 1.0 * (f["contract"] == "two-year")
         - 0.035 * f["tenure_months"] + price_sensitivity * (f["monthly_charges"] - 70)
         + 0.30 * f["support_calls"] + 0.4 * (f["payment_method"] == "check")
         - 0.3 * (f["plan"] == "premium") - 0.01 * (f["age"] - 45))
    p = 1 / (1 + np.exp(-z.to_numpy(dtype=float)))
    return (rng.random(len(f)) < p).astype("int64")


def utc_midnight(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
