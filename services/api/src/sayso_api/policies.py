"""Policies in the API: storing a channel's or an account's policy (each save a new version),
reading the two that apply when a review is created, and the dry run.

The rules themselves (what a rule is, which one decides) are :mod:`sayso_common.policies`.

A new review needs its channel's and its account's policy heads (id and version, not the
rules): one indexed query, measured at ~290 us of the API's CPU on a busy 2-core machine, where
the whole POST cost ~2,200 us, so each API process keeps the heads it read while it follows the
``policies`` collection's change stream, and forgets them all on any change there (saves are
rare) or whenever the stream is not open (then every review reads them again). A save is thus
seen by every replica as soon as its change event arrives (milliseconds), and at once by the
replica that saved it. The compiled rules are kept by (policy id, version): fetched and
compiled once per version.
"""

from __future__ import annotations

import logging
import weakref
from datetime import datetime
from typing import Any, Literal, NoReturn

from pydantic import Field
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError

from sayso_api.reviews import ReviewError, normalise_payload, validate_response
from sayso_api.schemas import Out, QuorumIn, _In, _StrictIn
from sayso_common import audit, loops, policies
from sayso_common.clock import utcnow
from sayso_common.documents import PolicyDoc
from sayso_common.http_errors import ApiError, not_found
from sayso_common.ids import new_id
from sayso_common.mongo import AGENTS, AUDIT, POLICIES, POLICY_VERSIONS, Database, collection
from sayso_common.policies import ASK, Decision, Policy, PolicyError
from sayso_common.principals import Principal
from sayso_common.views import ReviewType

log = logging.getLogger(__name__)

RULES_DOC = (
    "Ordered rules, first match wins (the channel's before the account's; none matching: a "
    "person decides). Each rule: match (a filter over {channel, text, review: {type, payload}, "
    "metadata} as the agent sent them), action (approve | reject | ask), response? (what approve "
    "or reject records), risk? (low | medium | high | critical), name?. At most 200 rules."
)


class PolicyIn(_StrictIn):
    rules: list[Any] = Field(description=RULES_DOC)


class PolicyOut(Out):
    id: str | None = Field(description="The policy's id (decidedBy.policy); null until first saved")
    scope: Literal["channel", "account"]
    channel_id: str | None = None
    rules: list[dict[str, Any]] = Field(description=RULES_DOC)
    version: int = Field(description="0 until first saved; every save adds 1")
    updated_at: datetime | None = None


class PolicyVersionOut(Out):
    version: int
    rules: list[dict[str, Any]]
    created_at: datetime
    created_by: str = Field(description="The user id, or key:<API key id>")


class SampleReviewIn(_In):
    type: ReviewType
    payload: dict[str, Any] = Field(default_factory=dict)
    quorum: QuorumIn | None = None


class SampleMessageIn(_StrictIn):
    text: str | None = None
    review: SampleReviewIn
    metadata: dict[str, Any] | None = None


class PolicyTestIn(_StrictIn):
    channel_id: str = Field(min_length=1, max_length=100)
    message: SampleMessageIn = Field(description="The message as an agent would POST it (nothing is stored)")


class PolicyTestOut(Out):
    action: policies.Action = Field(description="What would happen: approve, reject, or ask (a person)")
    policy: str | None = Field(default=None, description="The matching rule's policy id; null: none matched")
    scope: policies.Scope | None = None
    rule: int | None = Field(default=None, description="The matching rule's index; null: none matched")
    rule_name: str | None = None
    version: int | None = None
    response: dict[str, Any] | None = Field(default=None, description="What approve or reject would record")
    risk: policies.Risk | None = None
    reason: str | None = Field(default=None, description="Why a matching approve/reject rule would not apply")


def _actor(who: Principal) -> str:
    return f"key:{who.key_id}" if who.kind == "api_key" else who.owner_id


async def _own_channel(db: Database, owner_id: str, channel_id: str | None) -> None:
    if channel_id is not None and not await collection(db, AGENTS).find_one(
        {"_id": channel_id, "owner_id": owner_id}, {"_id": 1}
    ):
        raise not_found("channel")


def _view(doc: PolicyDoc | None, channel_id: str | None) -> PolicyOut:
    scope: policies.Scope = "account" if channel_id is None else "channel"
    if doc is None:
        return PolicyOut(id=None, scope=scope, channel_id=channel_id, rules=[], version=0)
    return PolicyOut(
        id=doc["_id"],
        scope=scope,
        channel_id=channel_id,
        rules=doc.get("rules", []),
        version=doc["version"],
        updated_at=doc.get("updated_at"),
    )


