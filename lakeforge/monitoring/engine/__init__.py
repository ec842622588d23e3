"""The monitoring engine: pure computation of profile, drift and model-quality metrics from a monitored
Delta table and mergeable per-window state (no catalog, no HTTP, no metadata database)."""
