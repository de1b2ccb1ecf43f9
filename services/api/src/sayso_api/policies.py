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

from sayso_api.followed import Followed
from sayso_api.schemas import OnExpireIn, Out, QuorumIn, _In, _StrictIn
from sayso_api.settings import ApiSettings
from sayso_common import audit, membership, policies
from sayso_common.clock import utcnow
from sayso_common.documents import PolicyDoc
from sayso_common.errors import ErrorCode, InvalidError, NotFoundError
from sayso_common.ids import new_id
from sayso_common.mongo import AGENTS, AUDIT, POLICIES, POLICY_VERSIONS, Database, collection, untyped
from sayso_common.policies import ASK, Decision, Policy, PolicyError
from sayso_common.principals import Principal
from sayso_common.reviews import ReviewError, normalise_payload, validate_response
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
    expires_in_seconds: int | None = Field(default=None, ge=1)
    on_expire: OnExpireIn | None = None


class SampleMessageIn(_StrictIn):
    text: str | None = None
    review: SampleReviewIn
    metadata: dict[str, Any] | None = None


class PolicyTestIn(_StrictIn):
    channel_id: str = Field(min_length=1, max_length=100)
    message: SampleMessageIn = Field(description="The message as an agent would POST it (nothing is stored)")


class AskedOut(Out):
    """The review a matching ask rule would leave to people, its overrides applied to the sample."""

    quorum: dict[str, int] | None = Field(default=None, description="{approvals}: null, no quorum")
    expires_in_seconds: int = Field(description="The review's lifetime, after the rule's deadline")
    on_expire: dict[str, Any] | None = Field(default=None, description="{response}: the default on timeout")
    notify: list[str] | None = Field(default=None, description="The only reviewers told; null: all")
    not_applied: list[str] = Field(default_factory=list, description="Overrides not applied, and why")


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
    review_risk: policies.Risk | None = Field(
        default=None,
        description="The risk the review would carry: the higher of metadata.risk and the rule's",
    )
    asked: AskedOut | None = Field(
        default=None, description="A matching ask rule with overrides: the review people would get"
    )


def _actor(who: Principal) -> str:
    return f"key:{who.key_id}" if who.kind == "api_key" else who.owner_id


async def _own_channel(db: Database, owner_id: str, channel_id: str | None) -> None:
    if channel_id is not None and not await collection(db, AGENTS).find_one(
        {"_id": channel_id, "owner_id": owner_id}, {"_id": 1}
    ):
        raise NotFoundError("channel")


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


async def _check_notify(
    db: Database, owner_id: str, channel_id: str | None, rules: tuple[policies.Rule, ...]
) -> None:
    """An ask rule's ``notify`` names the channel's reviewers (its owner and members) only; an
    account rule's, the owner and the members of any of the owner's channels. (The notifier
    tells those still reviewers when a review arrives, everyone if none is.)"""
    named = [r for r in rules if r.overrides is not None and r.overrides.notify not in (None, ("owner",))]
    if not named:
        return
    scope: dict[str, Any] = (
        {"owner_id": owner_id} if channel_id is None else {"_id": channel_id, "owner_id": owner_id}
    )
    people = {owner_id}
    async for agent in collection(db, AGENTS).find(scope, {"owner_id": 1, "members.user_id": 1}):
        people |= membership.reviewers(agent)
    for rule in named:
        assert rule.overrides is not None
        assert rule.overrides.notify is not None
        for j, user_id in enumerate(rule.overrides.notify):
            if user_id not in people:
                raise InvalidError(
                    ErrorCode.INVALID_POLICY, "is not the owner or a member of this channel",
                    f"rules[{rule.index}].notify[{j}]",
                )  # fmt: skip


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
        raise InvalidError(ErrorCode.INVALID_POLICY, exc.problem, exc.field) from None
    await _own_channel(db, who.owner_id, channel_id)
    await _check_notify(db, who.owner_id, channel_id, rules)
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
    for them (:class:`~sayso_api.followed.Followed`), compiled rules by (policy id, version)."""

    def __init__(self, db: Database) -> None:
        self._policies = collection(db, POLICIES)
        self._compiled: dict[tuple[str, int], Policy] = {}
        self._heads: Followed[tuple[str, str], list[PolicyDoc]] = Followed(
            untyped(db, POLICIES), "policies", limit=_MAX_HEADS
        )

    @property
    def watching(self) -> bool:
        return self._heads.watching

    def kept(self) -> int:
        """How many (owner, channel) heads are kept."""
        return self._heads.kept()

    def forget(self) -> None:
        """Drop every head kept (a policy changed, or may have)."""
        self._heads.forget()

    async def follow_changes(self) -> NoReturn:
        """Keep heads while a change stream on ``policies`` is open; run for the process's life."""
        await self._heads.follow_changes()

    async def _read_heads(self, owner_id: str, channel_id: str) -> list[PolicyDoc]:
        async def load() -> list[PolicyDoc]:
            query = {"owner_id": owner_id, "channel_id": {"$in": [channel_id, None]}}
            return await self._policies.find(query, {"channel_id": 1, "version": 1}).to_list()

        return await self._heads.get((owner_id, channel_id), load)

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


async def dry_run(db: Database, settings: ApiSettings, owner_id: str, body: PolicyTestIn) -> PolicyTestOut:
    """What would happen to ``body.message`` in ``body.channel_id``, storing nothing."""
    await _own_channel(db, owner_id, body.channel_id)
    sample = body.message
    try:
        payload = normalise_payload(
            sample.review.type, sample.review.payload, quorum=sample.review.quorum is not None
        )
    except ReviewError as exc:
        raise InvalidError(ErrorCode.INVALID_REVIEW, exc.message, f"message.{exc.field}") from None
    channel, account = await book(db).applying(owner_id, body.channel_id)
    quorum = sample.review.quorum.model_dump() if sample.review.quorum is not None else None
    message = policies.subject(
        body.channel_id, sample.text, sample.review.type, sample.review.payload, sample.metadata, quorum
    )
    decision = policies.decide(channel, account, message, payload, validate_response)
    asked = None
    if decision.action == "ask" and decision.overrides is not None:
        asked = _asked(settings, owner_id, sample, payload, decision.overrides)
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
        review_risk=policies.review_risk(sample.metadata, decision),
        asked=asked,
    )


def _asked(
    settings: ApiSettings,
    owner_id: str,
    sample: SampleMessageIn,
    payload: dict[str, Any],
    overrides: policies.AskOverrides,
) -> AskedOut:
    review = sample.review
    longest = settings.review_max_ttl_seconds
    lifetime = min(review.expires_in_seconds or settings.review_default_ttl_seconds, longest)
    default = review.on_expire.response if review.on_expire is not None else None
    approvals = review.quorum.approvals if review.quorum is not None else None
    done = policies.apply_overrides(
        overrides, review.type, payload, policies.Asked(approvals, float(lifetime), default),
        owner_id=owner_id, longest=longest, check=validate_response,
    )  # fmt: skip
    return AskedOut(
        quorum={"approvals": done.approvals} if done.approvals is not None else None,
        expires_in_seconds=round(done.lifetime),
        on_expire={"response": done.on_expire} if done.on_expire is not None else None,
        notify=list(done.notify) if done.notify is not None else None,
        not_applied=list(done.skipped),
    )
