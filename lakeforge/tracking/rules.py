"""Which experiment permission each MLflow endpoint needs, and where the experiment comes from.

Keys are MLflow's own endpoint names (the handler names in its Flask route map, which covers both
`/api/...` and `/ajax-api/...` spellings of each route). An endpoint missing from this table is
allowed to admins only, never silently to everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from lakeforge.catalog.privileges import P


class Target(Enum):
    """Where the request names the experiment it acts on."""

    EXPERIMENT = "experiment_id"  # experiment_id parameter
    EXPERIMENT_NAME = "experiment_name"
    EXPERIMENTS = "experiment_ids"  # every id listed (searches)
    TRACE_LOCATIONS = "locations"  # search_traces v3: [{mlflow_experiment: {experiment_id}}]
    NEW_TRACE = "trace_info"  # start_trace v3: trace.trace_info.trace_location
    RUN = "run_id"
    RUNS = "run_ids"
    MODEL = "model_id"
    RUN_OR_MODEL = "run_or_model"
    RUN_AND_TRACES = "run_and_traces"  # linking traces to a run touches both
    TRACE = "trace_id"
    TRACES = "trace_ids"
    ARTIFACT = "artifact_path"  # mlflow-artifacts path: <experiment id>/...
    HEADER = "x-mlflow-experiment-id"  # OTLP span export
    GRAPHQL = "graphql"  # the root fields of a GraphQL query (see graphql.py)


class Special(Enum):
    ANY = "any authenticated user"
    CREATE_EXPERIMENT = "create experiment"  # caller becomes its manager
    SEARCH_EXPERIMENTS = "search experiments"  # answer filtered to readable experiments
    OFF = "feature turned off"
    REGISTRY = "served by the catalog"


@dataclass(frozen=True)
class Rule:
    level: P | Special
    target: Target | None = None


READ, EDIT, MANAGE = P.CAN_READ, P.CAN_EDIT, P.CAN_MANAGE
ANY = Rule(Special.ANY)
OFF = Rule(Special.OFF)


def _rules(level: P, target: Target, *names: str) -> dict[str, Rule]:
    return {n: Rule(level, target) for n in names}


T = Target
RULES: dict[str, Rule] = {
    # experiments
    "_create_experiment": Rule(Special.CREATE_EXPERIMENT),
    "_search_experiments": Rule(Special.SEARCH_EXPERIMENTS),
    **_rules(READ, T.EXPERIMENT, "_get_experiment"),
    **_rules(READ, T.EXPERIMENT_NAME, "_get_experiment_by_name"),
    **_rules(EDIT, T.EXPERIMENT, "_set_experiment_tag", "_delete_experiment_tag"),
    **_rules(MANAGE, T.EXPERIMENT, "_delete_experiment", "_restore_experiment", "_update_experiment"),
    # runs
    **_rules(EDIT, T.EXPERIMENT, "_create_run"),
    **_rules(READ, T.RUN, "_get_run", "_list_artifacts", "_get_metric_history", "_create_presigned_download_url",
             "serve_artifacts"),
    **_rules(EDIT, T.RUN, "_update_run", "_delete_run", "_restore_run", "_log_param", "_log_metric", "_set_tag",
             "_delete_tag", "_log_batch", "_log_model", "_log_inputs", "_log_outputs", "serve_upload_artifact"),
    **_rules(EDIT, T.RUN_AND_TRACES, "_link_traces_to_run"),
    **_rules(READ, T.RUNS, "get_metric_history_bulk_interval_handler", "serve_get_metric_history_bulk_interval",
             "serve_get_metric_history_bulk"),
    **_rules(EDIT, T.RUN_OR_MODEL, "_create_presigned_upload_url"),
    **_rules(READ, T.EXPERIMENTS, "_search_runs", "serve_search_datasets", "_search_logged_models",
             "_calculate_trace_filter_correlation", "_query_trace_metrics", "_deprecated_search_traces_v2"),
    # logged models
    **_rules(EDIT, T.EXPERIMENT, "_create_logged_model"),
    **_rules(READ, T.MODEL, "_get_logged_model", "_list_logged_model_artifacts", "serve_get_logged_model_artifact"),
    **_rules(EDIT, T.MODEL, "_finalize_logged_model", "_delete_logged_model", "_set_logged_model_tags",
             "_delete_logged_model_tag", "_log_logged_model_params"),
    # traces and assessments
    **_rules(EDIT, T.NEW_TRACE, "_start_trace_v3"),
    **_rules(EDIT, T.EXPERIMENT, "_deprecated_start_trace_v2", "_delete_traces"),
    **_rules(READ, T.TRACE_LOCATIONS, "_search_traces_v3"),
    **_rules(READ, T.TRACE, "_get_trace_info_v3", "_get_trace", "_get_assessment", "serve_get_trace_artifact",
             "_deprecated_get_trace_info_v2"),
    **_rules(READ, T.TRACES, "_batch_get_traces", "_batch_get_trace_infos"),
    **_rules(EDIT, T.TRACE, "_set_trace_tag_v3", "_delete_trace_tag_v3", "_link_prompts_to_trace",
             "_create_assessment", "_update_assessment", "_delete_assessment", "_deprecated_end_trace_v2",
             "_set_trace_tag", "_delete_trace_tag"),
    "otel.export_traces": Rule(EDIT, T.HEADER),
    "_graphql": Rule(READ, T.GRAPHQL),
    # GenAI helpers keyed by experiment (operations keyed by their own ids stay admins-only)
    **_rules(READ, T.EXPERIMENTS, "_list_scorers"),
    **_rules(READ, T.EXPERIMENT, "_get_scorer", "_list_scorer_versions", "_list_label_schemas",
             "_get_label_schema_by_name", "_list_review_queues"),
    **_rules(EDIT, T.EXPERIMENT, "_register_scorer", "_delete_scorer", "_create_issue", "_create_label_schema",
             "_create_review_queue"),
    # proxied artifacts
    **_rules(READ, T.ARTIFACT, "_download_artifact", "_get_presigned_download_url",
             "_list_artifacts_mlflow_artifacts"),
    **_rules(EDIT, T.ARTIFACT, "_upload_artifact", "_delete_artifact_mlflow_artifacts",
             "_create_multipart_upload_artifact", "_complete_multipart_upload_artifact",
             "_abort_multipart_upload_artifact"),
    # the web UI and server facts
    **{n: ANY for n in ("serve", "serve_static_file", "static", "health", "version", "_get_server_info",
                        "serve_get_ui_telemetry", "serve_post_ui_telemetry", "_not_implemented")},
    # features that call outside services or run code on the server host
    **{n: OFF for n in ("serve_create_promptlab_run", "serve_gateway_proxy", "_generate_demo", "_delete_demo",
                        "_invoke_scorer_handler", "_invoke_issue_detection_handler",
                        "_invoke_genai_evaluate_handler", "_get_online_scoring_configs",
                        "_upsert_online_scoring_config", "_cancel_job", "_get_job",
                        "_create_prompt_optimization_job", "_get_prompt_optimization_job",
                        "_search_prompt_optimization_jobs", "_cancel_prompt_optimization_job",
                        "_delete_prompt_optimization_job", "_list_workspaces_handler",
                        "_create_workspace_handler", "_get_workspace_handler", "_update_workspace_handler",
                        "_delete_workspace_handler")},
}

# Routes MLflow serves natively in FastAPI (outside its Flask route map), by path prefix.
NATIVE_PREFIXES: list[tuple[str, str, Rule]] = [
    ("/v1/traces", "otel.export_traces", RULES["otel.export_traces"]),
    ("/gateway/", "gateway", OFF),
    ("/ajax-api/3.0/jobs", "jobs", OFF),
    ("/ajax-api/3.0/mlflow/assistant", "assistant", OFF),
    ("/api/3.0/mlflow/mcp-servers", "mcp", OFF),
    ("/ajax-api/3.0/mlflow/mcp-servers", "mcp", OFF),
]

# Paths that may reach MLflow at all; anything else is an unknown Lakeforge path (404) and never
# waits for MLflow to load.
MLFLOW_PREFIXES = ("/api/2.0/mlflow", "/api/3.0/mlflow", "/ajax-api/", "/v1/traces", "/static-files/",
                   "/get-artifact", "/model-versions/", "/graphql", "/gateway/", "/version")

# The model registry (registered models, versions, aliases, prompts, registry webhooks) is served by
# Lakeforge's catalog; MLflow's own registry tables are never written.
_REGISTRY = ("/mlflow/registered-models", "/mlflow/model-versions", "/mlflow/webhooks")


def is_mlflow_path(path: str) -> bool:
    return path == "/" or path.startswith(MLFLOW_PREFIXES)


def is_registry_path(path: str) -> bool:
    if path.startswith("/model-versions/"):
        return True
    for api in ("/api/", "/ajax-api/"):
        if path.startswith(api):
            rest = path[len(api):]
            slash = rest.find("/")
            return slash > 0 and rest[slash:].startswith(_REGISTRY)
    return False


def rule_for(endpoint: str) -> Rule | None:
    """The rule of an MLflow endpoint; None (admins only) when the table does not list it."""
    rule = RULES.get(endpoint)
    if rule is None and any(word in endpoint for word in ("gateway", "budget", "guardrail", "provider")):
        return OFF  # the AI gateway's configuration and discovery APIs
    return rule


def native_rule(path: str) -> tuple[str, Rule] | None:
    for prefix, name, rule in NATIVE_PREFIXES:
        if path.startswith(prefix):
            return name, rule
    return None
