"""Time windows: which window of each granularity a row falls into, by its timestamp (UTC).

Fixed-length granularities (5 minutes, 30 minutes, 1 hour, 1 day) are aligned to the Unix epoch;
"n weeks" windows are aligned to epoch weeks starting on Monday 1970-01-05, so a "2 weeks" window
always starts on a Monday; "1 month" and "1 year" are calendar months and years. A window is named by
its start in epoch microseconds; its end is the next window's start (exclusive). Snapshot monitors have
one window per refresh, whose start and end are both the refresh time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np

from lakeforge.errors import InvalidParameter

SNAPSHOT = "snapshot"

_US = {"minute": 60_000_000, "hour": 3_600_000_000, "day": 86_400_000_000, "week": 7 * 86_400_000_000}
_MONDAY = 4 * 86_400_000_000  # 1970-01-05T00:00Z in microseconds: the first Monday after the epoch
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SPELLING = re.compile(r"^\s*(\d+)\s+(minute|hour|day|week|month|year)s?\s*$")


def parse(granularity: str) -> tuple[str, int]:
    """("fixed", length_us) or ("month"|"year", 1) for a granularity string such as "30 minutes"."""
    match = _SPELLING.match(granularity or "")
    if not match:
        raise InvalidParameter(f"Unknown granularity '{granularity}'")
    n, unit = int(match.group(1)), match.group(2)
    if n < 1:
        raise InvalidParameter(f"Unknown granularity '{granularity}'")
    if unit in ("month", "year"):
        if n != 1:
            raise InvalidParameter(f"Unknown granularity '{granularity}': only 1 {unit} is supported")
        return unit, 1
    return "fixed", n * _US[unit]


def _origin(granularity: str) -> int:
    return _MONDAY if "week" in granularity else 0


def ordinals(granularity: str, ts_us: np.ndarray) -> np.ndarray:
    """The window of each timestamp (int64 epoch microseconds, UTC) as a consecutive integer: windows
    since the origin (the epoch, or 1970-01-05 for weeks; months and years since 1970)."""
    kind, length = parse(granularity)
    ts_us = np.asarray(ts_us, dtype=np.int64)
    if kind == "fixed":
        return (ts_us - _origin(granularity)) // length
    unit = "M" if kind == "month" else "Y"
    return ts_us.astype("datetime64[us]").astype(f"datetime64[{unit}]").astype(np.int64)


def starts_of(granularity: str, ordinal: np.ndarray) -> np.ndarray:
    """Window start (epoch microseconds) of window ordinals."""
    kind, length = parse(granularity)
    ordinal = np.asarray(ordinal, dtype=np.int64)
    if kind == "fixed":
        return ordinal * length + _origin(granularity)
    unit = "M" if kind == "month" else "Y"
    return ordinal.astype(f"datetime64[{unit}]").astype("datetime64[us]").astype(np.int64)


def starts(granularity: str, ts_us: np.ndarray) -> np.ndarray:
    """Window start (epoch microseconds) of each timestamp (int64 epoch microseconds, UTC)."""
    return starts_of(granularity, ordinals(granularity, ts_us))


def shift(granularity: str, start_us: int, k: int = 1) -> int:
    """The start of the window k windows after (k < 0: before) the window starting at start_us."""
    kind, length = parse(granularity)
    if kind == "fixed":
        return start_us + k * length
    unit = "M" if kind == "month" else "Y"
    moved = np.datetime64(start_us, "us").astype(f"datetime64[{unit}]") + k
    return int(moved.astype("datetime64[us]").astype(np.int64))


def end(granularity: str, start_us: int) -> int:
    return shift(granularity, start_us, 1)


def to_datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))


def to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
