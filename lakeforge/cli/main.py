"""`lakeforge` entry point: `up` starts the server; the other commands talk to it over REST."""

from __future__ import annotations

import errno
import logging
import signal
import socket
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Lakeforge: ML and GenAI platform")


@app.callback()
def main(
    host: Optional[str] = typer.Option(None, help="Server URL (else LAKEFORGE_HOST, a profile, or local)"),
    token: Optional[str] = typer.Option(None, help="Access token (else LAKEFORGE_TOKEN or a profile)"),
    profile: Optional[str] = typer.Option(None, help="Profile in ~/.lakeforge/profiles.toml"),
) -> None:
    """Lakeforge: ML and GenAI platform. Host and token come from --host/--token, LAKEFORGE_HOST /
    LAKEFORGE_TOKEN, or a profile file (~/.lakeforge/profiles.toml); for a server started on this
    machine with default settings, the bootstrap admin token is used."""
    from lakeforge.cli._common import OPTIONS

    OPTIONS.update(host=host, token=token, profile=profile)


@app.command()
def up(
    host: str = typer.Option(None, help="Interface to listen on (default 127.0.0.1, env LAKEFORGE_LISTEN_HOST)"),
    port: int = typer.Option(None, help="Port to listen on (default 8080)"),
    home: Optional[Path] = typer.Option(None, help="Home directory (default ~/.lakeforge or LAKEFORGE_HOME)"),
    workers: int = typer.Option(None, help="Server processes sharing the port (default 1; one per core for throughput)"),
    demo: bool = typer.Option(False, "--demo", help="Once up, build the demo workspace (main.demo: data, model, "
                              "endpoint, monitor); idempotent"),
):
    """Start the Lakeforge server on embedded defaults (SQLite, local storage)."""
    from lakeforge.config import Settings

    overrides = {k: v for k, v in {"listen_host": host, "port": port, "home": home, "workers": workers}.items()
                 if v is not None}
    settings = Settings(**overrides)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _check_port(settings.listen_host, settings.port)
    from lakeforge.errors import LakeforgeError
    from lakeforge.server.context import AppContext, check_writable

    if settings.workers < 1:
        typer.echo("error: --workers must be at least 1", err=True)
        raise typer.Exit(1)
    if settings.workers > 1:
        try:
            check_writable(settings.home)
        except LakeforgeError as e:
            typer.echo(f"error: {e.message}", err=True)
            raise typer.Exit(1)
        from lakeforge.server import supervisor

        launcher = _demo(settings) if demo else None
        try:
            code = supervisor.run(settings, {**overrides, "home": str(settings.home)})
        finally:
            if launcher:
                launcher.stop()
        raise typer.Exit(code)
    try:
        check_writable(settings.home)
        ctx = AppContext(settings)
    except LakeforgeError as e:  # e.g. an unwritable home or a malformed secrets key
        typer.echo(f"error: {e.message}", err=True)
        raise typer.Exit(1)
    launcher = _demo(settings) if demo else None
    try:
        serve(settings, ctx)
    finally:
        if launcher:
            launcher.stop()


def _demo(settings):
    """The demo runs in its own process once the server answers (lakeforge/demo/launch.py)."""
    from lakeforge.demo.launch import DemoLauncher

    launcher = DemoLauncher(settings)
    launcher.start()
    return launcher


def serve(settings, ctx, sockets=None) -> None:
    import uvicorn

    from lakeforge.server.app import create_app

    asgi, api = create_app(settings, ctx)
    config = uvicorn.Config(asgi, host=settings.listen_host, port=settings.port, log_level="warning", lifespan="on",
                            access_log=False, timeout_graceful_shutdown=10, proxy_headers=False)
    server = uvicorn.Server(config)
    original_startup = server.startup

    async def startup(sockets=None):
        await original_startup(sockets=sockets)
        if server.started:
            _announce(settings, api.state.bootstrap)

    server.startup = startup
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal through the
    # handlers it found; with these in place a clean shutdown exits 0 instead of dying by signal.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    server.run(sockets=sockets)
    if not server.started:
        raise typer.Exit(1)


def _announce(settings, boot) -> None:
    url = f"http://{settings.listen_host}:{settings.port}"
    lines = [] if settings.workers > 1 else [f"Lakeforge is up at {url}  (home: {settings.home})"]
    if boot.admin_token:
        lines.append(f"Bootstrap admin token (shown once, also in {boot.token_file}): {boot.admin_token}")
    else:
        lines.append(f"Admin token: {boot.token_file}")
    if settings.worker_id == 0:
        lines.append(f"Try: LAKEFORGE_HOST={url} LAKEFORGE_TOKEN=$(cat {boot.token_file}) lakeforge catalogs list")
    elif not boot.admin_token:
        return
    print("\n".join(lines), flush=True)


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server itself binds: connections of a previous run in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                typer.echo(f"error: port {port} on {host} is already in use; choose another with --port", err=True)
                raise typer.Exit(1)
            raise


def _register_areas() -> None:
    """Each CLI area lives in its own module exposing `NAME` and either `app` (a typer.Typer of
    subcommands) or `show` (a single command, e.g. `lakeforge lineage NAME`)."""
    import importlib

    for module in _AREAS:
        mod = importlib.import_module(f"lakeforge.cli.{module}")
        if hasattr(mod, "app"):
            app.add_typer(mod.app, name=mod.NAME, help=mod.__doc__)
        else:
            app.command(name=mod.NAME, help=mod.__doc__)(mod.show)


_AREAS = ["catalogs", "schemas", "tables", "volumes", "models", "grants", "users", "groups",
          "service_principals", "tokens", "secrets", "audit", "lineage", "sql", "serving", "monitor"]
_register_areas()

if __name__ == "__main__":
    app()
