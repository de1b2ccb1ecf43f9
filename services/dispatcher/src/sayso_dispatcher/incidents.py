"""The dispatcher's side of :mod:`sayso_common.incidents`: opening incidents (each once, whatever
the number of deliveries and replicas that see it), counting failures into them, and ending them.

Every replica keeps the subjects of the open incidents in memory, loaded at start and kept by a
change stream, so a delivery that succeeds ends an incident with one write, and a delivery to a
target without one costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from sayso_common import incidents, loops
from sayso_common.documents import DeliveryDoc, IncidentKind
from sayso_common.incidents import Target
from sayso_common.mongo import INCIDENTS, Database, collection, untyped

log = logging.getLogger(__name__)

OPENED = Counter("sayso_webhook_incidents_total", "Webhook incidents opened (each told once)", ["kind"])

# Disablings this process already made sure were told (endpoint_disabled keys x since): a storm of
# deliveries refused by a disabled endpoint asks MongoDB once, not once each.
_TOLD_MAX = 10_000


class Incidents:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._coll = collection(db, INCIDENTS)
        # subject -> kinds of its open incidents, as far as this process knows.
        self._open: dict[str, set[str]] = {}
        self._told: set[tuple[str, datetime]] = set()
        self._reload = asyncio.Event()

    async def open(
        self,
        kind: IncidentKind,
        target: Target,
        reason: str,
        since: datetime,
        now: datetime,
        delivery: DeliveryDoc | None = None,
        subject: str | None = None,
    ) -> bool:
        """Open an incident unless it is not a new one; True if this call opened it (and so wrote
        its operator event into the outbox)."""
        step = incidents.opening(kind, target, reason, since, now, delivery, subject)
        try:
            await self._coll.update_one(step.filter, step.update, upsert=True)
        except DuplicateKeyError:
            return False  # open already (another delivery or replica told it)
        self._open.setdefault(subject or target.subject, set()).add(kind)
        OPENED.labels(kind).inc()
        log.warning(
            "webhook incident opened: %s",
            reason,
            extra={"incident": step.event.data.incident_id, "kind": kind, "channel": target.channel_id,
                   "endpoint": target.endpoint_id},
        )  # fmt: skip
        return True

    async def failed_for_good(self, target: Target, delivery: DeliveryDoc, reason: str, now: datetime) -> int:
        """A delivery to ``target`` failed for good: opens its retries_exhausted incident, or counts
        one more failure into the open one. Returns the failures counted since it opened."""
        filter_, update = incidents.counted(incidents.RETRIES_EXHAUSTED, target.subject, now)
        for _ in range(2):
            doc = await self._coll.find_one_and_update(
                filter_, update, {"failures": 1}, return_document=ReturnDocument.AFTER
            )
            if doc is not None:
                return doc.get("failures", 1)
            if await self.open(incidents.RETRIES_EXHAUSTED, target, reason, now, now, delivery):
                return 1
            # Another replica opened it between the two writes: count into that one.
        return 1

    async def restart_count(self, subject: str, now: datetime) -> None:
        """The target was disabled for its failures: once re-enabled, it gets as many again."""
        await self._coll.update_one(
            {"_id": incidents.key(incidents.RETRIES_EXHAUSTED, subject), "state": "open"},
            {"$set": {"failures": 0, "updated_at": now}},
        )

    async def disabled(
        self, target: Target, since: datetime, reason: str, now: datetime, delivery: DeliveryDoc | None
    ) -> bool:
        """``target`` was disabled at ``since``: told once per disabling."""
        told = (target.subject, since)
        if told in self._told:
            return False
        opened = await self.open(incidents.ENDPOINT_DISABLED, target, reason, since, now, delivery)
        if len(self._told) > _TOLD_MAX:
            self._told.clear()
        self._told.add(told)
        return opened

    def any_open(self, subjects: Iterable[str]) -> bool:
        return any(s in self._open for s in subjects)

    async def end(
        self, subjects: Iterable[str], kinds: tuple[IncidentKind, ...], why: str, now: datetime
    ) -> None:
        """End the open incidents of ``kinds`` about ``subjects`` (if this process knows of any)."""
        known = [s for s in subjects if self._open.get(s, set()) & set(kinds)]
        if not known:
            return
        filter_, update = incidents.resolving(known, kinds, why, now)
        await self._coll.update_many(filter_, update)
        for subject in known:
            left = self._open.get(subject, set()) - set(kinds)
            if left:
                self._open[subject] = left
            else:
                self._open.pop(subject, None)

    async def load(self) -> None:
        found: dict[str, set[str]] = {}
        async for doc in self._coll.find({"state": "open"}, {"subject": 1, "kind": 1}):
            found.setdefault(doc["subject"], set()).add(doc["kind"])
        self._open = found

    def _changed(self, change: Mapping[str, Any]) -> None:
        doc = change.get("fullDocument")
        if not doc:
            self._reload.set()
            return
        kinds = self._open.setdefault(doc["subject"], set())
        if doc.get("state") == "open":
            kinds.add(doc["kind"])
        else:
            kinds.discard(doc["kind"])
            if not kinds:
                self._open.pop(doc["subject"], None)

    async def watch(self) -> None:
        """Keep the open subjects current: another replica's incidents, and ones the API ended
        (an endpoint re-enabled). Runs until cancelled."""

        async def reload() -> None:
            while True:
                await self._reload.wait()
                self._reload.clear()
                try:
                    await self.load()
                except Exception:
                    log.warning("loading open incidents failed", exc_info=True)
                    await asyncio.sleep(1.0)
                    self._reload.set()

        pipeline: list[dict[str, Any]] = [
            {"$project": {"fullDocument.subject": 1, "fullDocument.kind": 1, "fullDocument.state": 1}}
        ]
        await asyncio.gather(
            reload(),
            loops.watch(
                untyped(self._db, INCIDENTS),
                pipeline,
                self._changed,
                what="incident change stream",
                on_open=self._reload.set,
                full_document="updateLookup",
            ),
        )
