"""Lowering of the reads: the people, each source's rows, the aggregate passes and the
aggregates on their own, the sequences and history reads, and stage 0 that joins them.

Every CTE is named ``segql_...`` so that none can shadow a table of the user's:

- ``segql_people``: one row per distinct non-null id with the entity columns the rules use
  (duplicates merged by ``GROUP BY``, unless the warehouse enforces the id unique).
- ``segql_rows_<source>``: each source table read once, with only the columns, event names
  and rows up to ``T`` that the plan says some rule needs.
- ``segql_aggs_<source>`` (or ``segql_pass_<k>_<source>``, one per guard where the
  dialect splits passes): the plan's passes, each a ``GROUP BY person`` of filtered
  aggregates over only the rows its guards keep. ``segql_distinct_<agg>``,
  ``segql_streak_<agg>``, ``segql_last_<agg>``: aggregates on their own.
  ``segql_seq_<n>``: the people who did each sequence; ``segql_hist_<n>``: the people a
  condition on recorded membership holds for.
- ``segql_stage_0``: the people joined to all of those, one row per person.
"""

from __future__ import annotations

from sqlglot import exp
from typing_extensions import assert_never

from segql.compile.dialect import TYPE
from segql.compile.history_sql import (
    HistorySource,
    history_select,
    project_history,
    recorded_select,
)
from segql.compile.lower_values import ValueLowering
from segql.compile.query_plan import SourceNeeds
from segql.compile.reach import Guard
from segql.compile.sql_build import (
    _COUNT_LIKE,
    _PEOPLE,
    _RECORDED,
    _STAGE_0,
    EVENT_NAME,
    EVENT_TIME,
    PERSON_ID,
    PROPERTIES,
    _alias,
    _and,
    _cte,
    _entity_alias,
    _is_number,
    _join,
    _not,
    _or,
    _person_alias,
    _Row,
    _row_alias,
    table_ref,
)
from segql.language import ast


