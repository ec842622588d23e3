"""Stopping the server while model workers are still loading: it exits promptly with code 0 and
leaves no worker behind, also when a load does not react to SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.harness import start_server
from tests.serving_models import SLOW_LOAD_MARKER, register_slow_model
from tests.test_serving import _worker_pids

EP = "/api/2.0/serving-endpoints"


def test_sigterm_while_workers_load_exits_promptly_and_stops_them(tmp_path: Path):
    home = tmp_path / "home"
    srv = start_server(home)
    try:
        # One worker honours SIGTERM while it loads; the other ignores it (as a load stuck in native
        # code would) and must be killed after the short grace.
        models = {"patient": register_slow_model(srv, 300),
                  "stubborn": register_slow_model(srv, 300, ignore_sigterm=True)}
        with srv.client() as c:
            for name, model in models.items():
                r = c.post(EP, json={"name": name, "config": {"served_entities": [
                    {"entity_name": model, "entity_version": "1", "workload_size": "Small"}]}})
                assert r.status_code == 200, r.text
                assert r.json()["state"]["config_update"] == "IN_PROGRESS"
        logs = home / "serving" / "logs"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            loading = [p for p in logs.rglob("*.log") if SLOW_LOAD_MARKER in p.read_text(errors="replace")]
            if len(loading) == 2:
                break
            time.sleep(0.2)
        assert len(loading) == 2, "the model workers did not start loading"
        workers = _worker_pids(str(home))
        assert len(workers) == 2, workers

        srv.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            code = srv.proc.wait(20)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the server did not exit within 20 s of SIGTERM:\n{srv.logs()[-4000:]}") from None
        took = time.monotonic() - started
        assert code == 0, srv.logs()[-4000:]
        assert took < 15, took
        # the server waited for its workers: none is left, by pid or by command line
        assert not [p for p in workers if Path(f"/proc/{p}/cmdline").exists()
                    and Path(f"/proc/{p}/cmdline").read_bytes()], workers
        assert not _worker_pids(str(home))
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
        for pid in _worker_pids(str(home)):
            os.kill(pid, signal.SIGKILL)
