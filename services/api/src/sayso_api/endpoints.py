"""Webhook endpoints (:mod:`sayso_common.endpoints`): a channel's (``/agents/{id}/endpoints``) or
an account's (``/endpoints``). Owner only: a channel's endpoints are its owner's (members and
others get 404, as for every channel setting).

Each endpoint has its own signing secret, shown once (on create and on rotation) and stored
sealed like the agents' (:mod:`sayso_common.signing_secrets`); headers and Basic auth are sealed
too and shown masked. The URL passes the SSRF rules when saved (the dispatcher checks it again
at every send: DNS answers change), the filter compiles or the save gets 422 naming where.
"""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, field_validator
from pymongo import DESCENDING, ReturnDocument
from yarl import URL

from sayso_api.agents import get_agent
from sayso_api.schemas import Headers, Out, WebhookAuthIn, _StrictIn, check_headers, check_url
from sayso_api.webhooks import LIST_LIMIT, MAX_OLD_SECRETS, DeliveryOut, delivery_out
from sayso_common import signing_secrets
from sayso_common.clock import as_utc, utcnow
from sayso_common.documents import EndpointDoc, WebhookEvent
from sayso_common.endpoints import (
    DEFAULT_ENDPOINT_EVENTS,
    MAX_DESCRIPTION_CHARS,
    MAX_ENDPOINTS,
    MAX_RATE_LIMIT,
    EndpointFormat,
    FilterError,
    compile_endpoint_filter,
    filter_json,
    stored_filter,
)
from sayso_common.http_errors import ApiError, not_found
from sayso_common.ids import new_id
from sayso_common.mongo import DELIVERIES, ENDPOINTS, Database, Doc, collection
from sayso_common.secretbox import SecretBox
from sayso_common.ssrf import AddressRefusedError, GuardedResolver, Network, ip_literal
from sayso_common.ssrf import check_url as ssrf_refusal
from sayso_common.webhook_signature import new_secret as new_signing_secret

ALLOW_LIST_SETTING = "SAYSO_DISPATCHER_ALLOWED_NETWORKS"
# How long a save waits for DNS; a name that does not resolve in time is left to the send-time guard.
RESOLVE_SECONDS = 3.0

FILTER_DOC = (
    "A filter (the policies' filter language: MongoDB-style operators, dotted paths) over "
    '{"event", "channelId", "message"}, the message as the API shows it; null: every event of '
    "the chosen types"
)


class EndpointIn(_StrictIn):
    url: str = Field(description="Where deliveries are POSTed (http or https)")
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    event_types: list[WebhookEvent] = Field(
        default_factory=lambda: list(DEFAULT_ENDPOINT_EVENTS), min_length=1, max_length=10
    )
    filter: dict[str, Any] | None = Field(default=None, description=FILTER_DOC)
    format: EndpointFormat = Field(
        default="placet", description="placet, processa, or standard (the Standard Webhooks envelope)"
    )
    headers: Headers | None = Field(default=None, description="Extra request headers (at most 20)")
    auth: WebhookAuthIn | None = Field(default=None, description="HTTP Basic credentials")
    rate_limit: int | None = Field(
        default=None, ge=1, le=MAX_RATE_LIMIT, description="Deliveries per second at most; null: no limit"
    )
    disabled: bool = False

    _url = field_validator("url")(check_url)
    _headers = field_validator("headers")(check_headers)


class EndpointPatch(_StrictIn):
    """The fields to change; the others stay (null clears description, filter, headers, auth,
    rateLimit)."""

    url: str | None = None
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    event_types: list[WebhookEvent] | None = Field(default=None, min_length=1, max_length=10)
    filter: dict[str, Any] | None = Field(default=None, description=FILTER_DOC)
    format: EndpointFormat | None = None
    headers: Headers | None = None
    auth: WebhookAuthIn | None = None
    rate_limit: int | None = Field(default=None, ge=1, le=MAX_RATE_LIMIT)
    disabled: bool | None = None

    _url = field_validator("url")(check_url)
    _headers = field_validator("headers")(check_headers)


class EndpointOut(Out):
    id: str
    channel_id: str | None = Field(description="The channel; null for an account-wide endpoint")
    url: str
    description: str | None = None
    event_types: list[str]
    filter: dict[str, Any] | None = None
    format: str
    headers: dict[str, str] = Field(description="Header names, values masked")
    auth: dict[str, str] | None = Field(default=None, description="{username, password: ***}")
    rate_limit: int | None = None
    disabled: bool
    disabled_reason: str | None = None
    created_at: datetime
    updated_at: datetime | None = None


class EndpointCreated(EndpointOut):
    secret: str = Field(description="The endpoint's signing secret (whsec_…); shown only here")


