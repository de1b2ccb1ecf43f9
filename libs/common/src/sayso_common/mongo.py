"""MongoDB client lifecycle, collection names and the indexes every query relies on."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any, Final, Generic, TypeVar, cast

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, OperationFailure

from sayso_common.documents import (
    AgentDoc,
    ApiKeyDoc,
    AuditDoc,
    DeadLetterDoc,
    DeletedAgentDoc,
    DeliveryDoc,
    EndpointDoc,
    EventDoc,
    FileDoc,
    InboundWebhookDoc,
    IncidentDoc,
    LeaseDoc,
    LeftEventDoc,
    LoginAttemptsDoc,
    MessageDoc,
    NotificationDoc,
    PolicyDoc,
    PolicyVersionDoc,
    RateLimitDoc,
    RememberedDoc,
    ScopedTokenDoc,
    StreamTicketDoc,
    TriggerDoc,
    UserDoc,
)
from sayso_common.settings import ServiceSettings

# Queries, updates and projections: free-form (MongoDB's query language is not worth typing).
# Stored documents are typed: see sayso_common.documents.
Doc = dict[str, Any]
Database = AsyncDatabase[Doc]
Collection = AsyncCollection[Doc]

D = TypeVar("D", bound=Mapping[str, Any])


class CollectionName(str, Generic[D]):
    """A collection's name that also names the type of its documents, so
    ``collection(db, MESSAGES)`` is an ``AsyncCollection[MessageDoc]``."""

    __slots__ = ()


@functools.lru_cache(maxsize=256)
def _cached(db: Database, name: str) -> Collection:
    return db[name]


def collection(db: Database, name: CollectionName[D]) -> AsyncCollection[D]:
    """The typed collection ``name``, built once: pymongo constructs a new collection object on
    every ``db[name]``, which showed up at 1.6 % of the API's CPU on the message hot path."""
    return cast("AsyncCollection[D]", _cached(db, name))


def untyped(db: Database, name: str) -> Collection:
    """The collection for aggregations and change streams: their results are rows and change
    events, not the collection's documents."""
    return _cached(db, name)


USERS: Final = CollectionName[UserDoc]("users")
API_KEYS: Final = CollectionName[ApiKeyDoc]("api_keys")
# Read-only tokens for embedding, scoped to some channels (sayso_common.scoped_tokens).
SCOPED_TOKENS: Final = CollectionName[ScopedTokenDoc]("scoped_tokens")
# Single-use tickets that open one SSE stream or socket (sayso_realtime.tickets).
STREAM_TICKETS: Final = CollectionName[StreamTicketDoc]("stream_tickets")
AGENTS: Final = CollectionName[AgentDoc]("agents")
MESSAGES: Final = CollectionName[MessageDoc]("messages")
DELIVERIES: Final = CollectionName[DeliveryDoc]("deliveries")
# Webhook endpoints beside an agent's own URL (sayso_common.endpoints).
ENDPOINTS: Final = CollectionName[EndpointDoc]("endpoints")
INBOUND_WEBHOOKS: Final = CollectionName[InboundWebhookDoc]("inbound_webhooks")
TRIGGERS: Final = CollectionName[TriggerDoc]("triggers")
EVENTS: Final = CollectionName[EventDoc]("events")
LEASES: Final = CollectionName[LeaseDoc]("leases")
LOGIN_ATTEMPTS: Final = CollectionName[LoginAttemptsDoc]("login_attempts")
RATE_LIMITS: Final = CollectionName[RateLimitDoc]("rate_limits")
# Uploaded files: one record per file (owner, channel, message, state) in FILES, the bytes in the
# GridFS bucket FILE_BUCKET (collections ``blobs.files`` and ``blobs.chunks``, same ids).
FILES: Final = CollectionName[FileDoc]("files")
# The notifier's work and audit log: one document per review x recipient x kind x purpose.
NOTIFICATIONS: Final = CollectionName[NotificationDoc]("notifications")
# Webhook incidents (sayso_common.incidents): one document per kind x target, the carrier of the
# operator events, relayed by the dispatcher.
INCIDENTS: Final = CollectionName[IncidentDoc]("incidents")
FILE_BUCKET: Final = "blobs"
# A deleted channel's webhook settings and secrets (for the webhooks still owed to its agent) and
# the events its deleted messages still had to publish (sayso_common.deleted_channels).
DELETED_AGENTS: Final = CollectionName[DeletedAgentDoc]("deleted_agents")
LEFT_EVENTS: Final = CollectionName[LeftEventDoc]("deleted_channel_events")
# Outbox entries the relay moved aside instead of publishing (sayso_common.outbox).
DEAD_LETTERS: Final = CollectionName[DeadLetterDoc]("outbox_dead_letters")
# Channel and account policies (sayso_common.policies) and every saved version of them.
POLICIES: Final = CollectionName[PolicyDoc]("policies")
POLICY_VERSIONS: Final = CollectionName[PolicyVersionDoc]("policy_versions")
# Every decision and policy change, append-only (sayso_common.audit).
AUDIT: Final = CollectionName[AuditDoc]("audit")
# Remembered approvals (sayso_api.remembered): removed a day after they expire.
REMEMBERED: Final = CollectionName[RememberedDoc]("remembered_approvals")

