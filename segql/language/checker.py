"""Names and types: the checked view of a project's definitions.

``Analyzer`` resolves every name against segql.toml and the warehouse catalog and gives
every expression its kind of value. The compiler asks it the same questions when it
emits SQL; ``check_definitions`` walks everything once and collects every error with its
location, before any SQL exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, partial

from typing_extensions import assert_never

from segql.config import ProjectConfig, SourceConfig
from segql.errors import (
    SegqlDefinitionError,
    SegqlError,
    SegqlErrors,
    SegqlNameError,
    SegqlTypeError,
    Span,
    unknown_name_message,
)
from segql.language import ast
from segql.language.catalog import Catalog, ValueType
from segql.language.lists import LIST_COLUMN, read_id_list
from segql.timeutil import parse_time_literal


@dataclass(frozen=True)
class PersonScope:
    """A segment condition or trait: names are traits or columns of the entity table."""


@dataclass(frozen=True)
class RowScope:
    """Inside an event spec's ``where``: names are columns or JSON keys of one source's rows."""

    source: SourceConfig


Scope = PersonScope | RowScope
PERSON = PersonScope()


@dataclass(frozen=True)
class Resolved:
    """What a name stands for: a trait, a column, or a key of a JSON properties column."""

    kind: str  # "trait" | "column" | "json"
    name: str
    type: ValueType


@dataclass(frozen=True)
class Definitions:
    """All segments and traits of a project, by name, each with its text for versioning."""

    segments: Mapping[str, ast.Segment]
    traits: Mapping[str, ast.Trait]
    priorities: tuple[ast.Priority, ...] = ()

    def priority_over(self, segment: str) -> tuple[str, ...]:
        """The segments before ``segment`` in its priority list: a person in one of them
        is not a member of it."""
        for priority in self.priorities:
            if segment in priority.segments:
                return priority.segments[: priority.segments.index(segment)]
        return ()

    @classmethod
    def from_modules(cls, modules: Iterable[ast.Module]) -> Definitions:
        """Gather definitions; a name defined twice is an error naming both places."""
        modules = list(modules)
        segments: dict[str, ast.Segment] = {}
        traits: dict[str, ast.Trait] = {}
        errors: list[SegqlError] = []
        for module in modules:
            for definition in module.definitions:
                existing = segments.get(definition.name) or traits.get(definition.name)
                if existing is not None:
                    errors.append(
                        SegqlDefinitionError(
                            f"'{definition.name}' is defined twice",
                            definition.span,
                            help=f"the first definition is at {existing.span}",
                        )
                    )
                elif isinstance(definition, ast.Segment):
                    segments[definition.name] = definition
                else:
                    traits[definition.name] = definition
        if errors:
            raise SegqlErrors(errors)
        priorities = tuple(p for module in modules for p in module.priorities)
        return cls(segments, traits, priorities)


class Analyzer:
    """Answers what names mean and what kind of value expressions have, for one project."""

    def __init__(self, config: ProjectConfig, catalog: Catalog, definitions: Definitions):
        self.config = config
        self.catalog = catalog
        self.definitions = definitions
        self._trait_types: dict[str, ValueType] = {}

    # --- names -------------------------------------------------------------------------

    @cached_property
    def entity_columns(self) -> Mapping[str, ValueType] | None:
        return self.catalog.columns(self.config.entity.table)

    def source_of(self, spec: ast.EventSpec) -> SourceConfig:
        """The table an event spec reads: a declared source, or the events table."""
        if spec.ref is not None and spec.ref in self.config.sources:
            return self.config.sources[spec.ref]
        if self.config.events is None:
            sources = ", ".join(self.config.sources) or "none"
            raise SegqlNameError(
                unknown_name_message("source", spec.ref or "any", self.config.sources),
                spec.span,
                help=f"this project declares no [events] table; its sources are: {sources}",
            )
        return self.config.events

    def resolve(self, name: str, scope: Scope, span: Span | None) -> Resolved:
        """A bare name in a scope."""
        if isinstance(scope, RowScope):
            return self._resolve_row(name, scope.source, span)
        if name in self.definitions.traits:
            return Resolved("trait", name, self.trait_type(name))
        return self.resolve_person(name, span)

    def resolve_person(self, name: str, span: Span | None) -> Resolved:
        """A column of the entity table (``person.x``, or a bare name that is not a trait)."""
        kind = self.catalog.column_type(self.config.entity.table, name)
        if kind is None:
            columns = list(self.entity_columns or ())
            candidates = [*columns, *self.definitions.traits]
            raise SegqlNameError(
                unknown_name_message("property", name, candidates),
                span,
                help=_listing(f"properties of {self.config.entity.table}", columns)
                + _listing("; traits", list(self.definitions.traits)),
            )
        return Resolved("column", name, kind)

    def _resolve_row(self, name: str, source: SourceConfig, span: Span | None) -> Resolved:
        kind = self.catalog.column_type(source.table, name)
        if kind is not None and (self.catalog.is_known or source.properties is None):
            return Resolved("column", name, kind)
        if source.properties is not None:
            return Resolved("json", name, "json")
        columns = list(self.catalog.columns(source.table) or ())
        raise SegqlNameError(
            unknown_name_message("property", name, columns),
            span,
            help=_listing(f"columns of {source.table}", columns)
            + "; `person.x` names a property of the person",
        )

    def trait_type(self, name: str) -> ValueType:
        if name not in self._trait_types:
            self._trait_types[name] = "any"  # a cycle is reported by check_cycles
            trait = self.definitions.traits[name]
            self._trait_types[name] = self.type_of(trait.expr, PERSON)
        return self._trait_types[name]

    # --- types -------------------------------------------------------------------------

    def type_of(self, expr: ast.Expr, scope: Scope) -> ValueType:
        """The kind of value of an expression (assuming it checks)."""
        match expr:
            case ast.Number():
                return "number"
            case ast.String():
                return "string"
            case ast.Boolean():
                return "boolean"
            case ast.Null():
                return "null"
            case ast.Duration():
                return "duration"
            case ast.Now() | ast.Ago():
                return "time"
            case ast.Name():
                return self.resolve(expr.name, scope, expr.span).type
            case ast.PersonProperty():
                return self.resolve_person(expr.name, expr.span).type
            case ast.Negate() | ast.Arithmetic():
                return "number"
            case ast.Aggregate():
                return self.aggregate_type(expr)
            case ast.Call():
                return self.call_type(expr, scope)
            case ast.CaseWhen():
                return self.case_type(expr, scope)
            case _:
                assert_never(expr)

    def case_type(self, case: ast.CaseWhen, scope: Scope) -> ValueType:
        """The one kind of a ``case`` expression's branches (language.md 9.8)."""
        return _common_type(self.type_of(value, scope) for value in case_values(case)) or "any"

    def aggregate_type(self, aggregate: ast.Aggregate) -> ValueType:
        if aggregate.func in ("first_time", "last_time"):
            return "time"
        if aggregate.func in ("min", "max") and aggregate.prop is not None:
            source = self.source_of(aggregate.spec)
            kind = self._resolve_row(aggregate.prop, source, aggregate.span).type
            return "number" if kind == "json" else kind
        return "number"

    def call_type(self, call: ast.Call, scope: Scope) -> ValueType:
        if call.func in ("population_min", "population_max"):
            return self.type_of(call.args[0], scope)
        if call.func in ("lower", "upper"):
            return "string"
        if call.func in ("coalesce", "least", "greatest"):
            kinds = [self.type_of(arg, scope) for arg in call.args]
            return _common_type(kinds) or "any"
        return "number"

    def time_literal(self, literal: ast.String) -> datetime | None:
        return parse_time_literal(literal.value, self.config.tzinfo)


