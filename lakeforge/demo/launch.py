"""`lakeforge up --demo`: once the server answers /health, run the demo in its own process.

The demo trains models and generates data: it must not share the server's event loop or GIL, so it is
`python -m lakeforge.demo`, started from a thread of `lakeforge up` that waits for the server. Its
output goes to the same terminal; the server keeps running when it ends, and stops it on shutdown.

While the demo runs, the server does not log the alert breaches the demo's own drift causes (well over
a hundred lines, one per window, slice and column, that would bury its progress): they are recorded
as usual (`lakeforge monitor breaches`) and the demo prints a summary of them. Alerts log as usual
once the demo has ended.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

log = logging.getLogger(__name__)
READY_TIMEOUT = 120.0


def client_url(listen_host: str, port: int) -> str:
    """Where a client on this machine reaches a server listening on `listen_host`."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen_host, listen_host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class DemoLauncher:
    def __init__(self, settings):
        self.url = client_url(settings.listen_host, settings.port)
        self.token_file = settings.home / "admin-token"
        self.result_file = settings.home / "demo-result.json"
        self.proc: subprocess.Popen | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="lakeforge-demo", daemon=True).start()

    def _run(self) -> None:
        if not self._wait_ready():
            return
        self.result_file.unlink(missing_ok=True)
        alerts = logging.getLogger("lakeforge.monitoring.alerts")
        level = alerts.level
        alerts.setLevel(logging.ERROR)
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "lakeforge.demo", "--url", self.url, "--token-file",
                                          str(self.token_file), "--result-file", str(self.result_file)])
            self.proc.wait()
        finally:
            alerts.setLevel(level)

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._stopping.is_set():
            try:  # urllib, not httpx: httpx would log every poll at INFO in the server's log
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
                    if resp.status == 200 and self.token_file.exists():
                        return True
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                log.error("the demo did not start: %s/health did not answer within %.0f s", self.url, READY_TIMEOUT)
                return False
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        """On server shutdown: a demo still running has nothing left to talk to."""
        self._stopping.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