class EndpointSecretRotated(Out):
    secret: str = Field(description="The new signing secret (whsec_…); shown only here")
    previous_expires_at: datetime | None = Field(
        description="Until then, requests carry signatures by both the old and the new secret"
    )


def endpoint_out(doc: EndpointDoc) -> EndpointOut:
    user = doc.get("auth_username")
    return EndpointOut(
        id=doc["_id"],
        channel_id=doc["channel_id"],
        url=doc["url"],
        description=doc.get("description"),
        event_types=list(doc.get("event_types", DEFAULT_ENDPOINT_EVENTS)),
        filter=stored_filter(doc),
        format=doc.get("format", "placet"),
        headers={name: "***" for name in doc.get("header_names", [])},
        auth={"username": user, "password": "***"} if user else None,
        rate_limit=doc.get("rate_limit"),
        disabled=doc.get("disabled", False),
        disabled_reason=doc.get("disabled_reason"),
        created_at=doc["created_at"],
        updated_at=doc.get("updated_at"),
    )


# --- checks -----------------------------------------------------------------------------------


def check_filter(spec: dict[str, Any] | None) -> None:
    try:
        compile_endpoint_filter(spec)
    except FilterError as exc:
        field = f"filter.{exc.where}" if exc.where else "filter"
        raise ApiError(422, "invalid_filter", exc.problem, field) from None


async def vet_url(url: str, allowed: list[Network]) -> None:
    """422 if the SSRF guard would refuse ``url`` now: an internal IP literal, or a name that
    resolves to an internal address. A name that does not resolve (yet) is accepted: the
    dispatcher's guard decides at every send."""
    refused = ssrf_refusal(url, allowed, ALLOW_LIST_SETTING)
    if refused:
        raise ApiError(422, "url_refused", f"refused by the SSRF guard: {refused}", "url")
    name = URL(url).raw_host or ""
    if ip_literal(name) is not None:
        return  # an address, checked above
    resolver = GuardedResolver(allowed, setting=ALLOW_LIST_SETTING)
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            await resolver.resolve(name, 0, socket.AF_UNSPEC)
    except AddressRefusedError as exc:
        raise ApiError(422, "url_refused", f"refused by the SSRF guard: {exc.reason}", "url") from None
    except (OSError, TimeoutError):
        pass
    finally:
        await resolver.close()


def _sealed_headers(box: SecretBox, headers: dict[str, str] | None) -> tuple[str | None, list[str]]:
    """(sealed JSON of the headers, their names to show back)."""
    if not headers:
        return None, []
    return box.seal(json.dumps(headers)), sorted(headers)


def _sealed_auth(box: SecretBox, auth: WebhookAuthIn | None) -> tuple[str | None, str | None]:
    """(sealed credentials, the username to show back)."""
    if auth is None:
        return None, None
    return box.seal(json.dumps({"username": auth.username, "password": auth.password})), auth.username


def _scope(owner_id: str, channel_id: str | None) -> Doc:
    return {"owner_id": owner_id, "channel_id": channel_id}


async def _own_scope(db: Database, owner_id: str, channel_id: str | None) -> None:
    if channel_id is not None:
        await get_agent(db, owner_id, channel_id)  # 404 unless the caller owns the channel


# --- operations -------------------------------------------------------------------------------


async def create_endpoint(
    db: Database,
    box: SecretBox,
    allowed: list[Network],
    owner_id: str,
    channel_id: str | None,
    body: EndpointIn,
) -> EndpointCreated:
    await _own_scope(db, owner_id, channel_id)
    check_filter(body.filter)
    await vet_url(body.url, allowed)
    coll = collection(db, ENDPOINTS)
    if await coll.count_documents(_scope(owner_id, channel_id), limit=MAX_ENDPOINTS) >= MAX_ENDPOINTS:
        where = "this channel" if channel_id else "this account (account-wide)"
        raise ApiError(
            409, "too_many_endpoints", f"{where} already has {MAX_ENDPOINTS} endpoints, the most allowed"
        )
    now = utcnow()
    secret = new_signing_secret()
    doc: EndpointDoc = {
        "_id": new_id("ep"),
        "owner_id": owner_id,
        "channel_id": channel_id,
        "url": body.url,
        "description": body.description,
        "event_types": list(body.event_types),
        "filter_json": filter_json(body.filter),
        "format": body.format,
        "rate_limit": body.rate_limit,
        "disabled": body.disabled,
        "disabled_reason": "disabled by owner" if body.disabled else None,
        "signing_secrets": signing_secrets.first(box, secret, now),
        "created_at": now,
        "updated_at": now,
    }
    doc["headers_enc"], doc["header_names"] = _sealed_headers(box, body.headers)
    doc["auth_enc"], doc["auth_username"] = _sealed_auth(box, body.auth)
    await coll.insert_one(doc)
    return EndpointCreated(secret=secret, **endpoint_out(doc).model_dump())


