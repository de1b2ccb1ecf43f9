"""Incidents opened once: two dispatcher replicas' ``Incidents`` on one real MongoDB, racing to
open, count and end the same incidents (sayso_common.incidents' guards), and the circuit's
open-since clock they read. The stack-level storms are in test_operator_events.py."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from sayso_common import incidents
from sayso_common.clock import utcnow
from sayso_common.deliveries import new_delivery
from sayso_common.documents import DeliveryDoc
from sayso_common.incidents import Target
from sayso_common.mongo import Doc, ensure_indexes
from sayso_common.settings import CircuitPolicy
from sayso_dispatcher.circuit import Circuit, State
from sayso_dispatcher.incidents import Incidents
from tests.conftest import Infra

TARGET = Target("usr_inc", "agt_inc", "https://hooks.example.test/inc", "ep_inc")


@pytest.fixture
async def db(infra: Infra) -> AsyncIterator[Any]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    name = f"incidents_{secrets.token_hex(3)}"
    await ensure_indexes(client[name])
    yield client[name]
    await client.drop_database(name)
    await client.close()


def delivery(event_type: str = "review.responded") -> DeliveryDoc:
    now = utcnow()
    return new_delivery(
        event_id="evt_x", event_type=event_type, channel_id=TARGET.channel_id, owner_id=TARGET.owner_id,
        message_id=None, url=TARGET.url, source="endpoint", body="{}", schedule=[], now=now, due_at=now,
        claim=None, endpoint_id=TARGET.endpoint_id,
    )  # fmt: skip


async def told(db: Any, kind: str) -> list[dict[str, Any]]:
    doc = await db["incidents"].find_one({"_id": incidents.key(kind, TARGET.subject)})  # type: ignore[arg-type]
    return list(doc.get("outbox", [])) if doc else []


async def test_two_replicas_racing_open_one_incident_and_count_every_failure_into_it(db: Any) -> None:
    a, b = Incidents(db), Incidents(db)
    now = utcnow()
    sent = delivery()
    counts = await asyncio.gather(
        *(replica.failed_for_good(TARGET, sent, "down", now) for replica in [a, b] * 10)
    )
    # One opening (failures 1), every other failure counted into it, none lost.
    assert sorted(counts) == list(range(1, 21))
    [event] = await told(db, incidents.RETRIES_EXHAUSTED)
    assert event["type"] == "operator.retries_exhausted"
    assert event["data"]["endpoint_id"] == TARGET.endpoint_id
    assert event["data"]["delivery_event_type"] == "review.responded"

    # Replica b learns of it (the change stream's load) and ends it on a success ...
    await b.load()
    assert b.any_open([TARGET.subject])
    await b.end(
        [TARGET.subject], incidents.ENDED_BY_SUCCESS, "a delivery succeeded", now + timedelta(seconds=1)
    )
    doc = await db["incidents"].find_one({"_id": incidents.key(incidents.RETRIES_EXHAUSTED, TARGET.subject)})
    assert doc["state"] == "resolved"
    # ... and the next failure is a new incident, with an event of its own.
    assert await a.failed_for_good(TARGET, sent, "down again", now + timedelta(seconds=2)) == 1
    assert len(await told(db, incidents.RETRIES_EXHAUSTED)) == 2


async def test_a_disabling_is_told_once_however_many_find_it_and_the_next_one_again(db: Any) -> None:
    now = utcnow()
    replicas = [Incidents(db) for _ in range(4)]
    opened = await asyncio.gather(
        *(r.disabled(TARGET, now, "410", now, delivery()) for r in replicas for _ in range(5))
    )
    assert opened.count(True) == 1
    # A fresh process (a restarted replica, no memory) finding the same disabling adds nothing.
    assert await Incidents(db).disabled(TARGET, now, "410", now, delivery()) is False
    assert len(await told(db, incidents.ENDPOINT_DISABLED)) == 1
    # Re-enabled and disabled again: a new disabling time, a new incident.
    later = now + timedelta(minutes=1)
    assert await Incidents(db).disabled(TARGET, later, "410", later, delivery()) is True
    assert len(await told(db, incidents.ENDPOINT_DISABLED)) == 2


async def test_a_circuit_open_since_before_the_incident_ended_does_not_tell_it_again(db: Any) -> None:
    a, b = Incidents(db), Incidents(db)
    t0 = utcnow()
    lane = "usr_inc|hooks.example.test:443|ep_inc"
    both = await asyncio.gather(
        a.open(incidents.CIRCUIT_OPEN, TARGET, "open", t0, t0, subject=lane),
        b.open(incidents.CIRCUIT_OPEN, TARGET, "open", t0, t0, subject=lane),
    )
    assert sorted(both) == [False, True]
    # a's circuit closes and ends it; b's circuit, open since t0, must not start it again.
    await a.load()
    await a.end([lane], (incidents.CIRCUIT_OPEN,), "the circuit closed", t0 + timedelta(seconds=10))
    assert (
        await b.open(incidents.CIRCUIT_OPEN, TARGET, "open", t0, t0 + timedelta(seconds=11), subject=lane)
        is False
    )
    # A circuit that opened after it ended is a new incident.
    t2 = t0 + timedelta(seconds=20)
    assert await b.open(incidents.CIRCUIT_OPEN, TARGET, "open", t2, t2, subject=lane) is True


def test_nothing_is_raised_about_an_operator_events_own_delivery() -> None:
    assert incidents.raises_incidents(delivery("review.responded"))
    assert not incidents.raises_incidents(delivery("operator.retries_exhausted"))
    assert not incidents.raises_incidents(delivery("operator.endpoint_disabled"))


def test_a_circuit_counts_its_open_time_from_the_first_opening_until_it_closes() -> None:
    clock = [0.0]
    circuit = Circuit(
        CircuitPolicy(window=4, min_calls=2, failure_ratio=0.5, open_seconds=5), lambda: clock[0]
    )
    assert circuit.open_for() == 0.0
    circuit.record(False)
    circuit.record(False)
    assert circuit.state is State.OPEN
    clock[0] = 6.0
    assert circuit.allow()  # the probe
    circuit.record(False)  # it fails: open again, still counted from the first opening
    clock[0] = 8.0
    assert circuit.open_for() == 8.0
    clock[0] = 14.0
    assert circuit.allow()
    circuit.record(True)
    assert circuit.open_for() == 0.0
    assert circuit.allow()  # closed again
