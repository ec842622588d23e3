"""Runs the demo's steps with a progress bar, then says what it did and where to look."""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from lakeforge.demo import (
    ENDPOINT,
    EXPERIMENT,
    INFERENCE,
    LABELS,
    MODEL,
    PAYLOAD,
    monitoring,
    retrain,
    steps,
)
from lakeforge.demo.steps import Step
from lakeforge.demo.workspace import Workspace

STEPS = [
    Step("dataset", "training data", steps.dataset),
    Step("champion", "train and register", steps.champion),
    Step("endpoint", "serving endpoint", steps.endpoint),
    Step("traffic", "replay traffic", steps.traffic),
    Step("inference", "inference table", monitoring.inference_log),
    Step("monitor", "monitor and alert", monitoring.monitor),
    Step("retrain", "retrain and validate", retrain.retrain),
]


def run(ws: Workspace, console: Console | None = None, result_file: Path | None = None) -> int:
    """Run every step in order; stop at the first that fails. Returns the process exit code."""
    console = console or Console(soft_wrap=True)
    console.print(f"[bold]Lakeforge demo[/bold]: the MLOps loop on {ws.url}")
    done: list[dict] = []
    started = time.monotonic()
    failed = None
    columns = (SpinnerColumn(), TextColumn("{task.description}", style="bold"), BarColumn(bar_width=24),
               TextColumn("{task.fields[detail]}", style="dim"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        overall = bar.add_task(f"step 1/{len(STEPS)}", total=len(STEPS), detail="")
        for i, step in enumerate(STEPS):
            bar.update(overall, description=f"step {i + 1}/{len(STEPS)}: {step.title}", completed=i, detail="")
            step_started = time.monotonic()

            def progress(fraction: float, detail: str, i=i) -> None:
                bar.update(overall, completed=i + min(max(fraction, 0.0), 1.0), detail=detail)

            try:
                line = step.run(ws, progress)
            except Exception as e:  # noqa: BLE001 - every failure ends the demo with one clear line
                failed = {"step": step.key, "title": step.title, "error": _one_line(e),
                          "traceback": traceback.format_exc()}
                break
            seconds = time.monotonic() - step_started
            done.append({"step": step.key, "title": step.title, "result": line, "seconds": round(seconds, 1)})
            bar.console.print(f"[green]✓[/green] {step.title}: {line} [dim]({seconds:.1f} s)[/dim]")
        bar.update(overall, completed=len(done))
    elapsed = time.monotonic() - started
    if failed:
        console.print(f"[red]✗ {failed['title']} failed:[/red] {failed['error']}")
        console.print("The server keeps running; run the demo again to retry "
                      f"(python -m lakeforge.demo --url {ws.url} --token-file {ws.token_file or 'TOKEN_FILE'}).")
    else:
        _where_to_look(ws, console, elapsed)
    if result_file:
        _write_result(result_file, ws, done, failed, elapsed)
    return 1 if failed else 0


def _one_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:500]


def _where_to_look(ws: Workspace, console: Console, elapsed: float) -> None:
    url = ws.url
    token = ws.token_file or "<your token file>"
    report = ws.report
    lines = [f"[bold green]Demo ready[/bold green] in {elapsed:.0f} s. Where to look:",
             f"  MLflow UI        {url}/  (sign in with the token in {token}; experiment '{EXPERIMENT}')",
             f"  Model            {MODEL}@champion = version {report.get('champion', '?')}",
             f"  Endpoint         POST {url}/serving-endpoints/{ENDPOINT}/invocations",
             f"  Inference table  {PAYLOAD} (raw), {INFERENCE} (one row per customer), labels in {LABELS}"]
    if report.get("dashboard"):
        lines.append(f"  Monitor          {url}{report['dashboard']}")
    if report.get("decision"):
        lines.append(f"  Retraining       {report['decision']}")
    lines += ["", "Try the CLI (another shell):",
              f"  export LAKEFORGE_HOST={url} LAKEFORGE_TOKEN=$(cat {token})",
              f"  .venv/bin/lakeforge models versions {MODEL}",
              f"  .venv/bin/lakeforge serving get {ENDPOINT}",
              (f"  .venv/bin/lakeforge sql \"SELECT CAST(timestamp AS DATE) AS day, count(*) AS customers, "
              f"avg(prediction_proba) AS predicted, avg(label) AS churned FROM {INFERENCE} GROUP BY 1 ORDER BY 1\"")]
    if report.get("dashboard"):
        lines += [f"  .venv/bin/lakeforge monitor get {INFERENCE}",
                  f"  .venv/bin/lakeforge monitor breaches {INFERENCE}"]
    lines += ["", "Each step is explained in docs/tour.md. The server keeps running: Ctrl-C stops it."]
    console.print("\n".join(lines), highlight=False)


def _write_result(path: Path, ws: Workspace, done: list[dict], failed: dict | None, elapsed: float) -> None:
    result = {"ok": failed is None, "url": ws.url, "seconds": round(elapsed, 1), "steps": done,
              "failed": failed, "report": ws.report}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    tmp.replace(path)
