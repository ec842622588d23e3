"""Planning a statement: parse it (sqlglot, Databricks dialect), decide whether it is allowed, bind
named parameters, and find every table it reads or writes. No catalog access here: the service
resolves the names this module returns and checks privileges on them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from lakeforge import names
from lakeforge.errors import InvalidParameter

DIALECT = "databricks"
QUERY_TYPES = (exp.Select, exp.SetOperation, exp.Values, exp.Subquery)
_TOKEN_REPR = re.compile(r"<Token token_type: [^,]+, text: ([^,]*), [^>]*>")
# Databricks parameter types -> the SQL type a bound literal is cast to.
PARAM_TYPES = {"STRING": None, "VOID": None, "INT": "INT", "INTEGER": "INT", "BIGINT": "BIGINT", "LONG": "BIGINT",
               "SMALLINT": "SMALLINT", "TINYINT": "TINYINT", "DOUBLE": "DOUBLE", "FLOAT": "FLOAT",
               "BOOLEAN": "BOOLEAN", "DATE": "DATE", "TIMESTAMP": "TIMESTAMP", "TIMESTAMP_NTZ": "TIMESTAMP"}


@dataclass
class Plan:
    kind: str  # QUERY, CTAS or INSERT
    query: exp.Expression  # what DuckDB runs: the whole statement, or the SELECT part of a write
    sources: list[str]  # full names of the tables read, in order of first appearance
    target: str | None = None  # full name of the table written
    insert_columns: list[str] | None = None  # INSERT INTO t (a, b) ...
    if_not_exists: bool = False
    source_nodes: dict[str, list[exp.Table]] = field(default_factory=dict)


def parse(sql: str) -> exp.Expression:
    """One statement, or a 400 carrying the parser's message and position."""
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidParameter("statement is required")
    try:
        trees = [t for t in sqlglot.parse(sql, dialect=DIALECT) if t is not None]
    except ParseError as e:
        first = e.errors[0] if e.errors else {}
        line, col = first.get("line"), first.get("col")
        reason = _TOKEN_REPR.sub(r"'\1'", str(first.get("description") or e))
        where = f" at line {line}, column {col}" if line is not None else ""
        raise InvalidParameter(f"Syntax error{where}: {reason}", details=[{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "PARSE_SYNTAX_ERROR",
            "domain": "lakeforge", "metadata": {"line": str(line), "column": str(col)}}]) from None
    except TokenError as e:
        raise InvalidParameter(f"Syntax error: {e}") from None
    if len(trees) != 1:
        raise InvalidParameter(f"Exactly one statement is allowed, got {len(trees)}")
    return trees[0]


def statement_type(sql: str, tree: exp.Expression) -> str:
    """The statement's own keyword for error messages (sqlglot folds some into odd nodes)."""
    word = sql.strip().split(None, 1)[0].upper() if sql.strip() else tree.key.upper()
    return re.sub(r"[^A-Z_]", "", word) or tree.key.upper()


def plan(sql: str, catalog: str, schema: str, parameters: dict[str, tuple[str | None, str]] | None = None) -> Plan:
    tree = parse(sql)
    bind_parameters(tree, parameters or {})
    kind, query, target, columns, if_not_exists = classify(sql, tree)
    sources, nodes = table_references(query, catalog, schema)
    target_name = resolve(target, catalog, schema) if target is not None else None
    return Plan(kind, query, sources, target_name, columns, if_not_exists, nodes)


def classify(sql: str, tree: exp.Expression):
    """(kind, query part, target table node, insert column list, if_not_exists); anything else is a 400."""
    if isinstance(tree, QUERY_TYPES):
        return "QUERY", tree, None, None, False
    if isinstance(tree, exp.Create) and str(tree.args.get("kind") or "").upper() == "TABLE":
        query = tree.expression
        if not isinstance(query, QUERY_TYPES):
            raise InvalidParameter("CREATE TABLE is supported only as CREATE TABLE ... AS SELECT; "
                                   "create empty tables with the tables API")
        if tree.args.get("replace"):
            raise InvalidParameter("CREATE OR REPLACE TABLE is not supported; drop the table with the tables API "
                                   "first")
        target = tree.this
        if isinstance(target, exp.Schema):
            raise InvalidParameter("Column lists in CREATE TABLE ... AS SELECT are not supported")
        _check_plain_create(tree)
        return "CTAS", query, target, None, bool(tree.args.get("exists"))
    if isinstance(tree, exp.Insert):
        if tree.args.get("overwrite"):
            raise InvalidParameter("INSERT OVERWRITE is not supported")
        query = tree.expression
        if not isinstance(query, QUERY_TYPES):
            raise InvalidParameter("INSERT INTO is supported with SELECT or VALUES")
        target, columns = tree.this, None
        if isinstance(target, exp.Schema):
            columns = [c.name for c in target.expressions]
            target = target.this
        if tree.args.get("where") or tree.args.get("conflict") or tree.args.get("partition"):
            raise InvalidParameter("INSERT INTO supports only a target, an optional column list and a query")
        return "INSERT", query, target, columns, False
    raise InvalidParameter(f"Statement type {statement_type(sql, tree)} is not supported: use SELECT, VALUES, "
                           "CREATE TABLE ... AS SELECT or INSERT INTO")


