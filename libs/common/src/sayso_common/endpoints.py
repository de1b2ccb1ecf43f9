"""Webhook endpoints: the targets an event goes to besides the agent's own URL.

An agent's ``webhookUrl`` (or a message's, or a review's legacy callback) is the implicit
endpoint and keeps its meaning and priority (Placet compatibility). Explicit endpoints add
deliveries: one per event x matching endpoint, each with its own signing secret, headers, Basic
auth, body format, retries, circuit and rate limit. An endpoint belongs to one channel
(``channel_id``) or to the owner's whole account (``channel_id`` None).

Which endpoints an event goes to (:func:`wanted`) is decided here, once, for the dispatcher; the
API checks what it saves with the same constants and :func:`compile_endpoint_filter`.

The content filter is the filter language of :mod:`sayso_common.filters`, evaluated over
:func:`filter_document`: ``{"event": "review:responded", "channelId": …, "message": {…}}``, the
message as the REST API shows it (camelCase keys, password answers redacted).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, get_args

from sayso_common.documents import DEFAULT_WEBHOOK_EVENTS, EndpointDoc, WebhookEvent
from sayso_common.events import Event, MessageCreated, ReviewExpired, ReviewResponded, wire_name
from sayso_common.filters import Filter, FilterError, compile_filter

EndpointFormat = Literal["placet", "processa", "standard"]
ENDPOINT_FORMATS: Final[tuple[str, ...]] = get_args(EndpointFormat)
ENDPOINT_EVENTS: Final[tuple[str, ...]] = get_args(WebhookEvent)
DEFAULT_ENDPOINT_EVENTS: Final[tuple[WebhookEvent, ...]] = DEFAULT_WEBHOOK_EVENTS
# Per channel, and per account (its account-wide endpoints).
MAX_ENDPOINTS: Final = 20
MAX_DESCRIPTION_CHARS: Final = 500
# Deliveries per second one endpoint may be sent, across every dispatcher replica.
MAX_RATE_LIMIT: Final = 1000


def filter_document(event: Event) -> dict[str, Any] | None:
    """What an endpoint's filter is evaluated over; None for events endpoints are not sent."""
    if not isinstance(event, MessageCreated | ReviewResponded | ReviewExpired):
        return None
    return {
        "event": wire_name(event.type),
        "channelId": event.channel_id,
        "message": event.data.message.model_dump(mode="json"),
    }


def stored_filter(endpoint: EndpointDoc) -> dict[str, Any] | None:
    """The endpoint's filter as it was saved (None: it has none)."""
    text = endpoint.get("filter_json")
    if not text:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else None


def filter_json(spec: Mapping[str, Any] | None) -> str | None:
    """How a filter is stored (see ``EndpointDoc.filter_json``)."""
    return None if spec is None else json.dumps(spec, separators=(",", ":"), ensure_ascii=False)


def compile_endpoint_filter(spec: Mapping[str, Any] | None) -> Filter | None:
    """The compiled filter (None: every event of the chosen types). Raises :class:`FilterError`."""
    if spec is None:
        return None
    return compile_filter(spec)


def wanted(
    endpoint: EndpointDoc,
    event_name: str,
    compiled: Filter | None,
    document: Callable[[], dict[str, Any] | None],
) -> bool:
    """Does ``endpoint`` get an event named ``event_name`` (``review:responded``)? ``document``
    builds the filter's input, only when there is a filter to run. A disabled endpoint gets
    nothing."""
    if endpoint.get("disabled"):
        return False
    if event_name not in endpoint.get("event_types", DEFAULT_ENDPOINT_EVENTS):
        return False
    if compiled is None:
        return True
    doc = document()
    return doc is not None and compiled.matches(doc)


__all__ = [
    "DEFAULT_ENDPOINT_EVENTS",
    "ENDPOINT_EVENTS",
    "ENDPOINT_FORMATS",
    "MAX_DESCRIPTION_CHARS",
    "MAX_ENDPOINTS",
    "MAX_RATE_LIMIT",
    "EndpointFormat",
    "FilterError",
    "compile_endpoint_filter",
    "filter_document",
    "filter_json",
    "stored_filter",
    "wanted",
]
