"""Resume's history read against a real MongoDB: which stored events a client that last saw
event L may have missed. Events are stored as the relay stores them (``events_document``), with
their storage stamps set to the orders a gateway can hand them on in."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from sayso_common.events import Event, MessageData, ReviewResponded
from sayso_common.ids import min_id
from sayso_common.membership import Reach
from sayso_common.mongo import EVENTS
from sayso_common.outbox import events_document
from sayso_common.views import MessageView, ReviewView
from sayso_realtime.history import STORED_OVERLAP, RecentEvents, Replay, events_since, stored_after

RETENTION = timedelta(days=1)
NOW_MS = int(time.time() * 1000)


def _event(n: int, at_ms: int, owner: str = "usr_1") -> Event:
    """An event whose id was made at ``at_ms``, ordered by ``n`` within that millisecond."""
    view = MessageView(
        id=f"msg_{n}",
        channel_id="agt_1",
        text="deploy?",
        created_at="2026-11-28T12:00:00Z",
        review=ReviewView(type="approval", status="completed", response={"selectedOption": "approve"}),
    )
    event_id = min_id("evt", at_ms)[:-2] + f"{n:02d}"
    return ReviewResponded(id=event_id, channel_id="agt_1", owner_id=owner, data=MessageData(message=view))


async def _store(
    db: AsyncDatabase[Any],
    event: Event,
    stored_ms_after_l: int,
    l_stamp: Any,
    retention: timedelta = RETENTION,
) -> None:
    doc = events_document(event, retention)
    doc["stored_at"] = l_stamp + timedelta(milliseconds=stored_ms_after_l)
    doc["expire_at"] = doc["stored_at"] + retention
    await db[EVENTS].insert_one(doc)


async def _replay(db: AsyncDatabase[Any], last_id: str, limit: int = 100) -> Replay:
    return await events_since(db, RecentEvents(10), Reach("usr_1"), last_id, None, timedelta(days=1), limit)


async def _since(db: AsyncDatabase[Any], last: Event) -> list[str]:
    replay = await _replay(db, last.id)
    assert replay.complete
    return [e.id for e in replay.events]


async def test_events_stored_with_or_just_before_the_last_seen_one_are_replayed(
    scratch: AsyncDatabase[Any],
) -> None:
    last = _event(50, NOW_MS)
    doc = events_document(last, RETENTION)
    await scratch[EVENTS].insert_one(doc)
    stamp = doc["stored_at"].replace(microsecond=doc["stored_at"].microsecond // 1000 * 1000)
    # Published in one relay batch with L and stored in the same millisecond, a smaller id: a
    # gateway reading L's partition first hands L on first, and the client may die in between.
    same_batch = _event(10, NOW_MS)
    # Stored a moment before L (the previous relay pass), handed on after it.
    previous_pass = _event(11, NOW_MS - 40)
    # Stored well before L: long handed on, not repeated.
    old = _event(12, NOW_MS - 30_000)
    newer = _event(60, NOW_MS + 5)  # a greater id: always replayed
    stranger = _event(13, NOW_MS, owner="usr_2")
    await _store(scratch, same_batch, 0, stamp)
    await _store(scratch, previous_pass, -40, stamp)
    await _store(scratch, old, -30_000, stamp)
    await _store(scratch, newer, 3, stamp)
    await _store(scratch, stranger, 0, stamp)
    assert timedelta(seconds=1) < STORED_OVERLAP

    replayed = await _since(scratch, last)
    assert replayed == sorted([same_batch.id, previous_pass.id, newer.id])

    # The broker-loss catch-up reads with the same rule, for every owner.
    caught_up = [e.id for e in await stored_after(scratch, last.id, 100)]
    assert caught_up == sorted([same_batch.id, previous_pass.id, newer.id, stranger.id])


async def test_events_stored_after_the_last_seen_one_are_replayed_whatever_each_relay_keeps_them_for(
    scratch: AsyncDatabase[Any],
) -> None:
    """Relays may keep events for different times (SAYSO_RETENTION_DAYS changed on one service
    first); an event stored after the last seen one with a shorter retention, or by a relay of the
    release before the stamp (expire_at = stored + 1 day, no stored_at), is still replayed. Read
    off expire_at alone, the first was skipped."""
    last = _event(50, NOW_MS)
    doc = events_document(last, timedelta(days=30))
    await scratch[EVENTS].insert_one(doc)
    stamp = doc["stored_at"].replace(microsecond=doc["stored_at"].microsecond // 1000 * 1000)
    shorter = _event(10, NOW_MS - 20)
    await _store(scratch, shorter, 15, stamp, retention=timedelta(days=2))
    unstamped = _event(11, NOW_MS - 30)
    old_style = events_document(unstamped, RETENTION)
    del old_style["stored_at"]
    old_style["expire_at"] = stamp + timedelta(milliseconds=25) + timedelta(days=1)
    await scratch[EVENTS].insert_one(old_style)
    long_before = _event(12, NOW_MS - 40_000)
    await _store(scratch, long_before, -40_000, stamp, retention=timedelta(days=2))
    assert await _since(scratch, last) == sorted([shorter.id, unstamped.id])


async def test_a_last_id_that_is_not_stored_resumes_by_id_alone(scratch: AsyncDatabase[Any]) -> None:
    earlier = _event(1, NOW_MS - 10)
    later = _event(2, NOW_MS + 10)
    for event in (earlier, later):
        await scratch[EVENTS].insert_one(events_document(event, RETENTION))
    assert await _since(scratch, _event(5, NOW_MS)) == [later.id]


async def test_a_replay_cut_at_the_limit_sends_the_newer_events_last_so_each_resume_gets_further(
    scratch: AsyncDatabase[Any],
) -> None:
    """The events stored around the last one are repeats mostly: they go first, and the client's
    last event after a cut replay is the newest sent, so resuming from it reads on."""
    around = [_event(n, NOW_MS - 100 + n) for n in range(5)]
    last = _event(10, NOW_MS)
    newer = [_event(20 + n, NOW_MS + 10 + n) for n in range(7)]
    for event in [*around, last, *newer]:
        await scratch[EVENTS].insert_one(events_document(event, RETENTION))

    got: list[str] = []
    cursor, rounds = last.id, 0
    while True:
        rounds += 1
        replay = await _replay(scratch, cursor, limit=3)
        ids = [e.id for e in replay.events]
        assert ids == sorted(i for i in ids if i < cursor) + sorted(i for i in ids if i > cursor)
        if rounds == 1:
            # Past the limit, the stored-before events nearest the last seen one are kept.
            assert [i for i in ids if i < cursor] == [e.id for e in around[-3:]]
        got += ids
        cursor = ids[-1]
        if replay.complete:
            break
        assert rounds < 5
    assert set(got) >= {e.id for e in newer}
    assert rounds == 3  # 3 + 3 + 1 newer events
