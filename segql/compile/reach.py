"""How far back a rule reads: the bounds behind the compiler's row prefilter and bitmaps.

Every aggregate keeps some rows of its source: those of one event (or any) in a window.
Their union is usually a small part of the table (the last 90 days, plus one event's
whole history), so the compiler filters the rows once before the aggregation instead of
letting every aggregate skip the rest. That filter only has to keep a superset: a guard
may ignore a window's end, and a guard that another covers is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from segql.language import ast

# Shortest and longest length of each unit, in seconds. Windows shift the as-of time in
# UTC, so a day is always 86,400 s; months and years are calendar steps.
_SECONDS = {
    "minute": (60, 60),
    "hour": (3_600, 3_600),
    "day": (86_400, 86_400),
    "week": (604_800, 604_800),
    "month": (28 * 86_400, 31 * 86_400),
    "year": (365 * 86_400, 366 * 86_400),
}

# How far back a spec reads: ``None`` for all of time up to T; a ``Duration`` for the rows
# after ``T - duration``; any other window is kept as it is (it is not compared).
Reach = ast.Duration | ast.Window | None


def seconds(duration: ast.Duration) -> tuple[int, int]:
    """The shortest and the longest a duration can be, in seconds."""
    shortest, longest = _SECONDS[duration.unit]
    return duration.amount * shortest, duration.amount * longest


def reach(window: ast.Window | None) -> Reach:
    """How far back a window reaches (its end is ignored: a guard may keep more)."""
    if window is None:
        return None
    if isinstance(window, ast.WindowWithin):
        return window.duration
    if isinstance(window, ast.WindowPeriod):
        return period_reach(window)
    if isinstance(window.start, ast.Ago):
        return window.start.duration
    return window


def reaches_whole(window: ast.Window | None) -> bool:
    """Whether the window's reach is its whole test: all but ``between N ago and ...``,
    whose end the reach leaves out."""
    if isinstance(window, ast.WindowPeriod):
        return False  # a bound on the calendar window, not the window
    return not (
        isinstance(window, ast.WindowRange)
        and isinstance(window.start, ast.Ago)
        and window.end is not None
    )


def period_reach(window: ast.WindowPeriod) -> ast.Duration:
    """A bound on how far back a calendar window reaches: its periods and the current one,
    plus one more unit (a day at least) for the project zone's offset from UTC."""
    periods = window.previous + 1
    if window.unit == "day":
        return ast.Duration(periods + 1, "day")
    if window.unit == "week":
        return ast.Duration(7 * periods + 1, "day")
    if window.unit == "quarter":
        return ast.Duration(3 * periods + 1, "month")
    return ast.Duration(periods + 1, window.unit)


def covers(wide: Reach, narrow: Reach) -> bool:
    """Whether every row within ``narrow`` is within ``wide`` (a reach covers itself, also
    a month, whose length varies)."""
    if wide is None or wide == narrow:
        return True
    if isinstance(wide, ast.Duration) and isinstance(narrow, ast.Duration):
        return seconds(narrow)[1] <= seconds(wide)[0]
    return wide == narrow


@dataclass(frozen=True)
class Guard:
    """The cheap part of an aggregate's filter: which event names (None: any), how far back."""

    names: frozenset[str] | None
    reach: Reach

    def covers(self, other: Guard) -> bool:
        names_covered = self.names is None or (
            other.names is not None and other.names <= self.names
        )
        return names_covered and covers(self.reach, other.reach)


def merge(guards: list[Guard]) -> list[Guard] | None:
    """Few guards that keep every row some guard keeps; None when that is every row."""
    if any(g.names is None and g.reach is None for g in guards):
        return None
    kept: list[Guard] = []
    for guard in dict.fromkeys(guards):  # distinct, in order
        if not any(other.covers(guard) for other in kept):
            kept = [other for other in kept if not guard.covers(other)] + [guard]
    by_reach: dict[Reach, frozenset[str] | None] = {}
    for guard in kept:  # one guard per reach: its names together
        if guard.reach in by_reach:
            names = by_reach[guard.reach]
            by_reach[guard.reach] = (
                None if names is None or guard.names is None else names | guard.names
            )
        else:
            by_reach[guard.reach] = guard.names
    return [Guard(names, where) for where, names in by_reach.items()]
