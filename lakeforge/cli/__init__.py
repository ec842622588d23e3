"""The `lakeforge` command line (typer + rich), one module per area."""
