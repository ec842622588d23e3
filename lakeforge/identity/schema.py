"""Wire requests of the token APIs (Databricks shapes). Unknown fields (scopes, autoscope_enabled)
are ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateToken(Request):
    comment: str | None = None
    lifetime_seconds: int | None = None


class RevokeToken(Request):
    token_id: str


class CreateOboToken(Request):
    application_id: str
    comment: str | None = None
    lifetime_seconds: int | None = None
