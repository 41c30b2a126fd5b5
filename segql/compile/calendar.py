"""Calendar periods in SQL (language v2): ``in this month``, ``in previous 3 weeks``, and
the periods a ``streak()`` counts.

Every period is taken on the wall-clock time in the project's timezone, written in the SQL
(``ValueLowering.local_time``), never in the session's: a row's period is the truncation
of its local time, the current period that of ``T``'s local time. A period test compares
truncated local times, so a change of DST inside a period moves no row across its edge.
Weeks start on Monday (ISO): ``DATE_TRUNC('WEEK', ...)`` on every warehouse segql runs on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from segql.language import ast

if TYPE_CHECKING:
    from segql.compile.lower_values import ValueLowering


def unit_steps(unit: str, count: int) -> ast.Duration:
    """``count`` periods as a duration that steps exactly on local wall-clock times: a
    week is 7 days, a quarter 3 months."""
    if unit == "week":
        return ast.Duration(7 * count, "day")
    if unit == "quarter":
        return ast.Duration(3 * count, "month")
    return ast.Duration(count, unit)  # type: ignore[arg-type]


def truncated(builder: ValueLowering, unit: str, local: exp.Expr) -> exp.Expr:
    """The start of the period that holds a local wall-clock time (ISO weeks)."""
    name = builder.dialect.iso_week_unit if unit == "week" else unit.upper()
    return exp.TimestampTrunc(this=local, unit=exp.var(name))


def current_start(builder: ValueLowering, unit: str, back: int = 0) -> exp.Expr:
    """The local start of the period ``back`` periods before the one holding ``T``
    (0: the current one). The step is taken on ``T``'s local time before truncating:
    ``March 31 - 1 month`` is in February, so its month is the month before March."""
    local_now = builder.local_time(builder.now(), instant=False)
    if back:  # in parentheses: AT TIME ZONE binds looser than - INTERVAL
        local_now = builder.shift(exp.Paren(this=local_now), unit_steps(unit, back), -1)
    return truncated(builder, unit, local_now)


def row_period(builder: ValueLowering, unit: str, time: exp.Expr, instant: bool) -> exp.Expr:
    """The local start of the period that holds a time (naive UTC, or an instant)."""
    return truncated(builder, unit, builder.local_time(time, instant))


def period_test(
    builder: ValueLowering,
    window: ast.WindowPeriod,
    time: exp.Expr,
    instant: bool,
    up_to_now: bool,
) -> exp.Expr:
    """Whether a time is in a calendar window. ``up_to_now``: also test ``time <= T``
    (source rows are already at or before ``T``; a property need not be)."""
    period = row_period(builder, window.unit, time, instant)
    if window.previous == 0:
        test: exp.Expr = exp.EQ(this=period, expression=current_start(builder, window.unit))
        if not up_to_now:
            return test
        bound = exp.LTE(this=time.copy(), expression=builder.now_as(instant))
        return exp.And(this=test, expression=bound)
    since = exp.GTE(this=period, expression=current_start(builder, window.unit, window.previous))
    until = exp.LT(this=period.copy(), expression=current_start(builder, window.unit))
    return exp.And(this=since, expression=until)
