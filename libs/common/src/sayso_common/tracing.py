"""W3C Trace Context (``traceparent``), carried from the API request that changed something,
through the event (outbox, Kafka record and its headers), to the dispatcher's webhook request,
and written as ``trace_id`` on every JSON log line made on its behalf: one review can be followed
across services. No tracing SDK is needed; an OpenTelemetry collector can join the same ids."""

from __future__ import annotations

import contextvars
import re
import secrets

_FORMAT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("traceparent", default=None)


def parse(header: str | None) -> str | None:
    """A valid version-00 ``traceparent``, or None (all-zero ids are invalid, per the spec)."""
    if not header:
        return None
    match = _FORMAT.match(header.strip().lower())
    if match is None or set(match.group(1)) == {"0"} or set(match.group(2)) == {"0"}:
        return None
    return match.group(0)


def new() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child(parent: str | None) -> str:
    """A new span in ``parent``'s trace (a new trace without one)."""
    match = _FORMAT.match(parent or "")
    if match is None:
        return new()
    return f"00-{match.group(1)}-{secrets.token_hex(8)}-{match.group(3)}"


def trace_id(traceparent: str | None) -> str | None:
    match = _FORMAT.match(traceparent or "")
    return match.group(1) if match else None


def current() -> str | None:
    return CURRENT.get()
