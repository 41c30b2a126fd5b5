"""Time literals and as-of times: parsed in the project's timezone, held as naive UTC;
and the same steps in time that SQL takes on a naive UTC timestamp."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M")


def parse_time_literal(text: str, tz: ZoneInfo | None = None) -> datetime | None:
    """``'2026-01-01'`` or ``'2026-01-01 12:00:00'`` in ``tz`` (UTC by default), as naive UTC.

    None when the text is not a time in one of those forms.
    """
    for fmt in _FORMATS:
        try:
            local = datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        if tz is None or tz.key == "UTC":
            return local
        return local.replace(tzinfo=tz).astimezone(timezone.utc).replace(tzinfo=None)
    return None


def parse_as_of(text: str) -> datetime:
    """An as-of time from the command line: ISO date or date-time, UTC unless it says otherwise."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.replace(microsecond=0)


def utc_now() -> datetime:
    """Now, UTC, to the second: the default as-of time of a run."""
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def format_timestamp(value: datetime) -> str:
    """The text of a timestamp literal in SQL."""
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    return text + (f".{value.microsecond:06d}" if value.microsecond else "")


def parse_sql_timestamp(text: str) -> datetime | None:
    """The time of a literal's text as :func:`format_timestamp` writes it; None otherwise."""
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


_FIXED = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}


def shift_time(moment: datetime, amount: int, unit: str, sign: int) -> datetime:
    """A naive UTC time moved by ``amount`` units, as SQL moves a naive ``TIMESTAMP``:
    minutes to weeks are fixed lengths; months and years are calendar steps that clamp to
    the end of the month. Raises ValueError for a unit it does not know."""
    unit = unit.rstrip("s")
    if unit in _FIXED:
        return moment + timedelta(seconds=sign * amount * _FIXED[unit])
    if unit not in ("month", "year"):
        raise ValueError(f"unknown unit {unit!r}")
    months = amount * (12 if unit == "year" else 1)
    index = moment.year * 12 + (moment.month - 1) + sign * months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)
