"""Time in one place: every stored timestamp is an aware UTC datetime with millisecond precision.

MongoDB keeps milliseconds, so rounding here makes a value read back equal to the value written.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(value: datetime) -> datetime:
    """MongoDB returns naive datetimes unless the client is tz-aware; normalise either way."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso(value: datetime) -> str:
    """ISO 8601 with milliseconds and a Z, the way Placet prints timestamps."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.") + f"{as_utc(value).microsecond // 1000:03d}Z"
