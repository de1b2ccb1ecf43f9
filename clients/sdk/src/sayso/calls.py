"""Every API call as plain data: method, path, query, body, and how to read the answer.

:class:`sayso.Client` and :class:`sayso.AsyncClient` run the same :class:`Call` objects, one
with blocking I/O and one with asyncio, so the two can never disagree on what goes on the wire.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from sayso.models import (
    Agent,
    AuditPage,
    Endpoint,
    EndpointRecovered,
    EndpointReplayed,
    EndpointSecret,
    FeedPage,
    IterationChain,
    Message,
    MessagePage,
    MessageStatus,
    Policy,
    PolicyTest,
    Remembered,
    ScopedToken,
    StatusEvent,
    StreamTicket,
    WaitResult,
)
from sayso.reviews import RawReview, ReviewRequest

T = TypeVar("T")

# The server holds a long-poll at most this long (ms), as Placet does.
POLL_CAP_MS = 30_000

_MESSAGES = TypeAdapter(list[Message])
_AGENTS = TypeAdapter(list[Agent])
_TOKENS = TypeAdapter(list[ScopedToken])
_REMEMBERED = TypeAdapter(list[Remembered])
_ENDPOINTS = TypeAdapter(list[Endpoint])


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, str] | None = None
    json: Any = None
    content: bytes | None = None
    # Safe to send again after a lost answer or a 503 (see sayso.retry).
    idempotent: bool = False
    # Read timeout for this call (long-polls hold the answer up to 30 s).
    timeout: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Sent without the client's credentials (signed upload URLs carry their own authority).
    anonymous: bool = False


CREDENTIAL_HEADERS = ("x-api-key", "authorization")


def seg(value: str) -> str:
    """A path segment, every reserved character encoded (``a/b`` → ``a%2Fb``)."""
    return quote(value, safe="")


def _channel(channel: str | None) -> dict[str, str]:
    return {"channel": channel} if channel else {}


def _json(resp: httpx.Response) -> Any:
    return resp.json()


def _message(resp: httpx.Response) -> Message:
    return Message.model_validate(resp.json())


def _agent(resp: httpx.Response) -> Agent:
    return Agent.model_validate(resp.json())


def _flag(name: str) -> Callable[[httpx.Response], bool]:
    def parse(resp: httpx.Response) -> bool:
        return bool(resp.json().get(name))

    return parse


def _drop_none(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


# ── agents ───────────────────────────────────────────────────────────────────────────────────


def create_agent(name: str, fields: Mapping[str, Any]) -> Call[Agent]:
    return Call("POST", "/api/v1/agents", _agent, json=_drop_none({"name": name, **fields}))


def list_agents() -> Call[list[Agent]]:
    return Call("GET", "/api/v1/agents", lambda r: _AGENTS.validate_python(r.json()), idempotent=True)


def get_agent(agent_id: str) -> Call[Agent]:
    return Call("GET", f"/api/v1/agents/{seg(agent_id)}", _agent, idempotent=True)


def update_agent(agent_id: str, fields: Mapping[str, Any]) -> Call[Agent]:
    return Call("PATCH", f"/api/v1/agents/{seg(agent_id)}", _agent, json=dict(fields), idempotent=True)


def delete_agent(agent_id: str) -> Call[bool]:
    return Call("DELETE", f"/api/v1/agents/{seg(agent_id)}", _flag("deleted"), idempotent=True)


def ping(agent_id: str, status: str, message: str | None) -> Call[Agent]:
    body = _drop_none({"agentId": agent_id, "status": status, "message": message})
    return Call("POST", "/api/v1/status/ping", _agent, json=body, idempotent=True)


def list_plugins() -> Call[list[dict[str, Any]]]:
    return Call("GET", "/api/v1/plugins", _json, idempotent=True)


# ── stream tickets and scoped tokens ─────────────────────────────────────────────────────────


def create_ticket(channel_ids: list[str] | None) -> Call[StreamTicket]:
    # Not idempotent: each call mints a new ticket (a lost answer's ticket just expires).
    body = {"channelIds": channel_ids} if channel_ids else None
    return Call("POST", "/api/v1/events/tickets", lambda r: StreamTicket.model_validate(r.json()), json=body)


def create_token(
    channel_ids: list[str], expires_in_seconds: int, answer: bool, name: str | None
) -> Call[ScopedToken]:
    body = _drop_none(
        {"channelIds": channel_ids, "expiresInSeconds": expires_in_seconds, "answer": answer, "name": name}
    )
    return Call("POST", "/api/v1/tokens", lambda r: ScopedToken.model_validate(r.json()), json=body)


def list_tokens() -> Call[list[ScopedToken]]:
    return Call(
        "GET",
        "/api/v1/tokens",
        lambda r: _TOKENS.validate_python(r.json()["data"]),
        idempotent=True,
    )


def revoke_token(token_id: str) -> Call[bool]:
    return Call("DELETE", f"/api/v1/tokens/{seg(token_id)}", lambda r: True, idempotent=True)


# ── messages ─────────────────────────────────────────────────────────────────────────────────


def review_body(
    review: ReviewRequest | Mapping[str, Any],
    expires_in: float | None = None,
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    """The ``review`` object of a message: a payload model, or Placet's ``{type, payload}``."""
    body = review.body() if isinstance(review, ReviewRequest) else dict(review)
    if expires_in is not None:
        body["expiresInSeconds"] = max(1, round(expires_in))
    if expires_at is not None:
        body["expiresAt"] = expires_at.isoformat()
    return body


