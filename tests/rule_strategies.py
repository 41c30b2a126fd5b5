"""Hypothesis strategies for *type-correct* segql modules and matching test data.

Unlike ``tests/strategies.py`` (any tree the grammar can express), everything here is meant
to check and run against the scenario schema of ``tests/support/scenario.py``: the rules
are built as ASTs with a kind of value tracked for every expression (number, text, time,
boolean), printed with ``segql.language.printer.format_module``, and must pass ``make_project``.
A generated module that does not check is a bug of this generator (or of the checker),
never filtered away.

Data is drawn on a coarse grid around the fixed run time ``T`` (multiples of 12 hours,
midnights, the ``T - 30 days``/``T - 1 month`` edges, a little after ``T``), so window and
time-test edges are hit often. Numbers are small integers and halves, which keeps float
arithmetic exact enough that engines cannot differ by rounding noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from segql.language import ast
from segql.language.printer import format_module
from tests.support.engines import ColumnType, Table
from tests.support.scenario import account, event, make_tables, person, subscription

T = datetime(2026, 3, 15, 12, 0, 0)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# Kinds of value tracked by the generator.
NUMBER, TEXT, TIME, BOOL = "number", "text", "time", "bool"
KINDS = (NUMBER, TEXT, TIME, BOOL)

EVENT_NAMES = ("login", "purchase", "page_view", "Order Completed")
EVENT_REFS: tuple[str | None, ...] = (*EVENT_NAMES, None)  # None is `any`
JSON_KEYS = ("price", "plan", "gift", "currency", "at")

PEOPLE_TEXT = ("status", "plan", "country", "email", "Plan Name")
TEXT_VALUES: dict[str, tuple[str, ...]] = {
    "status": ("paid", "free", "PAID", "trial"),
    "plan": ("pro", "free", "basic"),
    "country": ("US", "CA", "FR", "DE"),
    "email": ("a@x.io", "AB_c@y.com", "b%c@x.IO", "", "zed@x.io"),
    "Plan Name": ("Pro Max", "pro", "Basic"),
    "url": ("/pricing", "/docs", "/a", "/Pricing?x=1"),
    "event_type": EVENT_NAMES,
    "sub_status": ("active", "canceled", "paused"),
    "tier": ("gold", "silver", "bronze"),
    "json_plan": ("pro", "free", "PRO"),
    "json_currency": ("USD", "EUR", "usd"),
}
TEXT_LITERALS = ("paid", "free", "pro", "US", "CA", "a", "Pro Max", "", "D", "M", "/docs", "gold")
TEXT_PATTERNS = ("a", "PA", "x.io", "%", "_", "o", "/p", "pro", "gold", "US", "")
REGEXES = ("^[a-z]+$", "x\\.i", "^P", "[0-9]", "o$", "a|b", "^/(docs|a)$", "i{1,2}", "[^a-z]")

# Absolute time points (literals) around T; several are exact grid points.
TIME_LITERALS = (
    "2026-02-13 12:00:00",  # T - 30 days
    "2026-02-15 12:00:00",  # T - 1 month
    "2026-03-01",
    "2026-03-14 12:00:00",
    "2026-03-15 12:00:00",  # T
    "2026-03-15",
    "2026-02-01",
    "2026-03-10",
)
# Language v2 (calendar periods, streaks): local midnights of New York and Paris around T,
# the Monday of T's week, month and quarter starts, and times tied to the second.
V2_GRID_TIMES = (
    datetime(2026, 3, 15, 4, 0),  # 00:00 in New York (EDT): today starts
    datetime(2026, 3, 15, 3, 59, 59),
    datetime(2026, 3, 14, 23, 0),  # 00:00 in Paris
    datetime(2026, 3, 9, 4, 0),  # Monday 00:00 in New York
    datetime(2026, 3, 2, 5, 0),  # the Monday before, 00:00 EST (before DST)
    datetime(2026, 3, 1, 5, 0),  # March 1, 00:00 EST
    datetime(2026, 2, 28, 23, 0),  # March 1, 00:00 in Paris
    datetime(2026, 1, 1, 5, 0),  # the quarter and the year, in New York
    datetime(2025, 12, 31, 23, 0),  # ... and in Paris
)
GRID_TIMES = (
    *(T - k * 12 * HOUR for k in range(0, 90)),
    T + 12 * HOUR,
    T + HOUR,
    datetime(2026, 3, 1),
    datetime(2026, 2, 1),
    datetime(2026, 2, 15, 12),
    datetime(2026, 3, 9, 23, 0),  # a Sunday night: week edges
    datetime(2026, 3, 9, 0, 0),  # a Monday
    *V2_GRID_TIMES,
)


def _dur(amount: int, unit: str) -> ast.Duration:
    return ast.Duration(amount, unit)  # type: ignore[arg-type]


WITHIN_DURATIONS = (
    _dur(1, "day"),
    _dur(7, "day"),
    _dur(30, "day"),
    _dur(12, "hour"),
    _dur(36, "hour"),
    _dur(2, "week"),
    _dur(1, "month"),
)
AGO_DURATIONS = (
    _dur(7, "day"),
    _dur(30, "day"),
    _dur(90, "day"),
    _dur(1, "month"),
    _dur(12, "hour"),
)

AMONG_LAST = (1, 2, 3, 5)
NUMBER_LITERALS = (0, 1, 2, 3, 5, 10, -3, 0.5, 2.5, 1.5)
SMALL_COUNTS = (0, 1, 2, 3)
COMPARE_OPS = ("=", "!=", "<", "<=", ">", ">=")


def _num(value: int | float) -> ast.Number:
    return ast.Number(value)


# --- the generator --------------------------------------------------------------------------


@dataclass
class _Ctx:
    """What a module has defined so far: trait kinds and segment names (references go back)."""

    traits: dict[str, str] = field(default_factory=dict)
    segments: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Row:
    """An event spec's row scope: which source and which names it has."""

    source: str  # "events" | "subscriptions" | "accounts"


