"""Webhook incidents and the operator events that tell of them.

An incident is something an operator acts on about one webhook target (an explicit endpoint, or
a channel's own URL): the dispatcher **disabled** it (a 410, or too many deliveries in a row
failed for good), a delivery to it **failed for good** (its retries ran out), or its circuit
breaker **stayed open** too long. Each is told once: one ``operator.*`` event (to the owner's ops
endpoints, and the notifier turns it into one e-mail), however many deliveries, and however many
dispatcher replicas, see it.

One document per kind x target (``_id`` ``kind|subject``) says whether an incident of that kind
is open. Opening it is one conditional upsert whose filter holds the kind's guard; it carries the
operator event in its outbox, so the event is published exactly when the incident was recorded
(the dispatcher's relay publishes it; nothing is lost on a crash). Replicas racing to open the
same incident collide on ``_id``: one upsert writes, the others get a duplicate key and say
nothing. The guards:

* ``endpoint_disabled``: once per disabling. ``since`` is when the target was disabled (stored on
  it), so a second 410, a replica that crashed half-way and a retried delivery all find the same
  ``since`` and add nothing; disabled again after being re-enabled is a new incident.
* ``retries_exhausted``: while none is open. It ends when a delivery to the target succeeds (or
  the target is re-enabled); the next failure after that is a new incident. While open, each
  further delivery that fails for good is counted (``failures``): that count is what disables an
  endpoint after ``SAYSO_DISPATCHER_DISABLE_AFTER_FAILURES``.
* ``circuit_open``: while none is open, and only for a circuit that opened after the last one
  ended: one replica's circuit closing ends it, and another replica's circuit, open since before,
  does not start it again.

Nothing is raised about a delivery of an operator event itself (no loops).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sayso_common.documents import DeliveryDoc, IncidentKind
from sayso_common.events import (
    CircuitOpen,
    EndpointDisabled,
    IncidentData,
    OperatorEvent,
    RetriesExhausted,
    event_to_document,
    is_operator,
)
from sayso_common.ids import new_id

ENDPOINT_DISABLED: Final[IncidentKind] = "endpoint_disabled"
RETRIES_EXHAUSTED: Final[IncidentKind] = "retries_exhausted"
CIRCUIT_OPEN: Final[IncidentKind] = "circuit_open"
# Ended by a delivery that succeeds (a disabled target stays disabled until its owner acts).
ENDED_BY_SUCCESS: Final[tuple[IncidentKind, ...]] = (RETRIES_EXHAUSTED, CIRCUIT_OPEN)


@dataclass(frozen=True)
class Target:
    """What an incident is about: an explicit endpoint, or a channel's own (or a message's) URL."""

    owner_id: str
    channel_id: str
    url: str
    endpoint_id: str | None = None

    @property
    def subject(self) -> str:
        return self.endpoint_id or f"{self.channel_id}|{self.url}"

    @classmethod
    def of(cls, delivery: DeliveryDoc) -> Target:
        return cls(delivery["owner_id"], delivery["channel_id"], delivery["url"], delivery.get("endpoint_id"))


def raises_incidents(delivery: DeliveryDoc) -> bool:
    """Whether what happens to ``delivery`` may raise an incident: never for an operator event's
    own delivery, so an ops endpoint that fails cannot feed itself events about failing."""
    return not is_operator(delivery["event_type"])


def key(kind: IncidentKind, subject: str) -> str:
    return f"{kind}|{subject}"


def event(
    kind: IncidentKind,
    target: Target,
    incident_id: str,
    reason: str,
    since: datetime,
    now: datetime,
    delivery: DeliveryDoc | None = None,
) -> OperatorEvent:
    """The operator event that tells of an incident's start."""
    data = IncidentData(
        incident_id=incident_id,
        endpoint_id=target.endpoint_id,
        url=target.url,
        reason=reason,
        since=since,
        delivery_id=delivery["_id"] if delivery else None,
        delivery_event_type=delivery["event_type"] if delivery else None,
    )
    common: dict[str, Any] = {
        "channel_id": target.channel_id,
        "owner_id": target.owner_id,
        "occurred_at": now,
    }
    if kind == ENDPOINT_DISABLED:
        return EndpointDisabled(**common, data=data)
    if kind == RETRIES_EXHAUSTED:
        return RetriesExhausted(**common, data=data)
    return CircuitOpen(**common, data=data)


