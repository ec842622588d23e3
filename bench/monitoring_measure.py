"""Measuring the monitoring benchmark's child processes (standard library only: it is imported both in the
project's venv and in Evidently's own venv).

From outside, `run_measured` starts a child and reaps it with `os.wait4`, which gives that child's own
user+sys CPU and peak RSS (ru_maxrss), not a sum over every child this process ever had. From inside, a
child times its steps with `Steps` and reads its own high-water RSS with `peak_rss_mb`.
"""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path


class Steps:
    """Wall and CPU seconds (process CPU: every thread of this process) of named steps, and the process's
    high-water RSS when each step ended."""

    def __init__(self) -> None:
        self.times: dict[str, dict[str, float]] = {}

    @contextmanager
    def __call__(self, name: str):
        w, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.times[name] = {"wall_s": round(time.perf_counter() - w, 3),
                                "cpu_s": round(time.process_time() - c, 3), "peak_rss_mb_after": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM), counted from its exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def run_measured(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> dict:
    """Run `cmd` to completion; its wall seconds, user and sys CPU seconds, and peak RSS in MB.

    The parent stays small (this module imports nothing heavy), so the child's ru_maxrss is its own."""
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
    return {"wall_s": round(wall, 3), "user_s": round(usage.ru_utime, 3), "sys_s": round(usage.ru_stime, 3),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "load_1m_before": round(load, 2)}