def _listing(label: str, names: list[str], limit: int = 12) -> str:
    if not names:
        return ""
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f"{label}: {shown}"


def _common_type(kinds: Iterable[ValueType]) -> ValueType | None:
    """The one kind a set of values shares; null, json and any fit every kind."""
    concrete = {k for k in kinds if k not in ("null", "any", "json")}
    if len(concrete) > 1:
        return None
    return next(iter(concrete), "any")


def is_relative_point(expr: ast.Expr) -> bool:
    """``now`` and ``N units ago`` are points relative to T: they belong to the past side."""
    return isinstance(expr, (ast.Now, ast.Ago))


# --- the checking walk ---------------------------------------------------------------------


class Checker:
    """Walks every definition once and collects errors (not stopping at the first)."""

    def __init__(self, analyzer: Analyzer):
        self.analyzer = analyzer
        self.errors: list[SegqlError] = []

    def check(self) -> None:
        definitions = self.analyzer.definitions
        self.errors.extend(check_depth(definitions) or check_cycles(definitions))
        if self.errors:
            return  # types of a cycle cannot be known; report it alone
        for trait in definitions.traits.values():
            self._guard(partial(self.expr, trait.expr, PERSON))
        for segment in definitions.segments.values():
            for condition in (segment.where, segment.enter, segment.exit):
                if condition is not None:
                    self._guard(partial(self.condition, condition, PERSON))
        self.check_priorities()

    def check_priorities(self) -> None:
        """A priority list names two or more segments, each once in the whole project."""
        definitions = self.analyzer.definitions
        listed: dict[str, ast.Priority] = {}
        for priority in definitions.priorities:
            if len(priority.segments) < 2:
                self.errors.append(
                    SegqlDefinitionError(
                        "a priority list names at least two segments", priority.span
                    )
                )
            for name in priority.segments:
                if name not in definitions.segments:
                    message = unknown_name_message("segment", name, definitions.segments)
                    self.errors.append(SegqlNameError(message, priority.span))
                elif name in listed:
                    self.errors.append(
                        SegqlDefinitionError(
                            f"segment '{name}' is in more than one priority list"
                            if listed[name] is not priority
                            else f"segment '{name}' is named twice in this priority list",
                            priority.span,
                        )
                    )
                listed[name] = priority

    def _guard(self, work: Callable[[], object]) -> None:
        try:
            work()
        except SegqlErrors as errors:
            self.errors.extend(errors.errors)
        except SegqlError as error:
            self.errors.append(error)

    # --- conditions --------------------------------------------------------------------

    def condition(self, condition: ast.Condition, scope: Scope) -> None:
        match condition:
            case ast.And() | ast.Or():
                for item in condition.items:
                    self._guard(partial(self.condition, item, scope))
            case ast.Not():
                self.condition(condition.operand, scope)
            case ast.Compare():
                self.compare(condition, scope)
            case ast.InList():
                kind = self.expr(condition.expr, scope)
                for value in condition.values:
                    if not _is_literal(value):
                        raise SegqlTypeError(
                            "'in' takes a list of literal values", value.span,
                            help="write the values out: status in ('trial', 'paid')",
                        )  # fmt: skip
                    self.comparable(kind, value, scope, condition.span)
            case ast.Between():
                kind = self.expr(condition.expr, scope)
                for bound in (condition.low, condition.high):
                    self.expr(bound, scope)
                    self.comparable(kind, bound, scope, condition.span)
            case ast.TextTest():
                kind = self.expr(condition.expr, scope)
                if kind not in ("string", "json", "any", "null"):
                    op = condition.op.replace("_", " ")
                    raise SegqlTypeError(
                        f"'{op}' tests text, but this is a {kind}", condition.expr.span
                    )
                if condition.op == "matches":
                    self.regex(condition.pattern)
            case ast.IsSet():
                self.expr(condition.expr, scope)
            case ast.TimeTest():
                self.time_test(condition, scope)
            case ast.InSegment():
                self.in_segment(condition, scope)
            case ast.IdList():
                if condition.kind == "list":
                    config = self.analyzer.config
                    read_id_list(config.root, condition.name, config.entity.id, condition.span)
                else:
                    self.id_table(condition)
            case ast.Sequence():
                self.sequence(condition, scope)
            case ast.HistoryTest():
                self.history_test(condition, scope)
            case ast.Funnel():
                self.funnel(condition, scope)
            case ast.PeriodTest():
                self.period_test(condition, scope)
            case _:
                assert_never(condition)
    def id_table(self, condition: ast.IdList) -> None:
        """``from table schema.table``: the table exists and has a ``person_id`` column
        (where the warehouse's catalog was read)."""
        catalog = self.analyzer.catalog
        if not catalog.is_known:
            return
        columns = catalog.columns(condition.name)
        if columns is None or not catalog.has_table(condition.name):
            raise SegqlNameError(
                f"table '{condition.name}' of this list segment does not exist in the warehouse",
                condition.span,
            )
        if LIST_COLUMN not in columns:
            found = ", ".join(sorted(columns)) or "none"
            raise SegqlNameError(
                f"table '{condition.name}' of this list segment has no '{LIST_COLUMN}' column"
                f" (its columns: {found})",
                condition.span,
            )

    def compare(self, compare: ast.Compare, scope: Scope) -> None:
        left = self.expr(compare.left, scope)
        try:
            right = self.expr(compare.right, scope)
        except SegqlNameError as error:
            # `country = DE`: a bare word meant as text, not a misspelt property
            if left == "string" and isinstance(compare.right, ast.Name) and "?" not in str(error):
                word = compare.right.name.replace("'", "''")
                error.help = f"to compare with the text {compare.right.name}, quote it: '{word}'"
            raise
        if right == "time" and isinstance(compare.left, ast.String):
            self.time_literal(compare.left)
        else:
            self.comparable(left, compare.right, scope, compare.span)
        if compare.op not in ("=", "!=") and left == "boolean":
            raise SegqlTypeError(
                f"'{compare.op}' does not order true and false", compare.span,
                help="compare booleans with = or !=",
            )  # fmt: skip

    def comparable(
        self, left: ValueType, right_expr: ast.Expr, scope: Scope, span: Span | None
    ) -> None:
        """The right side may meet the left: same kind, or a string literal that is a time."""
        right = self.analyzer.type_of(right_expr, scope)
        if left == "time" and isinstance(right_expr, ast.String):
            self.time_literal(right_expr)
            return
        if _common_type([left, right]) is None:
            raise SegqlTypeError(
                f"cannot compare a {left} with a {right}",
                span,
                help=_COMPARE_HELP.get((left, right)),
            )

    def time_test(self, test: ast.TimeTest, scope: Scope) -> None:
        kind = self.expr(test.expr, scope)
        if kind not in ("time", "json", "any", "null"):
            raise SegqlTypeError(
                f"'{test.op}' tests a time, but this is a {kind}",
                test.expr.span,
                help="time tests apply to time columns and to first_time(...), last_time(...)",
            )
        if test.op == "within":
            if not isinstance(test.arg, ast.Duration):
                raise SegqlTypeError("'within' takes a duration such as 30 days", test.arg.span)
            return
        self.time_point(test.arg, scope)

    def time_point(self, point: ast.Expr, scope: Scope) -> None:
        if isinstance(point, ast.String):
            self.time_literal(point)
            return
        kind = self.expr(point, scope)
        if kind not in ("time", "json", "any", "null"):
            raise SegqlTypeError(
                f"expected a time, found a {kind}",
                point.span,
                help="a time is now, 30 days ago, '2026-01-01' or a time column",
            )

    def time_literal(self, literal: ast.String) -> None:
        if self.analyzer.time_literal(literal) is None:
            raise SegqlTypeError(
                f"'{literal.value}' is not a time",
                literal.span,
                help="write a time as 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'",
            )

    def regex(self, pattern: ast.String) -> None:
        import re

        try:
            re.compile(pattern.value)
        except re.error as error:
            raise SegqlTypeError(f"invalid regular expression: {error.msg}", pattern.span) from None
        problem = unportable_regex(pattern.value)
        if problem is not None:
            raise SegqlTypeError(
                f"regular expression uses {problem}, which not every warehouse accepts",
                pattern.span,
                help="use the POSIX ERE subset: . [] [^] * + ? {m,n} | () ^ $ and \\d \\w \\s",
            )

    def in_segment(self, condition: ast.InSegment, scope: Scope) -> None:
        if isinstance(scope, RowScope):
            raise SegqlTypeError(
                "'in SEGMENT' tests a person, not an event row", condition.span,
                help="move it out of the event filter",
            )  # fmt: skip
        segments = self.analyzer.definitions.segments
        if condition.segment not in segments:
            raise SegqlNameError(
                unknown_name_message("segment", condition.segment, segments), condition.span
            )

    def sequence(self, sequence: ast.Sequence, scope: Scope) -> None:
        if isinstance(scope, RowScope):
            raise SegqlTypeError("a sequence cannot stand inside an event filter", sequence.span)
        for spec in (sequence.first, sequence.then):
            self.no_last_rows_in_step(spec)
            source = self.spec(spec)
            if source.time is None:
                raise SegqlTypeError(
                    f"source '{source.name}' has no time column, so it cannot be in a sequence",
                    spec.span,
                    help=f'set time = "..." in [sources.{source.name}]',
                )

    def funnel(self, funnel: ast.Funnel, scope: Scope) -> None:
        """Funnels of three steps or more (language v2): only the first step takes a window,
        ``then not`` only ends one (the parser refuses both; trees can be built by hand)."""
        if isinstance(scope, RowScope):
            raise SegqlTypeError("a funnel cannot stand inside an event filter", funnel.span)
        for step in funnel.steps:
            if step.spec.window is not None or step.spec.last is not None:
                raise SegqlTypeError(
                    "only the first step of a funnel takes a window", step.spec.span,
                    help="a later step is measured from the step before it: "
                    "`then STEP within 7 days`",
                )  # fmt: skip
        for spec in (funnel.first, *(step.spec for step in funnel.steps)):
            self.no_last_rows_in_step(spec)
            source = self.spec(spec)
            if source.time is None:
                raise SegqlTypeError(
                    f"source '{source.name}' has no time column, so it cannot be in a funnel",
                    spec.span,
                    help=f'set time = "..." in [sources.{source.name}]',
                )

    def no_last_rows_in_step(self, spec: ast.EventSpec) -> None:
        if spec.last is not None:
            raise SegqlTypeError(
                "'among last' is not allowed in a step of a sequence", spec.span,
                help="a step takes a filter, and the first step a window: "
                "`did quiz within 30 days then ...`",
            )  # fmt: skip

    def period_test(self, test: ast.PeriodTest, scope: Scope) -> None:
        kind = self.expr(test.expr, scope)
        if kind not in ("time", "json", "any", "null"):
            raise SegqlTypeError(
                f"a calendar period tests a time, but this is a {kind}",
                test.expr.span,
                help="time tests apply to time columns and to first_time(...), last_time(...)",
            )

    # --- expressions -------------------------------------------------------------------

    def expr(self, expr: ast.Expr, scope: Scope) -> ValueType:
        """Check an expression and return its kind of value."""
        analyzer = self.analyzer
        if isinstance(expr, ast.Duration):
            raise SegqlTypeError(
                "a duration is not a value here",
                expr.span,
                help=f"write '{expr.amount} {expr.unit}s ago' for a time, or use it after 'within'",
            )
        if isinstance(expr, ast.Name):
            return analyzer.resolve(expr.name, scope, expr.span).type
        if isinstance(expr, ast.PersonProperty):
            return analyzer.resolve_person(expr.name, expr.span).type
        if isinstance(expr, ast.Negate):
            self.number(expr.operand, scope, "'-'")
            return "number"
        if isinstance(expr, ast.Arithmetic):
            self.number(expr.left, scope, f"'{expr.op}'")
            self.number(expr.right, scope, f"'{expr.op}'")
            return "number"
        if isinstance(expr, ast.Aggregate):
            self.aggregate(expr, scope)
            return analyzer.aggregate_type(expr)
        if isinstance(expr, ast.Call):
            self.call(expr, scope)
            return analyzer.call_type(expr, scope)
        if isinstance(expr, ast.CaseWhen):
            return self.case_when(expr, scope)
        return analyzer.type_of(expr, scope)

    def number(self, expr: ast.Expr, scope: Scope, what: str) -> None:
        kind = self.expr(expr, scope)
        if kind not in ("number", "json", "any", "null"):
            raise SegqlTypeError(f"{what} takes numbers, but this is a {kind}", expr.span)

    def spec(self, spec: ast.EventSpec) -> SourceConfig:
        source = self.analyzer.source_of(spec)
        scope = RowScope(source)
        if spec.where is not None:
            self.condition(spec.where, scope)
        window = spec.window
        if window is not None and source.time is None:
            raise SegqlTypeError(
                f"source '{source.name}' has no time column, so it takes no window",
                window.span,
                help=f'set time = "..." in [sources.{source.name}] to use windows',
            )
        if isinstance(window, ast.WindowRange):
            for point in (window.start, window.end):
                if point is not None:
                    self.time_point(point, scope)
        self.among_last(spec, source)
        return source

    def among_last(self, spec: ast.EventSpec, source: SourceConfig) -> None:
        """``among last N`` ranks rows by time and takes no other window."""
        if spec.last is None:
            return
        if spec.window is not None:
            raise SegqlTypeError(
                "'among last' takes no other window", spec.window.span or spec.span,
                help=f"the last {spec.last} rows are the newest up to the as-of time; "
                "drop the window, or drop 'among last' and keep the window",
            )  # fmt: skip
        if source.time is None:
            raise SegqlTypeError(
                f"source '{source.name}' has no time column, so it has no last rows",
                spec.span,
                help=f'set time = "..." in [sources.{source.name}]',
            )

    def aggregate(self, aggregate: ast.Aggregate, scope: Scope) -> None:
        if isinstance(scope, RowScope):
            raise SegqlTypeError(
                f"{aggregate.func}() cannot stand inside an event filter", aggregate.span
            )
        source = self.spec(aggregate.spec)
        if aggregate.prop is not None:
            kind = self.analyzer.resolve(aggregate.prop, RowScope(source), aggregate.span).type
            if aggregate.func in ("sum", "avg") and kind not in ("number", "json", "any"):
                raise SegqlTypeError(
                    f"{aggregate.func}() adds numbers, but '{aggregate.prop}' is a {kind}",
                    aggregate.span,
                )
        if aggregate.func == "streak" and (
            aggregate.spec.window is not None or aggregate.spec.last is not None
        ):
            what = aggregate.spec.window or aggregate.spec
            raise SegqlTypeError(
                "streak() takes no window", what.span or aggregate.span,
                help="a streak ends at the current period (or the one before it): "
                "write streak(quiz_completed, day)",
            )  # fmt: skip
        needs_time = aggregate.func in ("first_time", "last_time", "streak", *_ACTIVE)
        if needs_time and source.time is None:
            raise SegqlTypeError(
                f"{aggregate.func}() needs times, and source '{source.name}' has none",
                aggregate.span,
            )

    def call(self, call: ast.Call, scope: Scope) -> None:
        if call.func in ast.BUCKET_FUNCTIONS or call.func in ast.POPULATION_VALUES:
            self.lang2_call(call, scope)
            return
        kinds = [self.expr(arg, scope) for arg in call.args]
        func = call.func
        if func in ast.POPULATION_FUNCTIONS and isinstance(scope, RowScope):
            raise SegqlTypeError(
                f"{func}() ranks people, so it cannot stand inside an event filter", call.span
            )
        if func in ("ntile", "qcut"):
            buckets = call.args[0]
            if not (isinstance(buckets, ast.Number) and isinstance(buckets.value, int)):
                raise SegqlTypeError(
                    f"the first argument of {func}() is a whole number of buckets", buckets.span
                )
            if buckets.value < 1:
                raise SegqlTypeError(f"{func}() needs at least 1 bucket", buckets.span)
            kinds = kinds[1:]
        expected = _ARGUMENT_KINDS.get(func)
        if expected is None:
            if _common_type(kinds) is None:
                raise SegqlTypeError(f"the arguments of {func}() are of different kinds", call.span)
            return
        args = call.args[-len(kinds) :] if kinds else ()
        for arg, kind in zip(args, kinds, strict=True):
            if kind not in (*expected, "json", "any", "null"):
                wanted = " or ".join(expected)
                raise SegqlTypeError(f"{func}() takes a {wanted}, but this is a {kind}", arg.span)

    # --- v2: lang2 (language.md 9.5 to 9.8) ---------------------------------------------

    def lang2_call(self, call: ast.Call, scope: Scope) -> None:
        """``bucket(n[, 'salt'])`` and the population values (``quantile`` and the rest)."""
        func = call.func
        if isinstance(scope, RowScope):
            what = "reads the person's id" if func == "bucket" else "is a value over everybody"
            raise SegqlTypeError(
                f"{func}() {what}, so it cannot stand inside an event filter", call.span,
                help="move it out of the event filter",
            )  # fmt: skip
        if func == "bucket":
            count = call.args[0]
            if not (isinstance(count, ast.Number) and isinstance(count.value, int)):
                raise SegqlTypeError(
                    "the first argument of bucket() is a whole number of buckets",
                    count.span,
                    help="for example bucket(100) < 10 for a stable 10%",
                )
            if count.value < 1:
                raise SegqlTypeError("bucket() needs at least 1 bucket", count.span)
            if len(call.args) > 1 and not isinstance(call.args[1], ast.String):
                raise SegqlTypeError(
                    "the salt of bucket() is a quoted text", call.args[1].span,
                    help="for example bucket(100, 'spring_promo')",
                )  # fmt: skip
            return
        if func == "quantile":
            p = call.args[0]
            if not isinstance(p, ast.Number):
                raise SegqlTypeError(
                    "the first argument of quantile() is a number from 0 to 1", p.span,
                    help="for example quantile(0.8, lifetime_value)",
                )  # fmt: skip
            if not 0 <= p.value <= 1:
                raise SegqlTypeError(
                    f"quantile() takes p from 0 to 1, found {p.value}", p.span,
                    help="the 80th percentile is quantile(0.8, ...)",
                )  # fmt: skip
        value = call.args[-1]
        kind = self.expr(value, scope)
        wanted: tuple[ValueType, ...] = _POPULATION_VALUE_KINDS[func]
        if wanted and kind not in (*wanted, "json", "any", "null"):
            raise SegqlTypeError(
                f"{func}() takes a {' or '.join(wanted)}, but this is a {kind}", value.span
            )

    def case_when(self, case: ast.CaseWhen, scope: Scope) -> ValueType:
        """Each condition checked, and every branch of one kind (language.md 9.8)."""
        for condition, _ in case.branches:
            self._guard(partial(self.condition, condition, scope))
        kinds = [(value, self.expr(value, scope)) for value in case_values(case)]
        known = [(value, kind) for value, kind in kinds if kind not in ("null", "any", "json")]
        for value, kind in known[1:]:
            if kind != known[0][1]:
                raise SegqlTypeError(
                    f"the branches of case are of one kind: this is a {kind}, "
                    f"the first is a {known[0][1]}",
                    value.span,
                    help="give every branch values of one kind (numbers, texts, times)",
                )
        return known[0][1] if known else "null"

    def history_test(self, test: ast.HistoryTest, scope: Scope) -> None:
        """The segment named has a definition (it may be the segment being defined)."""
        if isinstance(scope, RowScope):
            raise SegqlTypeError(
                "a condition on recorded membership is about the person, not an event row",
                test.span,
                help="move it out of the event filter",
            )
        segments = self.analyzer.definitions.segments
        if test.segment not in segments:
            raise SegqlNameError(
                unknown_name_message("segment", test.segment, segments), test.span
            )


