"""Aggregates computed on their own, over ranked rows (language v2).

- ``among last N``: the person's N most recent rows of the ref, ranked by time newest
  first as ``RANK()`` ranks them (rows tied with the N-th are all kept), before the
  ``where`` filter; then the aggregate over those of them that pass it.
- ``streak(spec, day|week|month)``: the distinct local periods of the matching rows,
  newest first; a period starts a new run unless the one before it (``LAG``) is the next
  period. The streak is the first run's length when it ends at the current period or
  the one before it, else 0.

Each is one ``GROUP BY person`` over a subquery of the source's rows, joined to the people
like a distinct count (``SourceNeeds.separate``).
"""

from __future__ import annotations

from sqlglot import exp

from segql.compile.calendar import current_start, row_period, unit_steps
from segql.compile.lower_values import ValueLowering
from segql.compile.sql_build import EVENT_NAME, EVENT_TIME, PERSON_ID, _alias, _and, _Row, table_ref
from segql.language import ast
from segql.language.checker import RowScope

_RANK = "segql_rank"
_PERIOD = "segql_period"
_NEWER = "segql_newer"
_RUN = "segql_run"


def last_rows_select(builder: ValueLowering, aggregate: ast.Aggregate, column: str) -> exp.Select:
    """``AGG(...)`` per person over the matching rows among the person's last N."""
    spec = aggregate.spec
    assert spec.last is not None
    source = builder.analyzer.source_of(spec)
    ranked_row = _Row(source, "ranked")
    newest_first = exp.Order(
        expressions=[exp.Ordered(this=exp.column(EVENT_TIME, quoted=True), desc=True)]
    )
    rank = exp.Window(
        this=exp.Anonymous(this="RANK"),
        partition_by=[exp.column(PERSON_ID, quoted=True)],
        order=newest_first,
    )
    ranked = exp.select(exp.Star(), _alias(rank, _RANK)).from_(
        table_ref(f"segql_rows_{source.name}", cte=True), copy=False
    )
    if source.is_events and spec.ref is not None:
        name = exp.column(EVENT_NAME, quoted=True).eq(exp.Literal.string(spec.ref))
        ranked = ranked.where(name, copy=False)
    kept: list[exp.Expr] = [
        exp.LTE(this=ranked_row.column(_RANK), expression=exp.Literal.number(spec.last))
    ]
    if spec.where is not None:
        kept.append(builder.condition(spec.where, RowScope(source), ranked_row))
    distinct = builder.distinct_value(aggregate, ranked_row)
    value: exp.Expr
    if distinct is not None:
        value = exp.Count(this=exp.Distinct(expressions=[distinct]))
    else:
        value = builder.aggregate_sql(aggregate, ranked_row, None)
    return (
        exp.select(ranked_row.column(PERSON_ID), _alias(value, column))
        .from_(ranked.subquery(exp.to_identifier("ranked", quoted=True)), copy=False)
        .where(_and(*kept), copy=False)
        .group_by(ranked_row.column(PERSON_ID), copy=False)
    )


def streak_select(builder: ValueLowering, aggregate: ast.Aggregate, column: str) -> exp.Select:
    """The streak per person (people without a matching row are 0 by the join)."""
    unit = aggregate.period
    assert unit is not None
    source = builder.analyzer.source_of(aggregate.spec)
    row = _Row(source)
    instant = builder.source_instant(source)
    person = exp.column(PERSON_ID, quoted=True)
    period = exp.column(_PERIOD, quoted=True)
    periods = (
        exp.select(
            person.copy(),
            _alias(row_period(builder, unit, row.column(EVENT_TIME), instant), _PERIOD),
        )
        .distinct(copy=False)
        .from_(table_ref(f"segql_rows_{source.name}", cte=True), copy=False)
    )
    match = builder.spec_filter(aggregate.spec, row, where_clause=True)
    if match is not None:
        periods = periods.where(match, copy=False)
    newest_first = exp.Order(expressions=[exp.Ordered(this=period.copy(), desc=True)])
    newer = exp.Window(
        this=exp.Anonymous(this="LAG", expressions=[period.copy()]),
        partition_by=[person.copy()],
        order=newest_first,
    )
    step = unit_steps(unit, 1)
    continues = exp.EQ(
        this=exp.column(_NEWER, quoted=True), expression=builder.shift(period.copy(), step, +1)
    )
    breaks = exp.Case(
        ifs=[exp.If(this=continues, true=exp.Literal.number(0))], default=exp.Literal.number(1)
    )
    flagged = exp.select(person.copy(), period.copy(), _alias(newer, _NEWER)).from_(
        periods.subquery(exp.to_identifier("segql_periods", quoted=True)), copy=False
    )
    running = exp.Window(
        this=exp.Sum(this=breaks),
        partition_by=[person.copy()],
        order=newest_first.copy(),
        spec=exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING"),
    )
    runs = exp.select(person.copy(), period.copy(), _alias(running, _RUN)).from_(
        flagged.subquery(exp.to_identifier("segql_flagged", quoted=True)), copy=False
    )
    newest = exp.Max(this=period.copy())
    alive = exp.Or(
        this=exp.EQ(this=newest, expression=current_start(builder, unit)),
        expression=exp.EQ(this=newest.copy(), expression=current_start(builder, unit, 1)),
    )
    first_run = exp.Sum(
        this=exp.Case(
            ifs=[
                exp.If(
                    this=exp.EQ(
                        this=exp.column(_RUN, quoted=True), expression=exp.Literal.number(1)
                    ),
                    true=exp.Literal.number(1),
                )
            ],
            default=exp.Literal.number(0),
        )
    )
    value = exp.Case(ifs=[exp.If(this=alive, true=first_run)], default=exp.Literal.number(0))
    return (
        exp.select(person.copy(), _alias(exp.cast(value, exp.DataType.Type.BIGINT), column))
        .from_(runs.subquery(exp.to_identifier("segql_runs", quoted=True)), copy=False)
        .group_by(person.copy(), copy=False)
    )
