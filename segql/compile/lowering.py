"""A :class:`segql.compile.query_plan.QueryPlan` lowered to one sqlglot query for one dialect.

The lowering walks the plan's nodes and decides nothing: the reads up to stage 0 come
from ``segql.compile.lower_rows``, conditions and values from
``segql.compile.lower_values``; here are the stages on top and the result.

- ``segql_stage_1 .. k``: the plan's per-person columns, each in its stage (a trait, a
  population function or a referenced segment is computed once, in the first stage after
  everything it reads); ``segql_edges_<n>``: the bucket edges of ``qcut`` (and ``ntile``
  where the dialect ranks by edges); ``segql_stat_<n>``: a population value's one row.
- the result: one ``SELECT`` per segment predicate, combined with ``UNION ALL`` (or, for a
  values query, one row per person with each value).
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect as SqlglotDialect
from typing_extensions import assert_never

from segql.compile.bucket_sql import digest_hex
from segql.compile.dialect import TYPE
from segql.compile.lower_rows import RowLowering
from segql.compile.population_values import statistic_select
from segql.compile.query_plan import (
    BucketDigest,
    PlannedColumn,
    PopulationInput,
    PopulationRank,
    PopulationStatistic,
    QueryPlan,
    SegmentFlag,
    TraitValue,
)
from segql.compile.sql_build import (
    _STAGE_0,
    PERSON_ID,
    _alias,
    _and,
    _cte,
    _edge,
    _edges,
    _grouped,
    _join,
    _not,
    _statistic,
    _statistics,
    _two_valued,
    _union_all,
)
from segql.language.checker import PERSON


class Lowering(RowLowering):
    """Writes a plan as SQL: ``lower_membership`` or ``lower_values``."""

    def lower_membership(self, plan: QueryPlan) -> exp.Query:
        """``(segment, person_id)`` for the plan's segment predicates."""
        self.plan = plan
        conditions: dict[str, exp.Expr] = {}
        for predicate in plan.segments:
            name = predicate.segment
            condition = (
                self.column_ref(plan.flag_column(name))
                if predicate.flagged
                else self.segment_condition(name)
            )
            if predicate.excluded:  # priority lists: only the first one a person qualifies for
                taken = [
                    _two_valued(
                        self.column_ref(plan.flag_column(e.segment))
                        if e.flagged
                        else self.segment_condition(e.segment)
                    )
                    for e in predicate.excluded
                ]
                condition = _and(_grouped(_two_valued(condition)), *(_not(t) for t in taken))
            conditions[name] = condition
        ctes = self.base_ctes()
        last = self.stage_ctes(ctes)
        selects = [
            exp.select(
                _alias(exp.Literal.string(name), "segment"),
                exp.column(PERSON_ID, quoted=True),
            )
            .from_(exp.to_identifier(last, quoted=True), copy=False)
            .where(self.only_selected(condition), copy=False)
            for name, condition in conditions.items()
        ]
        query = _union_all(selects)
        if len(selects) > 1 and self.dialect.materialize_ctes:
            ctes[-1].set("materialized", True)
        query.set("with_", exp.With(expressions=ctes))
        return query

    def lower_values(self, plan: QueryPlan) -> exp.Query:
        """``(person_id, <label>...)``: the plan's labelled values, per person."""
        self.plan = plan
        assert plan.values is not None
        columns = {label: self.value(e, PERSON, None, None) for label, e in plan.values.items()}
        ctes = self.base_ctes()
        last = self.stage_ctes(ctes)
        select = exp.select(exp.column(PERSON_ID, quoted=True)).from_(
            exp.to_identifier(last, quoted=True), copy=False
        )
        for label, value in columns.items():
            select = select.select(_alias(value, label), copy=False)
        select = select.where(self.only_selected(exp.true()), copy=False)
        select.set("with_", exp.With(expressions=ctes))
        return select

    def only_selected(self, condition: exp.Expr) -> exp.Expr:
        """A result's condition, limited to ``person_ids`` where the reads are not."""
        if self.person_ids is None or self.plan.pushed:
            return condition
        person = exp.column(PERSON_ID, quoted=True)
        return _and(_grouped(condition), self.person_filter(person, self.config.entity.table))

    # --- stages of person columns ------------------------------------------------------

    def stage_ctes(self, ctes: list[exp.CTE]) -> str:
        """The stages on top of stage 0; returns the last one's name."""
        last = _STAGE_0
        columns = self.plan.columns
        top = max((column.stage for column in columns), default=0)
        for stage in range(1, top + 1):
            name = f"segql_stage_{stage}"
            select = exp.select(exp.Star()).from_(exp.to_identifier(last, quoted=True))
            for column in columns:
                if column.stage != stage:
                    continue
                select = select.select(_alias(self.computed_sql(column), column.name), copy=False)
                if column.name in self.plan.edges:
                    ctes.append(_cte(_edges(column.name), self.edges_select(last, column.name)))
                    _join(select, exp.to_identifier(_edges(column.name), quoted=True), kind="CROSS")
                if isinstance(column.node, PopulationStatistic):
                    values = statistic_select(
                        last,
                        column.node.input_column,
                        column.node.call.func,
                        column.node.p,
                        _statistic(column.name),
                    )
                    ctes.append(_cte(_statistics(column.name), values))
                    statistics = exp.to_identifier(_statistics(column.name), quoted=True)
                    _join(select, statistics, kind="CROSS")
            ctes.append(_cte(name, select))
            last = name
        return last

    def computed_sql(self, column: PlannedColumn) -> exp.Expr:
        """A per-person column's expression, over the columns of earlier stages."""
        node = column.node
        match node:
            case TraitValue(trait=trait):
                return self.value(self.definitions.traits[trait].expr, PERSON, None, None)
            case SegmentFlag(segment=segment):
                return _two_valued(self.segment_condition(segment))
            case PopulationInput(call=call):
                return self.value(call.args[-1], PERSON, None, None)
            case PopulationRank():
                return self.population_sql(node, column.name)
            case PopulationStatistic():
                table = _statistics(column.name)
                return exp.column(_statistic(column.name), table=table, quoted=True)
            case BucketDigest(salt=salt):
                return digest_hex(self.column_ref(PERSON_ID), salt)
            case _:
                assert_never(node)

    # --- population functions ----------------------------------------------------------

    def population_sql(self, rank: PopulationRank, name: str) -> exp.Expr:
        """A population function over everybody's input (null where the input is)."""
        call = rank.call
        value = self.column_ref(rank.input_column)
        func = call.func
        ordered = exp.Order(expressions=[exp.Ordered(this=value.copy(), nulls_first=False)])
        if rank.by_edges:
            buckets_count = int(call.args[0].value)  # type: ignore[union-attr]
            inclusive = func == "ntile"
            result: exp.Expr = self.count_edges_below(value, name, buckets_count, inclusive)
        elif func == "ntile":
            buckets = exp.Literal.number(call.args[0].value)  # type: ignore[union-attr]
            # Nulls where the dialect sorts them by default (no NULLS clause): COUNT(value)
            # counts no null wherever they sort, and BigQuery cannot say NULLS LAST in an
            # aggregate's window (sqlglot used to drop the clause there without a word).
            small = SqlglotDialect.get_or_raise(self.dialect.sqlglot).NULL_ORDERING
            default = exp.Ordered(this=value.copy(), nulls_first=small == "nulls_are_small")
            by_value = exp.Order(expressions=[default])
            at_or_below = exp.Window(this=exp.Count(this=value.copy()), order=by_value)
            everybody = exp.Window(this=exp.Count(this=value.copy()))
            share = exp.Div(
                this=exp.cast(
                    exp.Mul(this=buckets, expression=at_or_below), TYPE.DOUBLE, copy=False
                ),
                expression=everybody,
            )
            result = exp.cast(exp.Ceil(this=share), TYPE.BIGINT, copy=False)
        elif func == "row_number":
            tie_break = exp.Ordered(this=exp.column(PERSON_ID, quoted=True), nulls_first=False)
            ordered.append("expressions", tie_break)
            result = exp.Window(this=exp.RowNumber(), order=ordered)
        else:  # percent_rank, among the people who have a value
            result = exp.Window(
                this=exp.PercentRank(),
                partition_by=[value.copy().is_(exp.null())],
                order=ordered,
            )
        return exp.Case(
            ifs=[exp.If(this=value.copy().is_(exp.null()), true=exp.null())], default=result
        )

    def count_edges_below(
        self, value: exp.Column, number: str, buckets: int, inclusive: bool
    ) -> exp.Expr:
        """``1 +`` how many of the edges ``segql_edges_<rank>`` lie below the value (or at
        it, ``inclusive``): the value's bucket."""
        result: exp.Expr = exp.Literal.number(1)
        for k in range(1, buckets):
            edge = exp.column(_edge(number, k), table=_edges(number), quoted=True)
            below = (exp.LTE if inclusive else exp.LT)(this=edge, expression=value.copy())
            result = exp.Add(
                this=result,
                expression=exp.Case(
                    ifs=[exp.If(this=below, true=exp.Literal.number(1))],
                    default=exp.Literal.number(0),
                ),
            )
        return result

    def edges_select(self, stage: str, column: str) -> exp.Select:
        """One row with the bucket edges of a ``qcut``, or of an ``ntile`` ranked by edges.

        ``qcut``: the quantiles at ``k / buckets``. ``ntile``: with the ``n`` values sorted,
        bucket ``k + 1`` starts at the one at (0-based) position ``floor(k * n / buckets)``,
        since ``ceil(buckets * rank / n) > k`` exactly when ``rank > k * n / buckets``: one
        sort of a list instead of a window sorting every person's row.
        """
        value_name, buckets, func = self.plan.edges[column]
        number = column
        if buckets == 1:  # no edges: one row all the same, not one per person
            return exp.select(_alias(exp.Literal.number(0), f"no_edges_{number}"))
        value = exp.column(value_name, quoted=True)
        sorted_values = exp.column("sorted_values", quoted=True)
        count = exp.column("value_count", quoted=True)
        select = exp.select()
        if func == "qcut":
            select = select.from_(exp.to_identifier(stage, quoted=True), copy=False)
        else:
            values = (
                exp.select(
                    _alias(exp.SortArray(this=exp.ArrayAgg(this=value.copy())), "sorted_values"),
                    _alias(exp.Count(this=value.copy()), "value_count"),
                )
                .from_(exp.to_identifier(stage, quoted=True), copy=False)
                .where(value.copy().is_(exp.null()).not_(), copy=False)
            )
            alias = exp.to_identifier("segql_values", quoted=True)
            select = select.from_(values.subquery(alias, copy=False), copy=False)
        for k in range(1, buckets):
            edge: exp.Expr
            if func == "qcut":
                quantile = exp.PercentileCont(this=exp.Literal.number(k / buckets))
                order = exp.Order(expressions=[exp.Ordered(this=value.copy())])
                edge = exp.WithinGroup(this=quantile, expression=order)
            else:
                below = exp.IntDiv(
                    this=exp.Mul(this=exp.Literal.number(k), expression=count.copy()),
                    expression=exp.Literal.number(buckets),
                )
                position = exp.Add(this=below, expression=exp.Literal.number(1))  # 1-based
                # offset=1: the position is already 1-based (sqlglot would otherwise infer
                # its type on every generation, to shift 0-based literals to the dialect's)
                edge = exp.Bracket(this=sorted_values.copy(), expressions=[position], offset=1)
            select = select.select(_alias(edge, _edge(number, k)), copy=False)
        return select
