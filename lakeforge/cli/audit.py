"""The audit log: who did what, when, on which securable."""

from typing import Optional

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "audit"
app = typer.Typer(no_args_is_help=True)


@app.command("list")
@command
def list_(principal: Optional[str] = None, action: Optional[str] = None, securable: Optional[str] = None,
          service: Optional[str] = None, status: Optional[int] = typer.Option(None, help="HTTP status code"),
          minutes: Optional[int] = typer.Option(None, help="Only the last N minutes"),
          limit: int = 50, output: Output = "table"):
    import time

    since = int((time.time() - minutes * 60) * 1000) if minutes else None
    events = client().audit.search(principal=principal, action=action, securable=securable, service=service,
                                   status_code=status, since_ms=since, limit=limit)
    emit(events, output, ["event_time", "principal", "action", "securable", "status_code", "source_address",
                          "request_id"])
