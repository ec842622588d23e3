"""Monitor schedules: Quartz cron expressions (as Databricks takes them) evaluated with `croniter`.

Quartz fields are `seconds minutes hours day-of-month month day-of-week [year]`; `?` means "no
specific value" in day-of-month or day-of-week. croniter reads the same fields when told that the
seconds come first (`second_at_beginning`), and treats `?` as `*`. The one difference is the
day-of-week numbering: Quartz counts 1 = Sunday ... 7 = Saturday, croniter 0 = Sunday ... 6 =
Saturday, so numbers in that field are shifted down by one (`2-6` -> `1-5`, `6#3` -> `5#3`, and the
Quartz "last Friday" `6L` -> croniter's `L5`). Names (`MON-FRI`) mean the same in both.

Time zones are IANA names (`Europe/Paris`, `UTC`); Java's three-letter ids (`PST`, `CST`, ...) that
Databricks accepts are mapped to the zones Java maps them to.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lakeforge.errors import InvalidParameter

# java.time.ZoneId.SHORT_IDS: the ids zoneinfo does not know under the same name.
_JAVA_SHORT_IDS = {
    "ACT": "Australia/Darwin", "AET": "Australia/Sydney", "AGT": "America/Argentina/Buenos_Aires",
    "ART": "Africa/Cairo", "AST": "America/Anchorage", "BET": "America/Sao_Paulo", "BST": "Asia/Dhaka",
    "CAT": "Africa/Harare", "CNT": "America/St_Johns", "CST": "America/Chicago", "CTT": "Asia/Shanghai",
    "EAT": "Africa/Addis_Ababa", "ECT": "Europe/Paris", "IET": "America/Indiana/Indianapolis",
    "IST": "Asia/Kolkata", "JST": "Asia/Tokyo", "MIT": "Pacific/Apia", "NET": "Asia/Yerevan",
    "NST": "Pacific/Auckland", "PLT": "Asia/Karachi", "PNT": "America/Phoenix", "PRT": "America/Puerto_Rico",
    "PST": "America/Los_Angeles", "SST": "Pacific/Guadalcanal", "VST": "Asia/Ho_Chi_Minh",
}
_DOW_NUMBER = re.compile(r"\d+")
_CRONITER_PREFIX = re.compile(r"^\[[^\]]*\]\s*(is not acceptable[,.]?\s*)?")


def zone(timezone_id: str | None) -> ZoneInfo:
    """The zone of a schedule's `timezone_id`; 400 naming it when unknown."""
    if not isinstance(timezone_id, str) or not timezone_id.strip():
        raise InvalidParameter("schedule.timezone_id is required (an IANA time zone such as 'UTC' or "
                               "'Europe/Paris')")
    name = timezone_id.strip()
    try:
        return ZoneInfo(_JAVA_SHORT_IDS.get(name, name))
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidParameter(f"schedule.timezone_id '{timezone_id}' is not a known time zone") from None


def _dow_item(item: str) -> str:
    """One comma-separated item of Quartz's day-of-week field in croniter's numbering."""
    base, slash, step = item.partition("/")
    if base.upper().endswith("L") and base[:-1].isdigit():  # 6L: the last Friday of the month
        return f"L{_shift(base[:-1])}"
    base, hash_, nth = base.partition("#")
    base = _DOW_NUMBER.sub(lambda m: _shift(m.group()), base)
    return base + hash_ + nth + slash + step


def _shift(number: str) -> str:
    n = int(number)
    if not 1 <= n <= 7:
        raise ValueError(f"day-of-week values are 1 (Sunday) to 7 (Saturday), not {n}")
    return str(n - 1)


def to_croniter(expression: str) -> str:
    """A Quartz cron expression as croniter reads it (with `second_at_beginning=True`)."""
    fields = expression.split()
    if len(fields) not in (6, 7):
        raise ValueError("a Quartz expression has 6 or 7 fields (seconds minutes hours day-of-month month "
                         "day-of-week [year])")
    fields[5] = ",".join(_dow_item(item) for item in fields[5].split(","))
    return " ".join(fields)


def check(expression: str | None, timezone_id: str | None) -> None:
    """400 naming the problem unless the expression is a valid Quartz cron and the zone exists."""
    next_after(expression, timezone_id, datetime.now(UTC))


def next_after(expression: str | None, timezone_id: str | None, after: datetime) -> datetime:
    """The first fire time strictly after `after`, as a UTC datetime."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidParameter("schedule.quartz_cron_expression is required")
    from croniter import croniter  # imported on the first schedule, not at server start
    from croniter.croniter import CroniterError

    tz = zone(timezone_id)
    try:
        it = croniter(to_croniter(expression.strip()), after.astimezone(tz), second_at_beginning=True)
        return it.get_next(datetime).astimezone(UTC)
    except (CroniterError, ValueError, KeyError) as e:
        # croniter quotes its own (translated) form of the expression first: keep only the reason.
        reason = _CRONITER_PREFIX.sub("", str(e).split("\n")[0]) or "not acceptable"
        raise InvalidParameter(f"schedule.quartz_cron_expression '{expression}' is not a valid Quartz cron "
                               f"expression: {reason}") from None


__all__ = ["check", "next_after", "to_croniter", "zone"]