def _check_plain_create(tree: exp.Create) -> None:
    props = tree.args.get("properties")
    if props is not None and props.expressions:
        raise InvalidParameter("Table properties and options in CREATE TABLE ... AS SELECT are not supported")


def table_references(query: exp.Expression, catalog: str, schema: str) -> tuple[list[str], dict[str, list[exp.Table]]]:
    """Full names of the catalog tables a query reads. CTE names are not tables; table functions
    (read_csv, range) are left to DuckDB, whose file access is switched off."""
    ctes = {c.alias_or_name.lower() for c in query.find_all(exp.CTE)}
    found: dict[str, list[exp.Table]] = {}
    for node in query.find_all(exp.Table):
        if isinstance(node.this, exp.Func):
            continue  # a table function
        if not isinstance(node.this, exp.Identifier):
            raise InvalidParameter(f"Unsupported table reference '{node.sql(dialect=DIALECT)}': use "
                                   "catalog.schema.table")
        if not node.args.get("db") and node.name.lower() in ctes:
            continue
        found.setdefault(resolve(node, catalog, schema), []).append(node)
    return list(found), found


def resolve(node: exp.Table, catalog: str, schema: str) -> str:
    """1-, 2- and 3-part names with the statement's default catalog and schema."""
    parts = [p.name for p in node.parts]
    if len(parts) > 3:
        raise InvalidParameter(f"Invalid table name '{'.'.join(parts)}': at most catalog.schema.table")
    full = [catalog, schema][: 3 - len(parts)] + parts
    return str(names.parse(".".join(full), 3, "table name"))


def bind_parameters(tree: exp.Expression, parameters: dict[str, tuple[str | None, str]]) -> None:
    """Replace every :name marker with its value as a typed literal (never spliced as text)."""
    used = set()
    for ph in list(tree.find_all(exp.Placeholder)):
        name = ph.name
        if not name or name == "?":
            raise InvalidParameter("Positional '?' parameters are not supported; use named :name markers")
        if name not in parameters:
            raise InvalidParameter(f"No value given for parameter ':{name}'")
        used.add(name)
        ph.replace(_literal(name, *parameters[name]))


def _literal(name: str, value: str | None, type_: str) -> exp.Expression:
    key = (type_ or "STRING").strip().upper()
    base = key.split("(", 1)[0]
    if value is None or base == "VOID":
        return exp.null()
    if base == "DECIMAL":
        target = key
    elif base in PARAM_TYPES:
        target = PARAM_TYPES[base]
    else:
        raise InvalidParameter(f"Parameter ':{name}' has unsupported type '{type_}'")
    lit = exp.Literal.string(str(value))
    if target is None:
        return lit
    try:
        return exp.cast(lit, exp.DataType.build(target, dialect=DIALECT))
    except (ParseError, ValueError):
        raise InvalidParameter(f"Parameter ':{name}' has unsupported type '{type_}'") from None


def rewrite(query: exp.Expression, views: dict[str, str], nodes: dict[str, list[exp.Table]]) -> str:
    """DuckDB SQL with every catalog table replaced by its generated view name (aliases kept)."""
    for full_name, view in views.items():
        for node in nodes.get(full_name, []):
            alias = node.args.get("alias")
            new = exp.Table(this=exp.to_identifier(view, quoted=True))
            if alias is not None:
                new.set("alias", alias.copy())
            elif node.name:
                # Columns qualified by the table's own name (t.col) keep working.
                new.set("alias", exp.TableAlias(this=exp.to_identifier(node.name, quoted=True)))
            node.replace(new)
    return query.sql(dialect="duckdb")
