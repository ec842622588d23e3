"""Calls-per-period rate limits for serving endpoints (`ai_gateway.rate_limits`).

Algorithm: a sliding window of `SLOTS` sub-windows (60 one-second buckets for a minute), counted
conservatively: a call is allowed when the calls in every bucket that overlaps the last period, the
oldest partly-overlapping one included, number fewer than `calls`. Hence:

- never more than `calls` in any window of `period_s` (no over-admission, unlike the two-window
  weighted counter or GCRA, which both admit up to ~2x `calls` in a window in the worst case);
- a burst of `calls` from idle is allowed;
- a call's quota comes back between `period_s` and `period_s * (1 + 1/SLOTS)` after it (at most
  one second late for a minute): the only tolerance, on the side of denying;
- denied calls are not counted; `check_all` counts a call against several limits (endpoint, user)
  only if every one allows it.

Local counters live in this process. With a Redis URL the same algorithm runs in a Lua script (one
round trip, Redis's own clock, keys expire after a period of idleness) so every replica shares the
counts; if Redis is unreachable the limiter counts locally and retries Redis every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from lakeforge.errors import InvalidParameter

log = logging.getLogger(__name__)

SLOTS = 60  # sub-windows per period
_RING = SLOTS + 1  # buckets that can overlap a period: the current one and SLOTS before it
REDIS_PREFIX = "lakeforge:ratelimit:"
REDIS_RETRY_S = 5.0  # while Redis is down, only one call per this interval tries it again
_SWEEP_S = 60.0  # how often idle local counters are dropped

# KEYS: one hash (bucket -> count) per limit. ARGV: bucket width in microseconds, then calls per key.
# Counts the call against every key only if all allow it. Returns 0 when allowed, else
# microseconds until all would allow a call.
_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local width = tonumber(ARGV[1])
local slots = SLOTS
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cur = math.floor(now / width)
local wait = 0
for k = 1, #KEYS do
  local calls = tonumber(ARGV[k + 1])
  local fields = redis.call('HGETALL', KEYS[k])
  local total, live = 0, {}
  for i = 1, #fields, 2 do
    local b, n = tonumber(fields[i]), tonumber(fields[i + 1])
    if b < cur - slots then
      redis.call('HDEL', KEYS[k], fields[i])
    else
      total = total + n
      live[#live + 1] = {b, n}
    end
  end
  if total >= calls then
    table.sort(live, function(x, y) return x[1] < y[1] end)
    for _, e in ipairs(live) do
      total = total - e[2]
      if total < calls then
        wait = math.max(wait, math.ceil((e[1] + slots + 1) * width - now))
        break
      end
    end
  end
end
if wait > 0 then return wait end
local field = string.format('%d', cur)
local ttl = math.ceil(width * (slots + 1) / 1000)
for k = 1, #KEYS do
  redis.call('HINCRBY', KEYS[k], field, 1)
  redis.call('PEXPIRE', KEYS[k], ttl)
end
return 0
""".replace("SLOTS", str(SLOTS))


class _Window:
    """One key's buckets: a ring of `_RING` counts and their sum; `head` is the newest bucket.
    `free_at` caches, for a `calls` limit, when a call is allowed again: only a counted call changes it."""

    __slots__ = ("counts", "free_at", "head", "total", "width")

    def __init__(self, width: float, bucket: int):
        self.width = width
        self.counts = [0] * _RING
        self.total = 0
        self.head = bucket
        self.free_at: tuple[int, float] | None = None

    def advance(self, bucket: int) -> None:
        if bucket - self.head >= _RING:
            self.counts = [0] * _RING
            self.total = 0
        else:
            counts = self.counts
            for b in range(self.head + 1, bucket + 1):  # the slots reused drop out of the window
                i = b % _RING
                self.total -= counts[i]
                counts[i] = 0
        self.head = bucket

    def retry_after(self, calls: int, now: float) -> float:
        if self.free_at is None or self.free_at[0] != calls:  # the walk costs ~5 us: once per flood
            left = self.total
            for b in range(self.head - SLOTS, self.head + 1):
                left -= self.counts[b % _RING]
                if left < calls:
                    self.free_at = (calls, (b + SLOTS + 1) * self.width)
                    break
        return self.free_at[1] - now


