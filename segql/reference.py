"""A plain-Python reference evaluator of the segql AST over rows held in memory.

This is the test oracle for the SQL compiler: the same segments run on every warehouse and
here must give the same members. It is written from language.md and docs/semantics.md, one
person at a time, with no SQL and no database, and favours being obviously right over being
fast: each rule of semantics.md is a small function or branch that can be read against it.

Values inside the evaluator are plain Python: ``int``/``float``/``Decimal`` numbers, ``str``
text, ``bool``, naive UTC ``datetime`` times (a ``date`` becomes midnight UTC) and ``None``
for null. A value read from a JSON properties column is wrapped in ``JsonValue`` until its
use decides which type it takes (semantics.md: "a JSON value takes the type its use needs").
"""

from __future__ import annotations

import calendar
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any, Literal, TypeVar, cast

from typing_extensions import assert_never

from segql.compile.bucket_sql import bucket_of
from segql.config import ProjectConfig, SourceConfig
from segql.errors import (
    SegqlConfigError,
    SegqlDefinitionError,
    SegqlNameError,
    SegqlTypeError,
    unknown_name_message,
)
from segql.language import ast
from segql.language.lists import LIST_COLUMN, read_id_list

Tables = Mapping[str, tuple[Sequence[str], Sequence[Sequence[Any]]]]
Kind = Literal["number", "text", "bool", "time", "other"]
Row = dict[str, Any]

T = TypeVar("T")

# 'YYYY-MM-DD' and 'YYYY-MM-DD HH:MM:SS' (language.md); the checker also takes a 'T'
# separator and 'HH:MM', so the oracle does too.
_TIME_LITERAL = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$")
_FIXED_UNITS = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}


# --- public API --------------------------------------------------------------------------


def evaluate(
    definitions: Sequence[ast.Definition | ast.Priority],
    config: ProjectConfig,
    tables: Tables,
    as_of: datetime,
    segments: Sequence[str] | None = None,
    current_members: Mapping[str, set[Any]] | None = None,
    history: Sequence[RecordedChange] = (),
) -> dict[str, set[Any]]:
    """Members of each segment at ``as_of``: segment name -> set of person ids.

    ``definitions`` are all segments and traits of the project (and its priority lists: a
    segment of one has only the people in none of the segments before it, while ``in
    seg`` reads the segment's own rules); ``segments`` picks which
    segments to return (all by default). ``current_members`` holds the members recorded
    before this run, which only hysteresis (``enter when``/``exit when``) segments use.
    ``history`` holds the changes committed runs recorded, which conditions on recorded
    membership (``entered X within D``, ...) read: those with an as-of before ``as_of``.
    """
    evaluator = _Evaluator(definitions, config, tables, as_of, current_members or {}, history)
    names = list(evaluator.segments) if segments is None else list(segments)
    return {name: evaluator.segment_members(name) for name in names}


def evaluate_traits(
    definitions: Sequence[ast.Definition],
    config: ProjectConfig,
    tables: Tables,
    as_of: datetime,
    segments: Sequence[str] | None = None,
    current_members: Mapping[str, set[Any]] | None = None,
    history: Sequence[RecordedChange] = (),
) -> dict[str, dict[Any, Any]]:
    """Every trait's value per person at ``as_of``: trait name -> person id -> value.

    Takes the same inputs as ``evaluate`` (``segments`` is accepted and ignored) so that a
    failing comparison can be debugged by looking at the traits behind it.
    """
    evaluator = _Evaluator(definitions, config, tables, as_of, current_members or {}, history)
    return {
        name: {person: evaluator.trait_value(name, person) for person in evaluator.people}
        for name in evaluator.traits
    }


@dataclass(frozen=True)
class RecordedChange:
    """One row of ``segql_history`` of a committed run: what history conditions read."""

    segment: str
    person_id: str
    change: Literal["enter", "exit"]
    as_of: datetime
    commit_seq: int


# --- values ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonValue:
    """A non-null value read from a JSON properties column, not yet given a type."""

    raw: Any


def _normalize(value: Any) -> Any:
    """A row value in the evaluator's canonical form: times are naive UTC datetimes, and
    NaN is null (semantics.md: a number that is not a number is no value)."""
    if isinstance(value, (float, Decimal)) and value != value:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(timezone.utc).replace(tzinfo=None)
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return value


def _kind(value: Any) -> Kind:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, datetime):
        return "time"
    return "other"


def _json_to(kind: Kind, raw: Any) -> Any:
    """A JSON value converted to the type its use needs; null when it does not convert."""
    if kind == "number":
        return _json_number(raw)
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        word = raw.strip(" ").lower() if isinstance(raw, str) else None
        if word in ("true", "false"):  # and nothing else: warehouses' casts disagree on 'yes'
            return word == "true"
        return None
    if kind == "time":
        return _json_time(raw)
    # Text is what a JSON extraction gives in SQL (->>): strings as they are, anything
    # else as its JSON text.
    return raw if isinstance(raw, str) else json.dumps(raw)