class _Gen:
    """Draws type-correct expressions and conditions; ``depth`` bounds the nesting."""

    def __init__(self, draw: Any, ctx: _Ctx) -> None:
        self.draw = draw
        self.ctx = ctx

    def pick(self, options: Any) -> Any:
        return self.draw(st.sampled_from(tuple(options)))

    def chance(self, p: float) -> bool:
        # integers shrink towards 0, so "False" is the simpler outcome
        return self.draw(st.integers(0, 99)) < int(p * 100)

    # --- person scope: expressions -------------------------------------------------------

    def expr(self, kind: str, depth: int) -> ast.Expr:
        return {NUMBER: self.number, TEXT: self.text, TIME: self.time, BOOL: self.boolean}[kind](
            depth
        )

    def _trait_of(self, kind: str) -> list[ast.Expr]:
        return [ast.Name(n) for n, k in self.ctx.traits.items() if k == kind]

    def number(self, depth: int) -> ast.Expr:
        if depth > 0 and self.chance(0.1):
            return self.lang2_number(depth)
        choice = self.draw(st.integers(0, 13 if depth > 0 else 4))
        traits = self._trait_of(NUMBER)
        if choice == 0:
            return ast.Name("ltv")
        if choice == 1:
            return _num(self.pick(NUMBER_LITERALS))
        if choice == 2 and traits:
            return self.pick(traits)
        if choice in (2, 3, 4):
            return self.aggregate(NUMBER)
        if choice == 5:
            op = self.pick("+-*/")
            left = self.number(depth - 1)
            if op == "/":
                if self.chance(0.6):
                    right: ast.Expr = _num(self.pick((0, 2, 4, 0.5)))
                else:
                    right = self.number(depth - 1)
            else:
                right = self.number(depth - 1)
            return ast.Arithmetic(op, left, right)
        if choice == 6:
            return ast.Negate(self.number(depth - 1))
        if choice == 7:
            func = self.pick(("abs", "coalesce", "least", "greatest"))
            if func == "abs":
                return ast.Call("abs", (self.number(depth - 1),))
            args = [self.number(depth - 1) for _ in range(self.draw(st.integers(1, 3)))]
            if func == "coalesce" and self.chance(0.5):
                args.append(_num(self.pick(NUMBER_LITERALS)))
            if self.chance(0.15):
                args.insert(self.draw(st.integers(0, len(args))), ast.Null())
            if func != "coalesce":
                args = _distinct(args)
            return ast.Call(func, tuple(args))
        if choice == 8:
            return ast.Call(self.pick(("days_since", "hours_since")), (self.time(depth - 1),))
        if choice == 9:
            return ast.Call("length", (self.text(depth - 1),))
        if choice == 10:
            # round only where halves cannot meet a .5 boundary: ltv holds halves, so round
            # it to 1 or 2 digits; counts are whole.
            if self.chance(0.5):
                return ast.Call("round", (ast.Name("ltv"), _num(self.pick((1, 2)))))
            return ast.Call("round", (self.aggregate(NUMBER, counts_only=True),))
        if choice in (11, 12):
            return self.population(depth - 1)
        return self.aggregate(NUMBER)

    def population(self, depth: int) -> ast.Expr:
        func = self.pick(("ntile", "qcut", "row_number", "percent_rank"))
        if func == "qcut":
            arg_kind = NUMBER
        elif func == "row_number":
            arg_kind = self.pick((NUMBER, NUMBER, TIME, TEXT))
        else:
            arg_kind = self.pick((NUMBER, NUMBER, TIME))
        if arg_kind == NUMBER and depth > 0 and self.chance(0.15):
            arg: ast.Expr = self.population(depth - 1)
        else:
            arg = self.expr(arg_kind, max(depth, 0))
        if func in ("ntile", "qcut"):
            return ast.Call(func, (_num(self.draw(st.integers(1, 5))), arg))
        return ast.Call(func, (arg,))

    def text(self, depth: int) -> ast.Expr:
        if depth > 0 and self.chance(0.06):
            return self.case_value(TEXT, depth)
        choice = self.draw(st.integers(0, 5 if depth > 0 else 1))
        traits = self._trait_of(TEXT)
        if choice == 0:
            return ast.Name(self.pick(PEOPLE_TEXT))
        if choice == 1 and traits:
            return self.pick(traits)
        if choice == 1:
            return ast.Name(self.pick(PEOPLE_TEXT))
        if choice == 2:
            return ast.Call(self.pick(("lower", "upper")), (self.text(depth - 1),))
        if choice == 3:
            return ast.Call("coalesce", (self.text(depth - 1), ast.String(self.pick(("none", "")))))
        if choice == 4:
            # min/max over a text column of a source
            ref, prop = self.pick(
                (
                    ("accounts", "tier"),
                    ("page_view", "url"),
                    ("subscriptions", "status"),
                    (None, "url"),
                )
            )
            return ast.Aggregate(self.pick(("min", "max")), self.spec(ref), prop)
        return ast.Call(
            self.pick(("least", "greatest")), (self.text(depth - 1), self.text(depth - 1))
        )

    def time(self, depth: int) -> ast.Expr:
        choice = self.draw(st.integers(0, 5 if depth > 0 else 2))
        traits = self._trait_of(TIME)
        if choice == 0:
            return ast.Name("signup_at")
        if choice == 1 and traits:
            return self.pick(traits)
        if choice in (1, 2):
            return self.aggregate(TIME)
        if choice == 3:
            return ast.Call("coalesce", (self.time(depth - 1), self.time(depth - 1)))
        if choice == 4:
            return ast.Call(self.pick(("least", "greatest")), (self.time(depth - 1), self.time(0)))
        return self.aggregate(TIME)

    def boolean(self, depth: int) -> ast.Expr:
        traits = self._trait_of(BOOL)
        if traits and self.chance(0.4):
            return self.pick(traits)
        if depth > 0 and self.chance(0.2):
            return ast.Call("coalesce", (ast.Name("is_trial"), ast.Boolean(self.chance(0.5))))
        return ast.Name("is_trial")

    # --- aggregates and specs --------------------------------------------------------------

    def aggregate(self, kind: str, counts_only: bool = False) -> ast.Expr:
        if kind == NUMBER and not counts_only and self.chance(0.06):
            return self.streak()
        if counts_only:
            func = self.pick(("count", "active_days", "count_distinct"))
        elif kind == TIME:
            func = self.pick(("first_time", "last_time", "first_time", "last_time", "min", "max"))
        else:
            func = self.pick(
                (
                    "count",
                    "count",
                    "count",
                    "count_distinct",
                    "sum",
                    "sum",
                    "avg",
                    "min",
                    "max",
                    "active_days",
                    "active_weeks",
                    "active_months",
                )
            )
        if kind == TIME and func in ("min", "max"):
            return ast.Aggregate(func, self.spec("subscriptions"), "created_at")
        needs_time = func in (
            "first_time",
            "last_time",
            "active_days",
            "active_weeks",
            "active_months",
        )
        sources: list[str | None] = [*EVENT_REFS, *EVENT_REFS, "subscriptions"]
        if not needs_time and func in ("count", "count_distinct"):
            sources.append("accounts")
        ref = self.pick(sources)
        prop = None
        if func == "count_distinct":
            prop = self.pick(
                {
                    "subscriptions": ("status", "mrr"),
                    "accounts": ("tier",),
                }.get(ref, ("url", "amount", "price", "plan", "event_type"))  # type: ignore[arg-type]
            )
        elif func in ("sum", "avg", "min", "max"):
            prop = "mrr" if ref == "subscriptions" else self.pick(("amount", "amount", "price"))
        return ast.Aggregate(func, self.spec(ref), prop)

    def spec(self, ref: str | None) -> ast.EventSpec:
        source = ref if ref in ("subscriptions", "accounts") else "events"
        where = self.row_condition(_Row(source), 1) if self.chance(0.4) else None
        window = None
        if source != "accounts" and self.chance(0.6):
            window = self.window(source)
        if window is None and source != "accounts" and self.chance(0.1):
            return ast.EventSpec(ref, where, None, last=self.pick(AMONG_LAST))
        return ast.EventSpec(ref, where, window)

    # --- language v2: calendar windows, among last, streaks, funnels ----------------------

    def calendar_window(self) -> ast.WindowPeriod:
        unit = self.pick(ast.PERIOD_UNITS)
        return ast.WindowPeriod(unit, self.pick((0, 0, 1, 1, 2, 3)))

    def streak(self) -> ast.Aggregate:
        ref = self.pick([*EVENT_REFS, *EVENT_REFS, "subscriptions"])
        source = "subscriptions" if ref == "subscriptions" else "events"
        where = self.row_condition(_Row(source), 1) if self.chance(0.3) else None
        unit = self.pick(ast.STREAK_UNITS)
        return ast.Aggregate("streak", ast.EventSpec(ref, where), period=unit)

    def funnel(self) -> ast.Funnel:
        """Three or four steps: only the first has a window, the last may be negated."""
        refs = [*EVENT_REFS, *EVENT_REFS, "subscriptions"]
        first = self.step_spec(self.pick(refs), window=True)
        steps = tuple(
            ast.FunnelStep(
                self.step_spec(self.pick(refs), window=False),
                self.pick(WITHIN_DURATIONS) if self.chance(0.7) else None,
            )
            for _ in range(self.draw(st.integers(2, 3)))
        )
        return ast.Funnel(first, steps, negated=self.chance(0.4))

    def step_spec(self, ref: str | None, window: bool) -> ast.EventSpec:
        """A funnel step: no ``among last``, and no window after the first step."""
        spec = self.spec(ref)
        return ast.EventSpec(spec.ref, spec.where, spec.window if window else None)

    def window(self, source: str) -> ast.Window:
        choice = self.draw(st.integers(0, 6))
        if choice == 6:
            return self.calendar_window()
        if choice <= 1:
            return ast.WindowWithin(self.pick(WITHIN_DURATIONS))
        if choice == 2:
            a, b = sorted(
                self.draw(
                    st.lists(st.sampled_from(AGO_DURATIONS), min_size=2, max_size=2, unique=True)
                ),
                key=_approx_days,
                reverse=True,
            )
            return ast.WindowRange(ast.Ago(a), ast.Ago(b))
        if choice == 3:
            a, b = sorted(
                self.draw(
                    st.lists(st.sampled_from(TIME_LITERALS), min_size=2, max_size=2, unique=True)
                )
            )
            return ast.WindowRange(ast.String(a), ast.String(b))
        point = self.point(allow_person=True)
        if choice == 4:
            return ast.WindowRange(point, None)
        return ast.WindowRange(None, point)

    def point(self, allow_person: bool = False) -> ast.Expr:
        """A time point: relative (`now`, `N ago`), a literal, or a person's time."""
        choice = self.draw(st.integers(0, 3 if allow_person else 2))
        if choice == 0:
            return ast.Ago(self.pick(AGO_DURATIONS))
        if choice == 1:
            return ast.String(self.pick(TIME_LITERALS))
        if choice == 2:
            return ast.Now()
        return ast.PersonProperty("signup_at")

    # --- row scope ------------------------------------------------------------------------

    def row_condition(self, row: _Row, depth: int) -> ast.Condition:
        if depth > 0 and self.chance(0.3):
            shape = self.pick(("and", "or", "not"))
            if shape == "not":
                return ast.Not(self.row_condition(row, depth - 1))
            items = tuple(self.row_condition(row, depth - 1) for _ in range(2))
            return ast.And(items) if shape == "and" else ast.Or(items)
        return self.row_predicate(row)

    def row_predicate(self, row: _Row) -> ast.Condition:
        if row.source == "accounts":
            options = [("tier", TEXT, "tier")]
        elif row.source == "subscriptions":
            options = [
                ("status", TEXT, "sub_status"),
                ("mrr", NUMBER, None),
                ("created_at", TIME, None),
            ]
        else:
            options = [
                ("amount", NUMBER, None),
                ("url", TEXT, "url"),
                ("event_type", TEXT, "event_type"),
                ("occurred_at", TIME, None),
                ("price", NUMBER, None),
                ("plan", TEXT, "json_plan"),
                ("currency", TEXT, "json_currency"),
                ("gift", BOOL, None),
                ("price", TEXT, None),
                ("gift", TEXT, None),
                ("at", TIME, None),
            ]
        options.append(("person", None, None))
        name, kind, values = self.pick(options)
        if name == "person":
            # a property of the person inside the filter
            pname, pkind = self.pick(
                (
                    ("status", TEXT),
                    ("country", TEXT),
                    ("ltv", NUMBER),
                    ("is_trial", BOOL),
                    ("signup_at", TIME),
                )
            )
            expr: ast.Expr = ast.PersonProperty(pname)
            return self.predicate_on(expr, pkind, pname, row=True)
        expr = ast.Name(name)
        if kind == NUMBER and self.chance(0.2):
            other = ast.PersonProperty("ltv") if self.chance(0.5) else _num(self.pick((2, 0.5, 0)))
            expr = ast.Arithmetic(self.pick("+-*/"), expr, other)
        return self.predicate_on(expr, kind, values, row=True)

    # --- predicates -----------------------------------------------------------------------

    def predicate_on(
        self, expr: ast.Expr, kind: str, values: str | None, row: bool
    ) -> ast.Condition:
        """A predicate testing ``expr`` of the given kind (person or row scope)."""
        if self.chance(0.1):
            return ast.IsSet(expr, negated=self.chance(0.5))
        if kind == NUMBER:
            shape = self.draw(st.integers(0, 2))
            if shape == 0:
                return ast.Compare(
                    self.pick(COMPARE_OPS),
                    expr,
                    _num(self.pick(NUMBER_LITERALS)),
                )
            if shape == 1:
                vals = self.draw(st.lists(st.sampled_from(NUMBER_LITERALS), min_size=1, max_size=3))
                return ast.InList(expr, tuple(_num(v) for v in vals), negated=self.chance(0.3))
            low, high = sorted(
                self.draw(st.lists(st.sampled_from(NUMBER_LITERALS), min_size=2, max_size=2))
            )
            return ast.Between(expr, _num(low), _num(high), negated=self.chance(0.3))
        if kind == TEXT:
            pool = (*TEXT_VALUES.get(values or "", ()), *TEXT_LITERALS)
            shape = self.draw(st.integers(0, 4))
            if shape == 0:
                op = self.pick(("=", "=", "!=", "<", ">=")) if values else self.pick(("=", "!="))
                return ast.Compare(op, expr, ast.String(self.pick(pool)))
            if shape == 1:
                vals: list[ast.Expr] = [
                    ast.String(v)
                    for v in self.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
                ]
                if self.chance(0.2):
                    vals.append(ast.Null())
                return ast.InList(expr, tuple(vals), negated=self.chance(0.3))
            if shape == 2:
                return ast.Between(
                    expr,
                    ast.String("A"),
                    ast.String(self.pick(("M", "p", "z"))),
                    negated=self.chance(0.2),
                )
            if shape == 3:
                op = self.pick(("contains", "starts_with", "ends_with"))
                return ast.TextTest(op, expr, ast.String(self.pick(TEXT_PATTERNS)))
            return ast.TextTest("matches", expr, ast.String(self.pick(REGEXES)))
        if kind == TIME:
            shape = self.draw(st.integers(0, 4))
            if shape == 4:
                return ast.PeriodTest(expr, self.calendar_window())
            if shape == 0:
                return ast.TimeTest("within", expr, self.pick(WITHIN_DURATIONS))
            if shape == 1:
                return ast.TimeTest(
                    self.pick(("before", "after")), expr, self.point(allow_person=row)
                )
            if shape == 2:
                op = self.pick(COMPARE_OPS)
                return ast.Compare(op, expr, self.point(allow_person=row))
            low, high = sorted(
                self.draw(st.lists(st.sampled_from(TIME_LITERALS), min_size=2, max_size=2))
            )
            return ast.Between(expr, ast.String(low), ast.String(high), negated=self.chance(0.2))
        # boolean
        if self.chance(0.7):
            return ast.Compare("=", expr, ast.Boolean(True))
        return ast.Compare(self.pick(("=", "!=")), expr, ast.Boolean(self.chance(0.5)))

    # --- person scope: conditions ----------------------------------------------------------

    def condition(self, depth: int) -> ast.Condition:
        if depth > 0 and self.chance(0.35):
            shape = self.pick(("and", "or", "not", "and"))
            if shape == "not":
                return ast.Not(self.condition(depth - 1))
            items = tuple(self.condition(depth - 1) for _ in range(self.draw(st.integers(2, 3))))
            return ast.And(items) if shape == "and" else ast.Or(items)
        return self.predicate(max(depth, 1))

    def predicate(self, depth: int) -> ast.Condition:
        if self.chance(0.06):
            return self.history_test()
        choice = self.draw(st.integers(0, 9))
        if choice == 0 and self.ctx.segments:
            return ast.InSegment(self.pick(self.ctx.segments))
        if choice in (0, 1):
            return self.did()
        if choice == 2:
            return self.sequence()
        if choice == 3:
            # two expressions of one kind compared with each other
            kind = self.pick((NUMBER, NUMBER, TIME, TEXT))
            op = self.pick(COMPARE_OPS)
            return ast.Compare(op, self.expr(kind, depth), self.expr(kind, depth - 1))
        kind = self.pick((NUMBER, NUMBER, NUMBER, TEXT, TEXT, TIME, TIME, BOOL))
        expr = self.expr(kind, depth)
        values = expr.name if isinstance(expr, ast.Name) and kind == TEXT else None
        return self.predicate_on(expr, kind, values, row=False)

    def did(self) -> ast.Condition:
        spec = self.spec(self.pick([*EVENT_REFS, *EVENT_REFS, "subscriptions", "accounts"]))
        count = ast.Aggregate("count", spec)
        form = self.draw(st.integers(0, 2))
        if form == 0:
            return ast.Compare(">=", count, _num(1))  # did
        if form == 1:
            return ast.Compare("=", count, _num(0))  # did not
        op = self.pick((">=", "<=", "="))
        return ast.Compare(op, count, _num(self.pick(SMALL_COUNTS)))

    def sequence(self) -> ast.Condition:
        if self.chance(0.35):
            funnel = self.funnel()
            return ast.Not(funnel) if self.chance(0.2) else funnel
        first_ref = self.pick([*EVENT_REFS, "subscriptions"])
        then_ref = self.pick([*EVENT_REFS, "subscriptions"])
        first = self.step_spec(first_ref, window=True)
        then = self.spec(then_ref)
        then = ast.EventSpec(then.ref, then.where, None)
        within = self.pick(WITHIN_DURATIONS) if self.chance(0.7) else None
        return ast.Sequence(first, then, negated=self.chance(0.4), within=within)

    # --- v2: lang2 (language.md 9.5 to 9.8) ---------------------------------------------

    def lang2_number(self, depth: int) -> ast.Expr:
        """``bucket()``, a population value, or a ``case`` of numbers."""
        choice = self.draw(st.integers(0, 2))
        if choice == 0:
            count: tuple[ast.Expr, ...] = (_num(self.pick(BUCKET_COUNTS)),)
            salt = self.pick(BUCKET_SALTS)
            return ast.Call("bucket", count if salt is None else (*count, ast.String(salt)))
        if choice == 1:
            func = self.pick(tuple(ast.POPULATION_VALUES))
            value = self.number(depth - 1)
            if func == "quantile":
                return ast.Call(func, (_num(self.pick(QUANTILE_PS)), value))
            return ast.Call(func, (value,))
        return self.case_value(NUMBER, depth)

    def case_value(self, kind: str, depth: int) -> ast.Expr:
        branches = tuple(
            (self.condition(depth - 1), self.expr(kind, depth - 1))
            for _ in range(self.draw(st.integers(1, 3)))
        )
        default = self.expr(kind, depth - 1) if self.chance(0.6) else None
        return ast.CaseWhen(branches, default)

    def history_test(self) -> ast.Condition:
        """A condition on recorded membership, of an earlier segment or the one being
        drawn (a segment may name itself there)."""
        segment = self.pick([*self.ctx.segments, f"s{len(self.ctx.segments) + 1}"])
        kind = self.pick(("entered", "exited", "member_for", "ever"))
        duration = None if kind == "ever" else self.pick(WITHIN_DURATIONS)
        return ast.HistoryTest(kind, segment, duration)


