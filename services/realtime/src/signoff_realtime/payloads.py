"""The JSON a socket or SSE client receives for an event.

Message and review events carry the message exactly as the API returns it (``MessageView``), so
a dashboard renders live updates with the code that renders API responses. The event id is added
as ``eventId`` (the message's own ``id`` stays the message id): it is what a client hands back as
``lastEventId`` / ``Last-Event-ID`` to resume. Status events carry their data in the same
camelCase, plus ``channelId``.
"""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_camel

from signoff_common.events import AgentStatusChanged, DeliveryStatusChanged, Event, ReviewVoted, wire_name


def event_name(event: Event) -> str:
    """``review.responded`` -> ``review:responded``, as Placet's clients expect."""
    return wire_name(event.type)


def payload(event: Event) -> dict[str, Any]:
    if isinstance(event, AgentStatusChanged | DeliveryStatusChanged):
        data = {to_camel(k): v for k, v in event.data.model_dump(mode="json").items()}
        return {**data, "channelId": event.channel_id, "eventId": event.id}
    if isinstance(event, ReviewVoted):
        # The message with every vote so far, and which one this event is about.
        vote = event.data.vote.model_dump(mode="json")
        return {**event.data.message.model_dump(mode="json"), "vote": vote, "eventId": event.id}
    return {**event.data.message.model_dump(mode="json"), "eventId": event.id}
