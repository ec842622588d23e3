"""Monitor REST API (Databricks' legacy shape, what `databricks-sdk` `w.quality_monitors` calls):
`/api/2.1/unity-catalog/tables/{table_name}/monitor[/refreshes[/{id}[/cancel]]|/dashboard]`, plus
Lakeforge's alert rules and breaches under `.../monitor/alerts` and `.../monitor/breaches`."""

from __future__ import annotations

from fastapi import APIRouter, Request

from lakeforge.server.http import call, caller, ok, read_json

router = APIRouter()
MONITOR = "/api/2.1/unity-catalog/tables/{table_name}/monitor"
# databricks-sdk sends regenerate_dashboard here.
QUALITY_MONITORING = "/api/2.1/quality-monitoring/tables/{table_name}/monitor"


def _svc(request: Request):
    return request.app.state.ctx.monitoring


def _alerts(request: Request):
    return request.app.state.ctx.monitor_alerts


@router.post(MONITOR, name="monitors.create")
async def create(request: Request, table_name: str):
    return ok(await call(_svc(request).create, caller(request), table_name, await read_json(request)))


@router.get(MONITOR, name="monitors.get")
async def get(request: Request, table_name: str):
    return ok(await call(_svc(request).get, caller(request), table_name))


@router.put(MONITOR, name="monitors.update")
async def update(request: Request, table_name: str):
    return ok(await call(_svc(request).update, caller(request), table_name, await read_json(request)))


@router.delete(MONITOR, name="monitors.delete")
async def delete(request: Request, table_name: str):
    await call(_svc(request).delete, caller(request), table_name)
    return ok({})


@router.post(MONITOR + "/refreshes", name="monitors.runRefresh")
async def run_refresh(request: Request, table_name: str):
    return ok(await call(_svc(request).run_refresh, caller(request), table_name, await read_json(request)))


@router.get(MONITOR + "/refreshes", name="monitors.listRefreshes")
async def list_refreshes(request: Request, table_name: str):
    return ok(await call(_svc(request).list_refreshes, caller(request), table_name))


@router.get(MONITOR + "/refreshes/{refresh_id}", name="monitors.getRefresh")
async def get_refresh(request: Request, table_name: str, refresh_id: str):
    return ok(await call(_svc(request).get_refresh, caller(request), table_name, refresh_id))


@router.post(MONITOR + "/refreshes/{refresh_id}/cancel", name="monitors.cancelRefresh")
async def cancel_refresh(request: Request, table_name: str, refresh_id: str):
    return ok(await call(_svc(request).cancel_refresh, caller(request), table_name, refresh_id))


@router.post(MONITOR + "/dashboard", name="monitors.regenerateDashboard")
@router.post(QUALITY_MONITORING + "/dashboard", name="monitors.regenerateDashboard")
async def regenerate_dashboard(request: Request, table_name: str):
    return ok(await call(_svc(request).regenerate_dashboard, caller(request), table_name, await read_json(request)))


# ---- alerts (Lakeforge extension) ----------------------------------------------------------------
@router.post(MONITOR + "/alerts", name="monitors.createAlert")
async def create_alert(request: Request, table_name: str):
    return ok(await call(_alerts(request).create, caller(request), table_name, await read_json(request)))


@router.get(MONITOR + "/alerts", name="monitors.listAlerts")
async def list_alerts(request: Request, table_name: str):
    return ok(await call(_alerts(request).list, caller(request), table_name))


@router.get(MONITOR + "/alerts/{alert_id}", name="monitors.getAlert")
async def get_alert(request: Request, table_name: str, alert_id: str):
    return ok(await call(_alerts(request).get, caller(request), table_name, alert_id))


@router.delete(MONITOR + "/alerts/{alert_id}", name="monitors.deleteAlert")
async def delete_alert(request: Request, table_name: str, alert_id: str):
    await call(_alerts(request).delete, caller(request), table_name, alert_id)
    return ok({})


@router.get(MONITOR + "/breaches", name="monitors.listBreaches")
async def list_breaches(request: Request, table_name: str, max_results: int | None = None,
                        alert_id: str | None = None):
    return ok(await call(_alerts(request).breaches, caller(request), table_name, max_results, alert_id))
