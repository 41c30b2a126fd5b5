"""Hypothesis strategies for arbitrary *syntactically valid* segql ASTs.

The trees are not necessarily type-correct (``'a' + now`` is fine here): they are what the
grammar can express, so that ``parse(format_module(tree)) == tree`` must hold for all of
them. Every node type of ``segql.language.ast`` is generated (see below).

Constraints the grammar imposes, and how they are encoded:

- Names (``Name``, ``PersonProperty``, segment/trait names, aggregate properties) are
  never empty: ```` `` ```` is a lexer error ("empty name in backticks"). Any other text,
  keywords, spaces, backticks and unicode included, can be written in backticks.
- Event refs may be any string, even empty (written as a SQL string ``''``), or ``None``
  for ``any``.
- ``Number`` holds an int or a *finite* float, never a bool (the printer rejects bools, and
  ``inf``/``nan`` have no literal). A negative ``Number(-3)`` is written ``-3`` and
  ``Negate(Number(3))`` is written ``-(3)``: both shapes are generated.
- ``Duration.amount`` is an int ``>= 0``: the parser takes only whole numbers.
- ``Call.func`` is one of ``ast.FUNCTIONS`` with an argument count inside its arity; the
  parser checks arities. Functions with no upper bound get up to ``min + 2`` arguments.
- ``Aggregate.prop`` is set exactly for ``ast.PROPERTY_AGGREGATES``.
- ``WindowRange`` has at least one of ``start``/``end`` (the printer asserts it).
- ``And``/``Or`` have two or more items; nested same-kind groups are allowed (the printer
  keeps their parentheses).
- ``InList.values`` is non-empty (``x in ()`` is a syntax error).
- ``TextTest.pattern`` is a ``String`` (the parser takes only a quoted pattern).
- ``TimeTest('within', ...)`` takes a ``Duration``; ``before``/``after`` take any expression.
- ``Sequence.then.window`` is ``None``: after ``then`` a window word is ``Sequence.within``.
  The same holds for every later step of a ``Funnel``, and neither has ``among last``
  (``EventSpec.last``) after ``then``.
- ``Aggregate.period`` is set exactly for ``streak``.
- A bare boolean condition (``paid``) is parsed as ``Compare('=', expr, Boolean(True))``,
  which is an ordinary ``Compare``.
- ``Segment`` has either ``where`` or both ``enter`` and ``exit``.
- Sugar needs no constraint: ``Compare('>=', count(spec), Number(1))`` prints as
  ``did spec`` and must come back as the same tree; such shapes are generated on purpose.

Sizes are bounded: nesting through aggregates (expression -> aggregate -> where condition
-> expression ...) is cut at ``MAX_DEPTH``, and each level is a ``st.recursive`` with a
small ``max_leaves``.
"""

from __future__ import annotations

import copy
import functools
import os
import string
from typing import TypeVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from segql.language import ast
from segql.language.lexer import WORD_UNITS
from segql.language.parser import CONTEXTUAL, RESERVED

MAX_DEPTH = 2
T = TypeVar("T")

UNITS = ("minute", "hour", "day", "week", "month", "year")
COMPARE_OPS = ("=", "!=", "<", "<=", ">", ">=")
ARITH_OPS = ("+", "-", "*", "/")
TEXT_OPS = ("contains", "starts_with", "ends_with", "matches")
KEYWORDS = tuple(sorted(RESERVED | CONTEXTUAL | frozenset(WORD_UNITS)))

# --- names and literals ----------------------------------------------------------------

_FIRST = string.ascii_letters + "_"
plain_identifiers = st.builds(
    str.__add__,
    st.sampled_from(_FIRST),
    st.text(alphabet=_FIRST + string.digits, max_size=8),
)
keyword_identifiers = st.sampled_from(KEYWORDS).flatmap(
    lambda w: st.sampled_from((w, w.upper(), w.capitalize()))
)
odd_identifiers = st.sampled_from(
    ("Plan Name", "a`b", "`", "``x``", "Status", "café", "日本", "a-b", "1st", "#x", "--y")
)
identifiers = st.one_of(
    plain_identifiers,
    keyword_identifiers,
    odd_identifiers,
    st.text(min_size=1, max_size=10),
)

