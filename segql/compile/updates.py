"""How each per-person value of a plan can follow the data from one run to the next.

A value of stage 0 (an aggregate or a sequence) depends on the rows of a person and on the
as-of time ``T``. Between a run at ``L`` and one at ``T`` its rows can only change where
(a) a row is new, or (b) a row's time crosses a boundary that moves with ``T``: a window
``within 30 days`` or ``between 90 days ago and now`` compares the row's time with
``T - 30 days`` or ``T - 90 days``, so only rows in ``(L - d, T - d]`` change sides. The
``offsets`` here are those ``d`` (0 for ``T`` itself); None means the value depends on
``T`` some other way (a person's property, ``days_since`` inside a filter, a calendar
period) and cannot be bounded: the run then recomputes.

Updates, from cheapest:

- ``add``: ``count`` and ``sum``, whatever their window (with offsets): the new value is
  the old one plus the rows that now match, minus those that matched at ``L``.
- ``merge``: ``min``, ``max``, ``first_time``, ``last_time`` over a window that no row
  leaves (offsets only 0): merged with the new rows' value (idempotent).
- ``recompute``: everything else (windowed min/max, distinct counts, ``active_*``,
  ``avg``, sequences, kinds added later): recomputed for the people who have a row that
  is new or crossed a boundary; everybody else keeps their value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from segql.language import ast
from segql.language.checker import walk

Update = Literal["add", "merge", "recompute"]
_ADDABLE = frozenset({"count", "sum"})
_MERGEABLE = frozenset({"min", "max", "first_time", "last_time"})
# Kinds whose value changes only where a row is new or crosses a window's edge.
_ROW_BOUNDED = (
    _ADDABLE
    | _MERGEABLE
    | frozenset({"count_distinct", "avg", "active_days", "active_weeks", "active_months"})
)
# Nodes of a row filter that read T or the person: the filter then moves with T in a way
# no time slice of the rows bounds.
_MOVING = (ast.Now, ast.Ago, ast.PersonProperty, ast.TimeTest, ast.IdList)
_MOVING_CALLS = frozenset({"days_since", "hours_since"})

Offsets = frozenset[ast.Duration | None]  # None inside: T itself (offset 0)


def aggregate_update(aggregate: ast.Aggregate) -> Update:
    """The cheapest exact update of an aggregate from one run to the next."""
    offsets = aggregate_offsets(aggregate)
    if offsets is None or aggregate.spec.last is not None:
        return "recompute"  # among last N: a new row pushes an old one out of the N
    if aggregate.func in _ADDABLE:
        return "add"
    if aggregate.func in _MERGEABLE and offsets <= {None}:
        return "merge"
    return "recompute"


def aggregate_offsets(aggregate: ast.Aggregate) -> Offsets | None:
    """None for a kind whose value moves with ``T`` by itself (``streak``: a day without
    rows ends it) or that this module does not know (a kind added later)."""
    if aggregate.func not in _ROW_BOUNDED:
        return None
    return spec_offsets(aggregate.spec)


def sequence_offsets(sequence: ast.Sequence | ast.Funnel) -> Offsets | None:
    """A sequence's boundaries: its specs' windows, and for ``then not B within d`` the
    point ``A + d <= T`` (an A row's time against ``T - d``). A funnel's later steps are
    measured from the step before (no boundary of their own) but for a last ``then not``."""
    if isinstance(sequence, ast.Funnel):
        specs = [sequence.first, *(step.spec for step in sequence.steps)]
        last = sequence.steps[-1].within
    else:
        specs, last = [sequence.first, sequence.then], sequence.within
    parts = [spec_offsets(spec) for spec in specs]
    if any(part is None for part in parts):
        return None
    found = set(union(part for part in parts if part is not None))
    if sequence.negated and last is not None:
        found.add(last)
    return frozenset(found)


def spec_offsets(spec: ast.EventSpec) -> Offsets | None:
    """The offsets of an event spec's window (None: not bounded by time slices)."""
    if spec.where is not None and not _static_filter(spec.where):
        return None
    window = spec.window
    if window is None:
        return frozenset({None})  # rows up to T: the new rows
    if isinstance(window, ast.WindowWithin):
        return frozenset({None, window.duration})
    if not isinstance(window, ast.WindowRange):
        return None  # a kind of window added later: not bounded here
    found: set[ast.Duration | None] = {None}
    for point in (window.start, window.end):
        if point is None:
            continue
        offset = _point_offset(point)
        if offset is False:
            return None
        if offset is not True:
            found.add(offset)
    return frozenset(found)


def _point_offset(point: ast.Expr) -> ast.Duration | bool | None:
    """``N units ago`` -> its duration; ``now`` -> None (T); a constant -> True; anything
    that reads a person or a column -> False."""
    if isinstance(point, ast.Ago):
        return point.duration
    if isinstance(point, ast.Now):
        return None
    if isinstance(point, (ast.String, ast.Number)):
        return True
    return isinstance(point, ast.Call) and all(
        isinstance(arg, (ast.String, ast.Number)) for arg in point.args
    )


def _static_filter(condition: ast.Condition) -> bool:
    for node in walk(condition):
        if isinstance(node, _MOVING):
            return False
        if isinstance(node, ast.Call) and node.func in _MOVING_CALLS:
            return False
        if isinstance(node, (ast.Aggregate, ast.Sequence)):
            return False
    return True


def union(offsets: Iterable[Offsets]) -> Offsets:
    found: set[ast.Duration | None] = set()
    for part in offsets:
        found |= part
    return frozenset(found)
