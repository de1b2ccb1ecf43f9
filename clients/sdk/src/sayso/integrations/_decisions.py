"""What the integrations share: an approval review for one proposed action, posted
idempotently, and the human's (or a policy's) answer read as a :class:`Decision`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sayso.aio import AsyncClient
from sayso.errors import Expired
from sayso.models import DecidedBy, Message
from sayso.reviews import Option

# The options of an action review, unless the caller gives its own.
APPROVE = Option(id="approve", label="Approve", style="primary")
REJECT = Option(id="reject", label="Reject", style="danger")
APPROVING = frozenset({"approve", "approved", "accept", "accepted", "yes", "ok"})
# With the default ids, an option styled so also approves: the server's one rule
# (sayso_common.quorum.option_approves), which policies, quorums and remembered approvals follow.
APPROVING_STYLES = frozenset({"primary", "success"})
# metadata.args is shown to the reviewer; a longer value is cut (the API bounds metadata at 16 KiB).
MAX_ARG_CHARS = 2000


@dataclass(frozen=True)
class Decision:
    """The answer to one action review.

    ``approved`` — an approving option was chosen (by a person, a policy, or the review's
    ``onExpire`` default when ``expired``); ``option`` its id; ``comment`` the reviewer's text;
    ``edited_args`` the arguments the reviewer changed before approving (edit before approve),
    else None; ``dismissed`` — the reviewer pressed the dismiss button; ``expired`` — nobody
    answered in time; ``decided_by`` — the policy rule that answered, None for a person, who is
    ``responded_by`` (a user id).
    """

    message_id: str
    approved: bool
    option: str | None = None
    comment: str | None = None
    edited_args: dict[str, Any] | None = None
    dismissed: bool = False
    expired: bool = False
    decided_by: DecidedBy | None = None
    responded_by: str | None = None
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def by_policy(self) -> bool:
        return self.decided_by is not None


def jsonable(value: Any) -> Any:
    """``value`` as JSON (what is not JSON becomes its ``repr``, cut to MAX_ARG_CHARS)."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        if isinstance(value, Mapping):
            return {str(k): jsonable(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [jsonable(v) for v in value]
        text = repr(value)
        return text if len(text) <= MAX_ARG_CHARS else text[: MAX_ARG_CHARS - 1] + "…"


def client_id(*parts: str) -> str:
    """A stable ``clientId`` for one pause (the same inputs post the same review once: a process
    that restarts and asks again gets the review it posted before, not a second one)."""
    return "sayso-int:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def action_review(
    *,
    options: list[Option] | None = None,
    allow_comment: bool = True,
    edit_args: Mapping[str, Any] | None = None,
    edit_schema: Mapping[str, Any] | None = None,
    dismiss_label: str | None = None,
    expires_in_seconds: int | None = None,
) -> dict[str, Any]:
    """The ``review`` object of an approval of one action. ``edit_args`` offers the arguments
    for editing before approval (``payload.edit``; a server without edit-before-approve refuses
    it with 422 naming ``review.payload.edit``)."""
    payload: dict[str, Any] = {
        "options": [o.model_dump(mode="json", exclude_none=True) for o in (options or [APPROVE, REJECT])],
        "allowComment": allow_comment,
    }
    if dismiss_label:
        payload["dismissLabel"] = dismiss_label
    if edit_args is not None:
        payload["edit"] = {"args": dict(edit_args)}
        if edit_schema is not None:
            payload["edit"]["schema"] = dict(edit_schema)
    review: dict[str, Any] = {"type": "approval", "payload": payload}
    if expires_in_seconds is not None:
        review["expiresInSeconds"] = expires_in_seconds
    return review


async def post_action(
    client: AsyncClient,
    channel: str,
    *,
    text: str,
    review: dict[str, Any],
    metadata: Mapping[str, Any],
    key: str,
    webhook_url: str | None = None,
) -> Message:
    """Post the review once per ``key`` (a repeat answers with the review already posted)."""
    return await client.send_message(
        channel, text, review=review, metadata=metadata, webhook_url=webhook_url, client_id=key
    )


def decision_of(message: Message, approve: Collection[str] = APPROVING) -> Decision:
    """The decision a completed (or expired) review carries."""
    review = message.review
    if review is None:
        raise ValueError(f"message {message.id} carries no review")
    expired = review.status == "expired"
    raw = review.default_response if expired else review.response
    response: dict[str, Any] = raw if isinstance(raw, dict) else {}
    option = response.get("selectedOption")
    option = option if isinstance(option, str) else None
    comment = response.get("comment")
    edited = response.get("editedArgs")
    dismissed = response.get("_dismissed") is True
    styles = {
        o.get("id"): o.get("style")
        for o in (review.payload or {}).get("options") or []
        if isinstance(o, dict)
    }
    approving = option is not None and (
        option in approve or (approve is APPROVING and styles.get(option) in APPROVING_STYLES)
    )
    return Decision(
        message_id=message.id,
        approved=approving and not dismissed,
        option=option,
        comment=comment if isinstance(comment, str) else (review.feedback or None),
        edited_args=dict(edited) if isinstance(edited, dict) else None,
        dismissed=dismissed,
        expired=expired,
        decided_by=review.decided_by,
        responded_by=review.responded_by,
        response=response,
    )


async def await_decision(
    client: AsyncClient, message_id: str, channel: str, approve: Collection[str] = APPROVING
) -> Decision:
    """Long-poll until the review ends; an expired review is a decision too (see Decision)."""
    try:
        answer = await client.wait(message_id, channel)
    except Expired as exc:
        return decision_of(exc.message, approve)
    return decision_of(answer.message, approve)


async def current_decision(
    client: AsyncClient, message_id: str, channel: str | None = None, approve: Collection[str] = APPROVING
) -> Decision | None:
    """The decision if the review has ended, else None (one read, no wait)."""
    message = await client.get_review(message_id, channel)
    if message.review is None or message.review.status == "pending":
        return None
    return decision_of(message, approve)
