"""Population values as SQL (language.md 9.7): one row of aggregates over everybody.

``quantile(p, x)`` is ``PERCENTILE_CONT(p) WITHIN GROUP (ORDER BY x)`` (linear
interpolation, numpy's default), ``median`` its ``p = 0.5``; ``population_avg``, ``_min``,
``_max`` and ``_count`` are the plain aggregates. Aggregates skip nulls, so the population
is every person whose value is set. Numbers are averaged and interpolated as doubles, so
that every warehouse gives the same value (PostgreSQL's and Snowflake's ``AVG`` of integers
is a decimal of their own scale).
"""

from __future__ import annotations

from sqlglot import exp

from segql.compile.dialect import TYPE


def statistic_select(
    stage: str, value_column: str, func: str, p: float | None, alias: str
) -> exp.Select:
    """``SELECT <aggregate>(value) AS alias FROM stage``: one row, even over no people."""
    value = exp.column(value_column, quoted=True)
    aggregate: exp.Expr
    if func in ("quantile", "median"):
        assert p is not None
        as_double = exp.cast(value, TYPE.DOUBLE, copy=False)
        order = exp.Order(expressions=[exp.Ordered(this=as_double)])
        aggregate = exp.WithinGroup(
            this=exp.PercentileCont(this=exp.Literal.number(p)), expression=order
        )
    elif func == "population_avg":
        aggregate = exp.Avg(this=exp.cast(value, TYPE.DOUBLE, copy=False))
    elif func == "population_min":
        aggregate = exp.Min(this=value)
    elif func == "population_max":
        aggregate = exp.Max(this=value)
    else:
        assert func == "population_count", func
        aggregate = exp.Count(this=value)
    alias_expr = exp.Alias(this=aggregate, alias=exp.Identifier(this=alias, quoted=True))
    return exp.select(alias_expr).from_(exp.to_identifier(stage, quoted=True), copy=False)