strings = st.one_of(
    st.text(max_size=12),
    st.sampled_from(("", "it's", "''", "%", "_", "\\", "50%_off\\", "a\nb", "naïve ☃", "#", "--")),
)
# title/description: double-quoted, with \" and \\ escapes; newlines are kept as they are.
labels = st.none() | st.text(max_size=12) | st.sampled_from(('say "hi"', "a\\b", "x\ny", "\\"))

integers = st.integers(min_value=-(10**20), max_value=10**20)
floats = st.floats(allow_nan=False, allow_infinity=False)
numbers = st.builds(ast.Number, st.one_of(integers, floats))
durations = st.builds(
    ast.Duration, st.integers(min_value=0, max_value=10**6), st.sampled_from(UNITS)
)
# Calendar windows (language v2): `in this month`, `in previous 3 weeks`, today, yesterday.
calendar_windows = st.builds(
    ast.WindowPeriod, st.sampled_from(ast.PERIOD_UNITS), st.integers(min_value=0, max_value=40)
)

LEAF_EXPRESSIONS = (
    numbers,
    st.builds(ast.String, strings),
    st.builds(ast.Boolean, st.booleans()),
    st.builds(ast.Null),
    durations,
    st.builds(ast.Now),
    st.builds(ast.Ago, durations),
    st.builds(ast.Name, identifiers),
    st.builds(ast.PersonProperty, identifiers),
)
leaf_expressions = st.one_of(*LEAF_EXPRESSIONS)

# Event refs: None (``any``), identifiers, names with spaces or keywords (quoted as strings).
refs = st.one_of(
    st.none(),
    plain_identifiers,
    keyword_identifiers,
    st.sampled_from(("Order Completed", "any", "", "it's", "person", "count")),
    st.text(max_size=8),
)


# --- expressions -----------------------------------------------------------------------


def calls(arguments: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Call]:
    """A scalar or population function with an argument count inside its arity."""

    def build(func: str) -> st.SearchStrategy[ast.Call]:
        fewest, most = ast.FUNCTIONS[func]
        most = fewest + 2 if most is None else most
        args = st.lists(arguments, min_size=fewest, max_size=most)
        return args.map(lambda a: ast.Call(func, tuple(a)))

    return st.sampled_from(sorted(ast.FUNCTIONS)).flatmap(build)


