"""The AST of the segql language: frozen dataclasses, one per construct.

Every node carries the ``Span`` it was parsed from; spans take no part in equality, so two
texts that mean the same thing (``did x`` and ``count(x) >= 1``) give equal trees. Sugar is
removed by the parser: there is no node for ``did``, ``has`` or ``at least``.

Times and windows follow language.md section 3: a point relative to the run's time ``T``
(``now``, ``30 days ago``) belongs to the past side, an absolute point (``'2026-01-01'``)
starts the future side. ``WindowRange(start, end)`` means "after start and before end"
with those sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from segql.errors import Span

DurationUnit = Literal["minute", "hour", "day", "week", "month", "year"]
CompareOp = Literal["=", "!=", "<", "<=", ">", ">="]
ArithOp = Literal["+", "-", "*", "/"]
TextOp = Literal["contains", "starts_with", "ends_with", "matches"]
TimeOp = Literal["within", "before", "after"]
AggregateFunc = Literal[
    "count",
    "count_distinct",
    "sum",
    "avg",
    "min",
    "max",
    "first_time",
    "last_time",
    "active_days",
    "active_weeks",
    "active_months",
    "streak",
]

AGGREGATES: tuple[str, ...] = AggregateFunc.__args__  # type: ignore[attr-defined]
PROPERTY_AGGREGATES = frozenset({"count_distinct", "sum", "avg", "min", "max"})
# Calendar periods (language v2): windows and time tests, and the periods of streak().
PeriodUnit = Literal["day", "week", "month", "quarter", "year"]
PERIOD_UNITS: tuple[str, ...] = PeriodUnit.__args__  # type: ignore[attr-defined]
STREAK_UNITS = ("day", "week", "month")
SCALAR_FUNCTIONS: dict[str, tuple[int, int | None]] = {
    # name: (fewest arguments, most arguments or None for any number)
    "days_since": (1, 1),
    "hours_since": (1, 1),
    "coalesce": (1, None),
    "lower": (1, 1),
    "upper": (1, 1),
    "length": (1, 1),
    "abs": (1, 1),
    "round": (1, 2),
    "least": (1, None),
    "greatest": (1, None),
}
POPULATION_FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "ntile": (2, 2),
    "qcut": (2, 2),
    "row_number": (1, 1),
    "percent_rank": (1, 1),
}
# --- v2: lang2 (language.md 9.5, 9.7) ---
# bucket(n[, 'salt']): a stable number 0..n-1 from the person's id (a scalar of the id).
BUCKET_FUNCTIONS: dict[str, tuple[int, int | None]] = {"bucket": (1, 2)}
# One value over everybody, the same for every person (not a rank).
POPULATION_VALUES: dict[str, tuple[int, int | None]] = {
    "quantile": (2, 2),
    "median": (1, 1),
    "population_avg": (1, 1),
    "population_min": (1, 1),
    "population_max": (1, 1),
    "population_count": (1, 1),
}
FUNCTIONS = {
    **SCALAR_FUNCTIONS, **POPULATION_FUNCTIONS, **BUCKET_FUNCTIONS, **POPULATION_VALUES
}  # fmt: skip


def _span() -> Any:
    """The span field: excluded from equality and repr, optional when building trees."""
    return field(default=None, compare=False, repr=False)


# --- expressions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Number:
    value: int | float
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class String:
    value: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Boolean:
    value: bool
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Null:
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Duration:
    """A length of time: minutes to weeks are fixed, months and years are calendar steps."""

    amount: int
    unit: DurationUnit
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Now:
    """The run's as-of time ``T``."""

    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Ago:
    """``30 days ago``: ``T`` minus a duration."""

    duration: Duration
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Name:
    """A bare identifier: a column of the table in scope, a JSON property, or a trait."""

    name: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class PersonProperty:
    """``person.x`` inside an event filter: a property of the person the row belongs to."""

    name: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Arithmetic:
    op: ArithOp
    left: Expr
    right: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Call:
    """A scalar function (``days_since``) or a population function (``ntile``)."""

    func: str
    args: tuple[Expr, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class WindowWithin:
    """``within 30 days``: ``T - 30d < t <= T``."""

    duration: Duration
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class WindowRange:
    """``since P``, ``before P``, ``between P1 and P2``: after ``start`` and before ``end``."""

    start: Expr | None
    end: Expr | None
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class WindowPeriod:
    """A calendar window in the project's timezone: ``in this month`` (``previous`` 0: from
    the start of the period holding ``T`` up to ``T``) or ``in previous 3 months``
    (``previous`` 3: the three whole periods before the current one)."""

    unit: PeriodUnit
    previous: int = 0
    span: Span | None = _span()


Window = WindowWithin | WindowRange | WindowPeriod


@dataclass(frozen=True, slots=True)
class EventSpec:
    """Rows of the events table (or a declared source) for one person.

    ``ref`` is an event name, a source name, or ``None`` for ``any`` event.
    """

    ref: str | None
    where: Condition | None = None
    window: Window | None = None
    span: Span | None = _span()
    # ``among last N``: only the person's N most recent rows of the ref (RANK, newest first).
    # Left out of the repr, which names columns (``segql.compile.naming`` names it itself).
    last: int | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Aggregate:
    """``count(spec)``, ``sum(ref.prop ...)``, ``active_days(spec)`` and the rest."""

    func: AggregateFunc
    spec: EventSpec
    prop: str | None = None
    span: Span | None = _span()
    # streak(spec, day|week|month); out of the repr as ``EventSpec.last`` is
    period: PeriodUnit | None = field(default=None, repr=False)


# --- v2: lang2 (language.md 9.8) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseWhen:
    """``case when C1 then A [when C2 then B ...] [else E] end``: the value of the first
    condition that holds (a null makes a condition false); null without ``else``."""

    branches: tuple[tuple[Condition, Expr], ...]
    default: Expr | None = None
    span: Span | None = _span()


Expr = (
    Number
    | String
    | Boolean
    | Null
    | Duration
    | Now
    | Ago
    | Name
    | PersonProperty
    | Negate
    | Arithmetic
    | Call
    | Aggregate
    | CaseWhen
)


# --- conditions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Condition, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Condition, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Not:
    operand: Condition
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Compare:
    op: CompareOp
    left: Expr
    right: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class InList:
    expr: Expr
    values: tuple[Expr, ...]
    negated: bool = False
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Between:
    """Inclusive range test on a property: ``low <= expr <= high``, also on times."""

    expr: Expr
    low: Expr
    high: Expr
    negated: bool = False
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class TextTest:
    """``contains``, ``starts with``, ``ends with`` (case-insensitive, literal) and ``matches``."""

    op: TextOp
    expr: Expr
    pattern: String
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class IsSet:
    """``is set`` (``is not null``) or, negated, ``is not set`` (``is null``)."""

    expr: Expr
    negated: bool = False
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class TimeTest:
    """``t within 7 days``, ``t before 30 days ago``, ``t after '2026-01-01'``.

    For ``within`` the argument is a ``Duration``; otherwise it is a time point.
    """

    op: TimeOp
    expr: Expr
    arg: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class InSegment:
    """``in trial_users``: membership of another segment at the same run."""

    segment: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Sequence:
    """``did A then B within D`` or ``did A then not B within D``, per person."""

    first: EventSpec
    then: EventSpec
    negated: bool = False
    within: Duration | None = None
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class FunnelStep:
    """``then [not] STEP [within D]`` of a funnel: measured from the step before it."""

    spec: EventSpec
    within: Duration | None = None
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Funnel:
    """``did A then B within D1 then C within D2 ...``: three steps or more (two are a
    ``Sequence``). ``negated``: the last step is ``then not``."""

    first: EventSpec
    steps: tuple[FunnelStep, ...]
    negated: bool = False
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class PeriodTest:
    """``signup_at in previous week``: a time in a calendar window (``WindowPeriod``)."""

    expr: Expr
    period: WindowPeriod
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class IdList:
    """The condition of a list segment: the person's id is in a list file (``kind``
    ``list``: a CSV path relative to the project) or a table's ``person_id`` column
    (``kind`` ``table``: ``schema.table``)."""

    kind: str
    name: str
    span: Span | None = _span()


# --- v2: lang2 (language.md 9.6) ------------------------------------------------------

HistoryKind = Literal["entered", "exited", "member_for", "ever"]


@dataclass(frozen=True, slots=True)
class HistoryTest:
    """A condition on the membership that earlier committed runs recorded (as-of < T):
    ``entered X within D``, ``exited X within D``, ``member of X for D``, ``ever in X``."""

    kind: HistoryKind
    segment: str
    duration: Duration | None = None
    span: Span | None = _span()


Condition = (
    IdList
    | And
    | Or
    | Not
    | Compare
    | InList
    | Between
    | TextTest
    | IsSet
    | TimeTest
    | InSegment
    | Sequence
    | HistoryTest
    | Funnel
    | PeriodTest
)


# --- definitions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    """A named condition over one person; ``where`` or the ``enter``/``exit`` pair is set."""

    name: str
    where: Condition | None = None
    enter: Condition | None = None
    exit: Condition | None = None
    title: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    owner: str | None = None
    paused: bool = False
    span: Span | None = _span()

    @property
    def is_hysteresis(self) -> bool:
        return self.where is None


@dataclass(frozen=True, slots=True)
class Trait:
    """A named per-person value, reusable in conditions."""

    name: str
    expr: Expr
    title: str | None = None
    description: str | None = None
    span: Span | None = _span()


Definition = Segment | Trait


@dataclass(frozen=True, slots=True)
class Priority:
    """``priority a, b, c``: each person is a member of only the first of these segments
    whose rules they meet."""

    segments: tuple[str, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Module:
    """The definitions of one text, in order, and its priority lists."""

    definitions: tuple[Definition, ...]
    span: Span | None = _span()
    priorities: tuple[Priority, ...] = ()