BUCKET_COUNTS = (1, 2, 3, 10, 100)
BUCKET_SALTS = (None, None, "", "promo", "a:b", "it's")
QUANTILE_PS = (0, 0.25, 0.5, 0.8, 1)


def _distinct(args: list[ast.Expr]) -> list[ast.Expr]:
    """``least``/``greatest`` arguments without repeats (``least(x, x)`` is ``least(x)``).

    Engine-emulation artefact, not a segql disagreement: DuckDB 2.0.0, which fakesnow runs
    on, fails with "Serialization Error: ... Duplicate named argument" when LEAST/GREATEST
    repeats a column among 3+ arguments inside a CTE it materializes on its own (a CTE used
    twice, e.g. by ``in other``). Real Snowflake runs that SQL; the DuckDB dialect marks the
    CTE ``AS MATERIALIZED``, which does not hit the bug.
    """
    return list(dict.fromkeys(args))


def _approx_days(duration: ast.Duration) -> float:
    return duration.amount * {"hour": 1 / 24, "day": 1, "week": 7, "month": 30}[duration.unit]


@st.composite
def rule_modules(draw: Any) -> ast.Module:
    """A module of 3-6 segments and 0-2 traits; references only go backwards (no cycles)."""
    ctx = _Ctx()
    gen = _Gen(draw, ctx)
    definitions: list[ast.Definition] = []
    for index in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from((NUMBER, NUMBER, NUMBER, TIME, TEXT, BOOL)))
        name = f"t{index + 1}"
        definitions.append(ast.Trait(name, gen.expr(kind, 2)))
        ctx.traits[name] = kind
    for index in range(draw(st.integers(3, 6))):
        name = f"s{index + 1}"
        if gen.chance(0.08):
            # hysteresis: with no recorded membership the segment is `enter`
            segment = ast.Segment(name, enter=gen.condition(1), exit=gen.condition(1))
        else:
            segment = ast.Segment(name, where=gen.condition(2))
        definitions.append(segment)
        ctx.segments.append(name)
    return ast.Module(tuple(definitions))


