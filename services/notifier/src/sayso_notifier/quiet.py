"""Quiet hours: when a user's notices wait. A pure function with table tests."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sayso_common.documents import NotificationPrefsDoc, QuietHoursDoc


def _clock(text: str) -> time | None:
    try:
        return time.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def quiet_until(now: datetime, quiet: QuietHoursDoc | None) -> datetime | None:
    """The end (UTC) of the quiet period ``now`` falls in, or None when notices may go now.
    ``start`` after ``end`` spans midnight (22:00-07:00); equal times mean no quiet hours. A
    time zone or time that cannot be read (the API refuses both) never holds a notice back."""
    if not quiet:
        return None
    start, end = _clock(quiet.get("start", "")), _clock(quiet.get("end", ""))
    try:
        zone = ZoneInfo(quiet.get("time_zone", ""))
    except (ZoneInfoNotFoundError, ValueError):
        return None
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(zone)
    at = local.time().replace(tzinfo=None)
    if start < end:
        if not start <= at < end:
            return None
        day = local.date()
    else:
        if end <= at < start:
            return None
        day = local.date() + timedelta(days=1) if at >= start else local.date()
    # A wall time a DST change skips still maps to one instant (zoneinfo's fold rules).
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


def held_until(now: datetime, prefs: NotificationPrefsDoc, escalation: bool) -> datetime | None:
    """When a notice to a user with ``prefs`` may go out, if not now. Escalations wait for the
    end of quiet hours too, unless the user let them through: the agent that asks for an
    escalation is not the one who decides whether someone is woken up."""
    if escalation and prefs.get("escalations_during_quiet_hours", False):
        return None
    return quiet_until(now, prefs.get("quiet_hours"))