def send_message(
    channel: str,
    text: str | None,
    *,
    status: MessageStatus | None = None,
    review: dict[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    webhook_url: str | None = None,
    attachment_ids: list[str] | None = None,
    text_attachments: list[dict[str, str]] | None = None,
    iteration_of: str | None = None,
    client_id: str | None = None,
    stream_id: str | None = None,
    stream_state: str | None = None,
) -> Call[Message]:
    # Every message carries an idempotency key, so a retry after a lost answer (or a 503)
    # returns the message the first attempt created instead of posting it twice.
    body = _drop_none(
        {
            "channelId": channel,
            "text": text,
            "status": status,
            "review": review,
            "metadata": dict(metadata) if metadata is not None else None,
            "webhookUrl": webhook_url,
            "attachmentIds": attachment_ids,
            "textAttachments": text_attachments,
            "iterationOf": iteration_of,
            "clientId": client_id or str(uuid.uuid4()),
            "streamId": stream_id,
            "streamState": stream_state,
        }
    )
    return Call("POST", "/api/v1/messages", _message, json=body, idempotent=True)


def get_message(message_id: str, channel: str | None) -> Call[Message]:
    return Call(
        "GET", f"/api/v1/messages/{seg(message_id)}", _message, params=_channel(channel), idempotent=True
    )


def list_messages(
    channel: str,
    limit: int | None,
    cursor: str | None,
    search: str | None,
    has_attachments: bool,
) -> Call[MessagePage]:
    params = {"channel": channel}
    if limit:
        params["limit"] = str(limit)
    if cursor:
        params["cursor"] = cursor
    if search:
        params["search"] = search
    if has_attachments:
        params["has_attachments"] = "true"
    return Call(
        "GET",
        "/api/v1/messages",
        lambda r: MessagePage.model_validate(r.json()),
        params=params,
        idempotent=True,
    )


def delete_message(message_id: str, channel: str | None) -> Call[bool]:
    return Call(
        "DELETE",
        f"/api/v1/messages/{seg(message_id)}",
        _flag("deleted"),
        params=_channel(channel),
        idempotent=True,
    )


def expunge_message(message_id: str, channel: str | None) -> Call[Message]:
    return Call(
        "POST",
        f"/api/v1/messages/{seg(message_id)}/expunge",
        _message,
        params=_channel(channel),
        json={},
        idempotent=True,
    )


def ack(message_id: str, channel: str | None) -> Call[bool]:
    return Call(
        "POST",
        f"/api/v1/messages/{seg(message_id)}/ack",
        _flag("acknowledged"),
        params=_channel(channel),
        json={},
        idempotent=True,
    )


def iterations(message_id: str, channel: str | None) -> Call[IterationChain]:
    return Call(
        "GET",
        f"/api/v1/messages/iterations/{seg(message_id)}",
        lambda r: IterationChain.model_validate(r.json()),
        params=_channel(channel),
        idempotent=True,
    )


def patch_stream(
    stream_id: str, channel: str, text: str, *, complete: bool = False, aborted: bool = False
) -> Call[Message]:
    body: dict[str, Any] = {"channelId": channel, "text": text}
    if complete:
        body["complete"] = True
    if aborted:
        body["streamState"] = "aborted"
    # Replacing the whole text is safe to repeat; closing is not (a repeat would be a 409).
    closing = complete or aborted
    return Call(
        "PATCH", f"/api/v1/messages/streams/{seg(stream_id)}", _message, json=body, idempotent=not closing
    )


def stream_status(stream_id: str, channel: str, text: str, tool_hint: bool) -> Call[StatusEvent]:
    body = {"channelId": channel, "text": text, "toolHint": tool_hint}
    return Call(
        "POST",
        f"/api/v1/messages/streams/{seg(stream_id)}/status",
        lambda r: StatusEvent.model_validate(r.json()),
        json=body,
    )


# ── reviews ──────────────────────────────────────────────────────────────────────────────────


def get_review(message_id: str, channel: str | None) -> Call[Message]:
    return Call(
        "GET", f"/api/v1/reviews/{seg(message_id)}", _message, params=_channel(channel), idempotent=True
    )


def pending_reviews(channel: str | None) -> Call[list[Message]]:
    return Call(
        "GET",
        "/api/v1/reviews/pending",
        lambda r: _MESSAGES.validate_python(r.json()),
        params=_channel(channel),
        idempotent=True,
    )


def remember_body(for_seconds: float, scope: str = "channel", run_id: str | None = None) -> dict[str, Any]:
    """A ``remember`` for :func:`respond`: approve the same action for ``for_seconds`` (60 s to
    7 days), in the whole channel or (``scope="run"``) only in one run."""
    return _drop_none({"forSeconds": round(for_seconds), "scope": scope, "runId": run_id})


def respond(
    message_id: str,
    response: Mapping[str, Any],
    feedback: str | None = None,
    remember: Mapping[str, Any] | None = None,
) -> Call[Message]:
    # Not idempotent: a second answer is a 409 (the first one won).
    body = _drop_none({"response": dict(response), "feedback": feedback, "remember": remember})
    return Call("POST", f"/api/v1/reviews/{seg(message_id)}/respond", _message, json=body)


def list_remembered(channel: str) -> Call[list[Remembered]]:
    return Call(
        "GET",
        f"/api/v1/agents/{seg(channel)}/remembered",
        lambda r: _REMEMBERED.validate_python(r.json()["data"]),
        idempotent=True,
    )


def revoke_remembered(channel: str, remembered_id: str) -> Call[Remembered]:
    return Call(
        "DELETE",
        f"/api/v1/agents/{seg(channel)}/remembered/{seg(remembered_id)}",
        lambda r: Remembered.model_validate(r.json()),
    )


def wait_once(message_id: str, channel: str, timeout_ms: int) -> Call[WaitResult]:
    poll = max(1, min(POLL_CAP_MS, timeout_ms))
    return Call(
        "GET",
        f"/api/v1/reviews/{seg(message_id)}/wait",
        lambda r: WaitResult.model_validate(r.json()),
        params={"channel": channel, "timeout": str(poll)},
        idempotent=True,
        # The server answers at the latest after `poll` ms; leave room for a slow edge.
        timeout=poll / 1000 + 15,
    )


def raw_review(review_type: str, payload: Mapping[str, Any]) -> RawReview:
    return RawReview(type=review_type, data=dict(payload))


# ── policies and the audit log ──────────────────────────────────────────────────────────────


def _policy_path(channel: str | None) -> str:
    return f"/api/v1/agents/{seg(channel)}/policy" if channel else "/api/v1/policy"


def _policy(resp: httpx.Response) -> Policy:
    return Policy.model_validate(resp.json())


def get_policy(channel: str | None) -> Call[Policy]:
    return Call("GET", _policy_path(channel), _policy, idempotent=True)


def set_policy(channel: str | None, rules: list[Mapping[str, Any]]) -> Call[Policy]:
    # Not idempotent: each save is a new version (a repeat after a lost answer adds one more).
    return Call("PUT", _policy_path(channel), _policy, json={"rules": [dict(r) for r in rules]})


def test_policy(channel: str, message: Mapping[str, Any]) -> Call[PolicyTest]:
    return Call(
        "POST",
        "/api/v1/policies/test",
        lambda r: PolicyTest.model_validate(r.json()),
        json={"channelId": channel, "message": dict(message)},
        idempotent=True,
    )


def audit_filters(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    channel: str | None = None,
    actor: str | None = None,
    decision: str | None = None,
    kind: str | None = None,
) -> dict[str, str]:
    """The audit log's query filters (``from``, ``to``, ``channelId`` …), unset ones left out."""
    params = {
        "from": since.isoformat() if since else None,
        "to": until.isoformat() if until else None,
        "channelId": channel,
        "actor": actor,
        "decision": decision,
        "kind": kind,
    }
    return {k: v for k, v in params.items() if v}


def audit_page(filters: Mapping[str, str], cursor: str | None, limit: int | None) -> Call[AuditPage]:
    params = dict(filters)
    if cursor:
        params["cursor"] = cursor
    if limit:
        params["limit"] = str(limit)
    return Call(
        "GET", "/api/v1/audit", lambda r: AuditPage.model_validate(r.json()), params=params, idempotent=True
    )


# ── webhook endpoints and the pull feed ─────────────────────────────────────────────────────


def _endpoints_path(channel: str | None, endpoint_id: str | None = None) -> str:
    base = f"/api/v1/agents/{seg(channel)}/endpoints" if channel else "/api/v1/endpoints"
    return f"{base}/{seg(endpoint_id)}" if endpoint_id else base


def _endpoint(resp: httpx.Response) -> Endpoint:
    return Endpoint.model_validate(resp.json())


def create_endpoint(channel: str | None, body: Mapping[str, Any]) -> Call[Endpoint]:
    return Call("POST", _endpoints_path(channel), _endpoint, json=dict(body))


def list_endpoints(channel: str | None) -> Call[list[Endpoint]]:
    return Call(
        "GET",
        _endpoints_path(channel),
        lambda r: _ENDPOINTS.validate_python(r.json()["data"]),
        idempotent=True,
    )


def get_endpoint(channel: str | None, endpoint_id: str) -> Call[Endpoint]:
    return Call("GET", _endpoints_path(channel, endpoint_id), _endpoint, idempotent=True)


def update_endpoint(channel: str | None, endpoint_id: str, body: Mapping[str, Any]) -> Call[Endpoint]:
    return Call("PATCH", _endpoints_path(channel, endpoint_id), _endpoint, json=dict(body), idempotent=True)


def delete_endpoint(channel: str | None, endpoint_id: str) -> Call[bool]:
    return Call("DELETE", _endpoints_path(channel, endpoint_id), _flag("deleted"), idempotent=True)


def rotate_endpoint_secret(channel: str | None, endpoint_id: str) -> Call[EndpointSecret]:
    return Call(
        "POST",
        f"{_endpoints_path(channel, endpoint_id)}/secret/rotate",
        lambda r: EndpointSecret.model_validate(r.json()),
    )


def recover_endpoint(
    channel: str | None, endpoint_id: str, since: datetime | None
) -> Call[EndpointRecovered]:
    body = {"since": since.isoformat()} if since else {}
    return Call(
        "POST",
        f"{_endpoints_path(channel, endpoint_id)}/recover",
        lambda r: EndpointRecovered.model_validate(r.json()),
        json=body,
        idempotent=True,
    )


def replay_endpoint(
    channel: str | None, endpoint_id: str, start: datetime, end: datetime, after: str | None
) -> Call[EndpointReplayed]:
    body = {"from": start.isoformat(), "to": end.isoformat(), **({"after": after} if after else {})}
    return Call(
        "POST",
        f"{_endpoints_path(channel, endpoint_id)}/replay",
        lambda r: EndpointReplayed.model_validate(r.json()),
        json=body,
        idempotent=True,  # once per (event, endpoint): a repeat sends nothing new
    )


def add_replayed(total: EndpointReplayed, page: EndpointReplayed) -> EndpointReplayed:
    """Counts summed over the calls of one replay."""
    return EndpointReplayed(
        queued=total.queued + page.queued,
        requeued=total.requeued + page.requeued,
        skipped=total.skipped + page.skipped,
        scanned=total.scanned + page.scanned,
        more=page.more,
        next_cursor=page.next_cursor,
    )


def feed_page(
    channel: str | None,
    after: str | None,
    limit: int | None,
    wait_ms: int | None = None,
    types: Sequence[str] | None = None,
) -> Call[FeedPage]:
    params = {**_channel(channel), **({"after": after} if after else {})}
    if limit is not None:
        params["limit"] = str(limit)
    if types:
        params["types"] = ",".join(types)
    if wait_ms:
        params["wait"] = str(wait_ms)
    return Call(
        "GET",
        "/api/v1/feed",
        lambda r: FeedPage.model_validate(r.json()),
        params=params,
        idempotent=True,
        timeout=wait_ms / 1000 + 15 if wait_ms else None,
    )
