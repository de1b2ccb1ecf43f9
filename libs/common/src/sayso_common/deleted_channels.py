"""What a deleted channel leaves behind, so its agent still hears how its reviews ended.

Deleting a channel (an agent) closes each of its pending reviews as an expiry would: the review
becomes ``expired`` with ``expired_reason: "channel_deleted"`` and its ``review.expired`` event
(``review_state.withdrawn``). Then its messages are deleted. Two things must outlive them:

* **the events.** A message's events wait in its own outbox, which would go with the message.
  Before the messages are deleted, every entry still in their outboxes (and in the agent's) is
  copied to ``deleted_channel_events``, one document per event keyed by the event's id, where the
  API's outbox relay publishes it like any other. A delete asked again copies nothing twice; an
  event the relay was publishing from the message at that moment may be published twice, which
  every consumer already dedupes on the event id.
* **what the dispatcher needs to deliver them.** The agent's webhook settings and sealed signing
  secrets are kept under its id in ``deleted_agents``; the dispatcher reads an agent there when
  ``agents`` no longer has it. The webhook then goes where the agent's webhooks went, with its
  headers and Basic auth, signed with the secret the agent holds, and is retried on the agent's
  schedule.

Both are removed by TTL after the retention (days; longer if the agent's own retry schedule
spans more), so a deleted channel's secrets are not kept beyond its last webhook's retries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sayso_common import attempts
from sayso_common.documents import AgentDoc, DeletedAgentDoc, LeftEventDoc

# What a deleted agent keeps: what the dispatcher reads to deliver (sayso_dispatcher.agents), and
# the fields every agent document has.
KEPT = (
    "owner_id",
    "name",
    "created_at",
    "webhook_url",
    "webhook_enabled",
    "webhook_events",
    "webhook_headers_enc",
    "webhook_auth_enc",
    "webhook_format",
    "retry_schedule",
    "signing_secrets",
)
# Beyond the span of the agent's own retry schedule: jitter (±20 %) and slack for an outage.
SCHEDULE_MARGIN = 1.25
OUTAGE_SLACK = timedelta(hours=6)


def retention_for(agent: AgentDoc, retention: timedelta) -> timedelta:
    """How long a deleted agent's settings are kept: ``retention``, or longer when the retries
    still owed span more — the agent's own schedule, or the dispatcher's default when it has none
    (a retention set below ~27.5 h would otherwise drop the secrets mid-retries)."""
    own_schedule = agent.get("retry_schedule")
    schedule = own_schedule if own_schedule is not None else attempts.WEBHOOK_SCHEDULE
    own = timedelta(seconds=SCHEDULE_MARGIN * sum(schedule)) + OUTAGE_SLACK
    return max(retention, own)


def tombstone(agent: AgentDoc, now: datetime, retention: timedelta) -> DeletedAgentDoc:
    """What ``agent`` leaves in ``deleted_agents`` when it is deleted at ``now``."""
    kept: dict[str, Any] = {name: agent[name] for name in KEPT if name in agent}  # type: ignore[literal-required]
    grave: DeletedAgentDoc = {"_id": agent["_id"], **kept}  # type: ignore[typeddict-item]
    grave["deleted_at"] = now
    grave["expire_at"] = now + retention_for(agent, retention)
    return grave


def left_events(
    holders: Iterable[Mapping[str, Any]], channel_id: str, owner_id: str, expire_at: datetime
) -> list[LeftEventDoc]:
    """One ``deleted_channel_events`` document per event still waiting in the outboxes of
    ``holders`` (the channel's messages, its agent). An entry without a readable id is left out:
    the relay would only have moved it to the dead letters."""
    out: list[LeftEventDoc] = []
    for holder in holders:
        for entry in holder.get("outbox") or []:
            event_id = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(event_id, str):
                continue
            out.append(
                {
                    "_id": event_id,
                    "channel_id": channel_id,
                    "owner_id": owner_id,
                    "outbox": [entry],
                    "expire_at": expire_at,
                }
            )
    return out