def case_values(case: ast.CaseWhen) -> list[ast.Expr]:
    """The values a ``case`` can give: every branch's, and the ``else``."""
    values = [value for _, value in case.branches]
    return values if case.default is None else [*values, case.default]


# The kinds each population value takes (empty: any kind).
_POPULATION_VALUE_KINDS: dict[str, tuple[ValueType, ...]] = {
    "quantile": ("number",),
    "median": ("number",),
    "population_avg": ("number",),
    "population_min": ("number", "time"),
    "population_max": ("number", "time"),
    "population_count": (),
}

_ACTIVE = ("active_days", "active_weeks", "active_months")
_ARGUMENT_KINDS: dict[str, tuple[ValueType, ...]] = {
    "days_since": ("time",),
    "hours_since": ("time",),
    "lower": ("string",),
    "upper": ("string",),
    "length": ("string",),
    "abs": ("number",),
    "round": ("number",),
    "ntile": ("number", "time"),
    "qcut": ("number",),
    "row_number": ("number", "time", "string"),
    "percent_rank": ("number", "time"),
}
_COMPARE_HELP: dict[tuple[str, str], str] = {
    ("number", "string"): "quote numbers only when the column holds text",
    ("string", "number"): "write the number in quotes if the column holds text",
    ("time", "number"): "compare times with times: days_since(t) > 30 counts days",
}


