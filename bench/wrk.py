"""Run wrk (a C load generator, light on the CPU it shares with the server) and parse its output."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

LUA = """
wrk.method = "{method}"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["Content-Type"] = "application/json"
{body}
done = function(summary, latency, requests)
  io.write(string.format("LF p50=%f p99=%f\\n", latency:percentile(50), latency:percentile(99)))
  io.write(string.format("LF errors=%d non2xx=%d\\n", summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, summary.errors.status))
end
"""


@dataclass
class Result:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def require() -> str:
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk is needed for this benchmark: apt-get install wrk")
    return path


def run(url: str, token: str, *, connections: int, seconds: int, method: str = "GET", body: str | None = None) -> Result:
    threads = 1 if connections == 1 else 2
    script = LUA.format(method=method, token=token, body=f"wrk.body = [==[{body}]==]" if body else "")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run([require(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", f.name, url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"LF p50=([\d.]+) p99=([\d.]+)", out)
    e = re.search(r"LF errors=(\d+) non2xx=(\d+)", out)
    return Result(rps, float(m.group(1)) / 1000, float(m.group(2)) / 1000, int(e.group(1)) + int(e.group(2)))
