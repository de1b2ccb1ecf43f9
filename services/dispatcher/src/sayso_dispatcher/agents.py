"""The agents (channels) deliveries are for: URL settings and signing secrets, read from MongoDB
(``deleted_agents`` for an agent deleted with webhooks still owed) with a cache that a change
stream keeps honest. An owner's rotation, re-enable or URL change reaches the next request within
milliseconds; a lost stream just falls back to the TTL."""

from __future__ import annotations

import base64
import json
import logging
import time
from datetime import datetime
from typing import Any

from sayso_common import loops, signing_secrets
from sayso_common.documents import AgentDoc
from sayso_common.mongo import AGENTS, DELETED_AGENTS, Database, collection, untyped
from sayso_common.secretbox import SecretBox

log = logging.getLogger(__name__)

_FIELDS = {
    "owner_id": 1,
    "webhook_url": 1,
    "webhook_enabled": 1,
    "webhook_events": 1,
    "webhook_headers_enc": 1,
    "webhook_auth_enc": 1,
    "webhook_format": 1,
    "retry_schedule": 1,
    "signing_secrets": 1,
}


def basic_auth_header(pair: object) -> dict[str, str]:
    """The Basic ``Authorization`` header for a stored ``{username, password}``. As Placet, only
    when both are non-empty strings; anything else sends no credentials."""
    if not isinstance(pair, dict):
        return {}
    username, password = pair.get("username"), pair.get("password")
    if not (isinstance(username, str) and username and isinstance(password, str) and password):
        return {}
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


class AgentDirectory:
    def __init__(self, db: Database, box: SecretBox, ttl: float = 30.0) -> None:
        self._coll = collection(db, AGENTS)
        self._gone = collection(db, DELETED_AGENTS)
        self._db = db
        self._box = box
        self._ttl = ttl
        self._cache: dict[str, tuple[float, AgentDoc | None]] = {}
        self._opened: dict[str, str] = {}

    async def get_many(self, ids: set[str]) -> dict[str, AgentDoc | None]:
        now = time.monotonic()
        found: dict[str, AgentDoc | None] = {}
        missing: list[str] = []
        for agent_id in ids:
            hit = self._cache.get(agent_id)
            if hit and hit[0] > now:
                found[agent_id] = hit[1]
            else:
                missing.append(agent_id)
        if missing:
            docs = {d["_id"]: d for d in await self._coll.find({"_id": {"$in": missing}}, _FIELDS).to_list()}
            gone = [agent_id for agent_id in missing if agent_id not in docs]
            if gone:
                # A deleted agent is still owed the webhooks of the reviews its deletion closed:
                # its settings and secrets wait in deleted_agents (sayso_common.deleted_channels).
                left = self._gone.find({"_id": {"$in": gone}}, _FIELDS)
                docs |= {d["_id"]: d async for d in left}
            if len(self._cache) > 100_000:
                self._cache.clear()
            for agent_id in missing:
                doc = docs.get(agent_id)
                self._cache[agent_id] = (now + self._ttl, doc)
                found[agent_id] = doc
        return found

    async def get(self, agent_id: str) -> AgentDoc | None:
        return (await self.get_many({agent_id}))[agent_id]

    def forget(self, agent_id: str) -> None:
        self._cache.pop(agent_id, None)

    def open(self, sealed: str) -> str:
        plain = self._opened.get(sealed)
        if plain is None:
            plain = self._box.open(sealed)
            if len(self._opened) > 100_000:
                self._opened.clear()
            self._opened[sealed] = plain
        return plain

    def secrets(self, agent: AgentDoc | None, now: datetime) -> list[str]:
        if not agent:
            return []
        return [
            self.open(s["secret_enc"]) for s in signing_secrets.live(agent.get("signing_secrets") or [], now)
        ]

    def headers(self, sealed: str | None) -> dict[str, str]:
        if not sealed:
            return {}
        value = json.loads(self.open(sealed))
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    def basic_auth(self, agent: AgentDoc | None) -> dict[str, str]:
        """``Authorization: Basic …`` from the agent's ``webhookAuth`` (stored sealed), or nothing.

        Opened from the agent document at send time rather than copied into each delivery: the
        secret then exists once, sealed, and a changed or removed ``webhookAuth`` applies to the
        retries and manual re-sends still pending. Raises ``ValueError`` if it cannot be opened."""
        sealed = agent.get("webhook_auth_enc") if agent else None
        if not sealed:
            return {}
        return basic_auth_header(json.loads(self.open(sealed)))

    async def watch(self) -> None:
        """Drop cached agents as they change. Runs until cancelled."""
        pipeline: list[dict[str, Any]] = [
            {"$match": {"operationType": {"$in": ["update", "replace", "delete"]}}},
            {"$project": {"documentKey": 1}},
        ]
        await loops.watch(
            untyped(self._db, AGENTS),
            pipeline,
            lambda change: self.forget(change["documentKey"]["_id"]),
            what="agent change stream",
            # Changes made while no stream was open are unknown: start from a clean cache.
            on_open=self._cache.clear,
        )
