"""sayso_common.batching against the session's real MongoDB: one statement per event-loop turn,
each caller answered with its own result or error, cancelled callers skipped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, WriteError

from sayso_common.batching import LIMIT, GroupedInserts, TurnBatcher
from tests.support.scratch import CommandLog


@pytest.fixture
async def coll(scratch: AsyncDatabase[Any]) -> AsyncCollection[Any]:
    await scratch.docs.create_index("key", unique=True, name="key_unique")
    # A document the validator refuses is a write error other than a duplicate key.
    await scratch.command("collMod", "docs", validator={"n": {"$type": "int"}})
    return scratch.docs


def doc(i: int, **extra: Any) -> dict[str, Any]:
    return {"_id": f"d{i}", "key": f"k{i}", "n": i, **extra}


@pytest.mark.parametrize("count", [1, 7, LIMIT, LIMIT + 1])
async def test_inserts_of_one_loop_turn_are_one_statement_per_limit(
    coll: AsyncCollection[Any], command_log: CommandLog, count: int
) -> None:
    inserts = GroupedInserts(coll)
    command_log.clear()
    await asyncio.gather(*(inserts.insert(doc(i)) for i in range(count)))
    assert command_log.names() == ["insert"] * -(-count // LIMIT)
    assert await coll.count_documents({}) == count


async def test_each_caller_gets_its_own_error_and_the_others_are_inserted(
    coll: AsyncCollection[Any], command_log: CommandLog
) -> None:
    await coll.insert_one(doc(0))
    inserts = GroupedInserts(coll)
    command_log.clear()
    results = await asyncio.gather(
        inserts.insert(doc(1)),
        inserts.insert(doc(2, key="k0")),  # taken by the document already there
        inserts.insert(doc(3)),
        inserts.insert(doc(4, n="four")),  # refused by the validator
        inserts.insert(doc(5)),
        return_exceptions=True,
    )
    assert command_log.names() == ["insert"]
    assert [results[i] for i in (0, 2, 4)] == [None, None, None]
    duplicate, refused = results[1], results[3]
    assert isinstance(duplicate, DuplicateKeyError)
    assert "key_unique" in str(duplicate)  # callers tell unique indexes apart by name, as with insert_one
    assert type(refused) is WriteError
    assert sorted([d["_id"] async for d in coll.find({}, {"_id": 1})]) == ["d0", "d1", "d3", "d5"]


async def test_inserts_from_later_turns_form_later_statements(
    coll: AsyncCollection[Any], command_log: CommandLog
) -> None:
    inserts = GroupedInserts(coll)
    command_log.clear()
    for i in range(3):
        await inserts.insert(doc(i))
    assert command_log.names() == ["insert"] * 3


async def test_a_cancelled_caller_is_skipped_and_the_batch_goes_on() -> None:
    written: list[list[int]] = []

    async def write(items: list[int]) -> list[int]:
        await asyncio.sleep(0.01)
        written.append(items)
        return [i * 10 for i in items]

    batcher: TurnBatcher[int, int] = TurnBatcher(write)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await asyncio.sleep(0.001)  # the batch is being written
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert (done[0], done[2]) == (0, 20)
    assert isinstance(done[1], asyncio.CancelledError)
    assert written == [[0, 1, 2]]
    assert await batcher.submit(7) == 70  # and the batcher keeps working


async def test_a_failed_statement_fails_every_caller_of_its_batch_only() -> None:
    calls = 0

    async def write(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("primary stepped down")
        return items

    batcher: TurnBatcher[str, str] = TurnBatcher(write)
    first = await asyncio.gather(batcher.submit("a"), batcher.submit("b"), return_exceptions=True)
    assert [type(r) for r in first] == [ConnectionError, ConnectionError]
    assert list(await asyncio.gather(batcher.submit("c"), batcher.submit("d"))) == ["c", "d"]


async def test_callers_are_cancelled_not_left_waiting_when_the_batcher_stops() -> None:
    started = asyncio.Event()

    async def write(items: list[int]) -> list[int]:
        started.set()
        await asyncio.sleep(3600)
        return items

    batcher: TurnBatcher[int, int] = TurnBatcher(write)
    callers = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await started.wait()
    late = asyncio.create_task(batcher.submit(3))  # waits for the next batch
    await asyncio.sleep(0)
    assert batcher._task is not None
    batcher._task.cancel()
    results = await asyncio.wait_for(asyncio.gather(*callers, late, return_exceptions=True), 5)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
