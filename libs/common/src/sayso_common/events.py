"""Event contracts. One frozen model per event type; the topic name is the type.

Every event carries a sortable unique ``id`` (the webhook-id and the resume cursor), the channel
and owner it belongs to, and typed ``data``. Consumers must be idempotent on ``id``: Kafka
delivers at least once and the outbox relay may publish an event twice after a crash.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from sayso_common import tracing
from sayso_common.clock import utcnow
from sayso_common.documents import AgentStatus, DeliveryDoc
from sayso_common.errors import ErrorCode, TooLargeError
from sayso_common.ids import new_id
from sayso_common.views import FULL, DeliveryStatus, MessageView, VoteView

log = logging.getLogger(__name__)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


def _without_attachment_texts(message: MessageView) -> MessageView:
    """Events never carry attachments' ``textContent``: up to 40 of 64 KB each would make one
    message's event larger than the broker takes. Readers get it with the message or the file."""
    if not any(a.text_content is not None for a in message.attachments):
        return message
    bare = [a.model_copy(update={"text_content": None}) for a in message.attachments]
    return message.model_copy(update={"attachments": bare})


class MessageData(_Frozen):
    message: MessageView

    _lean = field_validator("message")(_without_attachment_texts)


class VoteData(_Frozen):
    message: MessageView  # as it reads after the vote (all votes so far)
    vote: VoteView  # the vote this event is about

    _lean = field_validator("message")(_without_attachment_texts)


class DeliveryStatusData(_Frozen):
    delivery_id: str
    event_id: str
    event_type: str
    message_id: str | None = None
    url: str
    status: DeliveryStatus
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    # The endpoint of the delivery (sayso_common.endpoints); absent for the agent's own URL.
    endpoint_id: str | None = Field(default=None, exclude_if=lambda v: v is None)


class AgentStatusData(_Frozen):
    agent_id: str
    status: AgentStatus
    message: str | None = None
    last_activity_at: datetime


class RememberedData(_Frozen):
    """A remembered approval made or revoked (``approval.remembered`` / ``approval.revoked``):
    which, for what action, until when, and who did it (a user id, or ``key:<API key id>``)."""

    channel_id: str
    remembered_id: str
    tool: str
    args_digest: str
    scope: Literal["channel", "run"]
    run_id: str | None = None
    expires_at: datetime
    actor: str


class IncidentData(_Frozen):
    """One incident of one webhook target: an explicit endpoint (``endpoint_id``), or the channel's
    own webhook URL (``endpoint_id`` None). Raised once by the dispatcher when it begins (see
    :mod:`sayso_common.incidents`); the next one of the same kind and target is a new incident."""

    incident_id: str  # the same on the event, the e-mail and the incident record
    endpoint_id: str | None = None
    url: str
    reason: str  # what happened, in words (a 410, the failures counted, how long the circuit is open)
    since: datetime  # when the incident began
    delivery_id: str | None = None  # the delivery that raised it
    delivery_event_type: str | None = None  # the event that delivery carried (review.responded …)

    def wire(self) -> dict[str, Any]:
        """In camelCase, as webhook bodies, endpoint filters and sockets show it."""
        return {to_camel(k): v for k, v in self.model_dump(mode="json").items()}


class _Event(_Frozen):
    id: str = Field(default_factory=lambda: new_id("evt"))
    occurred_at: datetime = Field(default_factory=utcnow)
    channel_id: str
    owner_id: str
    # The W3C trace of the request that caused the event (see sayso_common.tracing).
    traceparent: str | None = Field(default_factory=tracing.current)


class MessageCreated(_Event):
    type: Literal["message.created"] = "message.created"
    data: MessageData


class MessageUpdated(_Event):
    """A streamed message's text or status steps changed (realtime, and endpoints that ask for
    ``message:updated``; never the agent's own webhook)."""

    type: Literal["message.updated"] = "message.updated"
    data: MessageData


class ReviewResponded(_Event):
    type: Literal["review.responded"] = "review.responded"
    data: MessageData


class ReviewExpired(_Event):
    type: Literal["review.expired"] = "review.expired"
    data: MessageData


class ReviewVoted(_Event):
    """A reviewer voted on a quorum review (realtime, and endpoints that ask for ``review:voted``;
    never the agent's own webhook). The vote that decides the review is followed, in the same
    write, by the review's one ``review.responded``."""

    type: Literal["review.voted"] = "review.voted"
    data: VoteData


class DeliveryStatusChanged(_Event):
    type: Literal["delivery.status"] = "delivery.status"
    data: DeliveryStatusData


class AgentStatusChanged(_Event):
    type: Literal["agent.status"] = "agent.status"
    data: AgentStatusData


class ApprovalRemembered(_Event):
    """A person's approving answer now stands for the same action until ``expires_at`` (realtime,
    the audit, and endpoints that ask for ``approval:remembered``; no agent webhook, no notice)."""

    type: Literal["approval.remembered"] = "approval.remembered"
    data: RememberedData


class ApprovalRevoked(_Event):
    """A remembered approval was revoked before it expired (realtime, the audit, and endpoints
    that ask for ``approval:revoked``)."""

    type: Literal["approval.revoked"] = "approval.revoked"
    data: RememberedData


class EndpointDisabled(_Event):
    """A webhook target was disabled by the dispatcher: it answered 410 Gone, or (an endpoint) its
    deliveries kept failing for good (``SAYSO_DISPATCHER_DISABLE_AFTER_FAILURES``)."""

    type: Literal["operator.endpoint_disabled"] = "operator.endpoint_disabled"
    data: IncidentData