async def get_policy(db: Database, owner_id: str, channel_id: str | None) -> PolicyOut:
    """``owner_id``'s policy for ``channel_id`` (None: the account's); 404 for a channel that is
    not theirs."""
    await _own_channel(db, owner_id, channel_id)
    doc = await collection(db, POLICIES).find_one({"owner_id": owner_id, "channel_id": channel_id})
    return _view(doc, channel_id)


async def put_policy(db: Database, who: Principal, channel_id: str | None, body: PolicyIn) -> PolicyOut:
    """Replace the policy as a whole: a new version, also kept in ``policy_versions`` and told in
    the audit log. The three writes are one transaction, so the history never lacks a version
    that decided a review, nor the audit a change."""
    try:
        rules = policies.parse_rules(body.rules)
    except PolicyError as exc:
        raise ApiError(422, "invalid_policy", exc.problem, exc.field) from None
    await _own_channel(db, who.owner_id, channel_id)
    stored = [rule.source() for rule in rules]
    now = utcnow()
    actor = _actor(who)

    async def save(session: AsyncClientSession) -> PolicyDoc:
        doc = await collection(db, POLICIES).find_one_and_update(
            {"owner_id": who.owner_id, "channel_id": channel_id},
            {
                "$set": {"rules": stored, "updated_at": now, "updated_by": actor},
                "$inc": {"version": 1},
                "$setOnInsert": {
                    "_id": new_id("pol"),
                    "scope": "account" if channel_id is None else "channel",
                },
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        assert doc is not None, "an upsert returns the document"
        await collection(db, POLICY_VERSIONS).insert_one(
            {
                "_id": f"{doc['_id']}:{doc['version']}",
                "policy_id": doc["_id"],
                "owner_id": who.owner_id,
                "channel_id": channel_id,
                "version": doc["version"],
                "rules": stored,
                "created_at": now,
                "created_by": actor,
            },
            session=session,
        )
        # The audit entry commits with the version or not at all.
        entry = audit.policy_changed(
            policy_id=doc["_id"],
            version=doc["version"],
            owner_id=who.owner_id,
            channel_id=channel_id,
            actor=actor,
            at=now,
            rule_count=len(stored),
        )
        await collection(db, AUDIT).insert_one(entry, session=session)
        return doc

    async with db.client.start_session() as session:
        saved = await session.with_transaction(save)
    # This replica's next message sees it at once; the others when the change event arrives.
    book(db).forget()
    return _view(saved, channel_id)


async def list_versions(
    db: Database, owner_id: str, channel_id: str | None, limit: int
) -> list[PolicyVersionOut]:
    """The policy's saved versions, newest first."""
    await _own_channel(db, owner_id, channel_id)
    head = await collection(db, POLICIES).find_one(
        {"owner_id": owner_id, "channel_id": channel_id}, {"_id": 1}
    )
    if head is None:
        return []
    found = (
        await collection(db, POLICY_VERSIONS)
        .find({"policy_id": head["_id"]})
        .sort("version", -1)
        .limit(limit)
        .to_list()
    )
    return [
        PolicyVersionOut(
            version=v["version"],
            rules=v.get("rules", []),
            created_at=v["created_at"],
            created_by=v.get("created_by", ""),
        )
        for v in found
    ]


# --- deciding -------------------------------------------------------------------------------------

_MAX_COMPILED = 10_000
_MAX_HEADS = 100_000


class PolicyBook:
    """The policies of this process: heads by (owner, channel) while the change stream vouches
    for them, compiled rules by (policy id, version)."""

    def __init__(self, db: Database) -> None:
        self._policies = collection(db, POLICIES)
        self._compiled: dict[tuple[str, int], Policy] = {}
        self._heads: dict[tuple[str, str], list[PolicyDoc]] = {}
        # True only while a change stream on POLICIES is open; every change, open and close
        # bumps the generation, so a read that started before one is never kept.
        self._watching = False
        self._generation = 0

    @property
    def watching(self) -> bool:
        return self._watching

    def kept(self) -> int:
        """How many (owner, channel) heads are kept."""
        return len(self._heads)

    def forget(self) -> None:
        """Drop every head kept (a policy changed, or may have)."""
        self._heads.clear()
        self._generation += 1

    def _watched(self, watching: bool) -> None:
        self._watching = watching
        self.forget()

    async def follow_changes(self) -> NoReturn:
        """Keep heads while a change stream on ``policies`` is open; run for the process's life."""

        async def follow() -> None:
            try:
                async with await self._policies.watch(
                    [{"$project": {"_id": 1}}], max_await_time_ms=loops.IDLE_AWAIT_MS
                ) as stream:
                    self._watched(True)
                    async for _ in stream:
                        self.forget()
            finally:
                self._watched(False)

        await loops.forever("policies change stream", follow, errors=(PyMongoError,))

    async def _read_heads(self, owner_id: str, channel_id: str) -> list[PolicyDoc]:
        key = (owner_id, channel_id)
        kept = self._heads.get(key) if self._watching else None
        if kept is not None:
            return kept
        generation = self._generation
        heads = await self._policies.find(
            {"owner_id": owner_id, "channel_id": {"$in": [channel_id, None]}}, {"channel_id": 1, "version": 1}
        ).to_list()
        if self._watching and generation == self._generation:
            if len(self._heads) >= _MAX_HEADS:
                self._heads.clear()
            self._heads[key] = heads
        return heads

    async def applying(self, owner_id: str, channel_id: str) -> tuple[Policy | None, Policy | None]:
        """(the channel's policy, the account's), either None when there is none."""
        channel = account = None
        for head in await self._read_heads(owner_id, channel_id):
            policy = self._compiled.get((head["_id"], head["version"])) or await self._load(head["_id"])
            if policy is None:
                continue
            if head.get("channel_id") is None:
                account = policy
            else:
                channel = policy
        return channel, account

    async def _load(self, policy_id: str) -> Policy | None:
        doc = await self._policies.find_one({"_id": policy_id})
        if doc is None:  # replaced between the two reads cannot happen; deleted can
            return None
        scope: policies.Scope = "account" if doc.get("channel_id") is None else "channel"
        try:
            rules = policies.parse_rules(doc.get("rules", []))
            policy = Policy(doc["_id"], scope, doc["version"], rules)
        except PolicyError as exc:
            log.warning("policy %s version %s no longer compiles: %s", doc["_id"], doc["version"], exc)
            policy = Policy(doc["_id"], scope, doc["version"], (), problem=str(exc))
        if len(self._compiled) >= _MAX_COMPILED:
            self._compiled.clear()
        self._compiled[(policy.id, policy.version)] = policy
        return policy


_BOOKS: weakref.WeakKeyDictionary[Database, PolicyBook] = weakref.WeakKeyDictionary()


def book(db: Database) -> PolicyBook:
    found = _BOOKS.get(db)
    if found is None:
        found = _BOOKS[db] = PolicyBook(db)
    return found


async def decision_for(
    db: Database,
    owner_id: str,
    channel_id: str,
    text: str | None,
    review_type: str,
    sent_payload: dict[str, Any] | None,
    stored_payload: dict[str, Any],
    metadata: dict[str, Any] | None,
    quorum: dict[str, Any] | None = None,
) -> Decision:
    """What the policies decide for a review being created. Never raises: a policy must never
    make a message fail to post, so any trouble (the database, a bug) leaves it to a person."""
    try:
        channel, account = await book(db).applying(owner_id, channel_id)
        if channel is None and account is None:
            return ASK
        message = policies.subject(channel_id, text, review_type, sent_payload, metadata, quorum)
        decision = policies.decide(channel, account, message, stored_payload, validate_response)
    except Exception:  # a person deciding is always a correct outcome
        log.exception("policy decision failed; the review is left to a person")
        return ASK
    if decision.reason:
        log.info("policy rule not applied: %s", decision.reason, extra={"policy": decision.policy})
    return decision


async def dry_run(db: Database, owner_id: str, body: PolicyTestIn) -> PolicyTestOut:
    """What would happen to ``body.message`` in ``body.channel_id``, storing nothing."""
    await _own_channel(db, owner_id, body.channel_id)
    sample = body.message
    try:
        payload = normalise_payload(
            sample.review.type, sample.review.payload, quorum=sample.review.quorum is not None
        )
    except ReviewError as exc:
        raise ApiError(422, "invalid_review", exc.message, f"message.{exc.field}") from None
    channel, account = await book(db).applying(owner_id, body.channel_id)
    quorum = sample.review.quorum.model_dump() if sample.review.quorum is not None else None
    message = policies.subject(
        body.channel_id, sample.text, sample.review.type, sample.review.payload, sample.metadata, quorum
    )
    decision = policies.decide(channel, account, message, payload, validate_response)
    return PolicyTestOut(
        action=decision.action,
        policy=decision.policy,
        scope=decision.scope,
        rule=decision.rule,
        rule_name=decision.rule_name,
        version=decision.version,
        response=decision.response,
        risk=decision.risk,
        reason=decision.reason,
    )
