"""What a webhook POSTs, in the two formats an agent (or one message) can choose, and a third
an endpoint can (``standard``: the Standard Webhooks envelope around Placet's body).

``placet`` (the default) is Placet's body, byte for byte; ``processa`` is Processa's
``draft.approved`` / ``draft.rejected`` body (seed 004), so a receiver written from Processa's
docs reads an approval review's outcome unchanged. Bodies are rendered once, when a delivery is
created, and stored: retries and manual re-sends POST the same bytes under the same webhook-id.
The dispatcher renders event bodies; the API renders the test body (``sample_body``).

How a review maps to a Processa draft (approval reviews only; other review types, and messages,
keep Placet's body whatever the format):

* ``draft.id`` is the message id; ``title`` the first non-empty line of the message text without
  leading ``#`` (at most 200 characters, else ``"Review <id>"``); ``content`` the message's
  ``metadata.content`` when there is one (Processa's content is an object such as
  ``{to, subject, body}``), else the message text; ``metadata`` the rest of the message metadata.
* **Approved** when the chosen option approves (:mod:`sayso_common.quorum`: its id is one of
  ``approve``, ``approved``, ``accept``, ``accepted``, ``yes``, ``ok``, or its style is
  ``primary`` or ``success``); any other answer (including ``{"_dismissed": true}``) is
  **rejected**, with ``rejectionReason`` taken from the reviewer's comment, else their feedback
  (absent when neither was given).
* An **expired** review is ``draft.rejected`` with ``rejectionReason: "expired"``, also when its
  ``onExpire`` default approves: Processa has no notion of a default, and a receiver written for
  it must never read an approval that no human gave. The Placet body carries the default. A
  review closed because its channel was deleted has ``rejectionReason: "channel_deleted"`` (the
  Placet body: ``reason: "channel_deleted"``).
* ``reviewedAt`` is when the review was answered (or expired); ``timestamp`` when the event
  happened.
* An approval whose reviewer edited the action's arguments (edit-before-approve: the response's
  ``editedArgs``) carries them in both formats: in Placet's inside ``response`` as recorded, in
  Processa's as the top-level ``editedArgs`` of ``draft.approved`` (after Processa's keys).
* Both formats end with the review's ``actionDigest`` (:mod:`sayso_common.action_digest`), after
  the keys Placet and Processa send.

Events only endpoints are sent (Placet has no such webhooks) take Placet's shape - ``event``,
``channelId``, then what happened, then when - in every format (``standard`` wraps it):
``message:updated`` ``{message_id, message, updated_at}``; ``review:voted`` ``{message_id,
review_type, vote, votes, voted_at}``; ``delivery:status`` ``{delivery, changed_at}``;
``agent:status`` ``{agent, changed_at}``; ``approval:remembered`` / ``approval:revoked``
``{approval, remembered_at | revoked_at}``. The objects (:func:`delivery_object`,
:func:`agent_object`, :func:`approval_object`) are camelCase, as the REST API writes them, and
are what an endpoint's filter reads under the same keys.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from sayso_common import quorum
from sayso_common.clock import iso
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
from sayso_common.views import FULL, MessageView

WebhookFormat = Literal["placet", "processa"]


def _when(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def delivery_object(event: DeliveryStatusChanged) -> dict[str, Any]:
    """The delivery a ``delivery:status`` event is about; ``eventId`` / ``eventType`` name the
    event it delivers (``review:responded``), ``endpointId`` its endpoint (null: the agent's URL)."""
    data = event.data
    return {
        "id": data.delivery_id,
        "eventId": data.event_id,
        "eventType": wire_name(data.event_type),
        "messageId": data.message_id,
        "endpointId": data.endpoint_id,
        "url": data.url,
        "status": data.status,
        "attempts": data.attempts,
        "lastStatusCode": data.last_status_code,
        "lastError": data.last_error,
        "nextAttemptAt": _when(data.next_attempt_at),
    }


def agent_object(event: AgentStatusChanged) -> dict[str, Any]:
    """The agent an ``agent:status`` event is about, with Placet's names for its status fields."""
    data = event.data
    return {
        "id": data.agent_id,
        "status": data.status,
        "statusMessage": data.message,
        "lastActiveAt": iso(data.last_activity_at),
    }


def approval_object(event: ApprovalRemembered | ApprovalRevoked) -> dict[str, Any]:
    """The remembered approval an ``approval:remembered`` / ``approval:revoked`` event is about."""
    data = event.data
    return {
        "id": data.remembered_id,
        "tool": data.tool,
        "argsDigest": data.args_digest,
        "scope": data.scope,
        "runId": data.run_id,
        "expiresAt": iso(data.expires_at),
        "actor": data.actor,
    }


def _endpoint_only_body(event: Event) -> dict[str, Any] | None:
    """Placet-shaped bodies of the events only endpoints are sent; None for the others."""
    head: dict[str, Any] = {"event": wire_name(event.type), "channelId": event.channel_id}
    if isinstance(event, OPERATOR_EVENTS):
        # An operator event (sayso_common.incidents), to an ops endpoint that subscribed to it.
        return {**head, **event.data.wire(), "occurred_at": iso(event.occurred_at)}
    if isinstance(event, MessageUpdated):
        message = event.data.message
        return {
            **head,
            "message_id": message.id,
            "message": message.model_dump(mode="json", context=FULL),
            "updated_at": iso(event.occurred_at),
        }
    if isinstance(event, ReviewVoted):
        message, vote = event.data.message, event.data.vote
        review = message.review
        return {
            **head,
            "message_id": message.id,
            "review_type": review.type if review else None,
            "vote": vote.model_dump(mode="json", context=FULL),
            "votes": [v.model_dump(mode="json", context=FULL) for v in (review.votes or [])]
            if review
            else [],
            "voted_at": iso(vote.voted_at),
        }
    if isinstance(event, DeliveryStatusChanged):
        return {**head, "delivery": delivery_object(event), "changed_at": iso(event.occurred_at)}
    if isinstance(event, AgentStatusChanged):
        return {**head, "agent": agent_object(event), "changed_at": iso(event.occurred_at)}
    if isinstance(event, ApprovalRemembered):
        return {**head, "approval": approval_object(event), "remembered_at": iso(event.occurred_at)}
    if isinstance(event, ApprovalRevoked):
        return {**head, "approval": approval_object(event), "revoked_at": iso(event.occurred_at)}
    return None


def placet_body(event: Event) -> dict[str, Any] | None:
    """Placet's body for ``event``; None for events agents are not sent."""
    if isinstance(event, ReviewResponded | ReviewExpired):
        message = event.data.message
        review = message.review
        body: dict[str, Any] = {
            "event": wire_name(event.type),
            "channelId": event.channel_id,
            "message_id": message.id,
            "review_type": review.type if review else None,
        }
        if isinstance(event, ReviewResponded):
            body["response"] = review.response if review else None
            # As Placet: the human's extras only when given, then the time, then the chain.
            if review and review.modified_file_ids:
                body["modifiedFileIds"] = review.modified_file_ids
            if review and review.feedback:
                body["feedback"] = review.feedback
            body["responded_at"] = _when(review.responded_at if review else None) or iso(event.occurred_at)
        else:
            body["response"] = None
            body["expired_at"] = iso(event.occurred_at)
        if message.iteration_group_id:
            body["iterationGroupId"] = message.iteration_group_id
            body["iteration"] = message.iteration
        # Sayso's additions come last, so the keys Placet sends keep their order and bytes.
        if review and review.default_response is not None:
            body["defaultResponse"] = review.default_response
        if review and review.expired_reason is not None:
            body["reason"] = review.expired_reason  # channel_deleted; absent: the deadline passed
        if review and review.votes is not None:
            body["votes"] = [v.model_dump(mode="json", context=FULL) for v in review.votes]
        if review and review.decided_by is not None:
            body["decidedBy"] = review.decided_by.model_dump(mode="json")  # a policy answered
        if review and review.action_digest is not None:
            body["actionDigest"] = review.action_digest  # what an approval is bound to
        return body
    if isinstance(event, MessageCreated):
        message = event.data.message
        return {
            "event": wire_name(event.type),
            "channelId": event.channel_id,
            "message_id": message.id,
            "message": message.model_dump(mode="json", context=FULL),
            "created_at": iso(message.created_at),
        }
    return _endpoint_only_body(event)


def _title(message: MessageView) -> str:
    for line in (message.text or "").splitlines():
        line = line.lstrip("#").strip()
        if line:
            return line[:200]
    return f"Review {message.id}"


def processa_body(event: Event) -> dict[str, Any] | None:
    """Processa's body for an approval review's outcome; None where Placet's body applies."""
    if not isinstance(event, ReviewResponded | ReviewExpired):
        return None
    message = event.data.message
    review = message.review
    if review is None or review.type != "approval":
        return None
    metadata = dict(message.metadata or {})
    content = metadata.pop("content", message.text)
    draft: dict[str, Any] = {"id": message.id, "title": _title(message)}
    expired = isinstance(event, ReviewExpired)
    if not expired and quorum.approves(review.payload, review.response):
        event_name = "draft.approved"
        draft |= {"content": content, "metadata": metadata}
    else:
        event_name = "draft.rejected"
        response = review.response if isinstance(review.response, dict) else {}
        reason = (
            (review.expired_reason or "expired") if expired else response.get("comment") or review.feedback
        )
        if reason:
            draft["rejectionReason"] = reason
    reviewed = (
        event.occurred_at if expired else (review.completed_at or review.responded_at or event.occurred_at)
    )
    draft["reviewedAt"] = iso(reviewed)
    body: dict[str, Any] = {"event": event_name, "draft": draft, "timestamp": iso(event.occurred_at)}
    edited = review.response.get("editedArgs") if isinstance(review.response, dict) else None
    if event_name == "draft.approved" and isinstance(edited, dict):
        body["editedArgs"] = edited  # what to run instead of the proposed arguments
    if review.action_digest is not None:
        body["actionDigest"] = review.action_digest  # Sayso's addition, after Processa's keys
    return body


def standard_body(event: Event) -> dict[str, Any] | None:
    """The Standard Webhooks envelope (``{type, timestamp, data}``) around Placet's body: an
    endpoint's ``format: standard``."""
    data = placet_body(event)
    if data is None:
        return None
    return {"type": event.type, "timestamp": iso(event.occurred_at), "data": data}


def body_for(event: Event, fmt: str | None = "placet") -> dict[str, Any] | None:
    """The JSON object POSTed for ``event`` in format ``fmt``; None for events agents are not sent."""
    if fmt == "standard":
        return standard_body(event)
    if fmt == "processa":
        body = processa_body(event)
        if body is not None:
            return body
    return placet_body(event)


def sample_body(channel_id: str, fmt: str | None, now: datetime) -> dict[str, Any]:
    """The test-webhook button's body: Placet's ``webhook:test``, or for Processa receivers a
    ``draft.approved`` of a sample draft (their handler runs as for a real one)."""
    if fmt == "processa":
        draft = {
            "id": f"test-{channel_id}",
            "title": "Sayso test webhook",
            "content": {"test": True, "message": "Sent by the test-webhook button"},
            "metadata": {"source": "sayso", "test": True},
            "reviewedAt": iso(now),
        }
        return {"event": "draft.approved", "draft": draft, "timestamp": iso(now)}
    return {"event": "webhook:test", "channelId": channel_id, "message_id": None, "sent_at": iso(now)}


def render(body: dict[str, Any]) -> str:
    """Compact JSON; this exact text is what gets signed and sent."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)
