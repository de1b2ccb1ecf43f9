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
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from sayso_common import quorum
from sayso_common.clock import iso
from sayso_common.events import Event, MessageCreated, ReviewExpired, ReviewResponded, wire_name
from sayso_common.views import FULL, MessageView

WebhookFormat = Literal["placet", "processa"]


def _when(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


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
    return None


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
