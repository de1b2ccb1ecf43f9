"""Grouped writes (sayso_dispatcher.store.GroupedWrites, on sayso_common.batching) against the session's real MongoDB: the
round trips are counted by a command listener on the client, so these tests see what the server
was sent, not what a double of it would have done."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from sayso_common.batching import LIMIT as GROUP_LIMIT
from sayso_dispatcher.store import GroupedWrites
from tests.support.scratch import CommandLog


@pytest.fixture
def coll(scratch: AsyncDatabase[Any]) -> AsyncCollection[Any]:
    return scratch.docs


def sent(log: CommandLog) -> Counter[str]:
    return Counter(log.names())


async def seed(coll: AsyncCollection[Any], count: int) -> None:
    await coll.insert_many([{"_id": i, "n": 0, "claim": "mine"} for i in range(count)])


@pytest.mark.parametrize("count", [1, 2, 50, GROUP_LIMIT, GROUP_LIMIT + 1, 2 * GROUP_LIMIT + 5])
async def test_updates_of_one_loop_turn_share_a_bulk_write(
    coll: AsyncCollection[Any], command_log: CommandLog, count: int
) -> None:
    await seed(coll, count)
    writes = GroupedWrites(coll)
    command_log.clear()
    results = await asyncio.gather(*(writes.update({"_id": i}, {"$inc": {"n": 1}}) for i in range(count)))
    assert results == [True] * count
    # One update command per GROUP_LIMIT updates, and nothing else when everything matched.
    assert sent(command_log) == Counter({"update": -(-count // GROUP_LIMIT)})
    assert await coll.count_documents({"n": 1}) == count


async def test_writers_ready_just_after_the_first_still_join_its_batch(
    coll: AsyncCollection[Any], command_log: CommandLog
) -> None:
    """The first update schedules the flush; writers that become ready after that flush task was
    scheduled, but before it runs, must still ride along (the flush yields once first)."""
    await seed(coll, 5)
    writes = GroupedWrites(coll)
    command_log.clear()
    first = asyncio.create_task(writes.update({"_id": 0}, {"$inc": {"n": 1}}))
    await asyncio.sleep(0)  # ``first`` runs: its update is pending and the flush is scheduled
    rest = [asyncio.create_task(writes.update({"_id": i}, {"$inc": {"n": 1}})) for i in range(1, 5)]
    assert await asyncio.gather(first, *rest) == [True] * 5
    assert sent(command_log) == Counter({"update": 1})


async def test_updates_from_later_turns_form_later_batches(
    coll: AsyncCollection[Any], command_log: CommandLog
) -> None:
    await seed(coll, 3)
    writes = GroupedWrites(coll)
    command_log.clear()
    for i in range(3):
        assert await writes.update({"_id": i}, {"$inc": {"n": 1}})
    assert sent(command_log) == Counter({"update": 3})


@pytest.mark.parametrize(
    ("lost", "with_applied"),
    [
        ({1}, True),
        ({0, 2}, True),
        ({0, 1, 2, 3}, True),
        ({3}, False),  # without ``applied`` a partly matched batch cannot be told apart
    ],
)
async def test_each_waiter_learns_whether_its_own_update_matched(
    coll: AsyncCollection[Any], command_log: CommandLog, lost: set[int], with_applied: bool
) -> None:
    """An update whose claim was lost matches nothing; ``applied`` finds out which ones landed."""
    await seed(coll, 4)
    await coll.update_many({"_id": {"$in": list(lost)}}, {"$set": {"claim": "theirs"}})
    writes = GroupedWrites(coll)

    async def record(i: int) -> bool:
        tag = f"attempt-{i}"
        return await writes.update(
            {"_id": i, "claim": "mine"},
            {"$set": {"last": tag}},
            applied={"_id": i, "last": tag} if with_applied else None,
        )

    command_log.clear()
    results = await asyncio.gather(*(record(i) for i in range(4)))
    if with_applied:
        assert results == [i not in lost for i in range(4)]
        # One bulk write, then one look per waiter (count_documents is an aggregate) to tell them apart.
        assert sent(command_log) == Counter({"update": 1, "aggregate": 4})
    else:
        assert results == [True] * 4
    assert {d["_id"] async for d in coll.find({"last": {"$exists": True}})} == set(range(4)) - lost


async def test_a_failed_bulk_write_fails_every_waiter_of_its_batch(coll: AsyncCollection[Any]) -> None:
    await coll.insert_many([{"_id": 0, "n": 0}, {"_id": 1, "n": "not a number"}])
    writes = GroupedWrites(coll)
    results = await asyncio.gather(
        writes.update({"_id": 0}, {"$inc": {"n": 1}}),
        writes.update({"_id": 1}, {"$inc": {"n": 1}}),  # the server refuses $inc on a string
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [BulkWriteError, BulkWriteError]
    # Unordered: the other update of the batch was still applied, and the writer keeps working.
    assert (await coll.find_one({"_id": 0}) or {})["n"] == 1
    assert await writes.update({"_id": 0}, {"$inc": {"n": 1}})
    assert (await coll.find_one({"_id": 0}) or {})["n"] == 2
