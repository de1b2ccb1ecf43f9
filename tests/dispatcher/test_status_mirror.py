"""The delivery status copied onto messages (sayso_dispatcher.store.StatusMirror) against the
session's real MongoDB: what the server was sent is read from a command listener (update
statements, not just commands), what it kept from the documents."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from sayso_common.views import DeliveryStatus
from sayso_dispatcher.store import StatusMirror
from tests.support.scratch import CommandLog

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def update_statements(log: CommandLog) -> list[tuple[list[str], str]]:
    """The update statements sent, in order: (filter ids, status set)."""
    return [
        (list(statement["q"]["_id"]["$in"]), statement["u"]["$set"]["delivery_status"])
        for command in log.of("update")
        for statement in command["updates"]
    ]


@pytest.fixture
def messages(scratch: AsyncDatabase[Any]) -> AsyncCollection[Any]:
    return scratch.messages


async def test_copies_of_one_loop_turn_are_one_statement_per_run_of_a_status(
    messages: AsyncCollection[Any], command_log: CommandLog
) -> None:
    await messages.insert_many([{"_id": f"m{i}", "delivery_status": "sent"} for i in range(6)])
    mirror = StatusMirror(messages)
    plan: list[tuple[str, DeliveryStatus]] = [
        ("m0", "webhook_delivered"), ("m1", "webhook_delivered"), ("m2", "webhook_failed"),
        ("m3", "webhook_delivered"), ("m4", "webhook_delivered"), ("m5", "webhook_delivered"),
    ]  # fmt: skip
    await asyncio.gather(*(mirror.copy(m, status, NOW) for m, status in plan))
    assert update_statements(command_log) == [
        (["m0", "m1"], "webhook_delivered"),
        (["m2"], "webhook_failed"),
        (["m3", "m4", "m5"], "webhook_delivered"),
    ]
    stored = {d["_id"]: d["delivery_status"] async for d in messages.find()}
    assert stored == dict(plan)


async def test_two_statuses_for_one_message_in_one_turn_land_in_the_order_recorded(
    messages: AsyncCollection[Any],
) -> None:
    await messages.insert_one({"_id": "m", "delivery_status": "sent"})
    mirror = StatusMirror(messages)
    await asyncio.gather(mirror.copy("m", "webhook_failed", NOW), mirror.copy("m", "webhook_delivered", NOW))
    assert (await messages.find_one({"_id": "m"}) or {})["delivery_status"] == "webhook_delivered"


async def test_the_agents_acknowledgement_is_never_overwritten(messages: AsyncCollection[Any]) -> None:
    await messages.insert_many(
        [{"_id": "acked", "delivery_status": "agent_received"}, {"_id": "open", "delivery_status": "sent"}]
    )
    mirror = StatusMirror(messages)
    await asyncio.gather(
        mirror.copy("acked", "webhook_delivered", NOW), mirror.copy("open", "webhook_delivered", NOW)
    )
    stored = {d["_id"]: d["delivery_status"] async for d in messages.find()}
    assert stored == {"acked": "agent_received", "open": "webhook_delivered"}


async def test_a_failed_write_reaches_every_copy_of_its_batch(messages: AsyncCollection[Any]) -> None:
    # A validator the copies break: every waiter must hear of it (the dispatcher logs it).
    await messages.database.create_collection(
        "strict", validator={"delivery_status": {"$in": ["sent", "agent_received"]}}
    )
    strict = messages.database.strict
    await strict.insert_many(
        [{"_id": "a", "delivery_status": "sent"}, {"_id": "b", "delivery_status": "sent"}]
    )
    mirror = StatusMirror(strict)
    outcomes = await asyncio.gather(
        mirror.copy("a", "webhook_delivered", NOW), mirror.copy("b", "webhook_delivered", NOW),
        return_exceptions=True,
    )  # fmt: skip
    assert all(isinstance(o, OperationFailure) for o in outcomes), outcomes