@functools.cache
def expressions(depth: int = MAX_DEPTH) -> st.SearchStrategy[ast.Expr]:
    """Any expression; aggregates (which hold conditions) only while ``depth > 0``."""
    # Flattened so that an aggregate is one choice among the leaves, not half of them.
    base = (
        leaf_expressions
        if depth == 0
        else st.one_of(*LEAF_EXPRESSIONS, aggregates(depth), case_whens(depth))
    )

    def extend(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
        return st.one_of(
            st.builds(ast.Negate, children),
            st.builds(ast.Negate, numbers),
            st.builds(ast.Arithmetic, st.sampled_from(ARITH_OPS), children, children),
            calls(children),
        )

    return st.recursive(base, extend, max_leaves=3)


@functools.cache
def windows(depth: int) -> st.SearchStrategy[ast.Window]:
    points = expressions(depth)
    return st.one_of(
        calendar_windows,
        st.builds(ast.WindowWithin, durations),
        st.builds(ast.WindowRange, points, points),
        st.builds(ast.WindowRange, points, st.none()),
        st.builds(ast.WindowRange, st.none(), points),
    )


@functools.cache
def event_specs(depth: int, window: bool = True) -> st.SearchStrategy[ast.EventSpec]:
    """``ref [where C] [window]``; the filter only while ``depth > 0``.

    Aggregates and sugar at depth ``d`` take specs of depth ``d - 1``, so every level of
    nesting through a filter costs one unit of depth.
    """
    # Sugar right inside a filter is drawn more often: it is where the printer must take
    # care that the inner ``did`` does not swallow the outer spec's window or ``then``.
    where = (
        st.none()
        if depth <= 0
        else st.one_of(
            st.none(), conditions(depth - 1), sugar_compares(depth - 1), sequences(depth - 1)
        )
    )
    found_window = st.none() | windows(max(depth - 1, 0)) if window else st.none()
    last = st.none() | st.integers(1, 500) if window else st.none()
    return st.builds(ast.EventSpec, refs, where, found_window, last=last)


@functools.cache
def aggregates(depth: int) -> st.SearchStrategy[ast.Aggregate]:
    def build(func: str) -> st.SearchStrategy[ast.Aggregate]:
        prop = identifiers if func in ast.PROPERTY_AGGREGATES else st.none()
        period = st.sampled_from(ast.STREAK_UNITS) if func == "streak" else st.none()
        return st.builds(
            ast.Aggregate, st.just(func), event_specs(depth - 1), prop, period=period
        )

    return st.sampled_from(ast.AGGREGATES).flatmap(build)


# --- conditions ------------------------------------------------------------------------


@functools.cache
def sugar_compares(depth: int) -> st.SearchStrategy[ast.Compare]:
    """The shapes the printer writes as sugar (``did x``, ``did not x``) and near misses."""
    count = st.builds(ast.Aggregate, st.just("count"), event_specs(depth - 1))
    return st.one_of(
        st.builds(ast.Compare, st.just(">="), count, st.just(ast.Number(1))),
        st.builds(ast.Compare, st.just("="), count, st.just(ast.Number(0))),
        st.builds(
            ast.Compare,
            st.sampled_from(COMPARE_OPS),
            count,
            st.builds(ast.Number, st.sampled_from((0, 1, 3, 1.0, -1))),
        ),
    )


@functools.cache
def sequences(depth: int) -> st.SearchStrategy[ast.Sequence]:
    return st.builds(
        ast.Sequence,
        event_specs(depth - 1),
        event_specs(depth - 1, window=False),
        st.booleans(),
        st.none() | durations,
    )


@functools.cache
def funnels(depth: int) -> st.SearchStrategy[ast.Funnel]:
    """Three to four steps; only the first has a window or ``among last``."""
    step = st.builds(ast.FunnelStep, event_specs(depth - 1, window=False), st.none() | durations)
    return st.builds(
        ast.Funnel,
        event_specs(depth - 1),
        st.lists(step, min_size=2, max_size=3).map(tuple),
        st.booleans(),
    )


@functools.cache
def predicates(depth: int) -> st.SearchStrategy[ast.Condition]:
    e = expressions(depth)
    return st.one_of(
        st.builds(ast.Compare, st.sampled_from(COMPARE_OPS), e, e),
        st.builds(ast.Compare, st.just("="), e, st.just(ast.Boolean(True))),
        st.builds(ast.InList, e, st.lists(e, min_size=1, max_size=3).map(tuple), st.booleans()),
        st.builds(ast.Between, e, e, e, st.booleans()),
        st.builds(ast.TextTest, st.sampled_from(TEXT_OPS), e, st.builds(ast.String, strings)),
        st.builds(ast.IsSet, e, st.booleans()),
        st.builds(ast.TimeTest, st.just("within"), e, durations),
        st.builds(ast.TimeTest, st.sampled_from(("before", "after")), e, e),
        st.builds(ast.InSegment, identifiers),
        sequences(depth),
        sugar_compares(depth),
        funnels(depth),
        st.builds(ast.PeriodTest, e, calendar_windows),
        history_tests,
    )


# --- v2: lang2 (language.md 9.6, 9.8) ---------------------------------------------------

history_tests = st.one_of(
    st.builds(
        ast.HistoryTest, st.sampled_from(("entered", "exited", "member_for")), identifiers,
        durations,
    ),
    st.builds(ast.HistoryTest, st.just("ever"), identifiers),
)  # fmt: skip


@functools.cache
def case_whens(depth: int) -> st.SearchStrategy[ast.CaseWhen]:
    """``case when ... end``, whose conditions and values cost one unit of depth; the
    conditions include the sugar (``did x``) that would take a ``then`` as a sequence's."""
    condition = st.one_of(conditions(depth - 1), sugar_compares(depth - 1))
    branch = st.tuples(condition, expressions(depth - 1))
    return st.builds(
        ast.CaseWhen,
        st.lists(branch, min_size=1, max_size=3).map(tuple),
        st.none() | expressions(depth - 1),
    )


@functools.cache
def conditions(depth: int = MAX_DEPTH) -> st.SearchStrategy[ast.Condition]:
    """Any condition: predicates combined with ``and``/``or``/``not``."""

    def extend(children: st.SearchStrategy[ast.Condition]) -> st.SearchStrategy[ast.Condition]:
        items = st.lists(children, min_size=2, max_size=3).map(tuple)
        return st.one_of(
            st.builds(ast.And, items),
            st.builds(ast.Or, items),
            st.builds(ast.Not, children),
        )

    return st.recursive(predicates(depth), extend, max_leaves=4)


# --- definitions -----------------------------------------------------------------------


def segments(depth: int = MAX_DEPTH) -> st.SearchStrategy[ast.Segment]:
    c = conditions(depth)
    return st.one_of(
        st.builds(ast.Segment, identifiers, where=c, title=labels, description=labels),
        st.builds(ast.Segment, identifiers, enter=c, exit=c, title=labels, description=labels),
    )


def traits(depth: int = MAX_DEPTH) -> st.SearchStrategy[ast.Trait]:
    return st.builds(ast.Trait, identifiers, expressions(depth), labels, labels)


def modules(depth: int = MAX_DEPTH, max_definitions: int = 2) -> st.SearchStrategy[ast.Module]:
    definitions = st.one_of(segments(depth), traits(depth))
    built = st.builds(ast.Module, st.lists(definitions, max_size=max_definitions).map(tuple))
    return _fresh(built)


@st.composite
def _fresh(draw: st.DrawFn, strategy: st.SearchStrategy[T]) -> T:
    """A deep copy of the drawn tree, so that a failure is shown with the plain repr.

    Hypothesis remembers how each ``builds``/``map`` value was made and prints a failing
    example as those calls; for these nested trees that printing takes minutes.
    """
    return copy.deepcopy(draw(strategy))


# --- settings --------------------------------------------------------------------------


def example_count() -> int:
    """``SEGQL_EXAMPLES`` if set, else 5000 with ``SEGQL_LONG=1``, else 300."""
    if os.environ.get("SEGQL_EXAMPLES"):
        return int(os.environ["SEGQL_EXAMPLES"])
    return 5000 if os.environ.get("SEGQL_LONG") == "1" else 300


def phases() -> tuple[Phase, ...]:
    """Shrinking only with ``SEGQL_SHRINK=1`` or ``SEGQL_LONG=1``.

    Shrinking these nested trees takes a minute or more per failing test, which would
    make a red default run slow; a failure still shows its printed text (``note``), and
    the known bugs have hand-written minimal tests.
    """
    everything = tuple(Phase)
    if os.environ.get("SEGQL_SHRINK") == "1" or os.environ.get("SEGQL_LONG") == "1":
        return everything
    return tuple(p for p in everything if p is not Phase.shrink)


property_settings = settings(
    max_examples=example_count(),
    phases=phases(),
    deadline=None,
    # One shrunk failure per test, not one per distinct bug: keeps a failing run short.
    report_multiple_bugs=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)
