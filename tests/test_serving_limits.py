"""Serving rate limits (local and on the Redis running here), usage counters, the usage log into
Delta, and the Prometheus exposition. The limiter's clock is the one injected seam."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import socket
import threading
import uuid

import pytest
import redis
from deltalake import DeltaTable

from lakeforge.errors import InvalidParameter
from lakeforge.lake.delta import create_empty
from lakeforge.serving import metrics
from lakeforge.serving.limits import (
    REDIS_PREFIX,
    REDIS_RETRY_S,
    LimitRule,
    RateLimiter,
    limit_keys,
    parse_rules,
)
from lakeforge.serving.usage import USAGE_SCHEMA, UsageCounters, UsageLog

REDIS_URL = "redis://127.0.0.1:6379/0"


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


# ---- local limiter -------------------------------------------------------------------------------
def test_burst_up_to_calls_then_denied_with_retry_after_then_recovers():
    clock = FakeClock(1000.5)
    limiter = RateLimiter(clock=clock)
    assert [limiter.check("ep/a", 5) for _ in range(5)] == [None] * 5
    wait = limiter.check("ep/a", 5)
    assert wait == pytest.approx(60.5)  # the burst's one-second bucket leaves the window at 1061
    assert math.ceil(wait) >= 1
    clock.t = 1060.9
    assert limiter.check("ep/a", 5) == pytest.approx(0.1)
    clock.t = 1061.0
    assert [limiter.check("ep/a", 5) for _ in range(6)] == [None] * 5 + [pytest.approx(61.0)]


def test_denied_calls_do_not_consume_quota():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    for _ in range(3):
        assert limiter.check("k", 3) is None
    for i in range(120):  # hammering while limited
        clock.t = 1000 + i * 0.5
        assert limiter.check("k", 3) is not None
    clock.t = 1061
    assert [limiter.check("k", 3) for _ in range(4)][:3] == [None] * 3


def test_window_slides():
    clock = FakeClock(0.0)
    limiter = RateLimiter(clock=clock)
    for _ in range(3):
        assert limiter.check("k", 5) is None
    clock.t = 30.0
    for _ in range(2):
        assert limiter.check("k", 5) is None
    assert limiter.check("k", 5) == pytest.approx(61.0 - 30.0)
    clock.t = 61.0  # the three from t=0 are out, the two from t=30 still in
    assert [limiter.check("k", 5) for _ in range(3)] == [None] * 3
    assert limiter.check("k", 5) == pytest.approx(91.0 - 61.0)


def test_never_more_than_calls_in_any_window_and_retry_after_is_exact():
    rng = random.Random(7)
    clock = FakeClock(0.0)
    limiter = RateLimiter(clock=clock)
    calls, allowed, promised = 20, [], None
    while clock.t < 900:
        clock.t += rng.expovariate(1.0)  # ~3x the allowed rate
        if rng.random() < 0.2:
            clock.t = float(round(clock.t))  # land on bucket edges too
        wait = limiter.check("k", calls)
        if wait is None:
            assert promised is None or clock.t >= promised - 1e-9  # nothing let through before the promise
            promised = None
            allowed.append(clock.t)
        else:
            assert promised is None or clock.t < promised + 1e-9  # and no denial after it
            if promised is None:
                promised = clock.t + wait
            else:
                assert promised == pytest.approx(clock.t + wait)
    for i, start in enumerate(allowed):
        assert sum(1 for t in allowed[i:] if t < start + 60) <= calls
    assert len(allowed) >= calls * (900 / 61) * 0.95  # and it does not starve: ~one quota per 61 s


def test_check_all_counts_a_call_only_if_every_limit_allows_it():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    alice, bob = [("ep/endpoint", 5), ("ep/principal/alice", 2)], [("ep/endpoint", 5), ("ep/principal/bob", 2)]
    assert [limiter.check_all(alice) for _ in range(2)] == [None, None]
    for _ in range(10):  # alice's denials use none of the endpoint's quota
        assert limiter.check_all(alice) == pytest.approx(61.0)
    assert [limiter.check_all(bob) for _ in range(3)] == [None, None, pytest.approx(61.0)]
    clock.t += 30
    assert limiter.check("ep/principal/carol", 2) is None
    assert limiter.check_all([("ep/endpoint", 4), ("ep/principal/carol", 2)]) == pytest.approx(31.0)
    assert limiter.check_all([]) is None


def test_reset_drops_only_the_prefix():
    limiter = RateLimiter(clock=FakeClock())
    for key in ("a/x", "a/y", "ab/x"):
        assert limiter.check(key, 1) is None
        assert limiter.check(key, 1) is not None
    limiter.reset("a/")
    assert limiter.check("a/x", 1) is None
    assert limiter.check("a/y", 1) is None
    assert limiter.check("ab/x", 1) is not None


def test_local_limiter_is_thread_safe():
    limiter = RateLimiter()
    allowed = []

    def worker():
        allowed.append(sum(limiter.check("shared", 500) is None for _ in range(2000)))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 500


# ---- Redis limiter -------------------------------------------------------------------------------
@pytest.fixture
def prefix():
    """A key prefix of this test's own; its Redis keys are gone afterwards."""
    p = f"test-{uuid.uuid4().hex[:10]}/"
    yield p
    RateLimiter(REDIS_URL).reset(p)
    assert not list(redis.Redis.from_url(REDIS_URL).scan_iter(match=f"{REDIS_PREFIX}{p}*"))