class RowLowering(ValueLowering):
    """The CTEs up to stage 0, as the plan's sources, passes and reads say."""

    @property
    def history_source(self) -> HistorySource:
        """Where conditions on recorded membership read (segql's own tables by default)."""
        return self.options.history or project_history(self.config.warehouse.schema)

    # --- the reads up to stage 0 ---------------------------------------------------------

    def base_ctes(self) -> list[exp.CTE]:
        ctes = [_cte(_PEOPLE, self.people_select())]
        joins: list[str] = []  # CTEs of one row per person, joined to people
        plan = self.plan
        for needs in plan.sources.values():
            rows = f"segql_rows_{needs.source.name}"
            rows_cte = _cte(rows, self.rows_select(needs))
            if plan.pushed and self.dialect.materialize_ctes:
                # One person's rows: read the table once, and let every pass read those few
                # rows, instead of each pass scanning the table for them.
                rows_cte.set("materialized", True)
            elif self.dialect.inline_source_rows:
                rows_cte.set("materialized", False)
            ctes.append(rows_cte)
            for one_pass in plan.passes:
                if one_pass.source == needs.source.name:
                    select = self.aggregates_select(needs, rows, one_pass.guards, one_pass.columns)
                    ctes.append(_cte(one_pass.name, select))
                    joins.append(one_pass.name)
            for column in needs.separate:
                name = needs.held_in[column]
                ctes.append(_cte(name, self.separate_select(needs, column)))
                joins.append(name)
        for sequence, column in plan.sequences.items():
            name = f"segql_seq_{column}"
            ctes.append(_cte(name, self.sequence_select(sequence)))
            joins.append(name)
        if plan.histories:
            segments = [test.segment for test in plan.histories]
            recorded = recorded_select(self.history_source, self.now(), segments)
            ctes.append(_cte(_RECORDED, recorded))
        for test, column in plan.histories.items():
            since = None if test.duration is None else self.shift(self.now(), test.duration, -1)
            ctes.append(_cte(f"segql_hist_{column}", history_select(test, _RECORDED, since)))
        stage = exp.select(exp.column(PERSON_ID, table=_PEOPLE, quoted=True)).from_(
            exp.to_identifier(_PEOPLE, quoted=True)
        )
        for column in sorted(plan.entity_columns):
            stage = stage.select(
                exp.column(_entity_alias(column), table=_PEOPLE, quoted=True), copy=False
            )
        for table in joins:
            on = exp.column(PERSON_ID, table=table, quoted=True).eq(
                exp.column(PERSON_ID, table=_PEOPLE, quoted=True)
            )
            _join(stage, exp.to_identifier(table, quoted=True), on=on, side="LEFT")
        for needs in plan.sources.values():
            for aggregate, column in needs.aggregates.items():
                held = needs.held_in[column]
                value: exp.Expr = exp.column(column, table=held, quoted=True)
                if aggregate.func in _COUNT_LIKE:
                    value = exp.func("COALESCE", value, exp.Literal.number(0))
                stage = stage.select(_alias(value, column), copy=False)
        for column in plan.sequences.values():
            found = exp.column(PERSON_ID, table=f"segql_seq_{column}", quoted=True)
            stage = stage.select(_alias(found.is_(exp.null()).not_(), column), copy=False)
        for segment, column in plan.current.items():
            stage = self.join_current_members(stage, segment, column)
        for column in plan.histories.values():
            stage = self.join_history(stage, column)
        ctes.append(_cte(_STAGE_0, stage))
        return ctes

    def people_select(self) -> exp.Select:
        """One row per distinct non-null id: duplicate rows merged column by column (the
        greatest value), unless the warehouse guarantees the id unique."""
        entity = self.config.entity
        catalog = self.analyzer.catalog
        unique = catalog.is_unique(entity.table, entity.id)
        person = exp.column(entity.id, quoted=True)
        select = exp.select(_alias(person, PERSON_ID)).from_(self.user_table(entity.table, None))
        for column in sorted(self.plan.entity_columns):
            value: exp.Expr = exp.column(column, quoted=True)
            if catalog.column_type(entity.table, column) == "number":
                value = self.dialect.nan_as_null(value)
            if not unique:
                boolean = catalog.column_type(entity.table, column) == "boolean"
                value = exp.LogicalOr(this=value) if boolean else exp.Max(this=value)
            select = select.select(_alias(value, _entity_alias(column)), copy=False)
        select = select.where(person.is_(exp.null()).not_(), copy=False)
        if self.plan.pushed:
            select = select.where(self.person_filter(person.copy(), entity.table), copy=False)
        return select if unique else select.group_by(person.copy(), copy=False)

    def person_filter(self, person: exp.Column, table: str) -> exp.Expr:
        """``person IN (ids)``: numbers where the column is a number (an id that is not
        one matches no one), text otherwise."""
        assert self.person_ids is not None
        ids: list[exp.Expr] = []
        numeric = self.analyzer.catalog.column_type(table, person.name) == "number"
        for person_id in dict.fromkeys(self.person_ids):
            if not numeric:
                ids.append(exp.Literal.string(person_id))
            elif _is_number(person_id):
                ids.append(exp.Literal.number(person_id))
        return person.isin(*ids) if ids else exp.false()

    def rows_select(self, needs: SourceNeeds) -> exp.Select:
        """A source's rows up to T. Rows without a person are not filtered out here: every
        reader meets the people by ``person_id =``, which a null never passes, and the
        test cost DuckDB's scan a tenth of a one-segment query."""
        source = needs.source
        table = "source_rows"
        person = exp.column(source.person, table=table, quoted=True)
        select = exp.select(_alias(person, PERSON_ID)).from_(self.user_table(source.table, table))
        filters: list[exp.Expr] = []
        if self.plan.pushed:
            filters.append(self.person_filter(person.copy(), source.table))
        if source.time is not None:
            time = exp.column(source.time, table=table, quoted=True)
            select = select.select(_alias(time, EVENT_TIME), copy=False)
            filters.append(exp.LTE(this=time, expression=self.now_as(self.source_instant(source))))
        if source.event_name is not None:
            name = exp.column(source.event_name, table=table, quoted=True)
            select = select.select(_alias(name, EVENT_NAME), copy=False)
            if not needs.any_event:
                names = [exp.Literal.string(n) for n in sorted(needs.event_names)]
                filters.append(name.isin(*names))
        for column in sorted(needs.columns):
            value: exp.Expr = exp.column(column, table=table, quoted=True)
            if self.analyzer.catalog.column_type(source.table, column) == "number":
                value = self.dialect.nan_as_null(value)
            select = select.select(_alias(value, _row_alias(column)), copy=False)
        if needs.json:
            assert source.properties is not None
            value = exp.column(source.properties, table=table, quoted=True)
            # JSON in a text column may be malformed: null for that row, not a failed run
            if self.analyzer.catalog.column_type(source.table, source.properties) == "string":
                value = self.dialect.json_or_null(value)
            select = select.select(_alias(value, PROPERTIES), copy=False)
        if needs.person_columns:
            people = exp.to_identifier(_PEOPLE, quoted=True)
            on = exp.column(PERSON_ID, table=_PEOPLE, quoted=True).eq(person)
            _join(select, people, on=on, kind="INNER")
            for column in sorted(needs.person_columns):
                value = exp.column(_entity_alias(column), table=_PEOPLE, quoted=True)
                select = select.select(_alias(value, _person_alias(column)), copy=False)
        return select.where(_and(*filters), copy=False) if filters else select

    # --- aggregates ------------------------------------------------------------------

    def aggregates_select(
        self,
        needs: SourceNeeds,
        rows: str,
        guards: tuple[Guard, ...] | None,
        columns: tuple[str, ...],
    ) -> exp.Select:
        """One pass: ``columns`` over the rows that one of ``guards`` keeps (None: all)."""
        select = exp.select(exp.column(PERSON_ID, quoted=True)).from_(
            exp.to_identifier(rows, quoted=True)
        )
        only = guards[0] if guards and len(guards) == 1 else None  # the WHERE, if one guard
        for column in columns:
            aggregate, row = needs.aggregate_of[column], _Row(needs.source)
            guard = needs.guards.get(column) if column in needs.guard_only else None
            if guard is not None and only is not None and guard.covers(only):
                sql = self.shared_sql(aggregate, row, None)  # no test left
            else:
                sql = self.shared_sql(aggregate, row, self.spec_filter(aggregate.spec, row))
            select = select.select(_alias(sql, column), copy=False)
        select = select.group_by(exp.column(PERSON_ID, quoted=True), copy=False)
        if guards is None:
            return select
        keeps = _or(*(self.guard_sql(g, _Row(needs.source)) for g in guards))
        return select.where(keeps, copy=False)

    def separate_select(self, needs: SourceNeeds, column: str) -> exp.Select:
        """An aggregate on its own: a distinct count over only its rows, or a ``GROUP BY
        person`` over ranked rows (``segql.compile.ranked``)."""
        from segql.compile.ranked import (  # they build on this module
            last_rows_select,
            streak_select,
        )

        aggregate = needs.aggregate_of[column]
        layout = needs.layouts[column]
        match layout:
            case "streak":
                return streak_select(self, aggregate, column)
            case "last_rows":
                return last_rows_select(self, aggregate, column)
            case "distinct":
                row = _Row(needs.source)
                distinct = self.distinct_value(aggregate, row)
                assert distinct is not None
                match = self.spec_filter(aggregate.spec, row, where_clause=True)
                return self.distinct_select(needs, distinct, match, column)
            case "pass" | "bitmap":
                raise AssertionError(f"{column} is computed in a pass, not on its own")
            case _:
                assert_never(layout)

    def guard_sql(self, guard: Guard, row: _Row) -> exp.Expr:
        """The rows a guard keeps: some of its names, after how far back it reaches."""
        parts: list[exp.Expr] = []
        if guard.names is not None:
            names = [exp.Literal.string(n) for n in sorted(guard.names)]
            name = row.column(EVENT_NAME)
            parts.append(name.eq(names[0]) if len(names) == 1 else name.isin(*names))
        if isinstance(guard.reach, ast.Duration):
            since = self.shift(self.now(), guard.reach, -1)
            if self.source_instant(row.source):
                since = self.dialect.as_instant(since)
            parts.append(exp.GT(this=row.column(EVENT_TIME), expression=since))
        elif guard.reach is not None:
            parts.append(self.window(guard.reach, row.column(EVENT_TIME), row))
        return _and(*parts) if parts else exp.true()

    def distinct_select(
        self,
        needs: SourceNeeds,
        value: exp.Expr,
        match: exp.Expr | None,
        column: str,
    ) -> exp.Select:
        """``COUNT(DISTINCT value)`` per person over only the rows that match."""
        count = exp.Count(this=exp.Distinct(expressions=[value]))
        select = (
            exp.select(exp.column(PERSON_ID, quoted=True), _alias(count, column))
            .from_(table_ref(f"segql_rows_{needs.source.name}", cte=True), copy=False)
            .group_by(exp.column(PERSON_ID, quoted=True), copy=False)
        )
        return select.where(match, copy=False) if match is not None else select

    # --- sequences, current members, recorded membership ------------------------------

    def sequence_select(self, sequence: ast.Sequence | ast.Funnel) -> exp.Select:
        """The people who did a sequence (a funnel: ``segql.compile.funnels``), one row each."""
        if isinstance(sequence, ast.Funnel):
            from segql.compile.funnels import funnel_select  # it builds on this module

            return funnel_select(self, sequence)
        return self.two_step_select(sequence)

    def two_step_select(self, sequence: ast.Sequence) -> exp.Select:
        """People with an A row followed (or, negated, not followed) by a B row in time."""
        first = _Row(self.analyzer.source_of(sequence.first), "a")
        then = _Row(self.analyzer.source_of(sequence.then), "b")
        a_instant, b_instant = self.source_instant(first.source), self.source_instant(then.source)
        b_time, a_time = self.aligned(
            then.column(EVENT_TIME), b_instant, first.column(EVENT_TIME), a_instant
        )
        follows: list[exp.Expr] = [
            exp.EQ(this=then.column(PERSON_ID), expression=first.column(PERSON_ID)),
            exp.GT(this=b_time, expression=a_time),
        ]
        if sequence.within is not None:
            until = self.shift(self.naive_row_time(first), sequence.within, +1)
            follows.append(
                exp.LTE(
                    this=then.column(EVENT_TIME),
                    expression=self.dialect.as_instant(until) if b_instant else until,
                )
            )
        then_filter = self.spec_filter(sequence.then, then, where_clause=True)
        if then_filter is not None:
            follows.append(then_filter)
        later = (
            exp.select(exp.Literal.number(1))
            .from_(table_ref(f"segql_rows_{then.source.name}", alias="b", cte=True), copy=False)
            .where(_and(*follows), copy=False)
        )
        found = exp.Exists(this=later)
        # The A rows as distinct (person, time) pairs, filtered first: all the EXISTS reads
        # of them. (Correlated on the raw rows, DuckDB scanned them twice: 1.25x the time.)
        firsts = (
            exp.select(first.column(PERSON_ID), first.column(EVENT_TIME))
            .distinct(copy=False)
            .from_(table_ref(f"segql_rows_{first.source.name}", alias="a", cte=True), copy=False)
        )
        first_filter = self.spec_filter(sequence.first, first, where_clause=True)
        if first_filter is not None:
            firsts = firsts.where(first_filter, copy=False)
        conditions: list[exp.Expr] = []
        if sequence.negated:
            conditions.append(_not(found))
            if sequence.within is not None:
                until = self.shift(self.naive_row_time(first), sequence.within, +1)
                conditions.append(exp.LTE(this=until, expression=self.now()))
        else:
            conditions.append(found)
        return (
            exp.select(first.column(PERSON_ID))
            .distinct(copy=False)
            .from_(firsts.subquery(exp.to_identifier("a", quoted=True), copy=False), copy=False)
            .where(_and(*conditions), copy=False)
        )

    def join_current_members(self, stage: exp.Select, segment: str, column: str) -> exp.Select:
        assert self.members_table is not None
        members = (
            exp.select(exp.column(PERSON_ID, quoted=True))
            .from_(self.members_table.copy())
            .where(exp.column("segment", quoted=True).eq(exp.Literal.string(segment)))
        )
        alias = f"members_{column}"
        return _join_ids(stage, members.subquery(alias, copy=False), alias, column)

    def join_history(self, stage: exp.Select, column: str) -> exp.Select:
        """Stage 0 gains ``column``: whether the person is among the history CTE's ids
        (kept as text)."""
        alias = f"segql_hist_{column}"
        return _join_ids(stage, exp.to_identifier(alias, quoted=True), alias, column)


def _join_ids(stage: exp.Select, ids: exp.Expr, alias: str, column: str) -> exp.Select:
    """Stage 0 gains ``column``: whether the person's id (as text) is among ``ids``, a
    relation of ``person_id`` named ``alias``, left-joined."""
    person = exp.cast(exp.column(PERSON_ID, table=_PEOPLE, quoted=True), TYPE.VARCHAR, copy=False)
    on = exp.column(PERSON_ID, table=alias, quoted=True).eq(person)
    _join(stage, ids, on=on, side="LEFT")
    found = exp.column(PERSON_ID, table=alias, quoted=True).is_(exp.null()).not_()
    return stage.select(_alias(found, column), copy=False)
