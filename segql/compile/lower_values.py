"""Lowering of conditions and values: the checked AST's expressions as sqlglot, for one
dialect, over the columns of a :class:`segql.compile.query_plan.QueryPlan`.

A person-scope expression reads plan columns: an aggregate, a sequence, a trait, a
referenced segment, a population function or value, a bucket digest and a history read
are each looked up in the plan (a node the planner did not plan is a bug, raised as
``UnplannedError``), never registered here. A row-scope expression (an event filter, a
window's point) reads the columns of its source's ``segql_rows_`` CTE. Times are naive
UTC, or instants where the column holds them; ``aligned`` makes two of them one type.

Logic is two-valued (language.md section 3). SQL's unknown only differs from false under
``NOT``, so leaves are wrapped in ``COALESCE(..., FALSE)`` there and in stored flags.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlglot import exp
from typing_extensions import assert_never

from segql.compile.bucket_sql import bucket_from_hex
from segql.compile.dialect import TYPE, Dialect
from segql.compile.query_plan import QueryPlan
from segql.compile.sql_build import (
    _COMPARISONS,
    _PERIODS,
    _SECONDS,
    EVENT_NAME,
    EVENT_TIME,
    PERSON_ID,
    PROPERTIES,
    _and,
    _entity_alias,
    _is_number,
    _never_null,
    _not,
    _or,
    _person_alias,
    _Row,
    _row_alias,
    _two_valued,
    _wrap,
    table_ref,
)
from segql.config import SourceConfig
from segql.language import ast
from segql.language.catalog import ValueType
from segql.language.checker import PERSON, Analyzer, PersonScope, RowScope, is_relative_point, walk
from segql.language.lists import LIST_COLUMN, read_id_list

if TYPE_CHECKING:
    from segql.compile.compiler import QueryOptions


class ValueLowering:
    """Conditions and values as SQL, over the columns of ``plan`` (set before lowering)."""

    plan: QueryPlan

    def __init__(
        self,
        analyzer: Analyzer,
        dialect: Dialect,
        as_of: datetime | None,
        options: QueryOptions,
    ):
        self.analyzer = analyzer
        self.config = analyzer.config
        self.definitions = analyzer.definitions
        self.dialect = dialect
        self.options = options
        self.members_table = options.members_table
        self.user_table = options.tables or table_ref
        self.person_ids = options.person_ids
        # T as a naive UTC time; compared with a column of instants, as that instant
        # (``now_as``). The bind parameter is the text of a UTC time, read as UTC.
        self.as_of = options.as_of_sql or (
            dialect.naive_time(exp.Placeholder(this="as_of"))
            if as_of is None
            else dialect.time_literal(as_of)
        )

    # --- segments -----------------------------------------------------------------------

    def segment_condition(self, name: str) -> exp.Expr:
        """A segment's predicate (a hysteresis segment: entered, or a member not exited)."""
        segment = self.definitions.segments[name]
        if not segment.is_hysteresis:
            assert segment.where is not None
            return self.condition(segment.where, PERSON, None)
        assert segment.enter is not None and segment.exit is not None
        enter = _two_valued(self.condition(segment.enter, PERSON, None))
        exit_ = _two_valued(self.condition(segment.exit, PERSON, None))
        if self.members_table is None:
            return enter
        stays = _and(self.column_ref(self.plan.current[name]), _not(exit_))
        return _or(enter, stays)

    def column_ref(self, name: str) -> exp.Column:
        return exp.column(name, quoted=True)

    def now(self) -> exp.Expr:
        """The as-of time ``T``, a fresh node each time (a node has one parent)."""
        return self.as_of.copy()

    # --- times: naive UTC, or instants where the column holds them ---------------------

    def now_as(self, instant: bool) -> exp.Expr:
        """``T`` typed to meet a time column: naive UTC, or the instant (``+00:00``)."""
        return self.dialect.as_instant(self.now()) if instant else self.now()

    def source_instant(self, source: SourceConfig) -> bool:
        """Whether a source's time column holds instants (``TIMESTAMPTZ`` and the like)."""
        return source.time is not None and self.analyzer.catalog.holds_instants(
            source.table, source.time
        )

    def holds_instant(self, expr: ast.Expr, scope: PersonScope | RowScope) -> bool:
        """Whether a time expression's SQL is an instant; literals, ``now`` and ``N units
        ago`` are naive UTC, like columns without a time zone."""
        catalog = self.analyzer.catalog
        if isinstance(expr, ast.Name):
            if isinstance(scope, RowScope):
                return catalog.holds_instants(scope.source.table, expr.name)
            if self.analyzer.resolve(expr.name, scope, expr.span).kind == "trait":
                return self.holds_instant(self.definitions.traits[expr.name].expr, PERSON)
            return catalog.holds_instants(self.config.entity.table, expr.name)
        if isinstance(expr, ast.PersonProperty):
            return catalog.holds_instants(self.config.entity.table, expr.name)
        if isinstance(expr, ast.Aggregate):
            source = self.analyzer.source_of(expr.spec)
            if expr.func in ("first_time", "last_time"):
                return self.source_instant(source)
            return expr.prop is not None and catalog.holds_instants(source.table, expr.prop)
        if isinstance(expr, ast.Call) and expr.func in ("coalesce", "least", "greatest"):
            return all(self.holds_instant(a, scope) for a in expr.args)
        return False

    def aligned(
        self, left: exp.Expr, left_instant: bool, right: exp.Expr, right_instant: bool
    ) -> tuple[exp.Expr, exp.Expr]:
        """Two times of one type: where one is an instant, the naive one (UTC) becomes the
        same instant; the engine would otherwise convert it in the session's zone."""
        if left_instant and not right_instant:
            return left, self.dialect.as_instant(right)
        if right_instant and not left_instant:
            return self.dialect.as_instant(left), right
        return left, right

    # --- aggregates over a source's rows -----------------------------------------------

    def shared_sql(self, aggregate: ast.Aggregate, row: _Row, match: exp.Expr | None) -> exp.Expr:
        """An aggregate of the shared pass, over the rows that match."""
        if aggregate.func in _PERIODS:
            return self.period_bitmap(aggregate.func, match, self.source_instant(row.source))
        return self.aggregate_sql(aggregate, row, match)

    def aggregate_sql(
        self, aggregate: ast.Aggregate, row: _Row, match: exp.Expr | None
    ) -> exp.Expr:
        func = aggregate.func
        time = exp.column(EVENT_TIME, quoted=True)
        if func == "count":
            return self.filtered(exp.Count(this=exp.Star()), None, match)
        if aggregate.prop is not None:
            want: ValueType | None = "number" if func in ("sum", "avg", "min", "max") else None
            if func in ("min", "max") and self.prop_type(aggregate) != "json":
                want = None
            value = self.row_value(aggregate.prop, row, want)
            of_values = {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}
            return self.filtered(of_values[func](this=value), value, match)
        assert func in ("first_time", "last_time"), func
        of_times = exp.Min if func == "first_time" else exp.Max
        return self.filtered(of_times(this=time), time, match)

    def distinct_value(self, aggregate: ast.Aggregate, row: _Row) -> exp.Expr | None:
        """What a distinct count counts (None: not a distinct count)."""
        if aggregate.func == "count_distinct":
            assert aggregate.prop is not None
            return self.row_value(aggregate.prop, row, None)
        if aggregate.func in _PERIODS:
            instant = self.source_instant(row.source)
            return self.period(aggregate.func, row.column(EVENT_TIME), instant)
        return None

    def period(self, func: str, time: exp.Expr, instant: bool = False) -> exp.Expr:
        """The calendar day, week or month of a time, in the project's timezone."""
        local = self.local_time(time, instant)
        if func == "active_days":
            return exp.cast(local, TYPE.DATE, copy=False)
        unit = self.dialect.iso_week_unit if func == "active_weeks" else _PERIODS[func].upper()
        return exp.TimestampTrunc(this=local, unit=exp.var(unit))

    def period_bitmap(self, func: str, match: exp.Expr | None, instant: bool = False) -> exp.Expr:
        """``active_*`` over a short window as a bitmap of periods back from T (one bit each,
        counted with ``BIT_COUNT``): an ordinary aggregate in the shared pass."""
        unit = _PERIODS[func]
        time = exp.column(EVENT_TIME, quoted=True)
        back = exp.DateDiff(
            this=self.period(func, self.now()),
            expression=self.period(func, time, instant),
            unit=exp.var(unit.upper()),
        )
        index = exp.Add(this=back, expression=exp.Literal.number(1))
        one = exp.cast(exp.Literal.number(1), TYPE.UBIGINT, copy=False)
        bit = exp.BitwiseLeftShift(this=one, expression=index)
        bits = self.filtered(exp.BitwiseOrAgg(this=bit), bit, match)
        return exp.cast(exp.BitwiseCount(this=bits), TYPE.BIGINT, copy=False)

    def prop_type(self, aggregate: ast.Aggregate) -> ValueType:
        source = self.analyzer.source_of(aggregate.spec)
        assert aggregate.prop is not None
        return self.analyzer.resolve(aggregate.prop, RowScope(source), aggregate.span).type

    def filtered(
        self, aggregate: exp.Expr, value: exp.Expr | None, match: exp.Expr | None
    ) -> exp.Expr:
        """An aggregate over the rows that match: ``FILTER (WHERE ...)`` or ``CASE WHEN``."""
        if match is None:
            return aggregate
        if self.dialect.aggregate_filter:
            return exp.Filter(this=aggregate, expression=exp.Where(this=match))
        kept = exp.Case(ifs=[exp.If(this=match, true=value or exp.Literal.number(1))])
        inner = aggregate.this
        if isinstance(inner, exp.Distinct):
            return aggregate.__class__(this=exp.Distinct(expressions=[kept]))
        return aggregate.__class__(this=kept)

    def local_time(self, time: exp.Expr, instant: bool = False) -> exp.Expr:
        """A time (naive UTC, or an instant) as wall-clock time in the project's timezone,
        for calendar days: the zone is written in the SQL, the session's never counts."""
        return self.dialect.wall_time(time, instant, self.config.warehouse.timezone)

    def spec_filter(
        self, spec: ast.EventSpec, row: _Row, where_clause: bool = False
    ) -> exp.Expr | None:
        """Which rows of the source an event spec keeps (None: every row up to T).

        In a ``WHERE`` clause it is a plain ``AND``, the cheap tests first: the engine pushes
        the name and window into its scan (skipping blocks of rows by their time range) and
        evaluates the rest only on the rows that pass them."""
        cheap: list[exp.Expr] = []
        if row.source.is_events and spec.ref is not None:
            name = exp.Literal.string(spec.ref)
            cheap.append(exp.EQ(this=row.column(EVENT_NAME), expression=name))
        if spec.window is not None:
            cheap.append(self.window(spec.window, row.column(EVENT_TIME), row))
        if spec.where is None:
            return _and(*cheap) if cheap else None
        where = self.condition(spec.where, RowScope(row.source), row)
        if not cheap:
            return where
        if where_clause:
            return _and(*cheap, where)
        # The filter (JSON, text, regular expressions) only for rows of the right event and
        # window: CASE evaluates its THEN for the rows that pass its WHEN, AND may not.
        return exp.Case(ifs=[exp.If(this=_and(*cheap), true=where)])

    def window(self, window: ast.Window, time: exp.Expr, row: _Row | None) -> exp.Expr:
        """A window on a row's time (the time of ``row``'s source)."""
        instant = row is not None and self.source_instant(row.source)
        if isinstance(window, ast.WindowPeriod):
            from segql.compile.calendar import period_test  # it builds on this module

            return period_test(self, window, time, instant, up_to_now=False)
        if isinstance(window, ast.WindowWithin):
            # Source rows are already at or before T: only the lower bound is left to test.
            since = self.shift(self.now(), window.duration, -1)
            since = self.dialect.as_instant(since) if instant else since
            return exp.GT(this=time, expression=since)
        parts = []
        if window.start is not None:
            parts.append(self.time_side("after", time, window.start, row, instant))
        if window.end is not None:
            parts.append(self.time_side("before", time, window.end, row, instant))
        return _and(*parts)

    def within(self, time: exp.Expr, duration: ast.Duration, instant: bool = False) -> exp.Expr:
        since = self.shift(self.now(), duration, -1)
        if instant:
            since = self.dialect.as_instant(since)
        return _and(
            exp.GT(this=time, expression=since),
            exp.LTE(this=time.copy(), expression=self.now_as(instant)),
        )

    def time_side(
        self,
        op: str,
        time: exp.Expr,
        point: ast.Expr,
        row: _Row | None,
        instant: bool = False,
    ) -> exp.Expr:
        """``before``/``after`` a point, on the side language.md gives the point; ``instant``:
        whether ``time`` is one (the point is then typed the same)."""
        scope = PERSON if row is None else RowScope(row.source)
        value = self.value(point, scope, row, "time")
        time, value = self.aligned(time, instant, value, self.holds_instant(point, scope))
        relative = is_relative_point(point)
        if op == "before":
            return time <= value if relative else time < value
        return time > value if relative else time >= value

    def shift(self, time: exp.Expr, duration: ast.Duration, sign: int) -> exp.Expr:
        amount = exp.Literal.number(duration.amount)
        unit = exp.var(duration.unit.upper())
        if sign < 0:
            return exp.DateSub(this=time, expression=amount, unit=unit)
        return exp.DateAdd(this=time, expression=amount, unit=unit)

    def naive_row_time(self, row: _Row) -> exp.Expr:
        """A row's time as naive UTC: steps of days and months are taken there, not in
        the session's zone (as on an instant)."""
        time = row.column(EVENT_TIME)
        return self.dialect.as_naive(time) if self.source_instant(row.source) else time

    # --- conditions --------------------------------------------------------------------

    def condition(
        self, condition: ast.Condition, scope: PersonScope | RowScope, row: _Row | None,
        strict: bool = False,
    ) -> exp.Expr:  # fmt: skip
        """A condition as SQL. ``strict``: an unknown must come out false (under NOT)."""
        match condition:
            case ast.And(items=items):
                return _and(*(self.condition(c, scope, row, strict) for c in items))
            case ast.Or(items=items):
                return _or(*(self.condition(c, scope, row, strict) for c in items))
            case ast.Not(operand=operand):
                return _not(self.condition(operand, scope, row, strict=True))
        predicate = self.predicate(condition, scope, row)
        if strict and self.nullable(condition, scope):
            return _two_valued(predicate)
        return predicate

    def id_list(self, condition: ast.IdList) -> exp.Expr:
        """A list segment: the person's id among the file's ids, or in the table's
        ``person_id`` column (both compared as text)."""
        person = self.column_ref(PERSON_ID)
        if condition.kind == "list":
            entity = self.config.entity
            ids = read_id_list(self.config.root, condition.name, entity.id, condition.span)
            numeric = self.analyzer.catalog.column_type(entity.table, entity.id) == "number"
            if numeric:
                ids = [i for i in ids if _is_number(i)]
                literals = [exp.Literal.number(i) for i in ids]
            else:
                literals = [exp.Literal.string(i) for i in ids]
            return person.isin(*literals) if literals else exp.false()
        *schema, table = condition.name.split(".")
        source = exp.Table(
            this=exp.to_identifier(table, quoted=True),
            db=exp.to_identifier(schema[-1], quoted=True) if schema else None,
        )
        listed = exp.cast(exp.column(LIST_COLUMN, quoted=True), TYPE.VARCHAR, copy=False)
        listed_ids = exp.select(listed).from_(source, copy=False)
        listed_ids = listed_ids.where(
            exp.column(LIST_COLUMN, quoted=True).is_(exp.null()).not_(), copy=False
        )
        text = exp.cast(person, TYPE.VARCHAR, copy=False)
        return exp.In(this=text, query=listed_ids.subquery(copy=False))

    def nullable(self, condition: ast.Condition, scope: PersonScope | RowScope) -> bool:
        """Can SQL give unknown for this predicate? (A guess on the safe side.)"""
        if isinstance(condition, (ast.IsSet, ast.InSegment, ast.Sequence, ast.IdList)):
            return False
        if isinstance(condition, ast.Funnel):
            return False
        operands = [n for n in walk(condition) if isinstance(n, ast.Expr.__args__)]
        return not all(_never_null(n) for n in operands if not isinstance(n, ast.EventSpec))

    def predicate(
        self, condition: ast.Condition, scope: PersonScope | RowScope, row: _Row | None
    ) -> exp.Expr:
        """A condition other than ``and``/``or``/``not`` as SQL."""
        match condition:
            case ast.Compare():
                return self.compare(condition, scope, row)
            case ast.InList():
                return self.in_list(condition, scope, row)
            case ast.Between():
                return self.between(condition, scope, row)
            case ast.TextTest():
                return self.text_test(condition, scope, row)
            case ast.IsSet():
                test = self.value(condition.expr, scope, row, None).is_(exp.null())
                return test if condition.negated else test.not_()
            case ast.TimeTest():
                time = self.value(condition.expr, scope, row, "time")
                instant = self.holds_instant(condition.expr, scope)
                if condition.op == "within":
                    assert isinstance(condition.arg, ast.Duration)
                    return self.within(time, condition.arg, instant)
                return self.time_side(condition.op, time, condition.arg, row, instant)
            case ast.PeriodTest():
                from segql.compile.calendar import period_test  # it builds on this module

                time = self.value(condition.expr, scope, row, "time")
                instant = self.holds_instant(condition.expr, scope)
                return period_test(self, condition.period, time, instant, up_to_now=True)
            case ast.InSegment():
                return self.column_ref(self.plan.flag_column(condition.segment))
            case ast.Sequence() | ast.Funnel():
                return self.column_ref(self.plan.sequence_column(condition))
            case ast.IdList():
                return self.id_list(condition)
            case ast.HistoryTest():
                return self.column_ref(self.plan.history_column(condition))
            case ast.And() | ast.Or() | ast.Not():
                raise TypeError(f"not a condition: {condition!r}")
            case _:
                assert_never(condition)

    def compare(
        self, condition: ast.Compare, scope: PersonScope | RowScope, row: _Row | None
    ) -> exp.Expr:
        left_type, right_type = self.types(condition.left, condition.right, scope)
        left = self.value(condition.left, scope, row, right_type)
        right = self.value(condition.right, scope, row, left_type)
        if "time" in (left_type, right_type):
            left, right = self.aligned(
                left,
                self.holds_instant(condition.left, scope),
                right,
                self.holds_instant(condition.right, scope),
            )
        return _COMPARISONS[condition.op](this=left, expression=right)

    def in_list(
        self, condition: ast.InList, scope: PersonScope | RowScope, row: _Row | None
    ) -> exp.Expr:
        kinds = [self.analyzer.type_of(v, scope) for v in condition.values]
        want: ValueType | None = next((k for k in kinds if k != "null"), None)
        subject = self.value(condition.expr, scope, row, want)
        values = [
            self.value(v, scope, row, self.analyzer.type_of(condition.expr, scope))
            for v in condition.values
            if not isinstance(v, ast.Null)
        ]
        if not values:
            return subject.is_(exp.null()).not_() if condition.negated else exp.false()
        test: exp.Expr = subject.isin(*values)
        return _not(test) if condition.negated else test

    def between(
        self, condition: ast.Between, scope: PersonScope | RowScope, row: _Row | None
    ) -> exp.Expr:
        bounds = [self.analyzer.type_of(b, scope) for b in (condition.low, condition.high)]
        want = next((k for k in bounds if k not in ("null", "json", "any")), None)
        kind = self.analyzer.type_of(condition.expr, scope)
        subject = self.value(condition.expr, scope, row, want)
        low = self.value(condition.low, scope, row, kind)
        high = self.value(condition.high, scope, row, kind)
        if "time" in (kind, want):
            instant = self.holds_instant(condition.expr, scope)
            subject, low = self.aligned(
                subject, instant, low, self.holds_instant(condition.low, scope)
            )
            subject, high = self.aligned(
                subject, instant, high, self.holds_instant(condition.high, scope)
            )
        test = exp.Between(this=subject, low=low, high=high)
        return _not(test) if condition.negated else test

    def types(
        self, left: ast.Expr, right: ast.Expr, scope: PersonScope | RowScope
    ) -> tuple[ValueType, ValueType]:
        """The kinds two compared sides are read as (a text literal beside a time is a time)."""
        left_type = self.analyzer.type_of(left, scope)
        right_type = self.analyzer.type_of(right, scope)
        if left_type in ("json", "any") and right_type in ("json", "any", "null"):
            left_type = right_type = "string"
        return left_type, right_type

    def text_test(
        self, test: ast.TextTest, scope: PersonScope | RowScope, row: _Row | None
    ) -> exp.Expr:
        value = self.value(test.expr, scope, row, "string")
        pattern = exp.Literal.string(test.pattern.value)
        if test.op == "matches":
            return self.dialect.regex_search(value, pattern)
        # Plain string functions, not LIKE: the pattern's % _ and \ stay literal.
        value, pattern_lower = exp.Lower(this=value), exp.Lower(this=pattern)
        if test.op == "contains":
            position = exp.StrPosition(this=value, substr=pattern_lower)
            return position > exp.Literal.number(0)
        length = exp.Length(this=pattern_lower.copy())
        cut = exp.Left if test.op == "starts_with" else exp.Right
        return cut(this=value, expression=length).eq(pattern_lower)

    # --- values ------------------------------------------------------------------------

    def value(
        self,
        expr: ast.Expr,
        scope: PersonScope | RowScope,
        row: _Row | None,
        want: ValueType | None,
    ) -> exp.Expr:
        """An expression as SQL; ``want`` is the kind the context needs (for JSON and text
        literals that stand for times)."""
        match expr:
            case ast.Number():
                return exp.Literal.number(expr.value)
            case ast.String():
                if want == "time":
                    moment = self.analyzer.time_literal(expr)
                    if moment is not None:
                        return self.dialect.time_literal(moment)
                return exp.Literal.string(expr.value)
            case ast.Boolean():
                return exp.Boolean(this=expr.value)
            case ast.Null():
                return exp.null()
            case ast.Now():
                return self.now()
            case ast.Ago():
                return self.shift(self.now(), expr.duration, -1)
            case ast.Name():
                if isinstance(scope, RowScope):
                    assert row is not None
                    return self.row_value(expr.name, row, want)
                resolved = self.analyzer.resolve(expr.name, scope, expr.span)
                if resolved.kind == "trait":
                    return self.column_ref(self.plan.trait_column(expr.name))
                return self.column_ref(_entity_alias(expr.name))
            case ast.PersonProperty():
                if isinstance(scope, RowScope):
                    assert row is not None
                    return row.column(_person_alias(expr.name))
                return self.column_ref(_entity_alias(expr.name))
            case ast.Negate():
                return exp.Neg(this=_wrap(self.value(expr.operand, scope, row, "number")))
            case ast.Arithmetic():
                left = _wrap(self.value(expr.left, scope, row, "number"))
                right = _wrap(self.value(expr.right, scope, row, "number"))
                if expr.op == "/":
                    return exp.Div(
                        this=exp.cast(left, TYPE.DOUBLE, copy=False),
                        expression=exp.Nullif(this=right, expression=exp.Literal.number(0)),
                    )
                operator = {"+": exp.Add, "-": exp.Sub, "*": exp.Mul}[expr.op]
                return operator(this=left, expression=right)
            case ast.Aggregate():
                source = self.analyzer.source_of(expr.spec).name
                return self.column_ref(self.plan.aggregate_column(expr, source))
            case ast.Call():
                return self.call(expr, scope, row, want)
            case ast.CaseWhen():
                return self.case_when(expr, scope, row, want)
            case ast.Duration():
                raise TypeError(f"not an expression: {expr!r}")
            case _:
                assert_never(expr)

    def row_value(self, name: str, row: _Row, want: ValueType | None) -> exp.Expr:
        """A property of a source's row: its column, or a key of its JSON properties."""
        resolved = self.analyzer.resolve(name, RowScope(row.source), None)
        if resolved.kind == "column":
            return row.column(_row_alias(name))
        text = self.dialect.json_text(row.column(PROPERTIES), name)
        cast_to = {"number": "DOUBLE", "boolean": "BOOLEAN", "time": "TIMESTAMP"}.get(want or "")
        return self.dialect.try_cast(text, cast_to) if cast_to else text

    def call(
        self,
        call: ast.Call,
        scope: PersonScope | RowScope,
        row: _Row | None,
        want: ValueType | None,
    ) -> exp.Expr:
        func = call.func
        if func in ast.POPULATION_VALUES or func in ast.POPULATION_FUNCTIONS:
            return self.column_ref(self.plan.population_column(call))
        if func in ast.BUCKET_FUNCTIONS:
            return self.bucket(call)
        if func in ("days_since", "hours_since"):
            time = self.value(call.args[0], scope, row, "time")
            seconds = exp.Sub(
                this=self.dialect.epoch_seconds(self.now(), instant=False),
                expression=self.dialect.epoch_seconds(
                    time, instant=self.holds_instant(call.args[0], scope)
                ),
            )
            per = _SECONDS["day" if func == "days_since" else "hour"]
            return exp.cast(
                exp.Floor(this=exp.Div(this=_wrap(seconds), expression=exp.Literal.number(per))),
                "BIGINT",
            )
        if func in ("lower", "upper", "length"):
            text = self.value(call.args[0], scope, row, "string")
            return {"lower": exp.Lower, "upper": exp.Upper, "length": exp.Length}[func](this=text)
        if func == "abs":
            return exp.Abs(this=self.value(call.args[0], scope, row, "number"))
        if func == "round":
            number = self.value(call.args[0], scope, row, "number")
            digits = (
                self.value(call.args[1], scope, row, "number")
                if len(call.args) > 1
                else exp.Literal.number(0)
            )
            return self.dialect.round_half_away(number, digits)
        kind = self.analyzer.call_type(call, scope)
        args = [self.value(a, scope, row, kind if kind != "any" else want) for a in call.args]
        instants = [self.holds_instant(a, scope) for a in call.args]
        if kind == "time" and any(instants) and not all(instants):  # all naive UTC, then
            pairs = zip(args, instants, strict=True)
            args = [self.dialect.as_naive(a) if i else a for a, i in pairs]
        if func == "coalesce":
            return exp.Coalesce(this=args[0], expressions=args[1:])
        builder = exp.Least if func == "least" else exp.Greatest
        return builder(this=args[0], expressions=args[1:], ignore_nulls=True)

    def bucket(self, call: ast.Call) -> exp.Expr:
        """``bucket(n[, 'salt'])``: from the md5 of the id, a column computed once per salt."""
        buckets = int(call.args[0].value)  # type: ignore[union-attr]
        salt = call.args[1].value if len(call.args) > 1 else self.config.salt  # type: ignore[union-attr]
        digest = self.column_ref(self.plan.bucket_column(str(salt)))
        return bucket_from_hex(digest, buckets, self.dialect.hex_digits)

    def case_when(
        self,
        case: ast.CaseWhen,
        scope: PersonScope | RowScope,
        row: _Row | None,
        want: ValueType | None,
    ) -> exp.Expr:
        """``CASE WHEN``: SQL's unknown and false both pass to the next branch, which is
        two-valued logic already."""
        kind = self.analyzer.type_of(case, scope)
        wanted = want if kind in ("any", "null", "json") else kind
        ifs = [
            exp.If(
                this=self.condition(condition, scope, row),
                true=self.value(value, scope, row, wanted),
            )
            for condition, value in case.branches
        ]
        default = None if case.default is None else self.value(case.default, scope, row, wanted)
        return exp.Case(ifs=ifs, default=default)