def test_two_limiters_on_one_redis_share_the_count(prefix):
    a, b = RateLimiter(REDIS_URL), RateLimiter(REDIS_URL)
    assert a.shared
    key = prefix + "endpoint"
    assert [a.check(key, 5) for _ in range(3)] == [None] * 3
    assert [b.check(key, 5) for _ in range(2)] == [None] * 2
    for limiter in (a, b, a):
        wait = limiter.check(key, 5)
        assert wait is not None and 59 < wait <= 61
    r = redis.Redis.from_url(REDIS_URL)
    assert sum(int(n) for n in r.hgetall(REDIS_PREFIX + key).values()) == 5  # denials not counted
    assert 0 < r.pttl(REDIS_PREFIX + key) <= 61_000  # Redis forgets idle counters
    assert a.check(prefix + "other", 5) is None


def test_check_all_on_redis_is_one_atomic_step(prefix):
    limiter = RateLimiter(REDIS_URL)
    endpoint, alice = (prefix + "endpoint", 3), (prefix + "principal/alice", 1)
    assert limiter.check_all([endpoint, alice]) is None
    assert 59 < limiter.check_all([endpoint, alice]) <= 61
    assert asyncio.run(limiter.check_all_async([endpoint, alice])) is not None
    assert limiter.check_all([endpoint, (prefix + "principal/bob", 5)]) is None
    assert limiter.check(*endpoint) is None  # 3: alice's denials took none of it
    assert limiter.check(*endpoint) is not None


def test_async_check_shares_redis_counts(prefix):
    sync = RateLimiter(REDIS_URL)
    key = prefix + "endpoint"
    assert [sync.check(key, 10) for _ in range(4)] == [None] * 4

    limiter = RateLimiter(REDIS_URL)

    async def burst():
        return await asyncio.gather(*(limiter.check_async(key, 10) for _ in range(20)))

    results = asyncio.run(burst())
    assert sum(r is None for r in results) == 6
    assert all(59 < r <= 61 for r in results if r is not None)
    assert not any(r is None for r in asyncio.run(burst()))  # a second event loop gets its own client

def test_redis_limiter_is_thread_safe(prefix):
    limiter = RateLimiter(REDIS_URL)
    allowed = []

    def worker():
        allowed.append(sum(limiter.check(prefix + "k", 50) is None for _ in range(40)))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 50


def test_unreachable_redis_falls_back_to_local_with_one_warning(caplog):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clock = FakeClock()
    limiter = RateLimiter(f"redis://:secret@127.0.0.1:{port}/0", clock=clock)
    caplog.set_level(logging.WARNING, logger="lakeforge.serving.limits")
    assert [limiter.check("k", 3) for _ in range(10)] == [None] * 3 + [pytest.approx(61.0)] * 7
    clock.t += REDIS_RETRY_S + 1  # it tries Redis again, fails again: still no second warning
    assert limiter.check("k", 3) is not None
    clock.t += REDIS_RETRY_S + 1
    assert asyncio.run(limiter.check_async("j", 1)) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "secret" not in warnings[0].getMessage()