def json_object(text: str) -> dict[str, Any] | None:
    """A properties value read as a JSON object; null when it is malformed or not an
    object (semantics.md: such a row has no properties, and the run counts it)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _json_number(raw: Any) -> int | float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        # 'nan' and 'inf' parse in Python but are not numbers a warehouse cast accepts.
        return number if math.isfinite(number) else None
    return None


def _json_time(raw: Any) -> datetime | None:
    """A JSON string holding an ISO timestamp, read as UTC unless it names an offset."""
    if not isinstance(raw, str):
        return None
    try:
        return cast(datetime, _normalize(datetime.fromisoformat(raw.strip())))
    except ValueError:
        return None


def _plain(value: Any, kind: Kind) -> Any:
    """``value`` with a JSON wrapper resolved to ``kind``; other values unchanged."""
    return _json_to(kind, value.raw) if isinstance(value, JsonValue) else value


def _merge_max(old: Any, new: Any) -> Any:
    """Duplicate entity rows merge with MAX per column, ignoring nulls (semantics.md)."""
    if old is None:
        return new
    if new is None:
        return old
    try:
        return new if new > old else old
    except TypeError:  # JSON objects have no order: keep the first row's value
        return old


# --- arithmetic --------------------------------------------------------------------------


def _number_pair(left: Any, right: Any) -> tuple[Any, Any]:
    """Two numbers in one representation: floats win, else Decimal wins, else ints."""
    if isinstance(left, float) or isinstance(right, float):
        return float(left), float(right)
    if isinstance(left, Decimal) or isinstance(right, Decimal):
        return Decimal(left), Decimal(right)
    return left, right


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    if left is None or right is None:
        return None
    left, right = _number_pair(left, right)
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0:  # division by zero is null, not an error
        return None
    return left / right  # true division: 7 / 2 is 3.5


def _round_half_away(value: Any, digits: int) -> Any:
    """``round(x, d)`` half away from zero, in decimal (2.675 rounds to 2.68)."""
    exact = value if isinstance(value, Decimal) else Decimal(str(value))
    with localcontext() as context:
        context.prec = 100
        rounded = exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    if isinstance(value, int):
        return int(rounded)
    if isinstance(value, float):
        return float(rounded)
    return rounded


# --- time ----------------------------------------------------------------------------------


def _shift(moment: datetime, duration: ast.Duration, sign: int) -> datetime:
    """``moment`` plus (sign 1) or minus (sign -1) a duration.

    Minutes to weeks are fixed lengths; months and years are calendar steps that clamp to
    the end of the month (March 31 - 1 month is February 28 or 29). The step is taken on
    the UTC time, as ``T - INTERVAL '1 month'`` is on a naive UTC timestamp in SQL.
    """
    if duration.unit in _FIXED_UNITS:
        return moment + sign * duration.amount * _FIXED_UNITS[duration.unit]
    months = duration.amount * (12 if duration.unit == "year" else 1)
    index = moment.year * 12 + (moment.month - 1) + sign * months
    year, month = divmod(index, 12)
    month += 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _parse_time_literal(node: ast.String, tzinfo: Any) -> datetime:
    """'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS', wall-clock in the project zone, as naive UTC."""
    match = _TIME_LITERAL.match(node.value.strip())
    if match is None:
        raise SegqlTypeError(
            f"'{node.value}' is not a time",
            node.span,
            help="write a time as 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'",
        )
    year, month, day, hour, minute, second = (int(part) if part else 0 for part in match.groups())
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=tzinfo)
    except ValueError as error:
        raise SegqlTypeError(f"'{node.value}' is not a time: {error}", node.span) from None
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def _is_relative_point(node: ast.Expr) -> bool:
    """``now`` and ``N units ago`` are on the past side; every other point is absolute."""
    return isinstance(node, (ast.Now, ast.Ago))


def _is_before(moment: datetime, point: datetime, relative: bool) -> bool:
    return moment <= point if relative else moment < point


def _is_after(moment: datetime, point: datetime, relative: bool) -> bool:
    return moment > point if relative else moment >= point


# --- comparison ----------------------------------------------------------------------------


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


# --- population functions --------------------------------------------------------------------


def _ntile(n: int, value: Any, values: Sequence[Any]) -> int:
    """``ceil(n * k / N)`` in exact integers, k = how many values are at or below this one."""
    k = sum(1 for other in values if other <= value)
    return -(-n * k // len(values))


def _percentile_linear(ordered: Sequence[float], q: float) -> float:
    """numpy's default (``linear``) percentile of sorted floats, step for step.

    numpy takes the virtual index ``h = (N - 1) * q``, and interpolates between its two
    neighbours with ``a + (b - a) * t``, or ``b - (b - a) * (1 - t)`` when ``t >= 0.5``.
    """
    h = (len(ordered) - 1) * q
    if h >= len(ordered) - 1:
        return ordered[-1]
    below = math.floor(h)
    t = h - below
    a, b = ordered[below], ordered[below + 1]
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def _qcut_edges(n: int, values: Sequence[Any]) -> list[float]:
    ordered = sorted(float(value) for value in values)
    return [_percentile_linear(ordered, k / n) for k in range(1, n)]


def _qcut(edges: Sequence[float], value: Any) -> int:
    """1 + the number of inner edges strictly below the value: bucket i is (e[i-1], e[i]]."""
    return 1 + sum(1 for edge in edges if edge < float(value))


def _percent_rank(value: Any, values: Sequence[Any]) -> float:
    if len(values) == 1:
        return 0.0
    rank = 1 + sum(1 for other in values if other < value)
    return (rank - 1) / (len(values) - 1)


# --- scopes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    """What names mean where an expression is evaluated.

    The person scope (``row`` is None) is a segment or trait: a bare name is a trait or an
    entity column. The row scope is an event spec's ``where`` and window: a bare name is a
    column of the row's table or a key of its JSON properties.
    """

    person: Any
    row: Row | None = None
    source: SourceConfig | None = None
    columns: frozenset[str] = field(default_factory=frozenset)


@dataclass
class _Table:
    columns: tuple[str, ...]
    rows_by_person: dict[Any, list[Row]]


# --- the evaluator -------------------------------------------------------------------------


class _Evaluator:
    """One run: the universe, the source rows up to ``T``, and caches of computed values."""

    def __init__(
        self,
        definitions: Sequence[ast.Definition | ast.Priority],
        config: ProjectConfig,
        tables: Tables,
        as_of: datetime,
        current_members: Mapping[str, set[Any]],
        history: Sequence[RecordedChange] = (),
    ):
        self.config = config
        self.history = history
        self.tables = tables
        self.now = _normalize(as_of)
        self.tzinfo = config.tzinfo
        self.current_members = current_members
        self.segments: dict[str, ast.Segment] = {}
        self.traits: dict[str, ast.Trait] = {}
        self.priority_over: dict[str, tuple[str, ...]] = {}
        for definition in definitions:
            if isinstance(definition, ast.Segment):
                self.segments[definition.name] = definition
            elif isinstance(definition, ast.Priority):
                for k, name in enumerate(definition.segments):
                    self.priority_over[name] = definition.segments[:k]
            else:
                self.traits[definition.name] = definition
        self.entity_columns, self.people = self._load_people()
        self._sources: dict[SourceConfig, _Table] = {}
        self._trait_cache: dict[tuple[str, Any], Any] = {}
        self._member_cache: dict[tuple[str, Any], bool] = {}
        self._person_value_cache: dict[tuple[Any, Any], Any] = {}
        self._population_cache: dict[ast.Call, dict[Any, Any]] = {}
        self._in_progress: list[str] = []

    # --- loading -------------------------------------------------------------------------

    def _table(self, name: str, what: str) -> tuple[Sequence[str], Sequence[Sequence[Any]]]:
        if name not in self.tables:
            raise SegqlConfigError(f"no rows given for table '{name}' ({what})")
        return self.tables[name]

    def _id_list(self, condition: ast.IdList) -> frozenset[str]:
        """The ids of a list segment, as text: a list file's, or the ``person_id`` column
        of the rows given for the table."""
        if condition.kind == "list":
            entity = self.config.entity.id
            return frozenset(read_id_list(self.config.root, condition.name, entity))
        columns, rows = self._table(condition.name, "a list segment's table")
        at = list(columns).index(LIST_COLUMN)
        return frozenset(str(row[at]) for row in rows if row[at] is not None)

    def _load_people(self) -> tuple[frozenset[str], dict[Any, Row]]:
        """The universe: distinct non-null ids, duplicates merged with MAX per column."""
        entity = self.config.entity
        columns, rows = self._table(entity.table, "the entity table")
        if entity.id not in columns:
            raise SegqlConfigError(f"entity table '{entity.table}' has no column '{entity.id}'")
        people: dict[Any, Row] = {}
        for values in rows:
            row = {column: _normalize(value) for column, value in zip(columns, values, strict=True)}
            person = row[entity.id]
            if person is None:
                continue
            if person in people:
                merged = people[person]
                for column in columns:
                    merged[column] = _merge_max(merged[column], row[column])
            else:
                people[person] = row
        return frozenset(columns), people

    def _source_rows(self, source: SourceConfig) -> _Table:
        """A source's rows that exist for this run, grouped by person."""
        if source in self._sources:
            return self._sources[source]
        columns, rows = self._table(source.table, f"source '{source.name}'")
        rows_by_person: dict[Any, list[Row]] = {}
        for values in rows:
            row = {column: _normalize(value) for column, value in zip(columns, values, strict=True)}
            person = row.get(source.person)
            # Rows of unknown people or with a null person are ignored.
            if person is None or person not in self.people:
                continue
            if source.time is not None:
                moment = row.get(source.time)
                # Rows after T (or with no time) do not exist for this run.
                if moment is None or moment > self.now:
                    continue
            if source.properties is not None and isinstance(row.get(source.properties), str):
                row[source.properties] = json_object(row[source.properties])
            rows_by_person.setdefault(person, []).append(row)
        table = _Table(tuple(columns), rows_by_person)
        self._sources[source] = table
        return table

    # --- definitions ---------------------------------------------------------------------

    def _enter(self, name: str, node: Any) -> None:
        """Track the definitions being computed, so that a reference cycle is an error."""
        if name in self._in_progress:
            cycle = [*self._in_progress[self._in_progress.index(name) :], name]
            raise SegqlDefinitionError(
                "definitions reference each other in a cycle: " + " -> ".join(cycle),
                getattr(node, "span", None),
            )
        self._in_progress.append(name)

    def _leave(self) -> None:
        self._in_progress.pop()

    def trait_value(self, name: str, person: Any) -> Any:
        key = (name, person)
        if key not in self._trait_cache:
            trait = self.traits[name]
            self._enter(name, trait)
            try:
                self._trait_cache[key] = self.value(trait.expr, _Scope(person))
            finally:
                self._leave()
        return self._trait_cache[key]

    def segment_members(self, name: str) -> set[Any]:
        self._segment(name, None)
        earlier = self.priority_over.get(name, ())
        return {
            person
            for person in self.people
            if self.is_member(name, person) and not any(self.is_member(e, person) for e in earlier)
        }

    def _segment(self, name: str, node: Any) -> ast.Segment:
        if name not in self.segments:
            raise SegqlNameError(
                unknown_name_message("segment", name, self.segments),
                getattr(node, "span", None),
            )
        return self.segments[name]

    def is_member(self, name: str, person: Any) -> bool:
        key = (name, person)
        if key not in self._member_cache:
            segment = self.segments[name]
            self._enter(name, segment)
            try:
                self._member_cache[key] = self._membership(segment, person)
            finally:
                self._leave()
        return self._member_cache[key]

    def _membership(self, segment: ast.Segment, person: Any) -> bool:
        scope = _Scope(person)
        if segment.where is not None:
            return self.holds(segment.where, scope)
        assert segment.enter is not None and segment.exit is not None
        if self.holds(segment.enter, scope):
            return True
        # Hysteresis: a current member stays until its exit condition holds.
        current = self.current_members.get(segment.name, set())
        return person in current and not self.holds(segment.exit, scope)

    # --- conditions ------------------------------------------------------------------------

    def holds(self, condition: ast.Condition, scope: _Scope) -> bool:
        """Whether a condition is true: logic is two-valued, a null makes a test false."""
        match condition:
            case ast.And():
                return all(self.holds(item, scope) for item in condition.items)
            case ast.Or():
                return any(self.holds(item, scope) for item in condition.items)
            case ast.Not():
                return not self.holds(condition.operand, scope)
            case ast.Compare():
                return self._holds_compare(condition, scope)
            case ast.InList():
                return self._holds_in_list(condition, scope)
            case ast.Between():
                return self._holds_between(condition, scope)
            case ast.TextTest():
                return self._holds_text_test(condition, scope)
            case ast.IsSet():
                is_set = self.value(condition.expr, scope) is not None
                return not is_set if condition.negated else is_set
            case ast.TimeTest():
                return self._holds_time_test(condition, scope)
            case ast.InSegment():
                self._segment(condition.segment, condition)
                return self.is_member(condition.segment, scope.person)
            case ast.IdList():
                return str(scope.person) in self._id_list(condition)
            case ast.Sequence():
                return self._person_cached(condition, scope.person, self._holds_sequence)
            case ast.HistoryTest():
                return self._holds_history(condition, scope.person)
            case ast.Funnel():
                return self._person_cached(condition, scope.person, self._holds_funnel)
            case ast.PeriodTest():
                moment = self._time(condition.expr, scope)
                return moment is not None and self._in_period(moment, condition.period)
            case _:
                assert_never(condition)

    def _holds_compare(self, condition: ast.Compare, scope: _Scope) -> bool:
        operands = self._operands([condition.left, condition.right], scope, condition)
        if operands is None:
            return False
        return _compare(condition.op, *operands)

    def _holds_in_list(self, condition: ast.InList, scope: _Scope) -> bool:
        nodes = [condition.expr, *condition.values]
        values = [self.value(node, scope) for node in nodes]
        # Null items of the list are ignored; a null value is never in (or not in) a list.
        kept = [
            (node, value) for node, value in zip(nodes, values, strict=True) if value is not None
        ]
        if values[0] is None:
            return False
        unified = self._unify([node for node, _ in kept], [value for _, value in kept], condition)
        if unified[0] is None:
            return False
        found = any(item == unified[0] for item in unified[1:] if item is not None)
        return not found if condition.negated else found

    def _holds_between(self, condition: ast.Between, scope: _Scope) -> bool:
        nodes = [condition.expr, condition.low, condition.high]
        operands = self._operands(nodes, scope, condition)
        if operands is None:
            return False
        value, low, high = operands
        inside = bool(low <= value <= high)
        return not inside if condition.negated else inside

    def _holds_text_test(self, condition: ast.TextTest, scope: _Scope) -> bool:
        value = self._typed(self.value(condition.expr, scope), "text", condition.expr)
        if value is None:
            return False
        pattern = condition.pattern.value
        if condition.op == "matches":
            return re.search(pattern, value) is not None
        text: str = value.lower()
        needle = pattern.lower()
        if condition.op == "contains":
            return needle in text
        if condition.op == "starts_with":
            return text.startswith(needle)
        return text.endswith(needle)

    def _holds_time_test(self, condition: ast.TimeTest, scope: _Scope) -> bool:
        moment = self._time(condition.expr, scope)
        if moment is None:
            return False
        if condition.op == "within":
            return self._within(moment, self._duration(condition.arg))
        point = self._time(condition.arg, scope)
        if point is None:
            return False
        relative = _is_relative_point(condition.arg)
        if condition.op == "before":
            return _is_before(moment, point, relative)
        return _is_after(moment, point, relative)

    def _within(self, moment: datetime, duration: ast.Duration) -> bool:
        """``within D``: ``T - D < t <= T``."""
        now: datetime = self.now
        return _shift(now, duration, -1) < moment <= now

    # --- operands and types ----------------------------------------------------------------

    def _operands(self, nodes: Sequence[ast.Expr], scope: _Scope, where: Any) -> list[Any] | None:
        """Values of a test's operands in one type, or None when any of them is null."""
        values = [self.value(node, scope) for node in nodes]
        if any(value is None for value in values):
            return None
        unified = self._unify(nodes, values, where)
        return None if any(value is None for value in unified) else unified

    def _unify(self, nodes: Sequence[ast.Expr], values: Sequence[Any], where: Any) -> list[Any]:
        """Bring values that meet in one test to one type.

        A string literal meeting a time is a time literal; a JSON value takes the type of
        the values it meets (text when it meets only other JSON values). Values of different
        types meeting is a type error, as it is in the compiler.
        """
        values = list(values)
        kinds = {_kind(value) for value in values if not isinstance(value, JsonValue)}
        if "time" in kinds:
            for index, node in enumerate(nodes):
                if isinstance(node, ast.String) and isinstance(values[index], str):
                    values[index] = _parse_time_literal(node, self.tzinfo)
            kinds = {_kind(value) for value in values if not isinstance(value, JsonValue)}
        if len(kinds) > 1:
            found = " and ".join(sorted(kinds))
            raise SegqlTypeError(f"values of different types meet: {found}", where.span)
        target: Kind = next(iter(kinds)) if kinds else "text"
        return [_plain(value, target) for value in values]

    def _typed(self, value: Any, kind: Kind, node: ast.Expr) -> Any:
        """A value that must be of one type (or null); JSON values are converted to it."""
        value = _plain(value, kind)
        if value is not None and _kind(value) != kind:
            raise SegqlTypeError(f"expected a {kind} value, found {value!r}", node.span)
        return value

    def _time(self, node: ast.Expr, scope: _Scope) -> datetime | None:
        """A time-valued operand: a string literal here is a time literal."""
        if isinstance(node, ast.String):
            return _parse_time_literal(node, self.tzinfo)
        return cast("datetime | None", self._typed(self.value(node, scope), "time", node))

    def _duration(self, node: ast.Expr) -> ast.Duration:
        if not isinstance(node, ast.Duration):
            raise SegqlTypeError("expected a duration such as 30 days", node.span)
        return node

    # --- expressions -------------------------------------------------------------------------

    def value(self, node: ast.Expr, scope: _Scope) -> Any:
        """The value of an expression for the scope's person (and row)."""
        match node:
            case ast.Number() | ast.String() | ast.Boolean():
                return node.value
            case ast.Null():
                return None
            case ast.Now():
                return self.now
            case ast.Ago():
                return _shift(self.now, node.duration, -1)
            case ast.Duration():
                raise SegqlTypeError(
                    "a duration is not a value here: write '30 days ago'", node.span
                )
            case ast.Name():
                return self._name(node, scope)
            case ast.PersonProperty():
                return self._entity_column(node.name, scope.person, node)
            case ast.Negate():
                operand = self._typed(self.value(node.operand, scope), "number", node.operand)
                return None if operand is None else -operand
            case ast.Arithmetic():
                left = self._typed(self.value(node.left, scope), "number", node.left)
                right = self._typed(self.value(node.right, scope), "number", node.right)
                return _arithmetic(node.op, left, right)
            case ast.Call():
                if node.func in ast.POPULATION_FUNCTIONS:
                    return self._population_value(node, scope)
                if node.func in ast.POPULATION_VALUES:
                    return self._population_statistic(node, scope)
                if node.func in ast.BUCKET_FUNCTIONS:
                    return self._bucket(node, scope)
                return self._call(node, scope)
            case ast.CaseWhen():
                for condition, value in node.branches:
                    if self.holds(condition, scope):
                        return self.value(value, scope)
                return None if node.default is None else self.value(node.default, scope)
            case ast.Aggregate():
                return self._person_cached(node, scope.person, self._aggregate)
            case _:
                assert_never(node)

    def _name(self, node: ast.Name, scope: _Scope) -> Any:
        if scope.row is None:
            if node.name in self.traits:
                return self.trait_value(node.name, scope.person)
            return self._entity_column(node.name, scope.person, node)
        if node.name in scope.columns:
            return scope.row[node.name]
        assert scope.source is not None
        if scope.source.properties is None:
            raise SegqlNameError(
                unknown_name_message(
                    f"property of '{scope.source.name}'", node.name, scope.columns
                ),
                node.span,
            )
        properties = scope.row.get(scope.source.properties)
        raw = properties.get(node.name) if isinstance(properties, dict) else None
        # A JSON null is a SQL null.
        return None if raw is None else JsonValue(raw)

    def _entity_column(self, name: str, person: Any, node: Any) -> Any:
        if name not in self.entity_columns:
            candidates = [*self.entity_columns, *self.traits]
            raise SegqlNameError(unknown_name_message("property", name, candidates), node.span)
        return self.people[person][name]

    def _person_cached(self, node: Any, person: Any, compute: Callable[[Any, Any], T]) -> T:
        """Aggregates and sequences depend only on the person: compute each once."""
        key = (node, person)
        if key not in self._person_value_cache:
            self._person_value_cache[key] = compute(node, person)
        return cast(T, self._person_value_cache[key])

    # --- scalar functions ------------------------------------------------------------------

    def _call(self, node: ast.Call, scope: _Scope) -> Any:
        func, args = node.func, node.args
        if func in ("days_since", "hours_since"):
            moment = self._time(args[0], scope)
            if moment is None:
                return None
            unit = timedelta(days=1) if func == "days_since" else timedelta(hours=1)
            return (self.now - moment) // unit  # floor, negative when t is after T
        if func == "coalesce":
            values = [self.value(arg, scope) for arg in args]
            return next((value for value in values if value is not None), None)
        if func in ("lower", "upper", "length"):
            text = self._typed(self.value(args[0], scope), "text", args[0])
            if text is None:
                return None
            return {"lower": str.lower, "upper": str.upper, "length": len}[func](text)
        if func == "abs":
            number = self._typed(self.value(args[0], scope), "number", args[0])
            return None if number is None else abs(number)
        if func == "round":
            return self._round(args, scope)
        if func in ("least", "greatest"):
            return self._least_greatest(node, scope)
        raise SegqlNameError(f"unknown function '{func}'", node.span)  # pragma: no cover

    def _round(self, args: Sequence[ast.Expr], scope: _Scope) -> Any:
        number = self._typed(self.value(args[0], scope), "number", args[0])
        digits: Any = 0
        if len(args) > 1:
            digits = self._typed(self.value(args[1], scope), "number", args[1])
        if number is None or digits is None:
            return None
        if digits != int(digits):
            raise SegqlTypeError("round() takes a whole number of digits", args[1].span)
        return _round_half_away(number, int(digits))

    def _least_greatest(self, node: ast.Call, scope: _Scope) -> Any:
        """``least``/``greatest`` ignore nulls and are null only when every argument is."""
        pairs = [(arg, self.value(arg, scope)) for arg in node.args]
        pairs = [(arg, value) for arg, value in pairs if value is not None]
        if not pairs:
            return None
        values = self._unify([arg for arg, _ in pairs], [value for _, value in pairs], node)
        values = [value for value in values if value is not None]
        if not values:
            return None
        return min(values) if node.func == "least" else max(values)

    # --- population functions ----------------------------------------------------------------

    def _population_value(self, node: ast.Call, scope: _Scope) -> Any:
        if scope.row is not None:
            raise SegqlTypeError(
                f"{node.func}() ranks people and cannot be used inside an event filter", node.span
            )
        if node not in self._population_cache:
            self._population_cache[node] = self._population(node)
        return self._population_cache[node][scope.person]

    def _population(self, node: ast.Call) -> dict[Any, Any]:
        """One population function for every person of the universe at ``T``.

        Its argument is evaluated first for everyone (which computes any population
        function nested inside it over the same people); nulls get null and are not ranked.
        """
        expr = node.args[-1]
        values: dict[Any, Any] = {}
        for person in self.people:
            value = self.value(expr, _Scope(person))
            if isinstance(value, JsonValue):  # pragma: no cover - JSON exists only in rows
                value = _json_number(value.raw)
            values[person] = value
        ranked = {person: value for person, value in values.items() if value is not None}
        kinds = {_kind(value) for value in ranked.values()}
        if len(kinds) > 1:
            raise SegqlTypeError(f"{node.func}() ranks values of different types", node.span)
        population = list(ranked.values())
        result: dict[Any, Any] = dict.fromkeys(self.people)
        if node.func == "row_number":
            order = sorted(ranked, key=lambda person: (ranked[person], person))
            result.update({person: index + 1 for index, person in enumerate(order)})
            return result
        if node.func == "percent_rank":
            result.update({p: _percent_rank(v, population) for p, v in ranked.items()})
            return result
        edges_by_n: dict[int, list[float]] = {}
        for person, value in ranked.items():
            n = self._bucket_count(node, person)
            if n is None:
                continue
            if node.func == "ntile":
                result[person] = _ntile(n, value, population)
            else:
                if kinds != {"number"}:
                    raise SegqlTypeError("qcut() needs numbers", node.span)
                if n not in edges_by_n:
                    edges_by_n[n] = _qcut_edges(n, population)
                result[person] = _qcut(edges_by_n[n], value)
        return result

    def _bucket_count(self, node: ast.Call, person: Any) -> int | None:
        n = self._typed(self.value(node.args[0], _Scope(person)), "number", node.args[0])
        if n is None:
            return None
        if n != int(n) or n < 1:
            raise SegqlTypeError(
                f"{node.func}() takes a whole number of buckets of at least 1", node.args[0].span
            )
        return int(n)

    # --- behaviour -------------------------------------------------------------------------

    def _resolve_source(self, spec: ast.EventSpec) -> SourceConfig:
        """A declared source when one has the ref's name, else the events table."""
        if spec.ref is not None and spec.ref in self.config.sources:
            return self.config.sources[spec.ref]
        if self.config.events is None:
            raise SegqlNameError(
                unknown_name_message("source", spec.ref or "any", self.config.sources),
                spec.span,
            )
        return self.config.events

    def _matching_rows(self, spec: ast.EventSpec, person: Any, window: bool = True) -> list[Row]:
        """The person's rows that the spec names, pass its filter and (optionally) its window."""
        source = self._resolve_source(spec)
        table = self._source_rows(source)
        rows = table.rows_by_person.get(person, [])
        if source.is_events and spec.ref is not None:
            rows = [row for row in rows if row.get(source.event_name or "") == spec.ref]
        if spec.last is not None:
            rows = _among_last(rows, spec.last, lambda row: self._row_time(source, row, spec))
        matching = []
        for row in rows:
            scope = _Scope(person, row, source, frozenset(table.columns))
            if spec.where is not None and not self.holds(spec.where, scope):
                continue
            if window and spec.window is not None and not self._in_window(spec, scope):
                continue
            matching.append(row)
        return matching

    def _in_window(self, spec: ast.EventSpec, scope: _Scope) -> bool:
        """Whether the row's time is in the spec's window (sides as in language.md §3)."""
        moment = self._row_time(scope.source, scope.row, spec)
        window = spec.window
        if isinstance(window, ast.WindowPeriod):
            return self._in_period(moment, window)
        if isinstance(window, ast.WindowWithin):
            return self._within(moment, window.duration)
        assert isinstance(window, ast.WindowRange)
        if window.start is not None:
            start = self._time(window.start, scope)
            if start is None or not _is_after(moment, start, _is_relative_point(window.start)):
                return False
        if window.end is not None:
            end = self._time(window.end, scope)
            if end is None or not _is_before(moment, end, _is_relative_point(window.end)):
                return False
        return True

    def _row_time(self, source: SourceConfig | None, row: Row | None, spec: Any) -> datetime:
        assert source is not None and row is not None
        if source.time is None:
            raise SegqlTypeError(
                f"source '{source.name}' has no time column, so it takes no window or sequence",
                spec.span,
            )
        return cast(datetime, row[source.time])

    def _aggregate(self, node: ast.Aggregate, person: Any) -> Any:
        spec = node.spec
        source = self._resolve_source(spec)
        rows = self._matching_rows(spec, person)
        func = node.func
        if func == "count":
            return len(rows)
        if func in ("first_time", "last_time"):
            times = [self._row_time(source, row, spec) for row in rows]
            if not times:
                return None
            return min(times) if func == "first_time" else max(times)
        if func in ("active_days", "active_weeks", "active_months"):
            days = {self._local_date(self._row_time(source, row, spec)) for row in rows}
            return len(_calendar_periods(func, days))
        if func == "streak":
            assert node.period is not None
            times = [self._row_time(source, row, spec) for row in rows]
            return self._streak(times, node.period)
        assert node.prop is not None
        values = self._property_values(node, source, rows)
        if func == "count_distinct":
            return len(set(values))
        if func == "sum":
            return _sum(values)
        if not values:
            return None
        if func == "avg":
            return _arithmetic("/", _sum(values), len(values))
        return min(values) if func == "min" else max(values)

    def _property_values(
        self, node: ast.Aggregate, source: SourceConfig, rows: Iterable[Row]
    ) -> list[Any]:
        """The non-null values of an aggregate's property over rows, in the type it needs."""
        assert node.prop is not None
        columns = frozenset(self._source_rows(source).columns)
        # JSON values: numbers for sum/avg/min/max; text for count_distinct, as SQL's ->>.
        kind: Kind = "text" if node.func == "count_distinct" else "number"
        name = ast.Name(node.prop, span=node.span)
        values = []
        for row in rows:
            value = _plain(self._name(name, _Scope(None, row, source, columns)), kind)
            if value is None:
                continue
            if node.func in ("sum", "avg") and _kind(value) != "number":
                raise SegqlTypeError(f"{node.func}() needs numbers, found {value!r}", node.span)
            values.append(value)
        if node.func in ("min", "max") and len({_kind(value) for value in values}) > 1:
            raise SegqlTypeError(f"{node.func}() over values of different types", node.span)
        return values

    def _local_date(self, moment: datetime) -> date:
        """The calendar date of a UTC time in the project's timezone."""
        return moment.replace(tzinfo=timezone.utc).astimezone(self.tzinfo).date()

    def _holds_sequence(self, node: ast.Sequence, person: Any) -> bool:
        """``A then B within D`` and ``A then not B within D`` (semantics.md, Sequences)."""
        first_source = self._resolve_source(node.first)
        then_source = self._resolve_source(node.then)
        a_times = [
            self._row_time(first_source, row, node.first)
            for row in self._matching_rows(node.first, person)
        ]
        # The second step has no window of its own: only its filter, up to T.
        b_times = [
            self._row_time(then_source, row, node.then)
            for row in self._matching_rows(node.then, person, window=False)
        ]

        def followed(a: datetime) -> bool:
            if node.within is None:
                return any(b > a for b in b_times)
            deadline = _shift(a, node.within, 1)
            return any(a < b <= deadline for b in b_times)

        if not node.negated:
            return any(followed(a) for a in a_times)
        if node.within is None:
            return any(not followed(a) for a in a_times)
        # The person must have had the full period to act: a.t + D <= T.
        return any(_shift(a, node.within, 1) <= self.now and not followed(a) for a in a_times)

    # --- v2: lang2 (language.md 9.5 to 9.7) --------------------------------------------------

    def _bucket(self, node: ast.Call, scope: _Scope) -> int:
        """``int(first 8 hex digits of md5(salt || ':' || id), 16) mod n``."""
        if scope.row is not None:
            raise SegqlTypeError("bucket() cannot be used inside an event filter", node.span)
        count = node.args[0]
        if not isinstance(count, ast.Number) or count.value != int(count.value) or count.value < 1:
            raise SegqlTypeError("bucket() takes a whole number of buckets", count.span)
        salt = self.config.salt
        if len(node.args) > 1:
            given = node.args[1]
            if not isinstance(given, ast.String):
                raise SegqlTypeError("the salt of bucket() is a quoted text", given.span)
            salt = given.value
        return bucket_of(scope.person, salt, int(count.value))

    def _population_statistic(self, node: ast.Call, scope: _Scope) -> Any:
        """``quantile``, ``median`` and ``population_*``: one value over every person whose
        value is not null (the same for everybody)."""
        if scope.row is not None:
            raise SegqlTypeError(f"{node.func}() cannot be used inside an event filter", node.span)
        if node not in self._population_cache:
            values = [self.value(node.args[-1], _Scope(person)) for person in self.people]
            present = [value for value in values if value is not None]
            self._population_cache[node] = {None: self._statistic(node, present)}
        return self._population_cache[node][None]

    def _statistic(self, node: ast.Call, values: list[Any]) -> Any:
        func = node.func
        if func == "population_count":
            return len(values)
        if not values:
            return None
        if func in ("population_min", "population_max"):
            if len({_kind(value) for value in values}) > 1:
                raise SegqlTypeError(f"{func}() over values of different types", node.span)
            return min(values) if func == "population_min" else max(values)
        if any(_kind(value) != "number" for value in values):
            raise SegqlTypeError(f"{func}() needs numbers", node.span)
        numbers = sorted(float(value) for value in values)
        if func == "population_avg":
            return math.fsum(numbers) / len(numbers)
        p = 0.5
        if func == "quantile":
            given = node.args[0]
            if not isinstance(given, ast.Number) or not 0 <= given.value <= 1:
                raise SegqlTypeError("quantile() takes p from 0 to 1", given.span)
            p = float(given.value)
        return _percentile_linear(numbers, p)

    def _holds_history(self, test: ast.HistoryTest, person: Any) -> bool:
        """Conditions on the changes committed runs recorded before ``T`` (language.md 9.6)."""
        if test.segment not in self.segments:
            raise SegqlNameError(
                unknown_name_message("segment", test.segment, self.segments), test.span
            )
        text = str(person)
        rows = [
            row
            for row in self.history
            if row.segment == test.segment and row.person_id == text and row.as_of < self.now
        ]
        if test.kind == "ever":
            return any(row.change == "enter" for row in rows)
        assert test.duration is not None
        since = _shift(self.now, test.duration, -1)
        if test.kind == "member_for":
            if not rows:
                return False
            last = max(rows, key=lambda row: row.commit_seq)
            return last.change == "enter" and last.as_of <= since
        change = "enter" if test.kind == "entered" else "exit"
        return any(row.change == change and row.as_of > since for row in rows)
    # --- language v2: funnels, calendar periods, streaks, among last ---------------------

    def _local(self, moment: datetime) -> datetime:
        """A naive UTC time as the naive wall-clock time in the project's timezone."""
        return moment.replace(tzinfo=timezone.utc).astimezone(self.tzinfo).replace(tzinfo=None)

    def _current_start(self, unit: str, back: int = 0) -> datetime:
        """The local start of the period ``back`` periods before the one holding ``T``: the
        step is taken on ``T``'s local time, then truncated (as the SQL does)."""
        local_now = self._local(self.now)
        if back:
            local_now = _shift(local_now, _unit_steps(unit, back), -1)
        return _period_start(local_now, unit)

    def _in_period(self, moment: datetime, window: ast.WindowPeriod) -> bool:
        """``in this U``: the period of ``T``, up to ``T``; ``in previous N Us``: the N whole
        periods before it. Periods are those of the local wall-clock time."""
        period = _period_start(self._local(moment), window.unit)
        current = self._current_start(window.unit)
        if window.previous == 0:
            return period == current and moment <= self.now
        return self._current_start(window.unit, window.previous) <= period < current

    def _streak(self, times: Sequence[datetime], unit: str) -> int:
        """Consecutive local periods with a row, ending at the current period if it has
        one, else at the one before it (the streak is alive until the period ends)."""
        periods = {_period_start(self._local(t), unit) for t in times}
        current = self._current_start(unit)
        previous = self._current_start(unit, 1)
        end = current if current in periods else previous if previous in periods else None
        length = 0
        while end is not None and end in periods:
            length += 1
            end = _period_start(end - timedelta(days=1), unit)
        return length

    def _holds_funnel(self, node: ast.Funnel, person: Any) -> bool:
        """Some chain of rows ``a.t < b.t <= a.t + D1``, ``b.t < c.t <= b.t + D2``, ...;
        a negated last step: some chain ends at ``x`` with ``x.t + D <= T`` and no row of
        the step in ``(x.t, x.t + D]``."""
        source = self._resolve_source(node.first)
        reached = [
            self._row_time(source, row, node.first)
            for row in self._matching_rows(node.first, person)
        ]
        for number, step in enumerate(node.steps, 1):
            step_source = self._resolve_source(step.spec)
            times = [
                self._row_time(step_source, row, step.spec)
                for row in self._matching_rows(step.spec, person, window=False)
            ]

            def follows(
                a: datetime, b: datetime, within: ast.Duration | None = step.within
            ) -> bool:
                return a < b and (within is None or b <= _shift(a, within, 1))

            if node.negated and number == len(node.steps):
                within = step.within
                return any(
                    (within is None or _shift(x, within, 1) <= self.now)
                    and not any(follows(x, b) for b in times)
                    for x in reached
                )
            reached = [b for b in times if any(follows(a, b) for a in reached)]
        return bool(reached)


