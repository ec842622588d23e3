"""`lakeforge up --workers N`: N server processes on one port, supervised.

Each worker is a full server process (spawned, never forked) bound to the port with SO_REUSEPORT,
so the kernel spreads connections across them and one Python process per core serves requests.
Workers share the metadata database, the storage root and a cache-change counter; each keeps its
own write-ahead logs. A worker that dies is restarted; SIGTERM stops them all gracefully.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time

import httpx

log = logging.getLogger("lakeforge.supervisor")
RESTART_WINDOW_S = 60
MAX_RESTARTS = 5


def reuse_port_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker_main(overrides: dict, index: int) -> None:
    os.environ["LAKEFORGE_WORKER_ID"] = str(index)
    from lakeforge.cli.main import serve
    from lakeforge.config import Settings
    from lakeforge.server.context import AppContext

    settings = Settings(**overrides)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    sock = reuse_port_socket(settings.listen_host, settings.port)
    serve(settings, AppContext(settings), sockets=[sock])


def run(settings, overrides: dict) -> int:
    spawn = multiprocessing.get_context("spawn")
    stopping = False
    procs: dict[int, multiprocessing.Process] = {}
    restarts: list[float] = []

    def start(i: int) -> None:
        p = spawn.Process(target=_worker_main, args=(overrides, i), name=f"lakeforge-worker-{i}")
        p.start()
        procs[i] = p

    def stop(*_):
        nonlocal stopping
        stopping = True
        for p in procs.values():
            if p.is_alive():
                p.terminate()  # SIGTERM: graceful shutdown in the worker

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for i in range(settings.workers):
        start(i)
    _announce_when_ready(settings)
    while not stopping:
        time.sleep(0.2)
        for i, p in list(procs.items()):
            if not p.is_alive() and not stopping:
                now = time.monotonic()
                restarts[:] = [t for t in restarts if now - t < RESTART_WINDOW_S] + [now]
                if len(restarts) > MAX_RESTARTS:
                    log.error("workers keep dying (%d restarts in %ds); stopping", len(restarts), RESTART_WINDOW_S)
                    stop()
                    break
                log.warning("worker %d exited with %s; restarting", i, p.exitcode)
                start(i)
    deadline = time.monotonic() + 30
    for p in procs.values():
        p.join(max(0.1, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
    return 0 if all(p.exitcode == 0 for p in procs.values()) else 1


def _announce_when_ready(settings) -> None:
    url = f"http://{settings.listen_host}:{settings.port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                print(f"Lakeforge is up at {url} with {settings.workers} workers (home: {settings.home})",
                      flush=True)
                return
        except httpx.HTTPError:
            time.sleep(0.1)