class RateLimiter:
    """Calls-per-period limits. Local (in-process) by default; with a Redis URL the counters are shared
    between server processes/replicas. `clock` (seconds, monotonic) drives the local counters only:
    the Redis script uses Redis's clock so that replicas agree."""

    def __init__(self, redis_url: str | None = None, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._next_sweep = clock() + _SWEEP_S
        self.redis_url = redis_url
        self._redis = self._script = None
        self._aredis = self._ascript = self._aloop = None
        self._down_until: float | None = None  # set while Redis is unreachable
        self._redis_errors: tuple[type[BaseException], ...] = ()
        if redis_url:
            import redis

            self._redis_errors = (redis.RedisError, OSError)
            self._redis = redis.Redis.from_url(redis_url, **_client_options())
            self._script = self._redis.register_script(_LUA)

    @property
    def shared(self) -> bool:
        """Whether counts are shared through Redis (the server then prefers `check_async`)."""
        return self._redis is not None

    # ---- checking ------------------------------------------------------------------------------
    def check(self, key: str, calls: int, period_s: int = 60) -> float | None:
        """Count one call against `key`; None if allowed, else seconds until a call is allowed again
        (for the Retry-After header, >= 1 when rounded up)."""
        return self.check_all(((key, calls),), period_s)

    async def check_async(self, key: str, calls: int, period_s: int = 60) -> float | None:
        """`check` that does not block the event loop on Redis."""
        return await self.check_all_async(((key, calls),), period_s)

    def check_all(self, limits: Sequence[tuple[str, int]], period_s: int = 60) -> float | None:
        """Count one call against every (key, calls) of `limits` (as `limit_keys` gives them) only if
        all allow it, so that a call one limit denies uses no quota of the others; one Redis round
        trip. None if allowed, else seconds until all would allow a call."""
        if not limits:
            return None
        if self._script is None or not self._redis_due():
            return self._check_local(limits, period_s)
        try:
            wait_us = self._script(keys=[REDIS_PREFIX + k for k, _ in limits], args=_args(limits, period_s))
        except self._redis_errors as e:  # serving never fails because Redis does
            self._redis_failed(e)
            return self._check_local(limits, period_s)
        self._redis_ok()
        return wait_us / 1e6 if wait_us else None

    async def check_all_async(self, limits: Sequence[tuple[str, int]], period_s: int = 60) -> float | None:
        """`check_all` that does not block the event loop on Redis."""
        if not limits:
            return None
        if self._script is None or not self._redis_due():
            return self._check_local(limits, period_s)
        try:
            script = self._async_script()
            wait_us = await script(keys=[REDIS_PREFIX + k for k, _ in limits], args=_args(limits, period_s))
        except self._redis_errors as e:
            self._redis_failed(e)
            return self._check_local(limits, period_s)
        self._redis_ok()
        return wait_us / 1e6 if wait_us else None

    def _check_local(self, limits: Sequence[tuple[str, int]], period_s: int) -> float | None:
        now = self._clock()
        width = period_s / SLOTS
        bucket = int(now // width)
        wait = None
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            windows = []
            for key, calls in limits:
                if calls < 1:
                    raise ValueError("calls must be >= 1")
                w = self._windows.get(key)
                if w is None or w.width != width:
                    w = self._windows[key] = _Window(width, bucket)
                elif bucket > w.head:
                    w.advance(bucket)
                if w.total >= calls:
                    free = w.retry_after(calls, now)
                    wait = free if wait is None or free > wait else wait
                windows.append(w)
            if wait is not None:
                return wait
            for w in windows:
                w.counts[w.head % _RING] += 1
                w.total += 1
                w.free_at = None
            return None

    def _sweep(self, now: float) -> None:
        """Drop counters whose every bucket has left the window (keeps memory bounded by active keys)."""
        self._windows = {k: w for k, w in self._windows.items() if int(now // w.width) - w.head <= SLOTS}
        self._next_sweep = now + _SWEEP_S

    # ---- Redis health --------------------------------------------------------------------------
    def _redis_due(self) -> bool:
        return self._down_until is None or self._clock() >= self._down_until

    def _redis_failed(self, error: Exception) -> None:
        if self._down_until is None:  # one warning per outage, not one per request
            log.warning("rate limit Redis at %s unreachable (%s); counting locally until it is back",
                        _redacted(self.redis_url), error)
        else:
            log.debug("rate limit Redis still unreachable: %s", error)
        self._down_until = self._clock() + REDIS_RETRY_S

    def _redis_ok(self) -> None:
        if self._down_until is not None:
            self._down_until = None
            log.info("rate limit Redis reachable again; counters are shared again")

    def _async_script(self):
        """A client per event loop: redis.asyncio connections belong to the loop that opened them."""
        loop = asyncio.get_running_loop()
        if self._aloop is not loop:
            import redis.asyncio

            self._aredis = redis.asyncio.Redis.from_url(self.redis_url, **_client_options())
            self._ascript = self._aredis.register_script(_LUA)
            self._aloop = loop
        return self._ascript

    # ---- maintenance ---------------------------------------------------------------------------
    def reset(self, prefix: str) -> None:
        """Drop counters whose key starts with `prefix` (endpoint deleted, limits changed)."""
        with self._lock:
            self._windows = {k: w for k, w in self._windows.items() if not k.startswith(prefix)}
        if self._redis is None:
            return
        try:
            batch = []
            for name in self._redis.scan_iter(match=_glob_escape(REDIS_PREFIX + prefix) + "*", count=500):
                batch.append(name)
                if len(batch) >= 500:
                    self._redis.unlink(*batch)
                    batch.clear()
            if batch:
                self._redis.unlink(*batch)
        except self._redis_errors as e:  # the keys expire on their own after a period
            log.warning("could not reset rate limit counters %r in Redis: %s", prefix, e)

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


def _args(limits: Sequence[tuple[str, int]], period_s: int) -> list[int]:
    return [period_s * 1_000_000 // SLOTS, *(calls for _, calls in limits)]


def _client_options() -> dict:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # Short timeouts and one retry: a limiter that waits seconds for Redis is worse than none.
    return {"socket_connect_timeout": 0.5, "socket_timeout": 0.5, "retry": Retry(NoBackoff(), 1)}


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _redacted(url: str | None) -> str:
    """The URL without a password, for logs."""
    if not url or "@" not in url:
        return str(url)
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


# ---- endpoint configuration -> checks -----------------------------------------------------------
KEYS = ("user", "endpoint", "user_group", "service_principal")
MAX_RULES = 20  # Databricks' limits per endpoint
MAX_GROUP_RULES = 5


@dataclass(frozen=True)
class LimitRule:
    calls: int
    key: str
    principal: str | None
    renewal_period: str  # "minute"

    @property
    def period_s(self) -> int:
        return 60


def parse_rules(rate_limits: list[dict] | None) -> list[LimitRule]:
    """Validate `ai_gateway.rate_limits`. `key` defaults to "endpoint" as in Databricks; token
    limits (`tokens`) are not supported."""
    rules: list[LimitRule] = []
    if rate_limits is None:
        return rules
    if not isinstance(rate_limits, list):
        raise InvalidParameter("rate_limits must be a list")
    if len(rate_limits) > MAX_RULES:
        raise InvalidParameter(f"rate_limits: at most {MAX_RULES} rate limits per endpoint")
    seen: set[tuple[str, str | None]] = set()
    for i, raw in enumerate(rate_limits):
        where = f"rate_limits[{i}]"
        if not isinstance(raw, dict):
            raise InvalidParameter(f"{where} must be an object")
        if raw.get("tokens") is not None:
            raise InvalidParameter(f"{where}.tokens: token-based rate limits are not supported")
        calls = raw.get("calls")
        if type(calls) is not int or calls < 1:
            raise InvalidParameter(f"{where}.calls must be a positive integer, got {calls!r}")
        key = raw.get("key") or "endpoint"
        if key not in KEYS:
            raise InvalidParameter(f"{where}.key must be one of {', '.join(KEYS)}, got {key!r}")
        period = raw.get("renewal_period")
        if period != "minute":
            raise InvalidParameter(f"{where}.renewal_period must be 'minute', got {period!r}")
        principal = raw.get("principal")
        if principal is not None and (not isinstance(principal, str) or not principal):
            raise InvalidParameter(f"{where}.principal must be a non-empty string")
        if key in ("user_group", "service_principal") and principal is None:
            raise InvalidParameter(f"{where}.principal is required when key is {key}")
        if key == "endpoint" and principal is not None:
            raise InvalidParameter(f"{where}.principal is not allowed when key is endpoint")
        if (key, principal) in seen:
            raise InvalidParameter(f"{where}: duplicate rate limit for key {key}"
                                   + (f" and principal {principal}" if principal else ""))
        seen.add((key, principal))
        rules.append(LimitRule(calls, key, principal, period))
    if sum(r.key == "user_group" for r in rules) > MAX_GROUP_RULES:
        raise InvalidParameter(f"rate_limits: at most {MAX_GROUP_RULES} user_group rate limits per endpoint")
    return rules


def endpoint_prefix(endpoint: str) -> str:
    """What every counter key of `endpoint` starts with, for `RateLimiter.reset`."""
    return f"{endpoint}/"


def limit_keys(endpoint: str, rules: Iterable[LimitRule], requester: str, requester_groups: frozenset[str],
               is_service_principal: bool) -> list[tuple[str, int]]:
    """The (counter key, calls) pairs that apply to this call; every one must allow it.

    As Databricks documents: the endpoint limit always applies; a limit naming this user or service
    principal beats its groups' limits, which beat the per-user default. A group limit is shared by the
    group's members. Of several matching groups the most generous one applies (Databricks blocks a user
    only once all of their groups are exhausted; counting against one group is the cheap approximation).
    """
    keys: list[tuple[str, int]] = []
    own: LimitRule | None = None
    default: LimitRule | None = None
    group: LimitRule | None = None
    for r in rules:
        if r.key == "endpoint":
            keys.append((f"{endpoint}/endpoint", r.calls))
        elif r.key == "user":
            if r.principal is None:
                default = r
            elif r.principal == requester and not is_service_principal:
                own = r
        elif r.key == "service_principal":
            if is_service_principal and r.principal == requester:
                own = r
        elif r.principal in requester_groups and (group is None or r.calls > group.calls):
            group = r
    rule = own or group or default
    if rule is not None:
        if rule.key == "user_group":
            keys.append((f"{endpoint}/group/{rule.principal}", rule.calls))
        else:
            keys.append((f"{endpoint}/principal/{requester}", rule.calls))
    return keys
