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
