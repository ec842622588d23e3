"""The monitor dashboard in a browser: `GET /monitors/{table}` answers the HTML page, and the
plotly.js it loads (once, cached by version). `?offline=1` inlines plotly.js instead: the page then
opens from a file on any machine (`lakeforge monitor dashboard TABLE -o report.html`).

Authentication is the platform middleware's (the web UI's sign-in cookie or a Bearer token; a
browser with neither is sent to the sign-in page); access is the monitoring service's (SELECT on
the monitored table). A browser is answered errors as a small HTML page, other clients as JSON.
"""

from __future__ import annotations

import functools
import html

import plotly
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from lakeforge.errors import LakeforgeError
from lakeforge.monitoring import dashboard_data
from lakeforge.monitoring.dashboard import PLOTLY_PATH
from lakeforge.server.http import call, caller

router = APIRouter()


@functools.cache
def _plotly_js() -> bytes:
    return plotly.offline.get_plotlyjs().encode()


@router.get(PLOTLY_PATH, name="monitoring.dashboard.plotly", include_in_schema=False)
def plotly_js():
    return Response(_plotly_js(), media_type="text/javascript",
                    headers={"cache-control": "private, max-age=31536000, immutable"})


@router.get("/monitors/{table_full_name}", name="monitoring.dashboard", include_in_schema=False)
async def dashboard(request: Request, table_full_name: str, offline: str | None = None):
    inline = (offline or "").lower() in ("1", "true", "yes")
    try:
        ctx = request.app.state.ctx
        page = await call(dashboard_data.page, ctx.monitoring, ctx.monitor_alerts, caller(request), table_full_name,
                          offline=inline, base_url=str(request.base_url).rstrip("/") if inline else "")
    except LakeforgeError as e:
        if "text/html" not in request.headers.get("accept", ""):
            raise
        request.scope["lakeforge_error_code"] = e.error_code  # the audit log records it as for JSON errors
        return HTMLResponse(_error_page(table_full_name, e), status_code=e.status)
    return HTMLResponse(page, headers={"cache-control": "no-store"})


def _error_page(table: str, e: LakeforgeError) -> str:
    t = html.escape(table)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Monitor {t} - Lakeforge</title>'
            '</head><body style="font-family: system-ui, sans-serif; margin: 2rem">'
            f"<h1>Monitor: {t}</h1><p><strong>{html.escape(e.error_code)}</strong>: {html.escape(e.message)}</p>"
            "</body></html>")


__all__ = ["router"]