def rule_texts() -> st.SearchStrategy[str]:
    return rule_modules().map(format_module)


# --- data ---------------------------------------------------------------------------------

# Row person ids: mostly a few heavy users (so sequences and windows have rows to work on),
# then other people that exist (1-8), sometimes unknown ones (up to 15), sometimes null.
person_ids = st.one_of(
    st.integers(1, 3), st.integers(1, 3), st.integers(1, 8), st.integers(1, 15), st.none()
)
grid_times = st.sampled_from(GRID_TIMES)
maybe_times = st.one_of(grid_times, grid_times, grid_times, st.none())


def _maybe(values: Any) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.sampled_from(tuple(values)))


halves = st.sampled_from((0.0, 0.5, 1.0, 2.5, 5.0, 10.0, -3.0, 3.0))

people_rows = st.builds(
    lambda pid, status, plan, country, email, ltv, signup, trial, plan_name: person(
        pid,
        status=status,
        plan=plan,
        country=country,
        email=email,
        ltv=ltv,
        signup_at=signup,
        is_trial=trial,
        **{"Plan Name": plan_name},
    ),
    st.one_of(
        st.integers(1, 3), st.integers(1, 8), st.integers(1, 8), st.integers(1, 12), st.none()
    ),
    _maybe(TEXT_VALUES["status"]),
    _maybe(TEXT_VALUES["plan"]),
    _maybe(TEXT_VALUES["country"]),
    _maybe(TEXT_VALUES["email"]),
    st.one_of(st.none(), halves),
    maybe_times,
    st.one_of(st.none(), st.booleans()),
    _maybe(TEXT_VALUES["Plan Name"]),
)

