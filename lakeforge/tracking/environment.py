"""MLflow's server reads its configuration from environment variables (the `mlflow server` CLI
sets them for its workers). We set the same variables in-process, before MLflow's handlers first
open the store, so the mounted server uses Lakeforge's database and storage root."""

from __future__ import annotations

import os
from pathlib import Path

from lakeforge.config import Settings

# The names of mlflow.server.constants, spelled out so configuring does not import MLflow.
BACKEND_STORE_URI = "_MLFLOW_SERVER_FILE_STORE"
ARTIFACT_ROOT = "_MLFLOW_SERVER_ARTIFACT_ROOT"
SERVE_ARTIFACTS = "_MLFLOW_SERVER_SERVE_ARTIFACTS"
ARTIFACTS_DESTINATION = "_MLFLOW_SERVER_ARTIFACT_DESTINATION"

# Clients upload and download through this server (proxied artifacts); experiments get
# `mlflow-artifacts:/<experiment id>` as their artifact location.
DEFAULT_ARTIFACT_ROOT = "mlflow-artifacts:/"

# Features that call outside services or run code on the server host stay off. Their routes are
# also answered with 501 by the gate (see rules.py), so turning one on here alone does nothing.
FEATURES_OFF = {
    "MLFLOW_ENABLE_AI_GATEWAY": "false",  # Lakeforge has its own gateway
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # huey job runner (online scoring, optimization)
    "MLFLOW_ENABLE_REMOTE_ASSISTANT": "false",  # the assistant runs tools on the server host
    "MLFLOW_DISABLE_TELEMETRY": "true",  # usage telemetry is sent to an outside service
}


def artifacts_destination(settings: Settings) -> Path:
    return settings.storage_root_path / "mlflow-artifacts"


def configure(settings: Settings) -> None:
    os.environ[BACKEND_STORE_URI] = settings.resolved_database_url
    os.environ[ARTIFACT_ROOT] = DEFAULT_ARTIFACT_ROOT
    os.environ[SERVE_ARTIFACTS] = "true"
    destination = artifacts_destination(settings)
    destination.mkdir(parents=True, exist_ok=True)
    os.environ[ARTIFACTS_DESTINATION] = str(destination)
    os.environ.update(FEATURES_OFF)
    # MLflow's Host-header check guards an unauthenticated server against DNS rebinding; every
    # request here carries a Lakeforge token (a rebinding page has no credentials for this host),
    # so the check would only reject legitimate host names. An operator's own value wins.
    os.environ.setdefault("MLFLOW_SERVER_ALLOWED_HOSTS", "*")
