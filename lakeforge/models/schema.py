"""Wire shapes of MLflow's registry protocol (mlflow/protos/model_registry.proto): requests as
pydantic models, responses built from catalog records.

Proto JSON: versions are strings, timestamps epoch milliseconds, tags `[{key, value}]`; a
RegisteredModel lists its aliases as `[{alias, version}]`, a ModelVersion as plain alias names.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class Tag(_Wire):
    key: str
    value: str | None = None


class CreateRegisteredModel(_Wire):
    name: str
    tags: list[Tag] = Field(default_factory=list)
    description: str | None = None


class Name(_Wire):
    name: str


class RenameRegisteredModel(_Wire):
    name: str
    new_name: str


class UpdateRegisteredModel(_Wire):
    name: str
    description: str | None = None


class Search(_Wire):
    filter: str | None = None
    max_results: int | None = None
    order_by: list[str] = Field(default_factory=list)
    page_token: str | None = None


class GetLatestVersions(_Wire):
    name: str
    stages: list[str] = Field(default_factory=list)


class SetRegisteredModelTag(_Wire):
    name: str
    key: str
    value: str | None = None


class DeleteRegisteredModelTag(_Wire):
    name: str
    key: str


class SetAlias(_Wire):
    name: str
    alias: str
    version: str


class Alias(_Wire):
    name: str
    alias: str


class CreateModelVersion(_Wire):
    name: str
    source: str
    run_id: str | None = None
    tags: list[Tag] = Field(default_factory=list)
    description: str | None = None
    model_id: str | None = None


class Version(_Wire):
    name: str
    version: str


class UpdateModelVersion(_Wire):
    name: str
    version: str
    description: str | None = None


class SetModelVersionTag(_Wire):
    name: str
    version: str
    key: str
    value: str | None = None


class DeleteModelVersionTag(_Wire):
    name: str
    version: str
    key: str


def tags_out(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


def model_version(full_name: str, info: dict[str, Any], tags: dict[str, str], aliases: list[str],
                  model_id: str | None = None) -> dict[str, Any]:
    """A ModelVersion from ModelVersionService.info() plus the tags kept in the version's spec."""
    return {"name": full_name, "version": str(info["version"]),
            "creation_timestamp": info["created_at"], "last_updated_timestamp": info["updated_at"],
            "user_id": info.get("created_by"), "current_stage": "None", "description": info.get("comment") or "",
            "source": info.get("source"), "run_id": info.get("run_id") or "", "status": info["status"],
            "tags": tags_out(tags), "aliases": aliases, "model_id": model_id}


def registered_model(info: dict[str, Any], tags: dict[str, str], aliases: list[dict],
                     latest: dict[str, Any] | None) -> dict[str, Any]:
    """A RegisteredModel from RegisteredModelService.info() plus the tags kept in the model's spec."""
    return {"name": info["full_name"], "creation_timestamp": info["created_at"],
            "last_updated_timestamp": info["updated_at"], "user_id": info.get("owner") or info.get("created_by"),
            "description": info.get("comment") or "", "tags": tags_out(tags),
            "aliases": [{"alias": a["alias_name"], "version": str(a["version_num"])} for a in aliases],
            "latest_versions": [latest] if latest else []}
