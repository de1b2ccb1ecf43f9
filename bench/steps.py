"""Where the time of respond -> webhook goes, step by step (issue #36).

A change stream on the stack's database notes when MongoDB applied each write the path makes
(``wallTime``, the primary's clock, in milliseconds); the writers' own timestamps mark when the
relay had the broker's confirmation (the stored event's ``stored_at``) and when the dispatcher
held the record (the delivery's ``created_at``); the benchmark's clock marks the send and the
arrival. All are this machine's wall clock, so they line up to a millisecond:

* ``answer``: the respond call sent -> the completed review applied (HTTP, credential, read,
  checks, the write itself);
* ``publish``: -> the broker confirmed the event (the relay's wake, its outbox read, the send
  and the acknowledgement, the partition check);
* ``store``: -> the event applied to ``events`` (the write that also wakes idle consumers);
* ``consume``: -> the dispatcher's handler has the record (the consumers' wake, the fetch);
* ``accept``: -> the delivery applied (agent and endpoint lookups, the insert);
* ``post``: -> the receiver has the webhook (the insert's acknowledgement, the lane, signing,
  the request).

Apart from these: ``pulled``, when the relay's pull emptied the message's outbox, after the
send. ``answer`` includes the write; each later step starts where the one before ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient

from bench.realtime import pct
from sayso_devstack.processes import mongo_url

STEPS = ("answer", "publish", "store", "consume", "accept", "post")


def _ms(at: datetime) -> float:
    return at.timestamp() * 1000


@dataclass
class Round:
    message_id: str
    sent_ms: float  # epoch ms
    arrived_ms: float


class StepProbe:
    """Notes when each write of the path was applied, for as long as it runs."""

    def __init__(self, mongo_port: int) -> None:
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            mongo_url(mongo_port), tz_aware=True
        )
        self._db = self._client.sayso
        # (collection, document id) -> the wall times of its changes, in order.
        self._seen: dict[tuple[str, Any], list[tuple[float, str, dict[str, Any]]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._open = asyncio.Event()

    async def start(self) -> StepProbe:
        self._task = asyncio.create_task(self._watch())
        await asyncio.wait_for(self._open.wait(), 10)
        return self

    async def _watch(self) -> None:
        pipeline: list[dict[str, Any]] = [
            {"$match": {"ns.coll": {"$in": ["messages", "events", "deliveries"]}}},
            {"$project": {"ns": 1, "documentKey": 1, "wallTime": 1, "operationType": 1,
                          "updateDescription.updatedFields": 1}},
        ]  # fmt: skip
        async with await self._db.watch(pipeline) as stream:
            self._open.set()
            async for change in stream:
                key = (change["ns"]["coll"], change["documentKey"]["_id"])
                fields = (change.get("updateDescription") or {}).get("updatedFields") or {}
                self._seen.setdefault(key, []).append(
                    (_ms(change["wallTime"]), change["operationType"], fields)
                )

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.close()

    def _first(self, coll: str, _id: Any, test: Any = None, after: float = 0.0) -> float | None:
        for at, op, fields in self._seen.get((coll, _id), []):
            if at >= after and (test is None or test(op, fields)):
                return at
        return None

    async def steps(self, one: Round) -> dict[str, float] | None:
        """The round's steps in ms, or None when a write was not seen (the stream lagged)."""
        for _ in range(100):  # the stream reports a moment after the receiver had the webhook
            row = await self._steps(one)
            if row is not None:
                return row
            await asyncio.sleep(0.02)
        return None

    async def _steps(self, one: Round) -> dict[str, float] | None:
        event = await self._db.events.find_one(
            {"type": "review.responded", "data.message.id": one.message_id}, {"stored_at": 1}
        )
        delivery = await self._db.deliveries.find_one(
            {"message_id": one.message_id, "event_type": "review.responded"}, {"created_at": 1}
        )
        if event is None or delivery is None:
            return None
        answered = self._first(
            "messages", one.message_id, lambda op, f: op == "update" and f.get("review.status") == "completed"
        )
        pulled = answered and self._first(
            "messages", one.message_id, lambda op, f: op == "update" and f.get("outbox") == [], answered
        )
        stored = self._first("events", event["_id"])
        inserted = self._first("deliveries", delivery["_id"])
        if answered is None or pulled is None or stored is None or inserted is None:
            return None
        confirmed, held = _ms(event["stored_at"]), _ms(delivery["created_at"])
        return {
            "answer": answered - one.sent_ms,
            "publish": confirmed - answered,
            "store": stored - confirmed,
            "consume": held - stored,
            "accept": inserted - held,
            "post": one.arrived_ms - inserted,
            "pulled": pulled - one.sent_ms,
            "total": one.arrived_ms - one.sent_ms,
        }


def summary(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Median and p90 of each step over ``rows``; a step's medians do not add up to the total's."""
    out: dict[str, Any] = {"rounds": len(rows)}
    for name in (*STEPS, "pulled", "total"):
        values = [r[name] for r in rows]
        out[name] = {"p50": round(statistics.median(values), 1), "p90": round(pct(values, 0.9), 1)}
    return out


def table(summ: dict[str, Any]) -> list[list[str]]:
    rows = [["step", "p50 ms", "p90 ms"]]
    for name in (*STEPS, "total", "pulled"):
        rows.append([name, str(summ[name]["p50"]), str(summ[name]["p90"])])
    return rows
