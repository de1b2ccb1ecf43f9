"""Agents (= channels): CRUD, webhook settings, signing secrets, status pings."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, TypedDict

from sayso_api import messages
from sayso_api.schemas import (
    AgentIn,
    AgentOut,
    AgentPatch,
    CommandsIn,
    PingIn,
    SetWebhookIn,
    WebhookAuthIn,
)
from sayso_common import deleted_channels, incidents, signing_secrets
from sayso_common.clock import utcnow
from sayso_common.documents import DEFAULT_AGENT_STATUS, DEFAULT_WEBHOOK_EVENTS, AgentDoc
from sayso_common.errors import ErrorCode, InvalidError, NotFoundError
from sayso_common.events import AgentStatusChanged, AgentStatusData, event_to_document
from sayso_common.ids import new_id
from sayso_common.membership import Reach
from sayso_common.mongo import AGENTS, DELETED_AGENTS, ENDPOINTS, INCIDENTS, Database, Doc, collection
from sayso_common.secretbox import SecretBox
from sayso_common.webhook_signature import new_secret as new_signing_secret

HIDDEN = {"outbox": 0, "outbox_dead": 0}


def agent_out(doc: AgentDoc) -> AgentOut:
    auth_user = doc.get("webhook_auth_username")
    return AgentOut(
        id=doc["_id"],
        owner_id=doc["owner_id"],
        name=doc["name"],
        description=doc.get("description"),
        avatar_url=doc.get("avatar_url"),
        tag=doc.get("tag"),
        commands=doc.get("commands") or [],
        webhook_url=doc.get("webhook_url"),
        webhook_headers={name: "***" for name in doc.get("webhook_header_names", [])},
        webhook_auth={"username": auth_user, "password": "***"} if auth_user else None,
        webhook_format=doc.get("webhook_format", "placet"),
        webhook_enabled=doc.get("webhook_enabled", True),
        webhook_disabled_reason=doc.get("webhook_disabled_reason"),
        webhook_events=doc.get("webhook_events", list(DEFAULT_WEBHOOK_EVENTS)),
        webhook_retry_schedule=doc.get("retry_schedule"),
        status=doc.get("status") or DEFAULT_AGENT_STATUS,
        status_message=doc.get("status_message"),
        status_since=doc.get("status_since"),
        last_active_at=doc.get("last_activity_at"),
        last_activity_at=doc.get("last_activity_at"),
        created_at=doc["created_at"],
    )


def member_out(doc: AgentDoc) -> AgentOut:
    """A channel as the users it was shared with see it: what it is and how it is doing, none of
    its webhook settings (managing them is the owner's)."""
    hidden: dict[str, Any] = {
        "webhook_url": None,
        "webhook_headers": {},
        "webhook_auth": None,
        "webhook_events": [],
        "webhook_retry_schedule": None,
        "webhook_disabled_reason": None,
    }
    return agent_out(doc).model_copy(update={**hidden, "role": "member"})


def visible_out(doc: AgentDoc, reach: Reach) -> AgentOut:
    return agent_out(doc) if doc["owner_id"] == reach.owner_id else member_out(doc)


class _HeaderFields(TypedDict):
    webhook_headers_enc: str | None
    webhook_header_names: list[str]


class _AuthFields(TypedDict):
    webhook_auth_enc: str | None
    webhook_auth_username: str | None


def _headers_fields(box: SecretBox, headers: dict[str, str] | None) -> _HeaderFields:
    if not headers:
        return {"webhook_headers_enc": None, "webhook_header_names": []}
    return {"webhook_headers_enc": box.seal(json.dumps(headers)), "webhook_header_names": sorted(headers)}


def _auth_fields(box: SecretBox, auth: WebhookAuthIn | None) -> _AuthFields:
    # The username is shown back (masked password), so it is kept in clear beside the sealed pair.
    if auth is None:
        return {"webhook_auth_enc": None, "webhook_auth_username": None}
    sealed = box.seal(json.dumps({"username": auth.username, "password": auth.password}))
    return {"webhook_auth_enc": sealed, "webhook_auth_username": auth.username}


async def create_agent(db: Database, box: SecretBox, owner_id: str, body: AgentIn) -> tuple[AgentDoc, str]:
    now = utcnow()
    secret = new_signing_secret()
    doc: AgentDoc = {
        "_id": new_id("agt"),
        "owner_id": owner_id,
        "name": body.name,
        "description": body.description,
        "avatar_url": body.avatar_url,
        "tag": body.tag,
        "webhook_url": body.webhook_url,
        "webhook_format": body.webhook_format,
        "webhook_enabled": True,
        "webhook_events": list(body.webhook_events),
        "retry_schedule": body.webhook_retry_schedule,
        "signing_secrets": signing_secrets.first(box, secret, now),
        "created_at": now,
        "updated_at": now,
    }
    # (Set one by one: mypy does not merge partial TypedDicts into a total=False one.)
    headers, auth = _headers_fields(box, body.webhook_headers), _auth_fields(box, body.webhook_auth)
    doc["webhook_headers_enc"], doc["webhook_header_names"] = (
        headers["webhook_headers_enc"],
        headers["webhook_header_names"],
    )
    doc["webhook_auth_enc"], doc["webhook_auth_username"] = (
        auth["webhook_auth_enc"],
        auth["webhook_auth_username"],
    )
    await collection(db, AGENTS).insert_one(doc)
    return doc, secret


async def get_agent(db: Database, owner_id: str, agent_id: str) -> AgentDoc:
    doc = await collection(db, AGENTS).find_one({"_id": agent_id, "owner_id": owner_id}, HIDDEN)
    if doc is None:
        raise NotFoundError("agent")
    return doc


async def visible_agent(db: Database, reach: Reach, agent_id: str) -> AgentOut:
    """An agent its owner or a member reads (each sees their own view of it)."""
    doc = await collection(db, AGENTS).find_one({"_id": agent_id, **reach.channels()}, HIDDEN)
    if doc is None:
        raise NotFoundError("agent")
    return visible_out(doc, reach)


async def visible_agents(db: Database, reach: Reach) -> list[AgentOut]:
    """The caller's agents and those shared with them, oldest first."""
    docs = (
        await collection(db, AGENTS)
        .find(reach.channels(), HIDDEN)
        .sort("created_at", 1)
        .limit(1000)
        .to_list()
    )
    return [visible_out(d, reach) for d in docs]


async def patch_agent(
    db: Database, box: SecretBox, owner_id: str, agent_id: str, body: AgentPatch
) -> AgentDoc:
    given = body.model_fields_set
    update: dict[str, Any] = {"updated_at": utcnow()}
    for name in ("name", "description", "webhook_url", "avatar_url", "tag", "webhook_format"):
        if name in given:
            if name in ("name", "webhook_format") and getattr(body, name) is None:
                field = "webhookFormat" if name == "webhook_format" else name
                raise InvalidError(ErrorCode.VALIDATION_ERROR, f"{field} cannot be null", field)
            update[name] = getattr(body, name)
    if "webhook_events" in given:
        if body.webhook_events is None:
            raise InvalidError(ErrorCode.VALIDATION_ERROR, "webhookEvents cannot be null", "webhookEvents")
        update["webhook_events"] = list(body.webhook_events)
    if "webhook_retry_schedule" in given:
        update["retry_schedule"] = body.webhook_retry_schedule
    if "webhook_headers" in given:
        update |= _headers_fields(box, body.webhook_headers)
    if "webhook_auth" in given:
        update |= _auth_fields(box, body.webhook_auth)
    reenabled = "webhook_url" in given or bool(body.webhook_enabled)
    if reenabled:
        # A new URL, or an explicit re-enable, lifts a disable caused by a 410 answer.
        update |= {"webhook_enabled": True, "webhook_disabled_reason": None}
    elif body.webhook_enabled is False:
        update |= {"webhook_enabled": False, "webhook_disabled_reason": "disabled by owner"}
    doc = await _update(db, owner_id, agent_id, update)
    if reenabled:
        # Its incidents are over: the next failure is told again (sayso_common.incidents).
        await collection(db, INCIDENTS).update_many(*incidents.re_enabled(utcnow(), channel_id=agent_id))
    return doc


async def _update(db: Database, owner_id: str, agent_id: str, update: Doc) -> AgentDoc:
    doc = await collection(db, AGENTS).find_one_and_update(
        {"_id": agent_id, "owner_id": owner_id}, {"$set": update}, projection=HIDDEN, return_document=True
    )
    if doc is None:
        raise NotFoundError("agent")
    return doc


async def set_webhook(db: Database, box: SecretBox, owner_id: str, body: SetWebhookIn) -> AgentDoc:
    """Placet's agent self-service: the agent registers its own default webhook. Headers and
    auth are replaced (absent = cleared), as a fresh registration should."""
    update: Doc = {
        "webhook_url": body.url,
        "webhook_enabled": True,
        "webhook_disabled_reason": None,
        "updated_at": utcnow(),
        **_headers_fields(box, body.headers),
        **_auth_fields(box, body.auth),
    }
    return await _update(db, owner_id, body.channel_id, update)


async def delete_webhook(db: Database, box: SecretBox, owner_id: str, channel_id: str) -> AgentDoc:
    update: Doc = {
        "webhook_url": None,
        "updated_at": utcnow(),
        **_headers_fields(box, None),
        **_auth_fields(box, None),
    }
    return await _update(db, owner_id, channel_id, update)


async def set_commands(db: Database, owner_id: str, agent_id: str, body: CommandsIn) -> AgentDoc:
    names = [c.command for c in body.commands]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InvalidError(ErrorCode.VALIDATION_ERROR, f"command {dup!r} is listed twice", "commands")
    commands = [c.model_dump(exclude_none=True, by_alias=True) for c in body.commands]
    return await _update(db, owner_id, agent_id, {"commands": commands, "updated_at": utcnow()})


async def delete_agent(db: Database, owner_id: str, agent_id: str, retention: timedelta) -> None:
    """The agent, its messages and its files. Its pending reviews are closed first, as an expiry
    would close them (``expired``, reason ``channel_deleted``), and its agent hears it the same
    way: webhook, long-poll, live events (sayso_common.deleted_channels says what is kept for
    that, and for how long). The agent goes last: a delete cut short is finished by asking again."""
    agents = collection(db, AGENTS)
    agent = await agents.find_one({"_id": agent_id, "owner_id": owner_id}, {"outbox_dead": 0})
    if agent is None:
        raise NotFoundError("agent")
    grave = deleted_channels.tombstone(agent, utcnow(), retention)
    # Before any event of the deletion exists: the dispatcher finds the agent here once it is gone.
    await collection(db, DELETED_AGENTS).replace_one({"_id": agent_id}, grave, upsert=True)
    await messages.delete_channel_messages(db, owner_id, agent_id, grave["expire_at"])
    # Its own unpublished events (agent.status) are not lost with it either.
    await messages.keep_events(db, [agent], agent_id, owner_id, grave["expire_at"])
    # Its own webhook endpoints go with it (the account-wide ones stay): a deletion's events
    # still reach the agent's URL and the account's endpoints, not a channel endpoint.
    await collection(db, ENDPOINTS).delete_many({"owner_id": owner_id, "channel_id": agent_id})
    result = await agents.delete_one({"_id": agent_id, "owner_id": owner_id})
    if result.deleted_count == 0:
        raise NotFoundError("agent")


async def ping(db: Database, owner_id: str, body: PingIn) -> AgentDoc:
    now = utcnow()
    event = AgentStatusChanged(
        channel_id=body.agent_id,
        owner_id=owner_id,
        occurred_at=now,
        data=AgentStatusData(
            agent_id=body.agent_id, status=body.status, message=body.message, last_activity_at=now
        ),
    )
    doc = await collection(db, AGENTS).find_one_and_update(
        {"_id": body.agent_id, "owner_id": owner_id},
        [
            {
                "$set": {
                    # statusSince moves only when the status changes; a repeated ping keeps it.
                    # (An update pipeline reads "$…" strings as field paths: values go in $literal.)
                    "status_since": {
                        "$cond": [{"$eq": ["$status", body.status]}, "$status_since", {"$literal": now}]
                    },
                    "status": {"$literal": body.status},
                    "status_message": {"$literal": body.message},
                    "last_activity_at": {"$literal": now},
                    "updated_at": {"$literal": now},
                    "outbox": {
                        "$concatArrays": [
                            {"$ifNull": ["$outbox", []]},
                            [{"$literal": event_to_document(event)}],
                        ]
                    },
                }
            }
        ],
        projection=HIDDEN,
        return_document=True,
    )
    if doc is None:
        raise NotFoundError("agent")
    return doc