json_values: dict[str, st.SearchStrategy[Any]] = {
    "price": st.one_of(st.integers(0, 5), st.sampled_from(("3", "n/a", "2.5")), st.booleans()),
    "plan": st.one_of(st.sampled_from(TEXT_VALUES["json_plan"]), st.integers(0, 2)),
    "gift": st.one_of(st.booleans(), st.sampled_from(("true", "no"))),
    "currency": st.sampled_from(TEXT_VALUES["json_currency"]),
    # ISO times (read as UTC), and values that are not times
    "at": st.sampled_from(
        ("2026-03-10", "2026-03-14 12:00:00", "2026-02-13T12:00:00", "soon", "2026-03-15 13:00:00")
    ),
}
json_properties = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(JSON_KEYS), st.none(), max_size=3).flatmap(
        lambda keys: st.fixed_dictionaries({k: json_values[k] for k in keys})
    ),
)

event_rows = st.builds(
    lambda pid, name, at, amount, url, props: event(
        pid, name, at, amount=amount, url=url, properties=props
    ),
    person_ids,
    st.one_of(st.sampled_from(EVENT_NAMES), st.sampled_from(EVENT_NAMES), st.none()),
    st.one_of(grid_times, grid_times, grid_times, grid_times, grid_times, grid_times, st.none()),
    st.one_of(st.none(), st.integers(-2, 9).map(float)),
    _maybe(TEXT_VALUES["url"]),
    json_properties,
)