class RetriesExhausted(_Event):
    """A delivery to a webhook target failed for good (its retries ran out, or the receiver's
    answer allows none); told once until a delivery to that target succeeds again."""

    type: Literal["operator.retries_exhausted"] = "operator.retries_exhausted"
    data: IncidentData


class CircuitOpen(_Event):
    """A webhook target's circuit breaker stayed open longer than
    ``SAYSO_DISPATCHER_CIRCUIT_ALERT_SECONDS``; told once until it closes."""

    type: Literal["operator.circuit_open"] = "operator.circuit_open"
    data: IncidentData


OperatorEvent = EndpointDisabled | RetriesExhausted | CircuitOpen
OPERATOR_EVENTS: Final = (EndpointDisabled, RetriesExhausted, CircuitOpen)


def shown_to(event: _Event, reader_id: str) -> bool:
    """Whether ``reader_id`` (the channel's owner, or a member it is shared with) is shown
    ``event``: an operator event tells of the owner's webhook settings (a URL, its failures),
    which members never see, so realtime and the pull feed give it to the owner alone."""
    return reader_id == event.owner_id or not isinstance(event, OPERATOR_EVENTS)


def is_operator(event_type: str) -> bool:
    """Whether ``event_type`` (``operator.circuit_open``) is an operator event: nothing about a
    delivery of one raises another (no loops)."""
    return event_type.startswith("operator.")


Event = Annotated[
    MessageCreated
    | MessageUpdated
    | ReviewResponded
    | ReviewExpired
    | ReviewVoted
    | DeliveryStatusChanged
    | AgentStatusChanged
    | ApprovalRemembered
    | ApprovalRevoked
    | EndpointDisabled
    | RetriesExhausted
    | CircuitOpen,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def delivery_status_event(
    delivery: DeliveryDoc, status: DeliveryStatus, now: datetime, changes: Mapping[str, Any] | None = None
) -> DeliveryStatusChanged:
    """The ``delivery.status`` event for a delivery document after ``changes`` are applied: the one
    shape the dispatcher (attempt outcomes) and the API (manual re-queues) both emit."""
    merged: dict[str, Any] = {**delivery, **(changes or {})}
    return DeliveryStatusChanged(
        channel_id=delivery["channel_id"],
        owner_id=delivery["owner_id"],
        occurred_at=now,
        data=DeliveryStatusData(
            delivery_id=delivery["_id"],
            event_id=delivery["event_id"],
            event_type=delivery["event_type"],
            message_id=delivery.get("message_id"),
            url=delivery["url"],
            status=status,
            attempts=merged.get("attempt_count", 0),
            last_status_code=merged.get("last_status_code"),
            last_error=merged.get("last_error"),
            next_attempt_at=merged.get("next_attempt_at") if status == "sent" else None,
            endpoint_id=delivery.get("endpoint_id"),
        ),
    )


def parse_event(raw: bytes | str | dict[str, Any]) -> Event:
    if isinstance(raw, dict):
        return EVENT_ADAPTER.validate_python(raw)
    return EVENT_ADAPTER.validate_json(raw)


def parse_batch(raw: Iterable[Any]) -> list[Event]:
    """The events of a consumed batch, in order. A record no version of this service can read
    (or a tombstone, None) is logged and skipped: skipping it is the only way forward."""
    events: list[Event] = []
    for value in raw:
        try:
            events.append(parse_event(value))
        except (ValidationError, TypeError):
            log.error("unparseable event skipped")
    return events


def event_to_document(event: Event) -> dict[str, Any]:
    """The form an event takes inside a MongoDB outbox array (BSON-friendly, datetimes kept)."""
    return event.model_dump(mode="python", by_alias=True, context=FULL)


def event_to_json(event: Event) -> bytes:
    return event.model_dump_json(by_alias=True, context=FULL).encode()


# The largest event the relay publishes. Kafka takes records up to about 1 MiB by default (the
# broker's message.max.bytes, aiokafka's max_request_size: sayso_common.kafka sets the same);
# the rest of the request is the record's framing and headers.
MAX_EVENT_BYTES = 960 * 1024


class EventTooLargeError(TooLargeError):
    """A change whose event would exceed :data:`MAX_EVENT_BYTES`; refused before anything is
    written, naming the part of the message that makes it large."""

    def __init__(self, size: int, part: str | None) -> None:
        largest = f"; the largest part is {part}" if part else ""
        super().__init__(
            ErrorCode.EVENT_TOO_LARGE,
            f"this change would make an event of {size} bytes; events are limited to "
            f"{MAX_EVENT_BYTES} bytes{largest}",
            part,
        )


def _largest_part(event: Event) -> str | None:
    data = event.model_dump(mode="json", by_alias=True, context=FULL)["data"]
    message = data.get("message")
    if not isinstance(message, dict):
        return None
    parts: dict[str, Any] = {k: v for k, v in message.items() if k != "review"}
    review = message.get("review")
    if isinstance(review, dict):
        parts |= {f"review.{k}": v for k, v in review.items()}
    return max(parts, key=lambda k: len(json.dumps(parts[k])), default=None)


def outbox_entry(event: Event) -> dict[str, Any]:
    """The outbox form of an event written by a request (see :func:`event_to_document`), refused
    with :class:`EventTooLargeError` if the relay could never publish it."""
    size = len(event_to_json(event))
    if size > MAX_EVENT_BYTES:
        raise EventTooLargeError(size, _largest_part(event))
    return event_to_document(event)


# Socket.IO and webhook names use Placet's colon form: ``review.responded`` -> ``review:responded``.
def wire_name(event_type: str) -> str:
    return event_type.replace(".", ":")
