"""How the report writes numbers, times and durations; the page uses these as filters.

Helpers that can put an HTML entity (a minus sign, a dash) into their text return
``markupsafe.Markup``, so the page's autoescaping keeps the entity and still escapes data.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from markupsafe import Markup

from segql.downstream.report.queries import SegmentFigures

MINUS = Markup("&minus;")


def escape(value: Any) -> Markup:
    """``value`` as HTML text, the way the page has always escaped it (``html.escape``:
    quotes become ``&quot;`` and ``&#x27;``); markup already made is kept as it is. The page
    template runs every expression through this before jinja2's autoescaping sees it, so
    the template and the charts escape alike."""
    if hasattr(value, "__html__"):
        return Markup(value)
    return Markup(html.escape(str(value), quote=True))


def when(value: datetime | None) -> str:
    """A date, with the time of day only when it has one."""
    if value is None:
        return "never"
    if value.hour == value.minute == value.second == 0:
        return f"{value:%Y-%m-%d}"
    return f"{value:%Y-%m-%d %H:%M}"


def compact(value: float) -> str:
    """1234 -> 1.2k: short labels for axes."""
    size = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            scaled = value / limit
            if size < 10 * limit:
                return f"{scaled:.1f}".rstrip("0").rstrip(".") + suffix
            return f"{scaled:.0f}{suffix}"
    return f"{value:.0f}"


def thousands(count: int) -> str:
    """1234 -> 1,234."""
    return f"{count:,}"


def signed(count: int, sign: str = "+") -> Markup:
    """A count of people who moved, with its direction (``+`` or ``-``) unless it is zero."""
    if not count:
        return Markup("0")
    return (MINUS if sign == "-" else Markup(sign)) + f"{count:,}"


def growth_text(figure: SegmentFigures) -> tuple[Markup, str]:
    """The growth as shown, and its CSS class."""
    growth = figure.growth_pct
    if growth is None:
        return (Markup("new"), "up") if figure.size else (Markup("&ndash;"), "flat")
    if growth > 0:
        return Markup(f"+{growth:.1f}%"), "up"
    if growth < 0:
        return MINUS + f"{abs(growth):.1f}%", "down"
    return Markup("0.0%"), "flat"


def growth_attribute(figure: SegmentFigures) -> str:
    """The growth as the sort script reads it: a number, or empty for a new segment."""
    growth = figure.growth_pct
    return "" if growth is None else str(round(growth, 4))


def duration(seconds: float | None) -> Markup:
    """A run's duration for people."""
    if seconds is None:
        return Markup("&ndash;")
    if seconds < 1:
        return Markup("&lt; 1 s")
    if seconds < 60:
        return Markup(f"{seconds:.1f} s")
    minutes, rest = divmod(round(seconds), 60)
    return Markup(f"{minutes} min {rest} s")


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
