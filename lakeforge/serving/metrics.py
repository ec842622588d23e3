"""Prometheus text exposition (format 0.0.4) of the serving usage counters, written by hand: the
format is a few lines of text and not worth a dependency."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Collection

from lakeforge.serving.usage import BOUNDS_MS, UsageCounters

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LE = [repr(b / 1000) for b in BOUNDS_MS] + ["+Inf"]  # the histogram is in seconds


def label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series(name: str, **labels: str) -> str:
    """A sample name with labels, escaped: the form `render`'s `extra` keys take."""
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{label_value(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if isinstance(value, int):  # bool included: True -> 1
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _family(out: list[str], name: str, kind: str, help_text: str) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")


def render(counters: UsageCounters, extra: dict[str, float] | None = None, *,
           endpoints: Collection[str] | None = None) -> str:
    """The serving metrics of `endpoints` (all when None: the caller filters to what may be seen);
    `extra` adds gauges, keyed by a name or a `series()` string."""
    entities, limited = counters.series()
    if endpoints is not None:
        entities = [e for e in entities if e.endpoint in endpoints]
        limited = {name: n for name, n in limited.items() if name in endpoints}
    entities.sort(key=lambda e: (e.endpoint, e.served_entity))
    out: list[str] = []

    _family(out, "lakeforge_serving_requests_total", "counter",
            "Requests answered by a served entity, by status code.")
    for e in entities:
        for code, n in sorted(e.codes.items()):
            labels = {"endpoint": e.endpoint, "served_entity": e.served_entity, "code": str(code)}
            out.append(f"{series('lakeforge_serving_requests_total', **labels)} {n}")

    _family(out, "lakeforge_serving_errors_total", "counter",
            "Requests answered with a status code of 400 or more, by status class.")
    for e in entities:
        classes: dict[str, int] = defaultdict(int)
        for code, n in e.codes.items():
            if code >= 400:
                classes[f"{code // 100}xx"] += n
        for cls, n in sorted(classes.items()):
            labels = {"endpoint": e.endpoint, "served_entity": e.served_entity, "status_class": cls}
            out.append(f"{series('lakeforge_serving_errors_total', **labels)} {n}")

    name = "lakeforge_serving_request_duration_seconds"
    _family(out, name, "histogram", "Time to answer a request, in seconds.")
    for e in entities:
        labels = f'endpoint="{label_value(e.endpoint)}",served_entity="{label_value(e.served_entity)}"'
        cumulative = 0
        for le, n in zip(_LE, e.buckets, strict=True):
            cumulative += n
            out.append(f'{name}_bucket{{{labels},le="{le}"}} {cumulative}')
        out.append(f"{name}_sum{{{labels}}} {_number(e.latency_sum_ms / 1000)}")
        out.append(f"{name}_count{{{labels}}} {cumulative}")

    _family(out, "lakeforge_serving_rate_limited_total", "counter", "Requests denied by a rate limit.")
    for endpoint, n in sorted(limited.items()):
        out.append(f"{series('lakeforge_serving_rate_limited_total', endpoint=endpoint)} {n}")

    families: dict[str, list[str]] = defaultdict(list)  # a family's samples must be contiguous
    for key, value in sorted((extra or {}).items()):
        base = key.split("{", 1)[0]
        if not _NAME.fullmatch(base):
            raise ValueError(f"invalid metric name {base!r}")
        families[base].append(f"{key} {_number(value)}")
    for base, lines in families.items():
        out.append(f"# TYPE {base} gauge")
        out.extend(lines)
    return "\n".join(out) + "\n"