def guard(kind: IncidentKind, since: datetime) -> dict[str, Any]:
    """The condition on the incident document under which an incident of ``kind`` that began at
    ``since`` is a new one (see the module's docstring)."""
    if kind == ENDPOINT_DISABLED:
        return {"since": {"$ne": since}}
    if kind == RETRIES_EXHAUSTED:
        return {"state": {"$ne": "open"}}
    return {"state": {"$ne": "open"}, "$or": [{"resolved_at": None}, {"resolved_at": {"$lt": since}}]}


@dataclass(frozen=True)
class Opening:
    filter: dict[str, Any]
    update: dict[str, Any]
    event: OperatorEvent


def opening(
    kind: IncidentKind,
    target: Target,
    reason: str,
    since: datetime,
    now: datetime,
    delivery: DeliveryDoc | None = None,
    subject: str | None = None,
) -> Opening:
    """(filter, update) of the upsert that opens an incident, with its event in the outbox. An
    upsert that matches nothing and collides on ``_id`` means it is not new: say nothing.
    ``subject`` replaces the target's (a circuit's incidents are about its lane)."""
    subject = subject or target.subject
    incident_id = new_id("inc")
    told = event(kind, target, incident_id, reason, since, now, delivery)
    fields: dict[str, Any] = {
        "kind": kind,
        "subject": subject,
        "owner_id": target.owner_id,
        "channel_id": target.channel_id,
        "endpoint_id": target.endpoint_id,
        "url": target.url,
        "state": "open",
        "incident_id": incident_id,
        "since": since,
        "opened_at": now,
        "resolved_at": None,
        "resolution": None,
        "failures": 1 if kind == RETRIES_EXHAUSTED else 0,
        "updated_at": now,
    }
    return Opening(
        {"_id": key(kind, subject), **guard(kind, since)},
        {"$set": fields, "$push": {"outbox": event_to_document(told)}},
        told,
    )


def counted(kind: IncidentKind, subject: str, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """(filter, update) counting one more failure into the open incident, if there is one."""
    return (
        {"_id": key(kind, subject), "state": "open"},
        {"$inc": {"failures": 1}, "$set": {"updated_at": now}},
    )


def resolving(
    subjects: Iterable[str], kinds: Iterable[IncidentKind], why: str, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(filter, update) ending the open incidents of these kinds about these subjects."""
    return (
        {"subject": {"$in": sorted(set(subjects))}, "kind": {"$in": list(kinds)}, "state": "open"},
        {"$set": {"state": "resolved", "resolved_at": now, "resolution": why, "updated_at": now}},
    )


def re_enabled(
    now: datetime, *, endpoint_id: str | None = None, channel_id: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(filter, update) ending every open incident of a target its owner re-enabled (or pointed
    at a new URL): an endpoint, or (``channel_id``) the channel's own URL."""
    target: dict[str, Any] = (
        {"endpoint_id": endpoint_id}
        if endpoint_id is not None
        else {"channel_id": channel_id, "endpoint_id": None}
    )
    return (
        {**target, "state": "open"},
        {
            "$set": {
                "state": "resolved",
                "resolved_at": now,
                "resolution": "re-enabled by its owner",
                "updated_at": now,
            }
        },
    )


def threshold_reason(failures: int) -> str:
    return f"{failures} deliveries in a row failed for good"


def gone_reason(now: datetime) -> str:
    return f"the receiver answered 410 Gone at {now.isoformat()}"
