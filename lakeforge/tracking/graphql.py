"""What a GraphQL request to MLflow (the web UI's run pages use it) reads, so it is authorized
like the REST calls it stands for. Only the root fields listed here are open to non-admins."""

from __future__ import annotations

from typing import Any

from lakeforge.errors import InvalidParameter, PermissionDenied
from lakeforge.tracking.rules import Target

# root field -> (input keys naming what it reads, how those keys resolve to experiments)
_FIELDS: dict[str, tuple[tuple[str, ...], Target] | None] = {
    "mlflowGetExperiment": (("experimentId",), Target.EXPERIMENT),
    "mlflowGetRun": (("runId", "runUuid"), Target.RUNS),
    "mlflowListArtifacts": (("runId", "runUuid"), Target.RUNS),
    "mlflowGetMetricHistoryBulkInterval": (("runIds",), Target.RUNS),
    "mlflowSearchRuns": (("experimentIds",), Target.EXPERIMENTS),
    "mlflowSearchDatasets": (("experimentIds",), Target.EXPERIMENTS),
    # The registry is the catalog's: MLflow's registry tables stay empty, so this reads nothing.
    "mlflowSearchModelVersions": None,
    "__typename": None,
    "__schema": None,
    "__type": None,
}
_KEYS = {Target.EXPERIMENT: "experiment_id", Target.RUNS: "run_ids", Target.EXPERIMENTS: "experiment_ids"}


def reads(body: dict[str, Any]) -> list[tuple[Target, dict[str, Any]]]:
    """(target, parameters) for every root field of the request; refuse fields not listed."""
    from graphql import FieldNode, GraphQLError, OperationDefinitionNode, parse
    from graphql.utilities import value_from_ast_untyped

    query = body.get("query")
    if not isinstance(query, str):
        raise InvalidParameter("A GraphQL request needs a query")
    try:
        document = parse(query)
    except GraphQLError as e:
        raise InvalidParameter(f"Malformed GraphQL query: {e.message}") from None
    variables = body.get("variables") or {}
    out: list[tuple[Target, dict[str, Any]]] = []
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            raise PermissionDenied("GraphQL fragments are available to admins only")
        for selection in definition.selection_set.selections:
            if not isinstance(selection, FieldNode) or selection.name.value not in _FIELDS:
                name = getattr(getattr(selection, "name", None), "value", "fragment")
                raise PermissionDenied(f"GraphQL field '{name}' is available to admins only")
            spec = _FIELDS[selection.name.value]
            if spec is None:
                continue
            keys, target = spec
            args = {a.name.value: value_from_ast_untyped(a.value, variables) for a in selection.arguments}
            given = args.get("input") if isinstance(args.get("input"), dict) else {}
            values: list[str] = []
            for key in keys:
                v = given.get(key)
                values += [str(x) for x in v] if isinstance(v, list) else ([str(v)] if v is not None else [])
            if target is Target.EXPERIMENT:
                values = values[:1]
                if not values:
                    raise InvalidParameter("mlflowGetExperiment needs input.experimentId")
            out.append((target, {_KEYS[target]: values}))
    return out