def _is_literal(expr: ast.Expr) -> bool:
    return isinstance(expr, (ast.Number, ast.String, ast.Boolean, ast.Null))


# How deep traits may build on traits (and segments on segments): far more than rules
# need, and well inside what the compiler's and sqlglot's recursion can take.
MAX_REFERENCE_DEPTH = 100


def reference_graph(definitions: Definitions) -> dict[str, list[tuple[str, Span | None]]]:
    """Who refers to whom: traits to traits, ``segment a`` to ``segment b``."""
    graph: dict[str, list[tuple[str, Span | None]]] = {}
    for name, trait in definitions.traits.items():
        graph[name] = [
            (n.name, n.span) for n in walk_names(trait.expr) if n.name in definitions.traits
        ]
    for name, segment in definitions.segments.items():
        edges: list[tuple[str, Span | None]] = []
        for condition in (segment.where, segment.enter, segment.exit):
            if condition is not None:
                edges += [
                    (s.segment, s.span) for s in walk(condition) if isinstance(s, ast.InSegment)
                ]
        graph["segment " + name] = [("segment " + n, span) for n, span in edges]
    return graph


def check_depth(definitions: Definitions) -> list[SegqlError]:
    """A chain of references deeper than ``MAX_REFERENCE_DEPTH``, reported at its top.

    Iterative (a chain of thousands must not exhaust Python's stack here); a cycle is not
    followed round (``check_cycles`` reports it)."""
    graph = reference_graph(definitions)
    depth: dict[str, int] = {}
    for root in graph:
        if root in depth:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        on_path: set[str] = set()
        while stack:
            node, index = stack.pop()
            on_path.add(node)
            edges = graph.get(node, [])
            if index < len(edges):
                stack.append((node, index + 1))
                target = edges[index][0]
                if target in graph and target not in depth and target not in on_path:
                    stack.append((target, 0))
                continue
            on_path.discard(node)
            depth[node] = 1 + max((depth.get(t, 0) for t, _ in edges if t in depth), default=0)
    referenced = {target for edges in graph.values() for target, _ in edges}
    errors: list[SegqlError] = []
    for name, trait in definitions.traits.items():
        if depth.get(name, 0) > MAX_REFERENCE_DEPTH and name not in referenced:
            errors.append(
                SegqlDefinitionError(
                    f"trait `{name}` builds on a chain of {depth[name]} traits, deeper than "
                    f"{MAX_REFERENCE_DEPTH}",
                    trait.span,
                    help="define the deep traits from fewer steps",
                )
            )
    for name, segment in definitions.segments.items():
        key = "segment " + name
        if depth.get(key, 0) > MAX_REFERENCE_DEPTH and key not in referenced:
            errors.append(
                SegqlDefinitionError(
                    f"segment `{name}` builds on a chain of {depth[key]} segments, deeper "
                    f"than {MAX_REFERENCE_DEPTH}",
                    segment.span,
                )
            )
    return errors


