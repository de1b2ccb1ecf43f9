"""Reading the audit log (written by sayso_common.audit): a page newest first, or every matching
entry streamed as JSON Lines or CSV.

Who sees what is the channels' rule (sayso_common.membership): an owner every entry of their
channels and account, a member the entries of the channels shared with them, nobody anything
else. An entry outlives its channel, so a channel filter naming a channel the caller cannot read
(or one deleted) is not a 404: it finds nothing, or the owner's own entries of a deleted one.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import Field

from sayso_api.schemas import Out
from sayso_common.clock import as_utc
from sayso_common.documents import ActorType, AuditDoc, AuditKind
from sayso_common.errors import ErrorCode, InvalidError
from sayso_common.membership import Reach
from sayso_common.mongo import AUDIT, USERS, Database, Doc, collection

ExportFormat = Literal["jsonl", "csv"]
ACTOR_TYPES: tuple[str, ...] = get_args(ActorType)
KINDS: tuple[str, ...] = get_args(AuditKind)
# Entries read from MongoDB and written out at a time while exporting: the memory an export
# holds, whatever its length.
EXPORT_CHUNK = 500
CSV_HEADER = (
    "id",
    "at",
    "channelId",
    "messageId",
    "kind",
    "actorType",
    "actorId",
    "actorName",
    "decision",
    "rule",
    "policyVersion",
    "detail",
)


class AuditActorOut(Out):
    type: ActorType
    id: str | None = Field(description="The user's, policy's or API key's id; null for the system")
    name: str | None = Field(default=None, description="A user's e-mail address")


class AuditEntryOut(Out):
    id: str
    at: datetime
    channel_id: str | None = Field(description="Null for a change to the account's policy")
    message_id: str | None = None
    kind: AuditKind
    actor: AuditActorOut
    decision: str | None = Field(
        default=None,
        description="What was decided: an approval's option id, a selection's ids (sorted, comma-"
        "separated), dismissed, or responded (form, text, freeform); null when nothing was",
    )
    rule: int | None = Field(default=None, description="The deciding rule's index (auto_decided)")
    policy_version: int | None = Field(default=None, description="The policy's version then, or the new one")
    detail: dict[str, Any] = Field(default_factory=dict)


class AuditPage(Out):
    data: list[AuditEntryOut]
    next_cursor: str | None = None


OWNER_ONLY_KINDS = ("policy_changed", "policy_fallback")


@dataclass(frozen=True)
class AuditFilter:
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    channel_id: str | None = None
    actor: str | None = None  # a user/policy/key id, or an actor type
    decision: str | None = None
    kind: AuditKind | None = None

    def query(self, reach: Reach) -> Doc:
        if self.start and self.end and as_utc(self.start) >= as_utc(self.end):
            raise InvalidError(ErrorCode.VALIDATION_ERROR, "from must be earlier than to", "from")
        # A member reads the shared channels' decisions, not the owner's policies: their changes
        # and a rule's reasons for not answering are the owner's (members get 404 for the policy
        # itself, and a review's policyFallback reads null to them).
        clauses: list[Doc] = [
            reach.scope(),
            {"$or": [{"owner_id": reach.owner_id}, {"kind": {"$nin": list(OWNER_ONLY_KINDS)}}]},
        ]
        at: Doc = {}
        if self.start:
            at["$gte"] = as_utc(self.start)
        if self.end:
            at["$lt"] = as_utc(self.end)
        if at:
            clauses.append({"at": at})
        if self.channel_id:
            clauses.append({"channel_id": self.channel_id})
        if self.actor:
            field = "actor.type" if self.actor in ACTOR_TYPES else "actor.id"
            clauses.append({field: self.actor})
        if self.decision:
            clauses.append({"decision": self.decision})
        if self.kind:
            clauses.append({"kind": self.kind})
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _cursor(doc: AuditDoc) -> str:
    millis = int(as_utc(doc["at"]).timestamp() * 1000)
    return base64.urlsafe_b64encode(f"{millis}|{doc['_id']}".encode()).decode().rstrip("=")


def _after(cursor: str) -> Doc:
    """The entries older than the one ``cursor`` names, in (at, id) order."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        millis, entry_id = raw.split("|", 1)
        at = datetime.fromtimestamp(int(millis) / 1000, UTC)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError, OSError):
        raise InvalidError(
            ErrorCode.VALIDATION_ERROR, "cursor is not a cursor this API returned", "cursor"
        ) from None
    return {"$or": [{"at": {"$lt": at}}, {"at": at, "_id": {"$lt": entry_id}}]}


