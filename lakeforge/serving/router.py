"""Traffic split across served entities: smooth weighted round-robin (as nginx does upstreams).

Deterministic rather than random: over every 100 picks each entity gets exactly its percentage,
and picks are interleaved (A B A B ...) instead of bunched. Entities that are not ready are skipped
and their share goes to the others in proportion to their weights.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class TrafficRouter:
    def __init__(self, routes: list[tuple[str, int]]):
        self.routes = [(name, weight) for name, weight in routes if weight > 0]
        self._current = {name: 0 for name, _ in self.routes}
        self._lock = threading.Lock()

    def pick(self, is_ready: Callable[[str], bool]) -> str | None:
        """The served entity for the next request, or None when no entity with traffic is ready."""
        with self._lock:
            total, best = 0, None
            for name, weight in self.routes:
                if not is_ready(name):
                    continue
                self._current[name] += weight
                total += weight
                if best is None or self._current[name] > self._current[best]:
                    best = name
            if best is not None:
                self._current[best] -= total
            return best
