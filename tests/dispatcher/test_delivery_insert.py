"""A delivery's request starts once the primary applied its insert, not once the insert is
durable; the Kafka handler still returns (and its offsets are committed) only once it is
(sayso_dispatcher.store.DeliveryStore.insert_durable, issue #36). Against the session's real
MongoDB, with what the client sent recorded."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from sayso_common.clock import utcnow
from sayso_common.deliveries import new_delivery
from sayso_common.documents import DeliveryDoc
from sayso_common.mongo import DELIVERIES, INDEXES
from sayso_dispatcher.store import DeliveriesLostError, DeliveryStore
from tests.support.scratch import CommandLog


def _planned(store: DeliveryStore, event_id: str) -> DeliveryDoc:
    now = utcnow()
    return new_delivery(
        event_id=event_id, event_type="review.responded", channel_id="ch_1", owner_id="o", message_id="msg_1",
        url="https://agent.example/hook", source="agent", body="{}", schedule=None, now=now,
        due_at=store.lease_end(now), claim=store.new_claim(),
    )  # fmt: skip


def _write_concern(body: dict[str, Any]) -> Any:
    return (body.get("writeConcern") or {}).get("w")


async def test_the_request_starts_once_the_insert_is_applied_and_the_handler_returns_once_durable(
    scratch: AsyncDatabase[Any], command_log: CommandLog
) -> None:
    await scratch[DELIVERIES].create_indexes(INDEXES[DELIVERIES])
    store = DeliveryStore(scratch, "dispatcher-test", 30)
    handed: list[tuple[list[str], list[str]]] = []

    def applied(docs: list[DeliveryDoc]) -> None:
        # What the client had sent when the deliveries were handed over to be sent.
        handed.append(([d["_id"] for d in docs], command_log.names()))

    command_log.clear()
    first = _planned(store, "evt_1")
    assert await store.insert_durable([first], applied) == [first]
    [(ids, sent_by_then)] = handed
    assert ids == [first["_id"]]
    assert sent_by_then == ["insert"], "the deliveries waited for more than their insert"
    [insert] = command_log.of("insert")
    assert _write_concern(insert) == 1, "the insert waited for the journal before the request could start"
    # Then one write that waits for the majority (journaled) commit of what was applied before it.
    assert command_log.names() == ["insert", "update"]
    [barrier] = command_log.of("update")
    assert _write_concern(barrier) == "majority"
    assert await scratch[DELIVERIES].count_documents({}) == 1

    # The same event and URL planned again (a redelivered record): nothing is handed over to be
    # sent, and the handler still returns only after the commit barrier.
    handed.clear()
    command_log.clear()
    assert await store.insert_durable([_planned(store, "evt_1")], applied) == []
    assert handed == [([], ["insert"])]
    assert command_log.names() == ["insert", "update"]
    assert await scratch[DELIVERIES].count_documents({}) == 1


async def test_an_insert_gone_by_the_commit_barrier_raises(
    scratch: AsyncDatabase[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failover that rolled the w:1 insert back, the barrier then run on the new primary: its
    majority write succeeds there, but the deliveries are not there, so the handler must not
    return (its records are handled again and the deliveries re-planned). One node cannot roll
    back, so the rollback is a delete of one delivery just before the barrier's write."""
    await scratch[DELIVERIES].create_indexes(INDEXES[DELIVERIES])
    store = DeliveryStore(scratch, "dispatcher-test", 30)
    kept, lost = _planned(store, "evt_kept"), _planned(store, "evt_lost")
    barrier = store._committed.update_many  # the rollback goes just before it

    async def after_rollback(*args: Any, **kwargs: Any) -> Any:
        await scratch[DELIVERIES].delete_one({"_id": lost["_id"]})
        return await barrier(*args, **kwargs)

    monkeypatch.setattr(store._committed, "update_many", after_rollback)
    with pytest.raises(DeliveriesLostError, match="1 of 2 new deliveries"):
        await store.insert_durable([kept, lost], lambda docs: None)
