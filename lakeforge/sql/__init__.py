"""SQL statements over catalog tables: the Databricks statement execution API, run by DuckDB."""
