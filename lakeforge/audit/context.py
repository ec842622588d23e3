"""What the current request is about, filled in by the code that serves it and read by the audit
middleware when the response starts. A mutable holder, so values set inside worker threads (which
run with a copy of the context) are seen by the middleware."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass
class RequestAudit:
    request_id: str
    service: str | None = None
    action: str | None = None
    securable: str | None = None


current: contextvars.ContextVar[RequestAudit | None] = contextvars.ContextVar("lakeforge_audit", default=None)


def note_securable(full_name: str, *, override: bool = False) -> None:
    """Record the securable this request is about (the first one noted wins unless override)."""
    entry = current.get()
    if entry is not None and (override or entry.securable is None):
        entry.securable = full_name