# Documents with events still to publish; partial, so it only ever holds the few pending ones.
OUTBOX_INDEX = IndexModel(
    [("outbox.id", ASCENDING)],
    name="outbox_pending",
    partialFilterExpression={"outbox.0": {"$exists": True}},
)

DELIVERY_TARGET_INDEX: Final = "delivery_per_target"
# Indexes an earlier version made and this one replaced: dropped at start-up. (event_id, url)
# would refuse a second delivery of one event to an endpoint sharing the agent's URL.
OBSOLETE_INDEXES: Final[dict[str, tuple[str, ...]]] = {"deliveries": ("event_id_1_url_1",)}

INDEXES: Final[dict[str, list[IndexModel]]] = {
    USERS: [IndexModel([("email", ASCENDING)], unique=True)],
    API_KEYS: [
        IndexModel([("key_hash", ASCENDING)], unique=True),
        IndexModel([("owner_id", ASCENDING), ("created_at", DESCENDING)]),
    ],
    SCOPED_TOKENS: [
        IndexModel([("token_hash", ASCENDING)], unique=True),
        IndexModel([("owner_id", ASCENDING), ("created_at", DESCENDING)]),
    ],
    # A ticket is looked up by its _id (its hash); one nobody used goes away on its own.
    STREAM_TICKETS: [IndexModel([("expire_at", ASCENDING)], expireAfterSeconds=0)],
    AGENTS: [
        IndexModel([("owner_id", ASCENDING), ("created_at", DESCENDING)]),
        # The channels shared with a user (sayso_common.membership).
        IndexModel([("members.user_id", ASCENDING)], sparse=True, name="channels_by_member"),
        OUTBOX_INDEX,
    ],
    MESSAGES: [
        IndexModel([("channel_id", ASCENDING), ("_id", DESCENDING)]),
        IndexModel(
            [("channel_id", ASCENDING), ("client_id", ASCENDING)],
            unique=True,
            partialFilterExpression={"client_id": {"$type": "string"}},
            name="client_id_unique",
        ),
        IndexModel(
            [("channel_id", ASCENDING), ("correlation_id", ASCENDING)],
            partialFilterExpression={"correlation_id": {"$type": "string"}},
            name="correlation_id",
        ),
        IndexModel(
            [("review.expires_at", ASCENDING)],
            partialFilterExpression={"review.status": "pending"},
            name="pending_reviews_by_deadline",
        ),
        IndexModel(
            [("owner_id", ASCENDING), ("review.status", ASCENDING), ("_id", DESCENDING)],
            name="reviews_by_owner",
        ),
        # The inbox sorted by risk (most severe first) and by deadline (soonest first), paged on
        # (key, _id); pending reviews only, so they stay small.
        IndexModel(
            [("owner_id", ASCENDING), ("review.risk_rank", DESCENDING), ("_id", DESCENDING)],
            partialFilterExpression={"review.status": "pending"},
            name="pending_by_risk",
        ),
        IndexModel(
            [("owner_id", ASCENDING), ("review.expires_at", ASCENDING), ("_id", ASCENDING)],
            partialFilterExpression={"review.status": "pending"},
            name="pending_by_owner_deadline",
        ),
        IndexModel([("group_id", ASCENDING), ("_id", ASCENDING)], sparse=True),
        # One number per place in an iteration chain (two racing follow-ups cannot share one).
        IndexModel(
            [("group_id", ASCENDING), ("iteration", ASCENDING)],
            unique=True,
            partialFilterExpression={"iteration": {"$type": "number"}},
            name="iteration_unique",
        ),
        # A streamed message is addressed by its streamId, unique within the owner's channel.
        IndexModel(
            [("owner_id", ASCENDING), ("stream_id", ASCENDING)],
            unique=True,
            partialFilterExpression={"stream_id": {"$type": "string"}},
            name="stream_id_unique",
        ),
        # The dispatcher's reconciliation walks messages whose webhook is not settled yet.
        IndexModel(
            [("updated_at", ASCENDING)],
            partialFilterExpression={"delivery_status": "sent"},
            name="undelivered_by_update",
        ),
        OUTBOX_INDEX,
    ],
    # The retention TTL (finished deliveries, on updated_at) is the API's: its expireAfterSeconds
    # is a setting (sayso_common.retention.ensure). Likewise for NOTIFICATIONS.
    DELIVERIES: [
        # One delivery per event x target: the implicit URL (endpoint_id null) or an endpoint.
        IndexModel(
            [("event_id", ASCENDING), ("endpoint_id", ASCENDING), ("url", ASCENDING)],
            unique=True,
            name=DELIVERY_TARGET_INDEX,
        ),
        IndexModel([("message_id", ASCENDING), ("created_at", ASCENDING)]),
        # An endpoint's deliveries, newest first.
        IndexModel(
            [("endpoint_id", ASCENDING), ("_id", DESCENDING)], sparse=True, name="deliveries_by_endpoint"
        ),
        IndexModel(
            [("next_attempt_at", ASCENDING)],
            partialFilterExpression={"state": "pending"},
            name="due_deliveries",
        ),
        # Recover: an agent's failed deliveries since a time.
        IndexModel([("channel_id", ASCENDING), ("state", ASCENDING), ("updated_at", ASCENDING)]),
        OUTBOX_INDEX,
    ],
    INBOUND_WEBHOOKS: [
        IndexModel([("token_hash", ASCENDING)], unique=True),
        IndexModel([("channel_id", ASCENDING)]),
    ],
    TRIGGERS: [IndexModel([("channel_id", ASCENDING)])],
    # A channel's endpoints with its account's (owner, channel in [id, null]).
    ENDPOINTS: [IndexModel([("owner_id", ASCENDING), ("channel_id", ASCENDING), ("created_at", ASCENDING)])],
    EVENTS: [
        IndexModel([("expire_at", ASCENDING)], expireAfterSeconds=0),
        IndexModel([("owner_id", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("channel_id", ASCENDING), ("_id", ASCENDING)]),
        # The pull feed (GET /api/v1/feed): an account's or a channel's events in the order stored.
        IndexModel(
            [("owner_id", ASCENDING), ("stored_at", ASCENDING), ("_id", ASCENDING)],
            name="feed_owner_stored",
            partialFilterExpression={"stored_at": {"$exists": True}},
        ),
        IndexModel(
            [("channel_id", ASCENDING), ("stored_at", ASCENDING), ("_id", ASCENDING)],
            name="feed_channel_stored",
            partialFilterExpression={"stored_at": {"$exists": True}},
        ),
    ],
    LOGIN_ATTEMPTS: [IndexModel([("expire_at", ASCENDING)], expireAfterSeconds=0)],
    DEAD_LETTERS: [IndexModel([("at", DESCENDING)])],
    DELETED_AGENTS: [IndexModel([("expire_at", ASCENDING)], expireAfterSeconds=0)],
    LEFT_EVENTS: [IndexModel([("expire_at", ASCENDING)], expireAfterSeconds=0), OUTBOX_INDEX],
    RATE_LIMITS: [IndexModel([("expire_at", ASCENDING)], expireAfterSeconds=0)],
    FILES: [
        IndexModel([("channel_id", ASCENDING), ("created_at", DESCENDING)]),
        # Records of uploads that never arrived go away on their own (set until the bytes land).
        IndexModel([("expire_at", ASCENDING)], expireAfterSeconds=0),
        # Per-owner quotas: files attached to no message counted, stored bytes summed from it.
        IndexModel([("owner_id", ASCENDING), ("message_id", ASCENDING), ("size", ASCENDING)]),
        # The API's sweep of uploaded files no message took (set only while that is so).
        IndexModel([("unattached_since", ASCENDING)], sparse=True),
    ],
    NOTIFICATIONS: [
        IndexModel([("key", ASCENDING)], unique=True),
        IndexModel(
            [("next_attempt_at", ASCENDING)],
            partialFilterExpression={"state": "pending"},
            name="due_notifications",
        ),
        IndexModel([("message_id", ASCENDING), ("created_at", ASCENDING)]),
        IndexModel([("owner_id", ASCENDING), ("_id", DESCENDING)]),
        # A member removed from a channel: their notices are cancelled and their links revoked.
        IndexModel(
            [("channel_id", ASCENDING), ("responder_id", ASCENDING)], name="notifications_by_responder"
        ),
    ],
    # The open ones, which every dispatcher keeps in memory to close on a success.
    INCIDENTS: [
        IndexModel(
            [("subject", ASCENDING)], partialFilterExpression={"state": "open"}, name="open_incidents"
        ),
        OUTBOX_INDEX,
    ],
    # One policy per channel and one per account (channel_id null); a new review reads both
    # with one query on this index.
    POLICIES: [IndexModel([("owner_id", ASCENDING), ("channel_id", ASCENDING)], unique=True)],
    POLICY_VERSIONS: [IndexModel([("policy_id", ASCENDING), ("version", DESCENDING)])],
    # Newest first within an owner's entries and within a shared channel's (a member's reach is
    # "owner is me, or channel in these"). The retention TTL on ``at`` is the API's (its
    # expireAfterSeconds is a setting: sayso_common.audit.ensure_retention).
    AUDIT: [
        IndexModel([("owner_id", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)], name="audit_by_owner"),
        IndexModel(
            [("channel_id", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)], name="audit_by_channel"
        ),
    ],
    REMEMBERED: [
        # A channel's live entries (each new review of a tool call, and the list), newest first.
        IndexModel([("channel_id", ASCENDING), ("_id", DESCENDING)]),
        # Gone a day after expiring: the list and the audit's events cover the rest.
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=86_400, name="remembered_ttl"),
        OUTBOX_INDEX,
    ],
    # The GridFS spec's own indexes, created here so no request pays for creating them.
    f"{FILE_BUCKET}.files": [IndexModel([("filename", ASCENDING), ("uploadDate", ASCENDING)])],
    f"{FILE_BUCKET}.chunks": [IndexModel([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)],
}

# Wake only for writes that carry outbox entries (a change stream's $match over the collections
# below). Claims, lease renewals and the relay's own pulls (which leave ``outbox: []``) woke a
# drain each and found nothing: about three wasted wakes per webhook delivery. A write missed
# here would still be found by the relay's periodic sweep. The consumers' fetch gate follows the
# same writes (sayso_common.fetch_gate): each is an event about to be published.
_OUTBOX_KEYS = {
    "$filter": {
        "input": {"$objectToArray": {"$ifNull": ["$updateDescription.updatedFields", {}]}},
        "cond": {
            "$and": [
                {"$regexMatch": {"input": "$$this.k", "regex": "^outbox(\\.|$)"}},
                {"$ne": ["$$this.v", []]},
            ]
        },
    }
}
CARRIES_OUTBOX: Final[list[dict[str, Any]]] = [
    {"operationType": {"$in": ["insert", "replace"]}, "fullDocument.outbox.0": {"$exists": True}},
    {"operationType": "update", "$expr": {"$gt": [{"$size": _OUTBOX_KEYS}, 0]}},
]
# Every collection whose documents carry an outbox has its partial index.
OUTBOX_COLLECTIONS: Final = tuple(name for name, models in INDEXES.items() if OUTBOX_INDEX in models)


def create_client(settings: ServiceSettings) -> AsyncMongoClient[Doc]:
    """Create the process's one client. Call inside a lifespan, never at import time."""
    return AsyncMongoClient(
        settings.mongo_url,
        tz_aware=True,
        serverSelectionTimeoutMS=settings.mongo_timeout_ms,
        connectTimeoutMS=settings.mongo_connect_timeout_ms,
        appname=settings.instance or "sayso",
    )


DUPLICATE_KEY: Final = 11000


async def insert_new(coll: AsyncCollection[D], docs: list[D], **options: Any) -> list[D]:
    """Insert what is not there yet; returns the documents actually inserted. A document a unique
    index already holds (a redelivered Kafka record planning the same key) is skipped; any other
    write error is raised. ``options`` go to ``insert_many`` (a session)."""
    if not docs:
        return []
    try:
        await coll.insert_many(docs, ordered=False, **options)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(err.get("code") != DUPLICATE_KEY for err in errors):
            raise
        skipped = {err["index"] for err in errors}
        return [doc for i, doc in enumerate(docs) if i not in skipped]
    return docs


async def ensure_indexes(db: Database) -> None:
    """Create every index (idempotent; concurrent callers at start-up are harmless), after
    dropping the ones a new index replaced."""
    for name, obsolete in OBSOLETE_INDEXES.items():
        for index in obsolete:
            try:
                await db[name].drop_index(index)
            except OperationFailure as exc:  # already gone (27: IndexNotFound, 26: no collection)
                if exc.code not in (26, 27):
                    raise
    for name, models in INDEXES.items():
        try:
            await db[name].create_indexes(models)
        except OperationFailure as exc:  # a racing replica created it with the same spec
            if exc.code not in (85, 86):
                raise


async def ping(db: Database, timeout: float = 2.0) -> None:
    await asyncio.wait_for(db.command("ping"), timeout)
