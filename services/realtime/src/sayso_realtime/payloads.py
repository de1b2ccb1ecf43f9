"""The JSON a socket or SSE client receives for an event.

Message and review events carry the message exactly as the API returns it (``MessageView``), so
a dashboard renders live updates with the code that renders API responses. The event id is added
as ``eventId`` (the message's own ``id`` stays the message id): it is what a client hands back as
``lastEventId`` / ``Last-Event-ID`` to resume. Status events carry their data in the same
camelCase, plus ``channelId`` (a delivery status names the event it delivered ``deliveredEventId``;
``approval:remembered`` and ``approval:revoked`` carry the remembered approval; ``operator:*``
events the incident). A member of the channel (a user it was shared with) gets the
message without the owner's webhook settings, as the API shows it to them
(``sayso_common.views.seen_by``).
"""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_camel

from sayso_common.events import (
    OPERATOR_EVENTS,
    AgentStatusChanged,
    ApprovalRemembered,
    ApprovalRevoked,
    DeliveryStatusChanged,
    Event,
    ReviewVoted,
    wire_name,
)
from sayso_common.views import seen_by

# A delivery status's ``event_id`` (the event delivered) as the gateway sends it.
DELIVERED_EVENT_ID = "deliveredEventId"


def event_name(event: Event) -> str:
    """``review.responded`` -> ``review:responded``, as Placet's clients expect."""
    return wire_name(event.type)


def payload(event: Event, reader_id: str) -> dict[str, Any]:
    """What ``reader_id`` (the channel's owner, or a member of it) receives for ``event``."""
    if isinstance(event, OPERATOR_EVENTS):
        # A webhook incident (sayso_common.incidents) of the channel: the incident in camelCase.
        return {**event.data.wire(), "channelId": event.channel_id, "eventId": event.id}
    if isinstance(event, AgentStatusChanged | DeliveryStatusChanged | ApprovalRemembered | ApprovalRevoked):
        data = {to_camel(k): v for k, v in event.data.model_dump(mode="json").items()}
        if isinstance(event, DeliveryStatusChanged):
            # The delivered event's id, under its own name: ``eventId`` is this status event's own
            # (the resume cursor), which used to overwrite it.
            data[DELIVERED_EVENT_ID] = data.pop("eventId")
        return {**data, "channelId": event.channel_id, "eventId": event.id}
    message = seen_by(event.data.message, event.owner_id, reader_id).model_dump(mode="json")
    if isinstance(event, ReviewVoted):
        # The message with every vote so far, and which one this event is about.
        return {**message, "vote": event.data.vote.model_dump(mode="json"), "eventId": event.id}
    return {**message, "eventId": event.id}