async def list_endpoints(db: Database, owner_id: str, channel_id: str | None) -> list[EndpointOut]:
    await _own_scope(db, owner_id, channel_id)
    docs = await collection(db, ENDPOINTS).find(_scope(owner_id, channel_id)).sort("created_at", 1).to_list()
    return [endpoint_out(d) for d in docs]


async def get_endpoint(db: Database, owner_id: str, channel_id: str | None, endpoint_id: str) -> EndpointDoc:
    await _own_scope(db, owner_id, channel_id)
    doc = await collection(db, ENDPOINTS).find_one({"_id": endpoint_id, **_scope(owner_id, channel_id)})
    if doc is None:
        raise not_found("endpoint")
    return doc


async def patch_endpoint(
    db: Database,
    box: SecretBox,
    allowed: list[Network],
    owner_id: str,
    channel_id: str | None,
    endpoint_id: str,
    body: EndpointPatch,
) -> EndpointOut:
    await _own_scope(db, owner_id, channel_id)
    given = body.model_fields_set
    update: Doc = {"updated_at": utcnow()}
    for name in ("url", "event_types", "format", "disabled"):
        if name in given and getattr(body, name) is None:
            raise ApiError(422, "validation_error", f"{_camel(name)} cannot be null", _camel(name))
    if "url" in given and body.url is not None:
        await vet_url(body.url, allowed)
        update["url"] = body.url
    if "filter" in given:
        check_filter(body.filter)
        update["filter_json"] = filter_json(body.filter)
    for name in ("description", "format", "rate_limit"):
        if name in given:
            update[name] = getattr(body, name)
    if body.event_types is not None:
        update["event_types"] = list(body.event_types)
    if "headers" in given:
        update["headers_enc"], update["header_names"] = _sealed_headers(box, body.headers)
    if "auth" in given:
        update["auth_enc"], update["auth_username"] = _sealed_auth(box, body.auth)
    if body.disabled is not None:
        update |= {
            "disabled": body.disabled,
            "disabled_reason": "disabled by owner" if body.disabled else None,
        }
    elif "url" in given:
        # A new URL lifts a disable caused by a 410 answer, as for an agent's default URL.
        update |= {"disabled": False, "disabled_reason": None}
    doc = await collection(db, ENDPOINTS).find_one_and_update(
        {"_id": endpoint_id, **_scope(owner_id, channel_id)},
        {"$set": update},
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        raise not_found("endpoint")
    return endpoint_out(doc)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def delete_endpoint(db: Database, owner_id: str, channel_id: str | None, endpoint_id: str) -> None:
    """Its pending deliveries then fail at their next attempt (the endpoint is gone)."""
    await _own_scope(db, owner_id, channel_id)
    result = await collection(db, ENDPOINTS).delete_one({"_id": endpoint_id, **_scope(owner_id, channel_id)})
    if result.deleted_count == 0:
        raise not_found("endpoint")


async def rotate_secret(
    db: Database,
    box: SecretBox,
    owner_id: str,
    channel_id: str | None,
    endpoint_id: str,
    grace: timedelta,
) -> EndpointSecretRotated:
    """New current secret; the old one stays valid (and signs too) for ``grace``."""
    await _own_scope(db, owner_id, channel_id)
    query = {"_id": endpoint_id, **_scope(owner_id, channel_id)}
    try:
        secret, written = await signing_secrets.rotate(
            collection(db, ENDPOINTS),
            query,
            "signing_secrets",
            box,
            new_signing_secret,
            grace,
            MAX_OLD_SECRETS,
        )
    except ApiError as exc:
        if exc.status == 404:
            raise not_found("endpoint") from None
        raise
    previous = max((as_utc(end) for s in written[1:] if (end := s["expires_at"]) is not None), default=None)
    return EndpointSecretRotated(secret=secret, previous_expires_at=previous)


async def list_deliveries(
    db: Database, owner_id: str, channel_id: str | None, endpoint_id: str
) -> list[DeliveryOut]:
    """The endpoint's latest deliveries, newest first."""
    await get_endpoint(db, owner_id, channel_id, endpoint_id)
    docs = (
        await collection(db, DELIVERIES)
        .find({"endpoint_id": endpoint_id, "owner_id": owner_id}, {"outbox": 0, "body": 0, "headers_enc": 0})
        .sort("_id", DESCENDING)
        .limit(LIST_LIMIT)
        .to_list()
    )
    return [delivery_out(d) for d in docs]