_NEWEST_FIRST = [("at", -1), ("_id", -1)]


async def _names(db: Database, docs: Iterable[AuditDoc]) -> dict[str, str]:
    """user id -> e-mail, for the users among these entries' actors (one query)."""
    ids = {d["actor"]["id"] for d in docs if d["actor"]["type"] == "user" and d["actor"]["id"]}
    if not ids:
        return {}
    found = await collection(db, USERS).find({"_id": {"$in": sorted(ids)}}, {"email": 1}).to_list()
    return {u["_id"]: u["email"] for u in found}


def _out(doc: AuditDoc, names: dict[str, str]) -> AuditEntryOut:
    actor = doc["actor"]
    return AuditEntryOut(
        id=doc["_id"],
        at=as_utc(doc["at"]),
        channel_id=doc.get("channel_id"),
        message_id=doc.get("message_id"),
        kind=doc["kind"],
        actor=AuditActorOut(type=actor["type"], id=actor["id"], name=names.get(actor["id"] or "")),
        decision=doc.get("decision"),
        rule=doc.get("rule"),
        policy_version=doc.get("policy_version"),
        detail=doc.get("detail") or {},
    )


async def page(db: Database, reach: Reach, wanted: AuditFilter, cursor: str | None, limit: int) -> AuditPage:
    """One page, newest first; a full page carries the cursor of the next (which may be empty)."""
    query = wanted.query(reach)
    if cursor:
        query = {"$and": [query, _after(cursor)]}
    docs = await collection(db, AUDIT).find(query).sort(_NEWEST_FIRST).limit(limit).to_list()
    names = await _names(db, docs)
    return AuditPage(
        data=[_out(d, names) for d in docs],
        next_cursor=_cursor(docs[-1]) if len(docs) >= limit else None,
    )


def _cell(value: Any) -> str:
    """A CSV cell; one a spreadsheet would run as a formula (=, +, -, @, tab, CR first) is
    quoted with a leading apostrophe (OWASP's advice): agents choose option ids and texts."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(entries: list[AuditEntryOut], header: bool) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(CSV_HEADER)
    for e in entries:
        wire = e.model_dump(mode="json")
        writer.writerow(
            [
                _cell(wire["id"]),
                wire["at"],
                _cell(wire["channelId"]),
                _cell(wire["messageId"]),
                wire["kind"],
                wire["actor"]["type"],
                _cell(wire["actor"]["id"]),
                _cell(wire["actor"]["name"]),
                _cell(wire["decision"]),
                "" if wire["rule"] is None else wire["rule"],
                "" if wire["policyVersion"] is None else wire["policyVersion"],
                _cell(json.dumps(wire["detail"], separators=(",", ":"), ensure_ascii=False)),
            ]
        )
    return out.getvalue().encode()


def _jsonl(entries: list[AuditEntryOut]) -> bytes:
    return b"".join(e.model_dump_json().encode() + b"\n" for e in entries)


async def export(db: Database, reach: Reach, wanted: AuditFilter, fmt: ExportFormat) -> AsyncIterator[bytes]:
    """Every matching entry, newest first, ``EXPORT_CHUNK`` at a time (CSV: the header first,
    also when nothing matches)."""
    query = wanted.query(reach)  # raises for bad filters before the response starts

    async def chunks() -> AsyncIterator[bytes]:
        if fmt == "csv":
            yield _csv([], header=True)
        cursor = collection(db, AUDIT).find(query).sort(_NEWEST_FIRST).batch_size(EXPORT_CHUNK)
        batch: list[AuditDoc] = []
        async for doc in cursor:
            batch.append(doc)
            if len(batch) >= EXPORT_CHUNK:
                yield await _encode(db, batch, fmt)
                batch = []
        if batch:
            yield await _encode(db, batch, fmt)

    return chunks()


async def _encode(db: Database, docs: list[AuditDoc], fmt: ExportFormat) -> bytes:
    names = await _names(db, docs)
    entries = [_out(d, names) for d in docs]
    return _csv(entries, header=False) if fmt == "csv" else _jsonl(entries)