# ---- endpoint configuration ----------------------------------------------------------------------
@pytest.mark.parametrize("rule, field", [
    ({"calls": 0, "renewal_period": "minute"}, "calls"),
    ({"calls": "5", "renewal_period": "minute"}, "calls"),
    ({"calls": True, "renewal_period": "minute"}, "calls"),
    ({"renewal_period": "minute"}, "calls"),
    ({"calls": 5, "key": "team", "renewal_period": "minute"}, "key"),
    ({"calls": 5, "renewal_period": "hour"}, "renewal_period"),
    ({"calls": 5}, "renewal_period"),
    ({"calls": 5, "key": "user_group", "renewal_period": "minute"}, "principal"),
    ({"calls": 5, "key": "service_principal", "renewal_period": "minute"}, "principal"),
    ({"calls": 5, "key": "user", "principal": "", "renewal_period": "minute"}, "principal"),
    ({"calls": 5, "key": "endpoint", "principal": "x", "renewal_period": "minute"}, "principal"),
    ({"tokens": 100, "calls": 5, "renewal_period": "minute"}, "tokens"),
])
def test_parse_rules_names_the_bad_field(rule, field):
    with pytest.raises(InvalidParameter, match=rf"rate_limits\[1\]\.{field}"):
        parse_rules([{"calls": 1, "key": "user", "renewal_period": "minute"}, rule])


def test_parse_rules():
    assert parse_rules(None) == []
    assert parse_rules([{"calls": 100, "renewal_period": "minute"},
                        {"calls": 5, "key": "user_group", "principal": "ml", "renewal_period": "minute"}]) == [
        LimitRule(100, "endpoint", None, "minute"), LimitRule(5, "user_group", "ml", "minute")]
    with pytest.raises(InvalidParameter, match="duplicate"):
        parse_rules([{"calls": 1, "key": "user", "renewal_period": "minute"}] * 2)


def test_limit_keys_follow_databricks_precedence():
    rules = parse_rules([
        {"calls": 100, "key": "endpoint", "renewal_period": "minute"},
        {"calls": 10, "key": "user", "renewal_period": "minute"},
        {"calls": 50, "key": "user", "principal": "alice", "renewal_period": "minute"},
        {"calls": 20, "key": "user_group", "principal": "ml", "renewal_period": "minute"},
        {"calls": 30, "key": "user_group", "principal": "big", "renewal_period": "minute"},
        {"calls": 5, "key": "service_principal", "principal": "sp-1", "renewal_period": "minute"},
    ])

    def keys(requester, groups=(), sp=False, rules=rules):
        return limit_keys("ep", rules, requester, frozenset(groups), sp)

    endpoint = ("ep/endpoint", 100)
    assert keys("bob") == [endpoint, ("ep/principal/bob", 10)]  # the per-user default, one counter each
    assert keys("carol") == [endpoint, ("ep/principal/carol", 10)]
    assert keys("alice", ["ml"]) == [endpoint, ("ep/principal/alice", 50)]  # own limit beats groups
    assert keys("carol", ["ml"]) == [endpoint, ("ep/group/ml", 20)]  # group beats the default, shared
    assert keys("dave", ["ml", "big", "other"]) == [endpoint, ("ep/group/big", 30)]
    assert keys("sp-1", sp=True) == [endpoint, ("ep/principal/sp-1", 5)]
    assert keys("sp-2", sp=True) == [endpoint, ("ep/principal/sp-2", 10)]
    assert keys("alice", sp=True) == [endpoint, ("ep/principal/alice", 10)]  # a user rule names a user
    assert keys("bob", rules=rules[:1]) == [endpoint]
    assert keys("bob", rules=rules[2:3]) == []
    assert keys("bob", rules=[]) == []


