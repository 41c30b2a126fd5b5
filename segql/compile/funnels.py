"""Funnels of three steps or more in SQL (language v2, ``ast.Funnel``).

``did A then B within D1 then C within D2``: some chain of rows ``a, b, c`` with
``a.t < b.t <= a.t + D1`` and ``b.t < c.t <= b.t + D2``. Only the time of the last row
reached matters for the next step, so the query keeps, step by step, the distinct
``(person, time)`` of the rows some chain reaches:

    reached_1 = the first step's rows (filter and window)
    reached_k = the k-th step's rows joined to the rows of reached_(k-1) before them

each a subquery read once by the next: every step's rows are read once. A negated last
step (``then not C within D``) keeps the people with a row ``x`` of ``reached_(k-1)``
with ``x.t + D <= T`` and no C row in ``(x.t, x.t + D]``. Times of different sources are
compared as the two-step ``Sequence`` compares them (``ValueLowering.aligned``), and the
steps of ``D`` are taken on naive UTC times.
"""

from __future__ import annotations

from sqlglot import exp

from segql.compile.lower_values import ValueLowering
from segql.compile.sql_build import EVENT_TIME, PERSON_ID, _and, _join, _not, _Row, table_ref
from segql.config import SourceConfig
from segql.language import ast


def funnel_select(builder: ValueLowering, funnel: ast.Funnel) -> exp.Select:
    """The people who went through the funnel (one row each)."""
    source = builder.analyzer.source_of(funnel.first)
    reached = reached_first(builder, funnel.first, source)
    steps = list(funnel.steps)
    last = steps.pop() if funnel.negated else None
    for step in steps:
        then_source = builder.analyzer.source_of(step.spec)
        reached = reached_next(builder, reached, source, step, then_source)
        source = then_source
    earlier = _Row(source, "a")
    people = exp.select(earlier.column(PERSON_ID)).distinct(copy=False)
    people = people.from_(reached.subquery(exp.to_identifier("a", quoted=True)), copy=False)
    if last is None:
        return people
    later = _Row(builder.analyzer.source_of(last.spec), "b")
    missing = _not(exp.Exists(this=later_rows(builder, earlier, later, last)))
    conditions = [missing]
    if last.within is not None:
        until = builder.shift(builder.naive_row_time(earlier), last.within, +1)
        conditions.append(exp.LTE(this=until, expression=builder.now()))
    return people.where(_and(*conditions), copy=False)


def reached_first(builder: ValueLowering, spec: ast.EventSpec, source: SourceConfig) -> exp.Select:
    """The distinct ``(person, time)`` of the first step's rows."""
    row = _Row(source, "a")
    select = (
        exp.select(row.column(PERSON_ID), row.column(EVENT_TIME))
        .distinct(copy=False)
        .from_(table_ref(f"segql_rows_{row.source.name}", alias="a", cte=True), copy=False)
    )
    match = builder.spec_filter(spec, row, where_clause=True)
    return select.where(match, copy=False) if match is not None else select


def reached_next(
    builder: ValueLowering,
    reached: exp.Select,
    source: SourceConfig,
    step: ast.FunnelStep,
    then_source: SourceConfig,
) -> exp.Select:
    """The distinct ``(person, time)`` of a step's rows that follow a row of ``reached``
    (rows of ``source``): a range join, then ``DISTINCT`` (on DuckDB 3.6x faster than the
    same test as a correlated ``EXISTS``, bench/funnels.py)."""
    row = _Row(then_source, "b")
    earlier = _Row(source, "a")
    follows = _follows(builder, earlier, row, step.within)
    select = (
        exp.select(row.column(PERSON_ID), row.column(EVENT_TIME))
        .distinct(copy=False)
        .from_(table_ref(f"segql_rows_{row.source.name}", alias="b", cte=True), copy=False)
    )
    reached_rows = reached.subquery(exp.to_identifier("a", quoted=True), copy=False)
    _join(select, reached_rows, on=_and(*follows), kind="INNER")
    match = builder.spec_filter(step.spec, row, where_clause=True)
    return select.where(match, copy=False) if match is not None else select


def later_rows(
    builder: ValueLowering, earlier: _Row, later: _Row, step: ast.FunnelStep
) -> exp.Select:
    """The step's rows after a reached row ``a`` (within the step's ``D``)."""
    follows = _follows(builder, earlier, later, step.within)
    match = builder.spec_filter(step.spec, later, where_clause=True)
    if match is not None:
        follows.append(match)
    return (
        exp.select(exp.Literal.number(1))
        .from_(table_ref(f"segql_rows_{later.source.name}", alias="b", cte=True), copy=False)
        .where(_and(*follows), copy=False)
    )


def _follows(
    builder: ValueLowering, earlier: _Row, later: _Row, within: ast.Duration | None
) -> list[exp.Expr]:
    """``b.person = a.person``, ``a.t < b.t`` and, with ``within D``, ``b.t <= a.t + D``."""
    a_instant = builder.source_instant(earlier.source)
    b_instant = builder.source_instant(later.source)
    b_time, a_time = builder.aligned(
        later.column(EVENT_TIME), b_instant, earlier.column(EVENT_TIME), a_instant
    )
    follows: list[exp.Expr] = [
        exp.EQ(this=later.column(PERSON_ID), expression=earlier.column(PERSON_ID)),
        exp.GT(this=b_time, expression=a_time),
    ]
    if within is not None:
        until = builder.shift(builder.naive_row_time(earlier), within, +1)
        follows.append(
            exp.LTE(
                this=later.column(EVENT_TIME),
                expression=builder.dialect.as_instant(until) if b_instant else until,
            )
        )
    return follows
