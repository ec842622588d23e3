"""Wire models of the statement execution API (the Databricks shapes)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StatementParameter(BaseModel):
    name: str
    value: str | int | float | bool | None = None
    type: str | None = None


class ExecuteStatement(BaseModel):
    model_config = ConfigDict(extra="ignore")  # query_tags and fields of newer clients

    statement: str
    warehouse_id: str | None = None  # accepted and ignored: there is one embedded engine
    catalog: str | None = None
    schema_: str | None = None
    parameters: list[StatementParameter] | None = None
    row_limit: int | None = None
    byte_limit: int | None = None
    disposition: str | None = None
    format: str | None = None
    wait_timeout: str | None = None
    on_wait_timeout: str | None = None
