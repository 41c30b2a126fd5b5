"""``segql explain SEGMENT [--person ID]``: how many people pass each clause of a segment's
condition, alone and cumulatively in the written order, computed in one query and
written nowhere; with a person, whether that person passes each clause and, where the
clause is a comparison, the person's value of its left side.

The clauses are the items of the top-level ``and`` of ``where`` (or of ``enter when``);
a condition that is not an ``and`` is one clause. A clause no one passes at the as-of,
or one after which the funnel is empty, gets a warning; so does a clause whose shape
alone says it can never hold (:mod:`segql.compile.never`), whatever the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlglot import exp

from segql.compile.compiler import QueryOptions, compile_values_query
from segql.compile.dialect import get_dialect
from segql.compile.never import never_holds
from segql.engines import EngineAdapter as Warehouse
from segql.language import ast
from segql.language.printer import format_condition
from segql.project import Project
from segql.reading.preview import unrecorded_options


@dataclass(frozen=True)
class Clause:
    text: str
    alone: int
    cumulative: int
    person_passes: bool | None = None
    person_value: object = None  # the left side's value, where the clause is a comparison


@dataclass(frozen=True)
class Explanation:
    segment: str
    clauses: list[Clause]
    warnings: list[str]


def explain_segment(
    project: Project,
    warehouse: Warehouse,
    segment: str,
    as_of: datetime,
    person_id: str | None = None,
) -> Explanation:
    """Counts of each clause alone and of the funnel up to it, at ``as_of``."""
    project.select([segment])
    definition = project.definitions.segments[segment]
    condition = definition.where if definition.where is not None else definition.enter
    assert condition is not None
    return explain_condition(project, warehouse, condition, as_of, person_id, segment)


def explain_condition(
    project: Project,
    warehouse: Warehouse,
    condition: ast.Condition,
    as_of: datetime,
    person_id: str | None = None,
    segment: str = "",
) -> Explanation:
    """``explain_segment`` for a condition that is not (yet) a segment of the project, as
    the builder of ``segql ui`` shows it."""
    items = list(condition.items) if isinstance(condition, ast.And) else [condition]
    taken = set(project.definitions.segments) | set(project.definitions.traits)
    prefix = "_explain"
    while any(name.startswith(prefix) for name in taken):
        prefix = "_" + prefix
    trials: list[ast.Segment] = []
    for number, item in enumerate(items):
        trials.append(ast.Segment(f"{prefix}_alone_{number}", where=item))
        funnel = item if number == 0 else ast.And(tuple(items[: number + 1]))
        trials.append(ast.Segment(f"{prefix}_upto_{number}", where=funnel))
    trial = Project(project.config, [*project.modules, ast.Module(tuple(trials))])
    trial.read_catalog(warehouse)
    options = unrecorded_options(warehouse, project.config.warehouse.schema)
    query = trial.membership_query(
        warehouse.dialect.name, as_of, [t.name for t in trials], options=options
    ).expression.subquery("membership")
    counts = {
        row[0]: int(row[1])
        for row in warehouse.run(
            exp.select(exp.column("segment", quoted=True), exp.Count(this=exp.Star()))
            .from_(query.copy())
            .group_by(exp.column("segment", quoted=True))
        )
    }
    passing: set[str] = set()
    if person_id is not None:
        person = exp.cast(exp.column("person_id", quoted=True), "VARCHAR")
        passing = {
            row[0]
            for row in warehouse.run(
                exp.select(exp.column("segment", quoted=True))
                .from_(query)
                .where(person.eq(exp.Literal.string(str(person_id))))
            )
        }
    values = _left_values(trial, warehouse, items, as_of, person_id) if person_id else {}
    clauses, warnings = [], []
    for number, item in enumerate(items):
        text = format_condition(item)
        alone = counts.get(f"{prefix}_alone_{number}", 0)
        upto = counts.get(f"{prefix}_upto_{number}", 0)
        passes = None if person_id is None else f"{prefix}_alone_{number}" in passing
        clauses.append(Clause(text, alone, upto, passes, values.get(number)))
        impossible = never_holds(item)
        if impossible is not None:
            warnings.append(f"clause {number + 1} ({text}) can never hold: {impossible}")
        elif alone == 0:
            warnings.append(f"clause {number + 1} ({text}) holds for no one at this as-of")
        elif upto == 0 and (number == 0 or clauses[number - 1].cumulative > 0):
            warnings.append(
                f"clause {number + 1} ({text}) makes the segment empty with the clauses before it"
            )
    return Explanation(segment, clauses, warnings)


def _left_values(
    project: Project,
    warehouse: Warehouse,
    items: list[ast.Condition],
    as_of: datetime,
    person_id: str,
) -> dict[int, object]:
    """The person's value of each comparison's left side, by clause number."""
    lefts = {
        f"clause_{n}": item.left for n, item in enumerate(items) if isinstance(item, ast.Compare)
    }
    if not lefts:
        return {}
    query = compile_values_query(
        project.analyzer,
        lefts,
        get_dialect(warehouse.dialect.name),
        as_of,
        QueryOptions(person_ids=(str(person_id),)),
    )
    found = warehouse.run(query)
    row = found[0][1:] if found else (None,) * len(lefts)
    return {int(label.split("_")[1]): value for label, value in zip(lefts, row, strict=True)}
