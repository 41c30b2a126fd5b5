"""``segql members``: a segment's members with their ids in the id column's own type, sorted
as that type, and optionally columns of the people table and traits beside them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from segql import ast
from segql.compiler import QueryOptions, compile_values_query, table_ref
from segql.dialect import get_dialect
from segql.errors import SegqlNameError, unknown_name_message
from segql.project import Project
from segql.reports import Reports, Rows
from segql.timeutil import utc_now
from segql.warehouse import Warehouse

_KEY = "segql_key"


def member_rows(
    project: Project,
    warehouse: Warehouse,
    reports: Reports,
    segment: str,
    columns: Sequence[str],
    limit: int | None,
) -> Rows:
    """``person_id``, ``entered_at``, ``run_id`` and the asked-for columns of each member."""
    project.read_catalog(warehouse)
    entity = project.config.entity
    people = set(project.catalog.columns(entity.table) or ())
    traits = [c for c in columns if c in project.definitions.traits]
    for name in columns:
        if name not in people and name not in project.definitions.traits:
            raise SegqlNameError(
                unknown_name_message("column", name, [*people, *project.definitions.traits]),
                help="--columns takes columns of the people table and traits",
            )
    recorded = reports.members(segment, None).rows
    entity_columns = [c for c in columns if c in people and c not in traits]
    values = _by_key(warehouse, _entity_query(project, entity_columns))
    trait_values: dict[str, tuple[Any, ...]] = {}
    if traits:
        as_of = reports.last_as_of() or utc_now()
        query = compile_values_query(
            project.analyzer,
            {name: ast.Name(name) for name in traits},
            get_dialect(warehouse.dialect.name),
            as_of,
            QueryOptions(),
        )
        trait_values = _by_key(warehouse, _keyed(query.subquery("v"), "person_id", traits))
    rows = []
    for person, entered_at, run_id in recorded:
        found = values.get(str(person))
        native = found[0] if found else person
        row: list[Any] = [native, entered_at, run_id]
        for name in columns:
            if name in traits:
                found_trait = trait_values.get(str(person))
                row.append(found_trait[1 + traits.index(name)] if found_trait else None)
            else:
                row.append(found[1 + entity_columns.index(name)] if found else None)
        rows.append(tuple(row))
    rows.sort(key=lambda r: (isinstance(r[0], str), r[0]))
    if limit is not None:
        rows = rows[:limit]
    return Rows(("person_id", "entered_at", "run_id", *columns), rows)


def _entity_query(project: Project, columns: Sequence[str]) -> exp.Select:
    entity = project.config.entity
    return _keyed(table_ref(entity.table), entity.id, columns)


def _keyed(source: exp.Expr, id_column: str, columns: Sequence[str]) -> exp.Select:
    key = exp.cast(exp.column(id_column, quoted=True), "VARCHAR")
    return exp.select(
        exp.alias_(key, _KEY, quoted=True),
        exp.column(id_column, quoted=True),
        *(exp.column(c, quoted=True) for c in columns),
    ).from_(source)


def _by_key(warehouse: Warehouse, select: exp.Select) -> dict[str, tuple[Any, ...]]:
    return {str(row[0]): tuple(row[1:]) for row in warehouse.run(select)}