# ---- usage ---------------------------------------------------------------------------------------
def test_usage_snapshot_against_hand_computation():
    counters = UsageCounters()
    calls = [  # served entity, requester, status, latency ms, in, out
        ("a", "alice", 200, 0.5, 10, 100), ("a", "alice", 200, 0.5, 10, 100), ("a", "bob", 200, 3, 10, 100),
        ("a", "bob", 200, 3, 10, 100), ("a", "bob", 500, 3, 10, 0), ("a", "alice", 200, 5, 10, 100),
        ("a", "alice", 429, 12, 10, 0), ("a", "alice", 200, 120, 10, 100), ("a", "bob", 503, 700, 10, 0),
        ("a", "alice", 200, 2000, 10, 100), ("b", "bob", 200, 7, 1, 2),
    ]
    for entity, requester, status, latency, in_b, out_b in calls:
        counters.record("ep", entity, requester, status, latency, in_b, out_b)
    counters.record_rate_limited("ep", "bob")
    counters.record_rate_limited("ep", "carol")
    counters.record("other", "a", "alice", 200, 1)

    snap = counters.snapshot("ep")
    assert snap["endpoint_name"] == "ep" and snap["since"] > 1.7e12
    a, b = snap["served_entities"]
    # Buckets (ms): 0.5 x2 in (0.4, 0.63], 3 x3 in (2.5, 4], 5 in (4, 6.3], 12 in (10, 16],
    # 120 in (100, 160], 700 in (630, 1000], 2000 in (1600, 2500]. Rank q * 10, linear inside.
    assert a == {"name": "a", "requests": 10, "errors": 3, "input_bytes": 100, "output_bytes": 700,
                 "latency_ms": {"p50": pytest.approx(2.5 + 1.5 * 3 / 3),  # rank 5: 3rd of 3 in (2.5, 4]
                                "p90": pytest.approx(1000.0),  # rank 9: all of (630, 1000]
                                "p99": 2000,  # rank 9.9: 0.9 into (1600, 2500] is 2410, past the largest seen
                                "mean": pytest.approx(2847 / 10)}}
    assert b["latency_ms"] == {"p50": 7.0, "p90": 7.0, "p99": 7.0, "mean": 7.0}  # clamped to what was seen
    assert snap["requesters"] == [
        {"requester": "alice", "requests": 6, "errors": 1, "rate_limited": 0},
        {"requester": "bob", "requests": 5, "errors": 2, "rate_limited": 1},
        {"requester": "carol", "requests": 0, "errors": 0, "rate_limited": 1},
    ]
    totals = snap["totals"]
    assert (totals["requests"], totals["errors"], totals["rate_limited"]) == (11, 3, 2)
    assert (totals["input_bytes"], totals["output_bytes"]) == (101, 702)
    assert totals["latency_ms"]["mean"] == pytest.approx(2854 / 11)
    assert totals["latency_ms"]["p50"] == pytest.approx(4 + 2.3 * 0.5)  # rank 5.5: half of (4, 6.3]

    counters.forget("ep")
    assert counters.snapshot("ep")["served_entities"] == []
    assert counters.snapshot("other")["totals"]["requests"] == 1


def test_usage_counters_lose_nothing_under_threads():
    counters = UsageCounters()

    def worker(n):
        for i in range(5000):
            counters.record("ep", f"e{i % 3}", f"u{n}", 200 if i % 10 else 500, 1.0)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals = counters.snapshot("ep")["totals"]
    assert (totals["requests"], totals["errors"]) == (20000, 2000)


def _usage_rows(table):
    return DeltaTable(str(table)).to_pyarrow_table().sort_by("request_id")