# Python's re accepts these; RE2 (DuckDB), PostgreSQL's ARE or Snowflake's POSIX
# ERE reject one or more, so a run would fail every segment on that warehouse.
_UNPORTABLE_ESCAPES = {
    "A": "\\A", "Z": "\\Z", "z": "\\z", "b": "\\b", "B": "\\B", "G": "\\G",
}  # fmt: skip
_LAZY_OR_POSSESSIVE = ("*?", "+?", "??", "}?", "*+", "++", "?+", "}+")


def unportable_regex(pattern: str) -> str | None:
    """What in ``pattern`` some warehouse's regex engine rejects, or None (semantics.md)."""
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            following = pattern[i + 1]
            if following.isdigit() and following != "0" and not in_class:
                return f"a back-reference (\\{following})"
            if following in _UNPORTABLE_ESCAPES and not in_class:
                return _UNPORTABLE_ESCAPES[following]
            i += 2
            continue
        if in_class:
            in_class = c != "]" or pattern[i - 1] == "["
        elif c == "[":
            in_class = True
            if pattern.startswith("[^]", i) or pattern.startswith("[]", i):
                i += 2 if pattern[i + 1] == "]" else 3
                continue
        elif c == "(" and pattern.startswith("(?", i):
            return "a group extension (" + pattern[i : i + 3] + "...)"
        elif pattern.startswith("{,", i):
            return "a repeat without a lower bound ({,n})"
        elif pattern.startswith(_LAZY_OR_POSSESSIVE, i):
            return "a lazy or possessive repeat (" + pattern[i : i + 2] + ")"
        i += 1
    return None


