"""Signed triggers (Planasonix style): outside systems post JSON signed with Standard Webhooks.

The signature is checked over the raw body bytes; the timestamp must be within the tolerance;
the ``webhook-id`` makes the call idempotent (a replay or the sender's own retry returns the
original correlation id and creates nothing). ``mapping`` turns the JSON into a message with
JSON pointers; ``required`` names pointers that must be present. Bodies are never logged.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from sayso_api.context import ApiContext
from sayso_api.messages import create_message
from sayso_api.schemas import MessageIn, TriggerFired, TriggerOut
from sayso_common import numerals, signing_secrets
from sayso_common.clock import utcnow
from sayso_common.documents import TriggerDoc
from sayso_common.errors import (
    ErrorCode,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    TooLargeError,
    UnauthorizedError,
)
from sayso_common.http_errors import field_path
from sayso_common.ids import new_id
from sayso_common.mongo import TRIGGERS, Database, collection
from sayso_common.secretbox import SecretBox
from sayso_common.views import ReviewType
from sayso_common.webhook_signature import matches, new_secret

_MISSING = object()
# Standard Webhooks timestamps are Unix seconds; more digits are not a time.
TIMESTAMP_DIGITS = 12


class Mapping(BaseModel):
    """Where each message field comes from, as JSON pointers (RFC 6901) into the request body."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    text: str = Field(description="Pointer to the message text, e.g. /event")
    status: str | None = Field(default=None, description="Pointer to info|success|warning|error")
    review_type: ReviewType | None = Field(default=None, description="Ask for this review type")
    review_payload: str | None = Field(default=None, description="Pointer to the review payload object")
    metadata: dict[str, str] = Field(default_factory=dict, description="metadata key -> pointer")

    @field_validator("text", "status", "review_payload")
    @classmethod
    def _pointer(cls, value: str | None) -> str | None:
        if value is not None:
            check_pointer(value)
        return value

    @field_validator("metadata")
    @classmethod
    def _pointers(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 50:
            raise ValueError("at most 50 metadata pointers")
        for pointer in value.values():
            check_pointer(pointer)
        return value


def check_pointer(pointer: str) -> None:
    if pointer != "" and not pointer.startswith("/"):
        raise ValueError(f"{pointer!r} is not a JSON pointer (it must start with /)")
    if len(pointer) > 500:
        raise ValueError("JSON pointers are limited to 500 characters")


def check_pointers(value: list[str] | None) -> list[str] | None:
    for pointer in value or []:
        check_pointer(pointer)
    return value


def check_cidrs(value: list[str] | None) -> list[str] | None:
    for cidr in value or []:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValueError(f"{cidr!r} is not an IP address or CIDR") from None
    return value


_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
INDEX_DIGITS = 18  # no array is longer; a longer index names nothing


def resolve_pointer(doc: Any, pointer: str) -> Any:
    """RFC 6901 lookup; returns ``_MISSING`` when the path does not exist."""
    if pointer == "":
        return doc
    node = doc
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            if token not in node:
                return _MISSING
            node = node[token]
        elif isinstance(node, list):
            # RFC 6901 array indexes: "0" or digits without a leading zero (so "01" names nothing).
            index = numerals.parse_uint(token, INDEX_DIGITS) if _ARRAY_INDEX.fullmatch(token) else None
            if index is None or index >= len(node):
                return _MISSING
            node = node[index]
        else:
            return _MISSING
    return node


def map_body(body: Any, mapping: Mapping, required: list[str]) -> dict[str, Any]:
    """Build the message fields from a trigger body; 422 naming every missing required pointer."""
    missing = [p for p in required if resolve_pointer(body, p) is _MISSING]
    text = resolve_pointer(body, mapping.text)
    if text is _MISSING and mapping.text not in missing:
        missing.append(mapping.text)
    if missing:
        raise InvalidError(
            ErrorCode.MISSING_KEYS, f"required keys missing: {', '.join(missing)}", field=missing[0]
        )
    out: dict[str, Any] = {"text": text if isinstance(text, str) else json.dumps(text)}
    # An optional mapped field the body leaves out (or sends as null) is left out of the message,
    # as if it were not mapped; only a value that is there and wrong is refused.
    status = resolve_pointer(body, mapping.status) if mapping.status is not None else _MISSING
    if status not in (_MISSING, None):
        if status not in ("info", "success", "warning", "error"):
            raise InvalidError(
                ErrorCode.INVALID_MAPPING, "status must be info, success, warning or error", mapping.status
            )
        out["status"] = status
    if mapping.review_type:
        payload = resolve_pointer(body, mapping.review_payload) if mapping.review_payload else {}
        out["review"] = {"type": mapping.review_type, "payload": {} if payload is _MISSING else payload}
    metadata = {k: v for k, p in mapping.metadata.items() if (v := resolve_pointer(body, p)) is not _MISSING}
    if metadata:
        out["metadata"] = metadata
    return out


class TriggerIn(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    mapping: Mapping
    required: list[str] = Field(default_factory=list, max_length=50)
    allow_ips: list[str] = Field(default_factory=list, max_length=50, description="CIDRs allowed to call")

    _required = field_validator("required")(lambda v: check_pointers(v))
    _cidrs = field_validator("allow_ips")(lambda v: check_cidrs(v))


class TriggerPatch(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=64)
    mapping: Mapping | None = None
    required: list[str] | None = None
    allow_ips: list[str] | None = None
    active: bool | None = None

    _required = field_validator("required")(lambda v: check_pointers(v))
    _cidrs = field_validator("allow_ips")(lambda v: check_cidrs(v))


def view(doc: TriggerDoc, public_url: str) -> TriggerOut:
    return TriggerOut(
        id=doc["_id"],
        channel_id=doc["channel_id"],
        name=doc["name"],
        url=f"{public_url.rstrip('/')}/api/triggers/{doc['_id']}",
        mapping=doc["mapping"],
        required=doc["required"],
        allow_ips=doc["allow_ips"],
        active=doc["active"],
        created_at=doc["created_at"],
        last_used_at=doc.get("last_used_at"),
    )


async def list_for_channel(db: Database, owner_id: str, channel_id: str) -> list[TriggerDoc]:
    return (
        await collection(db, TRIGGERS)
        .find({"owner_id": owner_id, "channel_id": channel_id})
        .sort("created_at", 1)
        .to_list()
    )


async def delete(db: Database, owner_id: str, trigger_id: str) -> None:
    result = await collection(db, TRIGGERS).delete_one({"_id": trigger_id, "owner_id": owner_id})
    if result.deleted_count == 0:
        raise NotFoundError("trigger")


async def fire(
    ctx: ApiContext, trigger_id: str, client_host: str | None, headers: dict[str, str], raw: bytes
) -> TriggerFired:
    """Verify a signed call and post its mapped message. A repeated ``webhook-id`` returns the
    original correlation id and creates nothing."""
    s = ctx.settings
    doc = await collection(ctx.db, TRIGGERS).find_one({"_id": trigger_id})
    if doc is None or not doc.get("active"):
        raise NotFoundError("trigger", message="unknown or disabled trigger")
    if not address_allowed(doc["allow_ips"], client_host):
        raise ForbiddenError(ErrorCode.ADDRESS_NOT_ALLOWED, "this address may not call the trigger")
    if len(raw) > s.trigger_max_body_bytes:
        raise TooLargeError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"trigger bodies are limited to {s.trigger_max_body_bytes} bytes (SAYSO_TRIGGER_MAX_BODY_BYTES)",
        )
    webhook_id = verify(
        headers, raw, signing_secrets.opened(ctx.box, doc["secrets"], utcnow()), s.trigger_tolerance_seconds
    )
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidError(ErrorCode.INVALID_JSON, "request body is not valid JSON") from None
    fields = map_body(payload, Mapping.model_validate(doc["mapping"]), doc["required"])
    try:
        message = MessageIn.model_validate(
            {**fields, "channelId": doc["channel_id"], "clientId": f"trigger:{webhook_id}"}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = field_path(first["loc"])
        raise InvalidError(ErrorCode.INVALID_MAPPING, f"mapped {where}: {first['msg']}", where) from None
    view_, replayed = await create_message(
        ctx.db, s, ctx.box, doc["owner_id"], message, sender_type="webhook", sender_name=doc["name"],
        correlation_id=new_id("cor"),
    )  # fmt: skip
    await collection(ctx.db, TRIGGERS).update_one({"_id": trigger_id}, {"$set": {"last_used_at": utcnow()}})
    return TriggerFired(correlation_id=view_.correlation_id, message_id=view_.id, replayed=replayed)


async def create(
    db: Database, box: SecretBox, owner_id: str, channel_id: str, body: TriggerIn
) -> tuple[TriggerDoc, str]:
    secret = new_secret()
    now = utcnow()
    doc: TriggerDoc = {
        "_id": new_id("trg"),
        "owner_id": owner_id,
        "channel_id": channel_id,
        "name": body.name,
        "mapping": body.mapping.model_dump(by_alias=True, exclude_none=True),
        "required": body.required,
        "allow_ips": body.allow_ips,
        "active": True,
        "secrets": signing_secrets.first(box, secret, now),
        "created_at": now,
        "last_used_at": None,
    }
    await collection(db, TRIGGERS).insert_one(doc)
    return doc, secret


async def get(db: Database, owner_id: str, trigger_id: str) -> TriggerDoc:
    doc = await collection(db, TRIGGERS).find_one({"_id": trigger_id, "owner_id": owner_id})
    if doc is None:
        raise NotFoundError("trigger")
    return doc


async def patch(db: Database, owner_id: str, trigger_id: str, body: TriggerPatch) -> TriggerDoc:
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if value is None:
            raise InvalidError(ErrorCode.VALIDATION_ERROR, f"{to_camel(name)} cannot be null", to_camel(name))
        changes[name] = (
            value.model_dump(by_alias=True, exclude_none=True) if isinstance(value, Mapping) else value
        )
    if not changes:
        return await get(db, owner_id, trigger_id)
    doc = await collection(db, TRIGGERS).find_one_and_update(
        {"_id": trigger_id, "owner_id": owner_id}, {"$set": changes}, return_document=True
    )
    if doc is None:
        raise NotFoundError("trigger")
    return doc


async def rotate(
    db: Database, box: SecretBox, owner_id: str, trigger_id: str, grace_seconds: int
) -> tuple[TriggerDoc, str]:
    """New secret now; the current one keeps working for ``grace_seconds``; older ones are dropped."""
    query = {"_id": trigger_id, "owner_id": owner_id}
    try:
        secret, _ = await signing_secrets.rotate(
            collection(db, TRIGGERS),
            query,
            "secrets",
            box,
            new_secret,
            timedelta(seconds=grace_seconds),
            max_old=1,
        )
    except NotFoundError:
        raise NotFoundError("trigger") from None
    return await get(db, owner_id, trigger_id), secret


def verify(
    headers: dict[str, str], body: bytes, secrets_: list[str], tolerance: int, now: float | None = None
) -> str:
    """Check Standard Webhooks headers; returns the webhook-id or raises UnauthorizedError with a reason code."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    sig = headers.get("webhook-signature", "")
    if not msg_id or not stamp or not sig or len(msg_id) > 200:
        raise UnauthorizedError(
            "webhook-id, webhook-timestamp and webhook-signature are required", ErrorCode.MISSING_HEADERS
        )
    timestamp = numerals.parse_uint(stamp, TIMESTAMP_DIGITS)
    if timestamp is None:
        raise UnauthorizedError("webhook-timestamp must be Unix seconds", ErrorCode.INVALID_TIMESTAMP)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise UnauthorizedError(
            f"webhook-timestamp must be within {tolerance} s of now", ErrorCode.TIMESTAMP_OUT_OF_RANGE
        )
    if not matches(secrets_, msg_id, timestamp, body, sig):
        raise UnauthorizedError(
            "no signature matches a current secret of this trigger", ErrorCode.INVALID_SIGNATURE
        )
    return msg_id


def address_allowed(allow: list[str], client: str | None) -> bool:
    if not allow:
        return True
    if client is None:
        return False
    try:
        addr = ipaddress.ip_address(client)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(cidr, strict=False) for cidr in allow)
