"""`python -m lakeforge.demo --url URL --token-file FILE`: build (or check and repair) the demo workspace
on a running server. `lakeforge up --demo` starts it once the server answers."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lakeforge.demo.workspace import Shape, Workspace


def main(argv: list[str] | None = None) -> int:
    defaults = Shape()
    parser = argparse.ArgumentParser(prog="python -m lakeforge.demo", description=__doc__)
    parser.add_argument("--url", default=os.environ.get("LAKEFORGE_HOST", "http://127.0.0.1:8080"))
    parser.add_argument("--token-file", type=Path, help="file holding an admin token (else LAKEFORGE_TOKEN)")
    parser.add_argument("--rows", type=int, default=defaults.rows, help="training customers")
    parser.add_argument("--days", type=int, default=defaults.days, help="simulated days of traffic (at least 3)")
    parser.add_argument("--per-day", type=int, default=defaults.per_day, help="customers scored per day")
    parser.add_argument("--batch", type=int, default=defaults.batch, help="rows per scoring request")
    parser.add_argument("--result-file", type=Path, help="write what happened as JSON here at the end")
    args = parser.parse_args(argv)
    if args.days < 3:
        parser.error("--days must be at least 3 (drift starts in the middle; labels arrive a day late)")
    if min(args.rows, args.per_day, args.batch) < 1:
        parser.error("--rows, --per-day and --batch must be positive")
    if args.token_file:
        try:
            token = args.token_file.read_text().strip()
        except OSError as e:
            parser.error(f"cannot read the token file: {e}")
    else:
        token = os.environ.get("LAKEFORGE_TOKEN", "")
    if not token:
        parser.error("give --token-file or set LAKEFORGE_TOKEN")
    shape = Shape(rows=args.rows, days=args.days, per_day=args.per_day, batch=args.batch)
    ws = Workspace(url=args.url.rstrip("/"), token=token, shape=shape, token_file=args.token_file)
    from lakeforge.demo.run import run

    return run(ws, result_file=args.result_file)


if __name__ == "__main__":
    sys.exit(main())
