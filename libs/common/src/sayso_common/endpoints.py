"""Webhook endpoints: the targets an event goes to besides the agent's own URL.

An agent's ``webhookUrl`` (or a message's, or a review's legacy callback) is the implicit
endpoint and keeps its meaning and priority (Placet compatibility). Explicit endpoints add
deliveries: one per event x matching endpoint, each with its own signing secret, headers, Basic
auth, body format, retries, circuit and rate limit. An endpoint belongs to one channel
(``channel_id``) or to the owner's whole account (``channel_id`` None).

Which endpoints an event goes to (:func:`wanted`) is decided here, once, for the dispatcher; the
API checks what it saves with the same constants and :func:`compile_endpoint_filter`.

The content filter is the filter language of :mod:`sayso_common.filters`, evaluated over
:func:`filter_document`: ``{"event": "review:responded", "channelId": …, "message": {…}}`` for
message and review events, the message as the REST API shows it (camelCase keys, password answers
redacted); ``review:voted`` adds ``vote``; ``delivery:status`` has ``delivery``, ``agent:status``
``agent``, ``approval:*`` ``approval`` instead of ``message`` (the objects of the webhook body,
:mod:`sayso_common.webhook_bodies`).

Event types are chosen by name or by group (``review:*``; :func:`check_pattern`). Endpoints get
more types than an agent's own URL, whose ``webhookEvents`` keep Placet's meaning
(``documents.WebhookEvent``). One rule stops a feedback loop: a ``delivery:status`` event about
a delivery *of* a ``delivery:status`` event goes to no endpoint (:func:`deliverable`), or every
status delivery would announce a status that would be delivered in turn, forever.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal, get_args

from sayso_common.documents import DEFAULT_WEBHOOK_EVENTS, EndpointDoc, WebhookEvent
from sayso_common.events import (
    OPERATOR_EVENTS,
    AgentStatusChanged,
    ApprovalRemembered,
    ApprovalRevoked,
    DeliveryStatusChanged,
    Event,
    MessageCreated,
    MessageUpdated,
    ReviewExpired,
    ReviewResponded,
    ReviewVoted,
    wire_name,
)
from sayso_common.filters import Filter, FilterError, compile_filter
from sayso_common.topics import DELIVERY_STATUS
from sayso_common.webhook_bodies import agent_object, approval_object, delivery_object

EndpointFormat = Literal["placet", "processa", "standard"]
ENDPOINT_FORMATS: Final[tuple[str, ...]] = get_args(EndpointFormat)
# Every event type an endpoint may ask for; an agent's own URL takes only WebhookEvent's.
EndpointEvent = Literal[
    "review:responded",
    "review:expired",
    "review:voted",
    "message:created",
    "message:updated",
    "delivery:status",
    "agent:status",
    "approval:remembered",
    "approval:revoked",
    # Operator events (sayso_common.incidents): an ops endpoint subscribes to these.
    "operator:endpoint_disabled",
    "operator:retries_exhausted",
    "operator:circuit_open",
]
ENDPOINT_EVENTS: Final[tuple[str, ...]] = get_args(EndpointEvent)
DEFAULT_ENDPOINT_EVENTS: Final[tuple[WebhookEvent, ...]] = DEFAULT_WEBHOOK_EVENTS
WILDCARD: Final = "*"
# Per channel, and per account (its account-wide endpoints).
MAX_ENDPOINTS: Final = 20
MAX_DESCRIPTION_CHARS: Final = 500
# Deliveries per second one endpoint may be sent, across every dispatcher replica.
MAX_RATE_LIMIT: Final = 1000


class EventTypeError(ValueError):
    """An event type, or a pattern, that names nothing."""


def groups(known: tuple[str, ...]) -> list[str]:
    """The wildcard patterns over ``known`` names: ``review:*`` …, in first-seen order."""
    return list(dict.fromkeys(f"{name.split(':', 1)[0]}:{WILDCARD}" for name in known))


def check_pattern(pattern: str, known: tuple[str, ...] = ENDPOINT_EVENTS) -> str:
    """``pattern`` if it is one of ``known`` or a group of them (``delivery:*``); raises
    :class:`EventTypeError` saying what is accepted."""
    if pattern in known or pattern in groups(known):
        return pattern
    raise EventTypeError(
        f"unknown event type {pattern!r}: one of {', '.join(known)}, or a group ({', '.join(groups(known))})"
    )


def type_matches(patterns: Iterable[str], name: str) -> bool:
    """Whether ``name`` (``delivery:status``) is one of ``patterns`` or in one of their groups."""
    group = f"{name.split(':', 1)[0]}:{WILDCARD}"
    return any(p in (name, group) for p in patterns)


def expand(patterns: Iterable[str], known: tuple[str, ...]) -> list[str]:
    """The ``known`` names ``patterns`` cover, in ``known``'s order."""
    chosen = list(patterns)
    return [name for name in known if type_matches(chosen, name)]


def deliverable(event: Event) -> bool:
    """Whether an endpoint may be sent ``event`` at all: not a ``delivery:status`` about a
    delivery of a ``delivery:status`` (that delivery's own status would be sent in turn, and so
    on without end). Statuses of every other delivery, an endpoint's included, are sent."""
    return not (isinstance(event, DeliveryStatusChanged) and event.data.event_type == DELIVERY_STATUS)


def message_id_of(event: Event) -> str | None:
    """The message a delivery of ``event`` is listed under (the inbox's delivery view)."""
    if isinstance(event, MessageCreated | MessageUpdated | ReviewResponded | ReviewExpired | ReviewVoted):
        return event.data.message.id
    return None


def filter_document(event: Event) -> dict[str, Any] | None:
    """What an endpoint's filter is evaluated over; None for events endpoints are not sent."""
    head: dict[str, Any] = {"event": wire_name(event.type), "channelId": event.channel_id}
    if isinstance(event, MessageCreated | MessageUpdated | ReviewResponded | ReviewExpired):
        return {**head, "message": event.data.message.model_dump(mode="json")}
    if isinstance(event, ReviewVoted):
        message = event.data.message.model_dump(mode="json")
        return {**head, "message": message, "vote": event.data.vote.model_dump(mode="json")}
    if isinstance(event, DeliveryStatusChanged):
        return {**head, "delivery": delivery_object(event)}
    if isinstance(event, AgentStatusChanged):
        return {**head, "agent": agent_object(event)}
    if isinstance(event, ApprovalRemembered | ApprovalRevoked):
        return {**head, "approval": approval_object(event)}
    if isinstance(event, OPERATOR_EVENTS):
        # The incident as its body shows it (endpointId, url, reason …).
        return {**head, "incident": event.data.wire()}
    return None


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
    if not type_matches(endpoint.get("event_types", DEFAULT_ENDPOINT_EVENTS), event_name):
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
    "WILDCARD",
    "EndpointEvent",
    "EndpointFormat",
    "EventTypeError",
    "FilterError",
    "check_pattern",
    "compile_endpoint_filter",
    "deliverable",
    "expand",
    "filter_document",
    "filter_json",
    "groups",
    "message_id_of",
    "stored_filter",
    "type_matches",
    "wanted",
]
