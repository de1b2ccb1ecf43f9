"""The webhook bodies agents receive: Placet's or Processa's, rendered once per delivery (the
formats themselves are contracts in :mod:`sayso_common.webhook_bodies`)."""

from __future__ import annotations

from sayso_common.documents import AgentDoc
from sayso_common.views import MessageView
from sayso_common.webhook_bodies import body_for, render

__all__ = ["body_for", "format_of", "render"]


def format_of(message: MessageView | None, agent: AgentDoc | None) -> str:
    """The message's own ``webhookFormat`` wins over its agent's; Placet's by default."""
    if message is not None and message.webhook_format:
        return message.webhook_format
    return (agent.get("webhook_format") if agent else None) or "placet"
