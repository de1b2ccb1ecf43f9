"""Where an event goes. First that exists wins: the message's ``webhookUrl`` -> the agent's
default URL (if enabled and subscribed to the event) -> the review's legacy ``callback``. The
first two carry the agent's custom headers and Basic auth; the callback only its own headers.

Human messages (``message:created`` from a user or an inbound webhook) go only to an agent's
default URL, and only if the agent subscribed to ``message:created``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sayso_common.documents import DEFAULT_WEBHOOK_EVENTS, AgentDoc
from sayso_common.events import Event, MessageCreated, ReviewExpired, ReviewResponded, wire_name
from sayso_common.views import MessageView

HUMAN_SENDERS = ("user", "webhook")

Source = Literal["message", "agent", "callback", "test", "endpoint"]


@dataclass(frozen=True)
class Target:
    url: str
    source: Source
    method: str = "POST"
    # Sealed JSON object of extra headers (the agent's webhookHeaders, the callback's, an endpoint's).
    headers_enc: str | None = None
    endpoint_id: str | None = None  # an explicit endpoint (sayso_common.endpoints)


def message_of(event: Event) -> MessageView | None:
    if isinstance(event, MessageCreated | ReviewResponded | ReviewExpired):
        return event.data.message
    return None


def agent_target(agent: AgentDoc | None, event_name: str) -> Target | None:
    url = agent.get("webhook_url") if agent else None
    if not agent or not url or not agent.get("webhook_enabled", True):
        return None
    if event_name not in agent.get("webhook_events", DEFAULT_WEBHOOK_EVENTS):
        return None
    return Target(url, "agent", headers_enc=agent.get("webhook_headers_enc"))


def target_for(
    event: Event, agent: AgentDoc | None, callback_headers_enc: str | None = None
) -> Target | None:
    """The one URL ``event`` is delivered to, or None. ``agent`` is the channel's stored
    document; ``callback_headers_enc`` the sealed headers of the review's legacy callback."""
    name = wire_name(event.type)
    if isinstance(event, MessageCreated):
        if event.data.message.sender_type not in HUMAN_SENDERS:
            return None
        return agent_target(agent, name)
    if not isinstance(event, ReviewResponded | ReviewExpired):
        return None
    message = event.data.message
    if message.webhook_url:
        # As Placet: a message's own URL still gets the agent's custom headers (and its Basic
        # auth, added at send time), whether or not the agent's default URL is enabled.
        return Target(
            message.webhook_url, "message", headers_enc=agent.get("webhook_headers_enc") if agent else None
        )
    chosen = agent_target(agent, name)
    if chosen is not None:
        return chosen
    callback = message.review.callback if message.review else None
    if callback is not None:
        return Target(callback.url, "callback", callback.method, callback_headers_enc)
    return None


def needs_callback_headers(event: Event, agent: AgentDoc | None) -> bool:
    """Whether the target is the legacy callback (its headers live on the message document)."""
    target = target_for(event, agent)
    return target is not None and target.source == "callback"