def test_usage_log_into_delta_exactly_once_and_across_a_crash(tmp_path):
    table, wal = tmp_path / "endpoint_usage", tmp_path / "wal"
    create_empty(table, USAGE_SCHEMA)

    def record(i):
        return {"endpoint_name": "ep", "served_entity_name": "a", "requester": "alice", "request_id": f"r{i:03d}",
                "status_code": 200, "execution_time_ms": 1.5, "input_bytes": 10, "output_bytes": 20}

    usage = UsageLog(wal, table, app_id="usage-test", flush_seconds=3600)
    usage.start()
    for i in range(100):
        usage.append(record(i))
    assert usage.flush() == 100
    assert usage.flush() == 0
    rows = _usage_rows(table)
    assert rows.num_rows == 100 and rows.schema.field("event_time").type.tz == "UTC"
    first = rows.slice(0, 1).to_pylist()[0]
    assert first["request_id"] == "r000" and first["status_code"] == 200 and first["output_bytes"] == 20
    assert first["event_date"] == first["event_time"].date()

    # A segment committed but not yet deleted when the process died is not appended twice.
    for i in range(100, 105):
        usage.append(record(i))
    (seq,) = usage.wal.seal()
    segment = usage.wal.dir / f"{seq:012d}.wal"
    data = segment.read_bytes()
    assert usage.flush() == 5
    segment.write_bytes(data)
    usage.close()

    # A crash: records in the log, never flushed.
    crashed = UsageLog(wal, table, app_id="usage-test")
    for i in range(105, 115):
        crashed.append(record(i))
    crashed.wal.close()

    reopened = UsageLog(wal, table, app_id="usage-test")
    assert reopened.flush() == 10
    reopened.close()
    ids = _usage_rows(table).column("request_id").to_pylist()
    assert ids == [f"r{i:03d}" for i in range(115)]


# ---- metrics -------------------------------------------------------------------------------------
ODD = 'we"ird\\name\nx'


def _exposition():
    counters = UsageCounters()
    for status, latency in ((200, 0.3), (200, 2), (500, 30), (404, 70000)):
        counters.record("ep", ODD, "alice", status, latency)
    counters.record("ep2", "b", "bob", 200, 1)
    counters.record_rate_limited("ep", "bob")
    extra = {metrics.series("lakeforge_serving_entity_ready", endpoint="ep", served_entity=ODD): 1,
             metrics.series("lakeforge_serving_entity_ready", endpoint="ep2", served_entity="b"): 0,
             "lakeforge_serving_up": 1.0}
    return metrics.render(counters, extra)


def test_metrics_text_is_well_formed():
    text = _exposition()
    sample = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? \S+')
    for line in text.splitlines():
        assert line.startswith("# ") or sample.fullmatch(line), line
    assert 'served_entity="we\\"ird\\\\name\\nx"' in text
    assert 'lakeforge_serving_request_duration_seconds_count{endpoint="ep2",served_entity="b"} 1' in text
    assert 'lakeforge_serving_rate_limited_total{endpoint="ep"} 1' in text
    with pytest.raises(ValueError):
        metrics.render(UsageCounters(), {"bad name": 1})


def test_metrics_of_some_endpoints_only():
    counters = UsageCounters()
    counters.record("ep", "a", "alice", 200, 1)
    counters.record("secret-ep", "a", "bob", 200, 1)
    counters.record_rate_limited("secret-ep", "bob")
    text = metrics.render(counters, endpoints={"ep"})
    assert 'endpoint="ep"' in text and "secret-ep" not in text


def test_metrics_parse_with_prometheus_client():
    parser = pytest.importorskip("prometheus_client.parser")
    families = {f.name: f for f in parser.text_string_to_metric_families(_exposition())}
    requests = {(s.labels["endpoint"], s.labels["served_entity"], s.labels["code"]): s.value
                for s in families["lakeforge_serving_requests"].samples}
    assert requests == {("ep", ODD, "200"): 2, ("ep", ODD, "404"): 1, ("ep", ODD, "500"): 1, ("ep2", "b", "200"): 1}
    errors = {s.labels["status_class"]: s.value for s in families["lakeforge_serving_errors"].samples}
    assert errors == {"4xx": 1, "5xx": 1}
    hist = [s for s in families["lakeforge_serving_request_duration_seconds"].samples
            if s.labels["endpoint"] == "ep"]
    buckets = {s.labels["le"]: s.value for s in hist if s.name.endswith("_bucket")}
    assert buckets["0.0004"] == 1 and buckets["0.0025"] == 2 and buckets["60.0"] == 3 and buckets["+Inf"] == 4
    assert [s.value for s in hist if s.name.endswith("_sum")] == [pytest.approx(70.0323)]
    ready = {s.labels["served_entity"]: s.value for s in families["lakeforge_serving_entity_ready"].samples}
    assert ready == {ODD: 1, "b": 0}
    assert families["lakeforge_serving_up"].samples[0].value == 1.0
