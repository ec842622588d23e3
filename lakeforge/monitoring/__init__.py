"""Lakehouse monitoring: profile, drift and model-quality metrics on catalog tables, refreshed
incrementally by Delta version, with alerts and dashboards."""
