"""Delivery of alert webhooks in the background: a JSON POST per breach, retried with back-off.

A breach is recorded before its webhook is queued (alerts.py), so a breach is posted at most once
per server process that found it, and only the process that recorded it posts it. Each delivery
is tried `1 + len(BACKOFF)` times; the outcome (DELIVERED or FAILED, and the number of attempts) is
written to the breach row, and failures are logged. Nothing here ever fails a refresh.

The stored URL may hold secret references (`{{secrets/scope/key}}`): they are resolved at each
attempt, on behalf of the alert rule's creator, and the resolved URL is never logged or stored.
A crash between recording a breach and posting it leaves the breach listed with webhook_status
PENDING and no post.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import update

from lakeforge.errors import LakeforgeError
from lakeforge.monitoring.store import BreachRow

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "PENDING", "DELIVERED", "FAILED"
BACKOFF = (1.0, 4.0, 15.0)  # seconds before the 2nd, 3rd and 4th attempt
TIMEOUT = 10.0


@dataclass
class Delivery:
    breach_id: int
    url: str  # as stored: may hold secret references
    owner_id: str  # resolves the references
    payload: dict
    attempts: int = field(default=0)


class WebhookSender:
    def __init__(self, db, secret_refs, identity):
        self.db = db
        self.secret_refs = secret_refs
        self.identity = identity
        self._due: list[tuple[float, int, Delivery]] = []
        self._order = itertools.count()
        self._cv = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._client = None  # an httpx.Client, made on the first delivery

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lf-monitor-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._client is not None:
            self._client.close()

    def submit(self, delivery: Delivery) -> None:
        self._push(time.monotonic(), delivery)

    def _push(self, when: float, delivery: Delivery) -> None:
        with self._cv:
            heapq.heappush(self._due, (when, next(self._order), delivery))
            self._cv.notify()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._stopping and (not self._due or self._due[0][0] > time.monotonic()):
                    self._cv.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._stopping:
                    return
                _, _, delivery = heapq.heappop(self._due)
            try:
                self._attempt(delivery)
            except Exception:
                log.exception("alert webhook for breach %s: delivery failed", delivery.breach_id)

    def _attempt(self, d: Delivery) -> None:
        import httpx  # on the first delivery, not at server start

        if self._client is None:
            self._client = httpx.Client(timeout=TIMEOUT, follow_redirects=False)
        d.attempts += 1
        try:
            url = self.secret_refs.resolve(d.url, self.identity.principal_by_id(d.owner_id))
            response = self._client.post(url, json=d.payload)
            error = None if response.is_success else f"HTTP {response.status_code}"
        # unreachable host, bad URL, secret no longer readable: retried, then logged
        except (httpx.HTTPError, httpx.InvalidURL, LakeforgeError, ValueError) as e:
            error = getattr(e, "message", None) or type(e).__name__
        if error is None:
            self._record(d, DELIVERED)
            return
        if d.attempts <= len(BACKOFF):
            self._record(d, PENDING)
            self._push(time.monotonic() + BACKOFF[d.attempts - 1], d)
            return
        log.warning("alert webhook %s for breach %s failed after %d attempts: %s", d.url, d.breach_id, d.attempts,
                    error)
        self._record(d, FAILED)

    def _record(self, d: Delivery, status: str) -> None:
        try:
            with self.db.write() as s:
                s.execute(update(BreachRow).where(BreachRow.id == d.breach_id)
                          .values(webhook_status=status, webhook_attempts=d.attempts))
        except Exception:
            log.warning("could not record the webhook status of breach %s", d.breach_id, exc_info=True)


__all__ = ["DELIVERED", "FAILED", "PENDING", "Delivery", "WebhookSender"]
