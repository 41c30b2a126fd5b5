"""Time literals and as-of times: parsed in the project's timezone, held as naive UTC."""

from __future__ import annotations

from datetime import datetime, timezone
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
