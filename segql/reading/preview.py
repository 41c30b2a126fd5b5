"""``segql preview``: a condition's matching people, counted in the warehouse, unrecorded."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlglot import exp

from segql.compile.compiler import QueryOptions
from segql.compile.history_sql import HISTORY_TABLE, no_history
from segql.engines import EngineAdapter as Warehouse
from segql.language import ast
from segql.language.parser import parse_condition
from segql.project import Project
from segql.timeutil import utc_now

PREVIEW = "preview"


def preview_condition(
    project: Project,
    warehouse: Warehouse,
    condition: str,
    as_of: datetime | None,
    sample: int,
) -> tuple[int, list[Any]]:
    """How many people the condition selects at ``as_of`` (now), and the first few ids."""
    where = parse_condition(condition, "<condition>")
    name = PREVIEW
    while name in project.definitions.segments or name in project.definitions.traits:
        name = "_" + name
    segment = ast.Segment(name, where=where)
    trial = Project(project.config, [*project.modules, ast.Module((segment,))])
    trial.read_catalog(warehouse)
    options = unrecorded_options(warehouse, project.config.warehouse.schema)
    query = trial.membership_query(
        warehouse.dialect.name, as_of or utc_now(), [name], options=options
    ).expression.subquery("matching")
    count = warehouse.run(exp.select(exp.Count(this=exp.Star())).from_(query.copy()))[0][0]
    person = exp.column("person_id", quoted=True)
    ids = warehouse.run(exp.select(person).from_(query).order_by(person.copy()).limit(sample))
    return int(count), [row[0] for row in ids]


def last_committed_as_of(project: Project, warehouse: Warehouse) -> datetime:
    """The as-of of the last committed run, or now (UTC) when nothing has run yet: the
    time ``segql preview`` (and the builder of ``segql ui``) counts at by default."""
    from segql.reading.reports import Reports

    schema = project.config.warehouse.schema
    if warehouse.table_columns(f"{schema}.segql_meta") is None:
        return utc_now()
    return Reports(warehouse, schema).last_as_of() or utc_now()


def unrecorded_options(warehouse: Warehouse, schema: str) -> QueryOptions | None:
    """Query options for a query that is not a run (preview, explain) where no run has
    made segql's history table yet: conditions on recorded membership are then false
    instead of failing on the missing table. None where the table is there."""
    if warehouse.table_columns(f"{schema}.{HISTORY_TABLE}") is not None:
        return None
    return QueryOptions(history=no_history())
