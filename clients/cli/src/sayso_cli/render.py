"""How the CLI shows messages, answers and live events to a person (``--json`` skips all this)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sayso


def _clip(text: str | None, width: int = 72) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "-"
    when = value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    assert isinstance(when, datetime)
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def response_text(review_type: str, response: Any) -> str:
    """An answer in a few words: ``approve — "ship it"``, ``a, b``, the text, or the JSON."""
    if not isinstance(response, dict):
        return json.dumps(response)
    if response.get("_dismissed") is True:
        return "dismissed"
    if review_type == "approval" and "selectedOption" in response:
        comment = response.get("comment")
        return str(response["selectedOption"]) + (f' — "{comment}"' if comment else "")
    if review_type == "selection" and isinstance(response.get("selectedIds"), list):
        return ", ".join(str(i) for i in response["selectedIds"])
    if review_type == "text-input" and "text" in response:
        return _clip(str(response["text"]), 200)
    return json.dumps(response, ensure_ascii=False)


def message_line(message: sayso.Message) -> str:
    review = message.review
    kind = f"{review.type}/{review.status}" if review else (message.status or message.sender_type)
    return f"{message.id}  {_when(message.created_at)}  {kind:<20}  {_clip(message.text)}"


def pending_line(message: sayso.Message) -> str:
    review = message.review
    expires = _when(review.expires_at) if review else "-"
    kind = review.type if review else "-"
    return f"{message.id}  {message.channel_id}  {kind:<10}  expires {expires}  {_clip(message.text, 60)}"


def event_line(event: sayso.Event) -> str:
    data: Any = event.data if isinstance(event.data, dict) else {"value": event.data}
    now = datetime.now().astimezone().strftime("%H:%M:%S")
    head = f"{now}  {event.type:<17}"
    if event.type.startswith(("message:", "review:")) and "id" in data:
        review = data.get("review") or {}
        where = f"{data.get('channelId', '-')}  {data['id']}"
        if event.type == "review:responded":
            return f"{head} {where}  {response_text(review.get('type', ''), review.get('response'))}"
        if event.type == "review:expired":
            if review.get("expiredReason") == "channel_deleted":
                return f"{head} {where}  expired: channel deleted"
            default = review.get("defaultResponse")
            if default is None:
                return f"{head} {where}  expired"
            return f"{head} {where}  expired, default: {response_text(review.get('type', ''), default)}"
        if event.type == "review:voted":
            vote = data.get("vote") or {}
            choice = response_text(review.get("type", ""), vote.get("response"))
            return f"{head} {where}  {vote.get('email', '-')} voted {choice}"
        sender = data.get("senderName") or data.get("senderType") or "-"
        return f"{head} {where}  {sender}: {_clip(data.get('text'))}"
    if event.type == "agent:status":
        note = f" — {data['message']}" if data.get("message") else ""
        return f"{head} {data.get('agentId', data.get('channelId', '-'))}  {data.get('status')}{note}"
    if event.type == "delivery:status":
        return (
            f"{head} {data.get('channelId', '-')}  {data.get('messageId', '-')}  {data.get('status')}"
            f" (attempts {data.get('attempts', '?')}, last {data.get('lastStatusCode') or data.get('lastError') or '-'})"
        )
    return f"{head} {json.dumps(data, ensure_ascii=False)}"


def agent_wire(agent: sayso.Agent) -> dict[str, Any]:
    """The agent as the API sent it (camelCase; ``webhookSecret`` only in a create's answer)."""
    return agent.model_dump(mode="json", by_alias=True, exclude_none=True)


def agent_line(agent: sayso.Agent) -> str:
    hook = agent.webhook_url or "no webhook"
    if agent.webhook_url and not agent.webhook_enabled:
        hook += " (disabled)"
    role = "  (member)" if agent.role == "member" else ""
    return f"{agent.id}  {_clip(agent.name, 32):<32}  {hook}{role}"


def created_note(agent: sayso.Agent) -> str:
    """What a person needs after ``agents create``: the channel id to export, and the webhook
    secret, which the server shows only this once."""
    lines = [f"created agent {agent.name!r}: export SAYSO_DEFAULT_CHANNEL={agent.id}"]
    if agent.webhook_secret:
        lines.append(f"webhook signing secret (shown only this once, keep it): {agent.webhook_secret}")
    return "\n".join(lines) + "\n"


def endpoint_wire(endpoint: sayso.Endpoint) -> dict[str, Any]:
    """The endpoint as the API sent it (camelCase; ``secret`` only in a create's answer)."""
    return endpoint.model_dump(mode="json", by_alias=True, exclude_none=True)


def endpoint_line(endpoint: sayso.Endpoint) -> str:
    state = " (disabled)" if endpoint.disabled else ""
    extras = [",".join(endpoint.event_types)]
    if endpoint.filter:
        extras.append("filtered")
    if endpoint.rate_limit:
        extras.append(f"{endpoint.rate_limit}/s")
    return f"{endpoint.id}  {endpoint.url}{state}  {'  '.join(extras)}"


def unreachable(url: str | None, exc: Exception) -> str:
    """A transport failure in words a person can act on: which URL, and what to check."""
    where = url or "the server"
    return (
        f"sayso: error: cannot reach {where} ({exc}).\n"
        "Is the server running (`make run` in a checkout)? "
        "Check SAYSO_URL (or --url) and that the address and port answer.\n"
    )


def rule_line(index: int, rule: dict[str, Any]) -> str:
    """``0  approve  staging  {"metadata.env": "staging"}``: a policy rule on one line."""
    name = rule.get("name") or "-"
    extra = f"  risk {rule['risk']}" if rule.get("risk") else ""
    match = json.dumps(rule.get("match", {}), ensure_ascii=False, separators=(",", ":"))
    return f"{index:>3}  {rule.get('action', '?'):<7}  {_clip(name, 24):<24}  {_clip(match, 80)}{extra}"


def policy_head(policy: sayso.Policy) -> str:
    where = f"channel {policy.channel_id}" if policy.channel_id else "account"
    if policy.id is None:
        return f"{where}: no policy (every review waits for a person)"
    return f"{where}: policy {policy.id} version {policy.version}, {len(policy.rules)} rule(s)"


def policy_test_line(result: sayso.PolicyTest) -> str:
    if result.rule is None:
        why = f" ({result.reason})" if result.reason else ""
        return f"ask: no rule matches, a person decides{why}"
    rule = f"rule {result.rule}" + (f" ({result.rule_name})" if result.rule_name else "")
    where = f"{result.scope} policy {result.policy} version {result.version}"
    line = f"{result.action}: {rule} of the {where}"
    if result.response is not None:
        line += f", records {json.dumps(result.response, ensure_ascii=False)}"
    if result.reason:
        line += f" ({result.reason})"
    return line


def audit_line(entry: sayso.AuditEntry) -> str:
    actor = entry.actor.name or entry.actor.id or entry.actor.type
    if entry.actor.type == "policy" and entry.rule is not None:
        actor = f"policy {entry.actor.id} rule {entry.rule} v{entry.policy_version}"
    elif entry.kind == "policy_changed":
        actor = f"{actor} -> version {entry.policy_version}"
    return (
        f"{_when(entry.at)}  {entry.kind:<17}  {entry.channel_id or 'account':<30}  "
        f"{entry.message_id or '-':<30}  {entry.decision or '-':<10}  {actor}"
    )
