"""Clauses that can never hold, seen from their shape alone (no data read).

``segql explain`` warns about them before it counts anything: a count over a narrower
window is never more than the same count over a wider one, a count is never negative,
and the smallest value of some rows is never above their largest. Only comparisons whose
answer is certain are reported; anything this module does not know is left alone.
"""

from __future__ import annotations

from segql.compile.reach import covers, reach, reaches_whole
from segql.language import ast
from segql.language.printer import format_expr

# Aggregates that never shrink when their window widens, and are never negative.
GROWING = frozenset({"count", "count_distinct", "active_days", "active_weeks", "active_months"})
# Pairs (low, high) over the same rows: low is never above high.
ORDERED = (("min", "max"), ("first_time", "last_time"))
_FLIPPED: dict[ast.CompareOp, ast.CompareOp] = {
    "<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!=",
}  # fmt: skip


def never_holds(condition: ast.Condition) -> str | None:
    """Why ``condition`` is false for everybody at any as-of, or None if it may hold."""
    if not isinstance(condition, ast.Compare):
        return None
    left, op, right = condition.left, condition.op, condition.right
    if isinstance(left, ast.Number) and not isinstance(right, ast.Number):
        left, op, right = right, _FLIPPED[op], left
    if isinstance(left, ast.Aggregate) and isinstance(right, ast.Number):
        return _below_zero(left, op, right)
    if isinstance(left, ast.Aggregate) and isinstance(right, ast.Aggregate):
        if op == "<":  # a < b is b > a
            left, op, right = right, ">", left
        if op == ">":
            return _never_above(left, right)
    return None


def _below_zero(aggregate: ast.Aggregate, op: ast.CompareOp, number: ast.Number) -> str | None:
    """``count(...) < 0`` and the like: a count is 0 or more."""
    if aggregate.func not in GROWING:
        return None
    value = number.value
    if (op == "<" and value <= 0) or (op in ("<=", "=") and value < 0):
        return f"{format_expr(aggregate)} is never below 0"
    return None


def _never_above(high: ast.Aggregate, low: ast.Aggregate) -> str | None:
    """Why ``high > low`` is false for everybody: ``high`` is never above ``low``."""
    same_rows = (high.spec.ref, high.spec.where, high.prop) == (
        low.spec.ref,
        low.spec.where,
        low.prop,
    )
    if not same_rows:
        return None
    if high.func == low.func and high.func in GROWING and _inside(high.spec, low.spec):
        return f"{format_expr(high)} is never more than {format_expr(low)}"
    if (high.func, low.func) in ORDERED and high.spec.window == low.spec.window:
        return f"{format_expr(high)} is never more than {format_expr(low)}"
    return None


def _inside(narrow: ast.EventSpec, wide: ast.EventSpec) -> bool:
    """Whether every row of ``narrow``'s window is in ``wide``'s (windows this module
    can compare: none, or ``within D``)."""
    known = (None, ast.WindowWithin)
    if not all(
        (spec.window is None or type(spec.window) in known) and reaches_whole(spec.window)
        for spec in (narrow, wide)
    ):
        return narrow.window == wide.window
    return covers(reach(wide.window), reach(narrow.window))
