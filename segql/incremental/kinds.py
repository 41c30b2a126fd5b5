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

from segql import ast
from segql.checker import walk

Update = Literal["add", "merge", "recompute"]
_ADDABLE = frozenset({"count", "sum"})
_MERGEABLE = frozenset({"min", "max", "first_time", "last_time"})
# Nodes of a row filter that read T or the person: the filter then moves with T in a way
# no time slice of the rows bounds.
_MOVING = (ast.Now, ast.Ago, ast.PersonProperty, ast.TimeTest, ast.IdList)
_MOVING_CALLS = frozenset({"days_since", "hours_since"})

Offsets = frozenset[ast.Duration | None]  # None inside: T itself (offset 0)


def aggregate_update(aggregate: ast.Aggregate) -> Update:
    """The cheapest exact update of an aggregate from one run to the next."""
    offsets = spec_offsets(aggregate.spec)
    if offsets is None:
        return "recompute"
    if aggregate.func in _ADDABLE:
        return "add"
    if aggregate.func in _MERGEABLE and offsets <= {None}:
        return "merge"
    return "recompute"


def aggregate_offsets(aggregate: ast.Aggregate) -> Offsets | None:
    return spec_offsets(aggregate.spec)


def sequence_offsets(sequence: ast.Sequence) -> Offsets | None:
    """A sequence's boundaries: its specs' windows, and for ``then not B within d`` the
    point ``A + d <= T`` (an A row's time against ``T - d``)."""
    first, then = spec_offsets(sequence.first), spec_offsets(sequence.then)
    if first is None or then is None:
        return None
    found = set(first | then)
    if sequence.negated and sequence.within is not None:
        found.add(sequence.within)
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