subscription_rows = st.builds(
    lambda pid, at, status, mrr: subscription(pid, at, status=status, mrr=mrr),
    person_ids,
    maybe_times,
    _maybe(TEXT_VALUES["sub_status"]),
    st.one_of(st.none(), halves),
)

account_rows = st.builds(account, person_ids, _maybe(TEXT_VALUES["tier"]))


# --- v2: lang2: recorded membership (language.md 9.6) ---------------------------------------

HISTORY_COLUMNS: tuple[tuple[str, ColumnType], ...] = (
    ("segment", "text"),
    ("person_id", "text"),
    ("change", "text"),
    ("as_of", "timestamp"),
    ("commit_seq", "integer"),
    ("run_id", "text"),
)
RUNS_COLUMNS: tuple[tuple[str, ColumnType], ...] = (("run_id", "text"), ("status", "text"))
# Run times: on the grid (before T, at T and after it), in commit order.
RUN_TIMES = tuple(sorted({*GRID_TIMES, T}))


@st.composite
def recorded_history(draw: Any) -> dict[str, Table]:
    """``segql_history`` and ``segql_runs`` as runs leave them: runs in commit order, as-of
    never going back, each change the opposite of the pair's last committed one (a failed
    run's rows are there too, and read by nobody)."""
    times = sorted(draw(st.lists(st.sampled_from(RUN_TIMES), max_size=5)))
    state: set[tuple[str, str]] = set()
    history: list[tuple[Any, ...]] = []
    runs: list[tuple[Any, ...]] = []
    for seq, as_of in enumerate(times, 1):
        run_id = f"r{seq}"
        committed = draw(st.integers(0, 9)) > 0
        runs.append((run_id, "committed" if committed else "failed"))
        pairs = draw(
            st.lists(
                st.tuples(
                    st.sampled_from([f"s{i}" for i in range(1, 7)]),
                    st.integers(1, 9).map(str),
                ),
                max_size=8,
                unique=True,
            )
        )
        for pair in pairs:
            change = "exit" if pair in state else "enter"
            history.append((*pair, change, as_of, seq, run_id))
            if committed:
                state ^= {pair}
    return {
        "segql_history": Table(HISTORY_COLUMNS, tuple(history)),
        "segql_runs": Table(RUNS_COLUMNS, tuple(runs)),
    }


