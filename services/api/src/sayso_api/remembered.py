"""Remembered approvals: a person's approving answer that stands for the same action, in the
same channel, for a while ("Approve, and allow the same for 1 h").

An answer to ``POST /api/v1/reviews/{id}/respond`` may carry ``remember: {forSeconds, scope,
runId?}`` when it approves (an approving option of an approval review, not a quorum vote) and the
message has a string ``metadata.tool``. It stores, in the same transaction as the answer, an
entry bound to the channel, ``metadata.tool``, the digest of ``metadata.args``
(:func:`sayso_common.action_digest.args_digest`) and, for scope ``run``, ``metadata.runId``,
alive for ``forSeconds`` (60 s to 7 days), with its ``approval.remembered`` event in its outbox.

A new review of the same action is then answered on arrival as a policy rule would answer it,
with ``decidedBy: {remembered, grantedBy, review}`` and ``respondedBy: null`` (see
sayso_api.messages.create_message for where it sits among the rules). Revoking
(``DELETE …/remembered/{id}``) stamps ``revoked_at`` and emits ``approval.revoked``. The TTL index
removes an entry a day after it expired (revoked or not).

New reviews read a channel's live entries through :class:`~sayso_api.followed.Followed`: kept
per process while a change stream on the collection is open, forgotten on any change, so a
remember or a revoke made on one API replica is honoured by the others within milliseconds.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from pydantic import Field
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from sayso_api.followed import Followed
from sayso_api.schemas import Out, RememberIn
from sayso_common import quorum
from sayso_common.action_digest import args_digest
from sayso_common.clock import as_utc, utcnow
from sayso_common.documents import MessageDoc, RememberedDecisionDoc, RememberedDoc
from sayso_common.errors import ErrorCode, InvalidError, NotFoundError
from sayso_common.events import (
    ApprovalRemembered,
    ApprovalRevoked,
    RememberedData,
    event_to_document,
)
from sayso_common.ids import new_id
from sayso_common.mongo import REMEMBERED, Database, Doc, collection, untyped
from sayso_common.principals import Principal

# Live entries one channel holds at most: each new review of a tool call scans them.
MAX_LIVE: Final = 1_000


class RememberedOut(Out):
    id: str
    channel_id: str
    tool: str = Field(description="metadata.tool of the actions it answers")
    args_digest: str = Field(description="sha256 of the canonical JSON of their metadata.args")
    scope: Literal["channel", "run"]
    run_id: str | None = None
    response: dict[str, Any] = Field(description="The approving answer it records")
    review_id: str = Field(description="The review whose answer created it")
    created_by: str = Field(description="The user who answered")
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None


def _refuse(problem: str, field: str = "remember") -> InvalidError:
    return InvalidError(ErrorCode.INVALID_REMEMBER, problem, field)


def entry_for(
    doc: MessageDoc, clean: Any, remember: RememberIn, user_id: str, now: datetime
) -> RememberedDoc:
    """The entry ``user_id``'s answer ``clean`` (validated) to the review of ``doc`` asks to
    remember, with its event; 422 naming the field when it cannot be remembered. Checked before
    the answer is written, so a refused remember answers nothing."""
    review = doc["review"]
    payload = review.get("payload") or {}
    if "quorum" in review:
        raise _refuse("a quorum vote cannot be remembered: one person is not N approvals")
    if review["type"] != "approval" or not quorum.approves(payload, clean):
        raise _refuse(
            "only an answer that approves (an approving option of an approval review) is remembered"
        )
    metadata = doc.get("metadata") or {}
    tool = metadata.get("tool")
    if not isinstance(tool, str) or not tool:
        raise _refuse("the message has no metadata.tool: only a tool call's approval can be remembered")
    # An entry binds the tool and metadata.args. An answer that changed the arguments approved
    # other ones than those, and arguments offered only for editing are not what it would bind:
    # remembering either would approve later calls the person never saw.
    if "editedArgs" in clean:
        raise _refuse("an answer with edited arguments cannot be remembered: it approves other arguments")
    edit = payload.get("edit")
    if isinstance(edit, dict) and edit.get("args") != metadata.get("args"):
        raise _refuse(
            "the review offers arguments for editing that are not its metadata.args: nothing to bind to"
        )
    run_id = None
    if remember.scope == "run":
        sent = metadata.get("runId")
        run_id = remember.run_id or (sent if isinstance(sent, str) else None)
        if run_id is None:
            raise _refuse("scope run needs the run: give runId, or send metadata.runId", "remember.runId")
        if isinstance(sent, str) and run_id != sent:
            raise _refuse("must be the message's metadata.runId", "remember.runId")
    elif remember.run_id is not None:
        raise _refuse("only scope run takes a runId", "remember.runId")
    entry: RememberedDoc = {
        "_id": new_id("rem"),
        "owner_id": doc["owner_id"],
        "channel_id": doc["channel_id"],
        "tool": tool,
        "args_digest": args_digest(metadata),
        "scope": remember.scope,
        "run_id": run_id,
        "response": {"selectedOption": clean["selectedOption"]},
        "review_id": doc["_id"],
        "created_by": user_id,
        "created_at": now,
        "expires_at": now + timedelta(seconds=remember.for_seconds),
        "revoked_at": None,
        "revoked_by": None,
    }
    event = ApprovalRemembered(
        channel_id=entry["channel_id"],
        owner_id=entry["owner_id"],
        occurred_at=now,
        data=_data(entry, user_id),
    )
    entry["outbox"] = [event_to_document(event)]
    return entry


def _data(entry: RememberedDoc, actor: str) -> RememberedData:
    return RememberedData(
        channel_id=entry["channel_id"],
        remembered_id=entry["_id"],
        tool=entry["tool"],
        args_digest=entry["args_digest"],
        scope=entry["scope"],
        run_id=entry.get("run_id"),
        expires_at=as_utc(entry["expires_at"]),
        actor=actor,
    )


async def store(db: Database, entry: RememberedDoc, session: AsyncClientSession) -> None:
    await collection(db, REMEMBERED).insert_one(entry, session=session)


def stored(db: Database) -> None:
    """This replica's next review sees a new or revoked entry at once (the others when the
    change event arrives)."""
    book(db).forget()


# --- answering new reviews ------------------------------------------------------------------------

_BOOKS: weakref.WeakKeyDictionary[Database, Followed[tuple[str, str], list[RememberedDoc]]] = (
    weakref.WeakKeyDictionary()
)


def book(db: Database) -> Followed[tuple[str, str], list[RememberedDoc]]:
    found = _BOOKS.get(db)
    if found is None:
        found = _BOOKS[db] = Followed(untyped(db, REMEMBERED), "remembered approvals")
    return found


async def _live(db: Database, owner_id: str, channel_id: str) -> list[RememberedDoc]:
    async def load() -> list[RememberedDoc]:
        query: Doc = {
            "channel_id": channel_id,
            "owner_id": owner_id,
            "revoked_at": None,
            "expires_at": {"$gt": utcnow()},
        }
        projection = {"outbox": 0, "outbox_dead": 0}
        found = collection(db, REMEMBERED).find(query, projection).sort("_id", -1).limit(MAX_LIVE)
        return await found.to_list()

    return await book(db).get((owner_id, channel_id), load)


async def approval_for(
    db: Database,
    owner_id: str,
    channel_id: str,
    metadata: Mapping[str, Any] | None,
    payload: Mapping[str, Any],
) -> tuple[dict[str, Any], RememberedDecisionDoc] | None:
    """(the response to record, decidedBy) when a live remembered approval covers this action
    (a new approval review's ``metadata`` and stored ``payload``), else None. The caller decides
    whether the review may be answered this way at all (never a quorum review)."""
    tool = (metadata or {}).get("tool")
    if not isinstance(tool, str) or not tool:
        return None
    entries = await _live(db, owner_id, channel_id)
    if not entries:
        return None
    assert metadata is not None
    digest = args_digest(metadata)
    run_id = metadata.get("runId")
    now = utcnow()
    for entry in entries:
        if entry["tool"] != tool or entry["args_digest"] != digest or as_utc(entry["expires_at"]) <= now:
            continue
        if entry["scope"] == "run" and (not isinstance(run_id, str) or run_id != entry.get("run_id")):
            continue
        response = _approving(payload, entry.get("response") or {})
        if response is None:
            continue
        decided: RememberedDecisionDoc = {
            "remembered": entry["_id"],
            "granted_by": entry["created_by"],
            "review": entry["review_id"],
        }
        return response, decided
    return None


def _approving(payload: Mapping[str, Any], remembered: Mapping[str, Any]) -> dict[str, Any] | None:
    """The option the person chose, if this review has it and it approves; else its first
    approving option; None when it has none."""
    options = [o for o in payload.get("options") or () if isinstance(o, Mapping)]
    chosen = remembered.get("selectedOption")
    for option in options:
        if option.get("id") == chosen and quorum.option_approves(option):
            return {"selectedOption": chosen}
    for option in options:
        if isinstance(option.get("id"), str) and quorum.option_approves(option):
            return {"selectedOption": option["id"]}
    return None


# --- listing and revoking -------------------------------------------------------------------------


def _when(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


def _view(entry: RememberedDoc) -> RememberedOut:
    return RememberedOut(
        id=entry["_id"],
        channel_id=entry["channel_id"],
        tool=entry["tool"],
        args_digest=entry["args_digest"],
        scope=entry["scope"],
        run_id=entry.get("run_id"),
        response=entry.get("response") or {},
        review_id=entry["review_id"],
        created_by=entry["created_by"],
        created_at=as_utc(entry["created_at"]),
        expires_at=as_utc(entry["expires_at"]),
        revoked_at=_when(entry.get("revoked_at")),
        revoked_by=entry.get("revoked_by"),
    )


async def list_live(db: Database, owner_id: str, channel_id: str) -> list[RememberedOut]:
    """The channel's remembered approvals still in force, newest first."""
    query: Doc = {
        "channel_id": channel_id,
        "owner_id": owner_id,
        "revoked_at": None,
        "expires_at": {"$gt": utcnow()},
    }
    found = (
        await collection(db, REMEMBERED)
        .find(query, {"outbox": 0, "outbox_dead": 0})
        .sort("_id", -1)
        .limit(MAX_LIVE)
        .to_list()
    )
    return [_view(entry) for entry in found]


def actor(who: Principal) -> str:
    return f"key:{who.key_id}" if who.kind == "api_key" else who.owner_id


async def revoke(
    db: Database, who: Principal, owner_id: str, channel_id: str, remembered_id: str
) -> RememberedOut:
    """Revoke a live entry: the channel's owner any (by key or session), a member only those
    their own answers made; 404 for anything else (another's, expired, already revoked)."""
    now = utcnow()
    query: Doc = {
        "_id": remembered_id,
        "channel_id": channel_id,
        "owner_id": owner_id,
        "revoked_at": None,
        "expires_at": {"$gt": now},
    }
    if who.owner_id != owner_id:
        query["created_by"] = who.owner_id
    entry = await collection(db, REMEMBERED).find_one(query, {"outbox": 0, "outbox_dead": 0})
    revoked = None if entry is None else await _revoke(db, query, entry, actor(who), now)
    if revoked is None:  # none, or revoked or expired between the two reads
        raise NotFoundError("remembered approval")
    stored(db)
    return _view(revoked)


async def _revoke(
    db: Database, query: Doc, entry: RememberedDoc, by: str, now: datetime
) -> RememberedDoc | None:
    """Mark ``entry`` (still matching ``query``) revoked by ``by``, with its approval.revoked
    event in the same write; None when it no longer matches."""
    event = ApprovalRevoked(
        channel_id=entry["channel_id"], owner_id=entry["owner_id"], occurred_at=now, data=_data(entry, by)
    )
    return await collection(db, REMEMBERED).find_one_and_update(
        query,
        {"$set": {"revoked_at": now, "revoked_by": by}, "$push": {"outbox": event_to_document(event)}},
        projection={"outbox": 0, "outbox_dead": 0},
        return_document=ReturnDocument.AFTER,
    )


async def revoke_granted_by(db: Database, owner_id: str, channel_id: str, user_id: str) -> int:
    """Revoke every live entry ``user_id`` made in the channel (they were removed from it: what
    they may no longer answer, their remembered approvals no longer answer either); each revoke
    is recorded as the owner's, with its own event. Returns how many."""
    now = utcnow()
    live: Doc = {
        "channel_id": channel_id,
        "owner_id": owner_id,
        "created_by": user_id,
        "revoked_at": None,
        "expires_at": {"$gt": now},
    }
    count = 0
    async for entry in collection(db, REMEMBERED).find(live, {"outbox": 0, "outbox_dead": 0}):
        if await _revoke(db, {**live, "_id": entry["_id"]}, entry, owner_id, now) is not None:
            count += 1
    if count:
        stored(db)
    return count