def _unit_steps(unit: str, count: int) -> ast.Duration:
    """``count`` periods as a duration on wall-clock times: a week is 7 days, a quarter
    3 months."""
    if unit == "week":
        return ast.Duration(7 * count, "day")
    if unit == "quarter":
        return ast.Duration(3 * count, "month")
    return ast.Duration(count, unit)  # type: ignore[arg-type]


def _period_start(local: datetime, unit: str) -> datetime:
    """The start of the period holding a wall-clock time; weeks start on Monday (ISO)."""
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    if unit == "quarter":
        return day.replace(month=3 * ((day.month - 1) // 3) + 1, day=1)
    return day.replace(month=1, day=1)


def _among_last(rows: Sequence[Row], count: int, time_of: Callable[[Row], datetime]) -> list[Row]:
    """The rows of rank ``<= count``, newest first, as SQL ``RANK()`` ranks them: rows tied
    with the ``count``-th are all kept."""
    times = sorted((time_of(row) for row in rows), reverse=True)
    if len(times) <= count:
        return list(rows)
    cutoff = times[count - 1]
    return [row for row in rows if time_of(row) >= cutoff]


def _sum(values: Sequence[Any]) -> Any:
    """The sum of numbers (0 when there are none), mixing int, Decimal and float safely."""
    total: Any = 0
    for value in values:
        total = _arithmetic("+", total, value)
    return total


def _calendar_periods(func: str, days: set[date]) -> set[Any]:
    if func == "active_days":
        return set(days)
    if func == "active_weeks":
        return {day - timedelta(days=day.weekday()) for day in days}  # the Monday
    return {(day.year, day.month) for day in days}


__all__ = ["JsonValue", "RecordedChange", "evaluate", "evaluate_traits"]
