"""The explicit webhook endpoints events go to (:mod:`sayso_common.endpoints`), read from MongoDB
with a cache that a change stream keeps honest: an owner's new endpoint, edit, rotation or
delete reaches the next event within milliseconds; a lost stream falls back to the TTL.

Endpoint changes are rare next to events, so any change clears the whole cache: simpler than
working out which channels an account-wide endpoint touched, and just as correct.

The directory also knows which event types any enabled endpoint asks for (:meth:`wants`): the
consumer drops the records of endpoint-only types (``delivery.status`` …) nobody wants before
parsing them, so consuming those topics costs little while no endpoint takes them. The set is
read again on every endpoint change (and every ``ttl``); until the first read, everything is
wanted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pymongo.errors import PyMongoError

from sayso_common import loops, signing_secrets
from sayso_common.documents import EndpointDoc
from sayso_common.endpoints import (
    compile_endpoint_filter,
    deliverable,
    filter_document,
    stored_filter,
    type_matches,
    wanted,
)
from sayso_common.events import Event, wire_name
from sayso_common.filters import Filter
from sayso_common.mongo import ENDPOINTS, Database, collection, untyped
from sayso_dispatcher.agents import basic_auth_header

log = logging.getLogger(__name__)

_MAX_CACHED = 100_000


class EndpointDirectory:
    def __init__(self, db: Database, opener: Callable[[str], str], ttl: float = 30.0) -> None:
        self._coll = collection(db, ENDPOINTS)
        self._db = db
        self._open = opener
        self._ttl = ttl
        # channel id -> (expiry, the endpoints an event of that channel may go to)
        self._by_channel: dict[str, tuple[float, list[EndpointDoc]]] = {}
        self._by_id: dict[str, tuple[float, EndpointDoc | None]] = {}
        # (endpoint id, updated_at) -> compiled filter; None when it has none
        self._filters: dict[tuple[str, Any], Filter | None] = {}
        # The event types (and groups) some enabled endpoint asks for; None: not read yet.
        self._patterns: frozenset[str] | None = None
        self._changed = asyncio.Event()

    def wants(self, event_name: str) -> bool:
        """Whether some enabled endpoint (of any owner) may want events named ``event_name``
        (``delivery:status``), as far as this process knows."""
        return self._patterns is None or type_matches(self._patterns, event_name)

    async def read_types(self) -> None:
        """Read which event types enabled endpoints ask for (their defaults are the agents'
        types, which the dispatcher takes anyway)."""
        found = await self._coll.distinct("event_types", {"disabled": {"$ne": True}})
        self._patterns = frozenset(p for p in found if isinstance(p, str))

    async def follow_types(self) -> None:
        """Keep :meth:`wants` current: read again after every endpoint change, and every ``ttl``
        in case a change went unseen. Runs until cancelled."""
        while True:
            self._changed.clear()
            try:
                await self.read_types()
            except PyMongoError:
                log.warning("reading the endpoints' event types failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self._ttl)

    async def for_channels(self, channels: dict[str, str]) -> dict[str, list[EndpointDoc]]:
        """The enabled endpoints of each channel (``channel id -> owner id``): its own and its
        owner's account-wide ones."""
        now = time.monotonic()
        found: dict[str, list[EndpointDoc]] = {}
        missing: dict[str, str] = {}
        for channel_id, owner_id in channels.items():
            hit = self._by_channel.get(channel_id)
            if hit and hit[0] > now:
                found[channel_id] = hit[1]
            else:
                missing[channel_id] = owner_id
        if not missing:
            return found
        query = {
            "owner_id": {"$in": sorted(set(missing.values()))},
            "channel_id": {"$in": [*missing, None]},
            "disabled": {"$ne": True},
        }
        docs = await self._coll.find(query).sort("created_at", 1).to_list()
        if len(self._by_channel) > _MAX_CACHED or len(self._by_id) > _MAX_CACHED:
            self.clear()
        for doc in docs:
            self._by_id[doc["_id"]] = (now + self._ttl, doc)
        for channel_id, owner_id in missing.items():
            mine = [d for d in docs if d["owner_id"] == owner_id and d["channel_id"] in (channel_id, None)]
            self._by_channel[channel_id] = (now + self._ttl, mine)
            found[channel_id] = mine
        return found

    def matching(self, endpoints: Iterable[EndpointDoc], event: Event) -> list[EndpointDoc]:
        """The endpoints ``event`` goes to, in creation order."""
        if not deliverable(event):
            return []
        name = wire_name(event.type)
        built: list[dict[str, Any] | None] = []

        def document() -> dict[str, Any] | None:
            if not built:  # the message is dumped once per event, and only if a filter needs it
                built.append(filter_document(event))
            return built[0]

        chosen: list[EndpointDoc] = []
        for endpoint in endpoints:
            try:
                compiled = self._filter(endpoint)
            except ValueError as exc:  # a FilterError, or text that is no longer JSON
                # Saved through the API it compiled; a later, stricter version may refuse it.
                log.warning(
                    "endpoint filter no longer compiles: %s", exc, extra={"endpoint": endpoint["_id"]}
                )
                continue
            if wanted(endpoint, name, compiled, document):
                chosen.append(endpoint)
        return chosen

    def _filter(self, endpoint: EndpointDoc) -> Filter | None:
        key = (endpoint["_id"], endpoint.get("updated_at"))
        if key not in self._filters:
            if len(self._filters) > _MAX_CACHED:
                self._filters.clear()
            self._filters[key] = compile_endpoint_filter(stored_filter(endpoint))
        return self._filters[key]

    async def get(self, endpoint_id: str) -> EndpointDoc | None:
        """The endpoint as stored (disabled ones too), None once deleted."""
        now = time.monotonic()
        hit = self._by_id.get(endpoint_id)
        if hit and hit[0] > now:
            return hit[1]
        doc = await self._coll.find_one({"_id": endpoint_id})
        self._by_id[endpoint_id] = (now + self._ttl, doc)
        return doc

    def secrets(self, endpoint: EndpointDoc, now: datetime) -> list[str]:
        return [
            self._open(s["secret_enc"])
            for s in signing_secrets.live(endpoint.get("signing_secrets") or [], now)
        ]

    def basic_auth(self, endpoint: EndpointDoc) -> dict[str, str]:
        """``Authorization: Basic …`` from the endpoint's sealed ``auth``, or nothing. Raises
        ``ValueError`` if it cannot be opened."""
        sealed = endpoint.get("auth_enc")
        return basic_auth_header(json.loads(self._open(sealed))) if sealed else {}

    def clear(self) -> None:
        self._by_channel.clear()
        self._by_id.clear()
        self._changed.set()

    async def watch(self) -> None:
        """Forget every cached endpoint whenever one changes. Runs until cancelled."""
        pipeline: list[dict[str, Any]] = [{"$project": {"_id": 1}}]
        await loops.watch(
            untyped(self._db, ENDPOINTS),
            pipeline,
            lambda _change: self.clear(),
            what="endpoint change stream",
            on_open=self.clear,
        )