@st.composite
def datasets(draw: Any) -> dict[str, Table]:
    """People (0-12 rows, duplicates and null ids), events (0-40), subscriptions, accounts."""
    # Sizes are drawn first (hypothesis' own list sizes favour very short lists); they still
    # shrink towards empty tables.
    n_people = draw(st.one_of(st.integers(0, 12), st.integers(4, 12)))
    n_events = draw(st.one_of(st.integers(0, 40), st.integers(10, 40)))
    tables = make_tables(
        people=draw(st.lists(people_rows, min_size=n_people, max_size=n_people)),
        events=draw(st.lists(event_rows, min_size=n_events, max_size=n_events)),
        subscriptions=draw(st.lists(subscription_rows, max_size=8)),
        accounts=draw(st.lists(account_rows, max_size=6)),
    )
    return {**tables, **draw(recorded_history())}


def describe_tables(tables: dict[str, Table]) -> str:
    """The rows of every table, one per line, for failure reports."""
    lines = []
    for name, table in tables.items():
        lines.append(f"{name} {table.column_names}:")
        lines.extend(f"  {row!r}" for row in table.rows)
    return "\n".join(lines)


TIMEZONES = ("UTC", "UTC", "UTC", "Europe/Paris", "America/New_York")
timezones = st.sampled_from(TIMEZONES)

__all__ = [
    "T",
    "datasets",
    "describe_tables",
    "rule_modules",
    "rule_texts",
    "timezones",
]