def check_cycles(definitions: Definitions) -> list[SegqlError]:
    """Reference cycles among traits and among segments, each reported with its path."""
    graph = reference_graph(definitions)
    spans: dict[str, Span | None] = {name: t.span for name, t in definitions.traits.items()}
    spans.update({"segment " + name: s.span for name, s in definitions.segments.items()})
    errors: list[SegqlError] = []
    reported: set[frozenset[str]] = set()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target, span in graph.get(node, ()):
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    path = " -> ".join(c.removeprefix("segment ") for c in cycle)
                    kind = "segments" if target.startswith("segment ") else "traits"
                    errors.append(
                        SegqlDefinitionError(f"these {kind} refer to each other: {path}", span)
                    )
            elif state.get(target) is None and target in graph:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)
    return errors


def walk(node: object) -> Iterator[object]:
    """Every AST node under ``node`` (itself included), depth first."""
    yield node
    if isinstance(node, tuple):
        for item in node:
            yield from walk(item)
        return
    for name in getattr(node, "__dataclass_fields__", ()):
        if name == "span":
            continue
        value = getattr(node, name)
        if isinstance(value, tuple) or hasattr(value, "__dataclass_fields__"):
            yield from walk(value)


def walk_names(expr: object) -> Iterator[ast.Name]:
    """Bare names outside event filters (inside them a name is a row's column)."""
    for node in walk_outside_specs(expr):
        if isinstance(node, ast.Name):
            yield node


def walk_outside_specs(node: object) -> Iterator[object]:
    """Like ``walk``, but without descending into event specs."""
    yield node
    if isinstance(node, ast.EventSpec):
        return
    children = (
        node
        if isinstance(node, tuple)
        else (
            getattr(node, name)
            for name in getattr(node, "__dataclass_fields__", ())
            if name != "span"
        )
    )
    for value in children:
        if isinstance(value, tuple) or hasattr(value, "__dataclass_fields__"):
            yield from walk_outside_specs(value)


def check_definitions(analyzer: Analyzer) -> None:
    """Raise every error in the project's definitions together, or return."""
    checker = Checker(analyzer)
    checker.check()
    if checker.errors:
        raise SegqlErrors(checker.errors)
