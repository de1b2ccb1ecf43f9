"""Webhook endpoints (:mod:`sayso_common.endpoints`): a channel's (``/agents/{id}/endpoints``) or
an account's (``/endpoints``). Owner only: a channel's endpoints are its owner's (members and
others get 404, as for every channel setting).

Each endpoint has its own signing secret, shown once (on create and on rotation) and stored
sealed like the agents' (:mod:`sayso_common.signing_secrets`); headers and Basic auth are sealed
too and shown masked. The URL passes the SSRF rules when saved (the dispatcher checks it again
at every send: DNS answers change), the filter compiles or the save gets 422 naming where.

An endpoint is an HTTP URL (``url``) or a Kafka topic (``destination``, and then no ``url``:
:mod:`sayso_common.kafka_destinations`). A new ``destination`` body field rather than a
``kafka://`` URL: a topic on another cluster carries SASL/TLS settings that have no place in a
URL (a password in a URL ends up in logs and shell histories), each part gets its own 422 naming
it, and ``url`` keeps meaning "where to POST" for every client written before. Such an endpoint
still answers with a ``url`` (``kafka:///topic``, read-only) so those clients can list it.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator
from pymongo import DESCENDING, ReturnDocument
from yarl import URL

from sayso_api.agents import get_agent
from sayso_api.schemas import Headers, Out, WebhookAuthIn, _StrictIn, check_headers, check_url
from sayso_api.webhooks import LIST_LIMIT, MAX_OLD_SECRETS, DeliveryOut, delivery_out
from sayso_common import incidents, signing_secrets
from sayso_common.clock import as_utc, utcnow
from sayso_common.documents import EndpointDoc, KafkaDestinationDoc
from sayso_common.endpoints import (
    DEFAULT_ENDPOINT_EVENTS,
    ENDPOINT_EVENTS,
    ENDPOINT_FORMATS,
    MAX_DESCRIPTION_CHARS,
    MAX_ENDPOINTS,
    MAX_RATE_LIMIT,
    EndpointFormat,
    FilterError,
    check_pattern,
    compile_endpoint_filter,
    filter_json,
    groups,
    stored_filter,
)
from sayso_common.errors import ConflictError, ErrorCode, InvalidError, NotFoundError
from sayso_common.ids import new_id
from sayso_common.kafka_destinations import (
    DEFAULT_TOPIC_PREFIX,
    MAX_BOOTSTRAP_SERVERS,
    SaslMechanism,
    SecurityProtocol,
    display_url,
    refused_bootstrap,
    refused_topic,
    server_list,
    split_server,
    topic_problem,
)
from sayso_common.mongo import DELIVERIES, ENDPOINTS, INCIDENTS, Database, Doc, collection
from sayso_common.secretbox import SecretBox
from sayso_common.ssrf import AddressRefusedError, Network, ip_literal, vet_host
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
EVENT_TYPES_DOC = (
    f"Event types to send: {', '.join(ENDPOINT_EVENTS)}, or a group ({', '.join(groups(ENDPOINT_EVENTS))}); "
    "default review:responded and review:expired"
)
# An event type or a group of them (sayso_common.endpoints.check_pattern): 422 names its index.
EventPattern = Annotated[str, AfterValidator(check_pattern)]
# Every name and every group once; a longer list repeats itself.
MAX_EVENT_TYPES = len(ENDPOINT_EVENTS) + len(groups(ENDPOINT_EVENTS))


def _topic(value: str) -> str:
    problem = topic_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _server(value: str) -> str:
    split_server(value)  # its ValueError names what is wrong
    return value


class KafkaSecurityIn(_StrictIn):
    """How to reach another cluster: SASL credentials and TLS (sealed; never shown back)."""

    protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; required with SASL_*"
    )
    username: str | None = Field(default=None, min_length=1, max_length=255)
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    ca_cert: str | None = Field(
        default=None,
        max_length=65536,
        description="PEM CA certificates the brokers are checked against (SSL, SASL_SSL); default: the system's",
    )


class KafkaDestinationIn(_StrictIn):
    type: Literal["kafka"] = Field(description="kafka: deliveries are records on a Kafka topic")
    topic: Annotated[str, AfterValidator(_topic)] = Field(description="The topic (Kafka's naming rules)")
    bootstrap_servers: list[Annotated[str, AfterValidator(_server)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_BOOTSTRAP_SERVERS,
        description="host:port of another cluster's brokers (in the allow-list); null: this cluster",
    )
    security: KafkaSecurityIn | None = Field(default=None, description="Only with bootstrapServers")


class EndpointIn(_StrictIn):
    url: str | None = Field(
        default=None, description="Where deliveries are POSTed (http or https); or give destination"
    )
    destination: KafkaDestinationIn | None = Field(
        default=None, description="A Kafka topic to deliver to instead of a URL (then leave url out)"
    )
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    event_types: list[EventPattern] = Field(
        default_factory=lambda: [str(t) for t in DEFAULT_ENDPOINT_EVENTS],
        min_length=1,
        max_length=MAX_EVENT_TYPES,
        description=EVENT_TYPES_DOC,
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
    rateLimit). A url makes it an HTTP endpoint, a destination a Kafka one (given whole)."""

    url: str | None = None
    destination: KafkaDestinationIn | None = None
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    event_types: list[EventPattern] | None = Field(
        default=None, min_length=1, max_length=MAX_EVENT_TYPES, description=EVENT_TYPES_DOC
    )
    filter: dict[str, Any] | None = Field(default=None, description=FILTER_DOC)
    format: EndpointFormat | None = None
    headers: Headers | None = None
    auth: WebhookAuthIn | None = None
    rate_limit: int | None = Field(default=None, ge=1, le=MAX_RATE_LIMIT)
    disabled: bool | None = None

    _url = field_validator("url")(check_url)
    _headers = field_validator("headers")(check_headers)


class KafkaSecurityOut(Out):
    protocol: str
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = Field(default=None, description="*** when one is set; never shown")
    ca_cert: str | None = Field(default=None, description="*** when one is set")


class KafkaDestinationOut(Out):
    type: Literal["kafka"] = "kafka"
    topic: str
    bootstrap_servers: list[str] | None = Field(default=None, description="null: this cluster")
    security: KafkaSecurityOut | None = None


class EndpointOut(Out):
    id: str
    channel_id: str | None = Field(description="The channel; null for an account-wide endpoint")
    url: str = Field(description="Where deliveries go: the HTTP URL, or kafka://[servers]/topic")
    destination: KafkaDestinationOut | None = Field(
        default=None, description="The Kafka topic deliveries go to; null for an HTTP endpoint"
    )
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


class EndpointChoices(Out):
    """What an endpoint may be set to, so forms (the inbox's settings) offer exactly the
    server's choices instead of a copy that falls behind."""

    event_types: list[str] = Field(description="Every event type an endpoint can subscribe to")
    groups: list[str] = Field(
        description="The groups of those types (review:* …), which take later types too"
    )
    default_event_types: list[str] = Field(description="The types a new endpoint gets when none are given")
    formats: list[str] = Field(description="Body formats")
    max_rate_limit: int = Field(description="The highest rateLimit (deliveries per second)")
    max_endpoints: int = Field(description="Endpoints per channel, and account-wide endpoints per account")


def endpoint_choices() -> EndpointChoices:
    return EndpointChoices(
        event_types=list(ENDPOINT_EVENTS),
        groups=groups(ENDPOINT_EVENTS),
        default_event_types=list(DEFAULT_ENDPOINT_EVENTS),
        formats=list(ENDPOINT_FORMATS),
        max_rate_limit=MAX_RATE_LIMIT,
        max_endpoints=MAX_ENDPOINTS,
    )


def endpoint_out(doc: EndpointDoc) -> EndpointOut:
    user = doc.get("auth_username")
    return EndpointOut(
        id=doc["_id"],
        channel_id=doc["channel_id"],
        url=doc["url"],
        destination=_destination_out(doc.get("kafka")),
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


def _destination_out(kafka: KafkaDestinationDoc | None) -> KafkaDestinationOut | None:
    if not kafka:
        return None
    security = None
    if kafka.get("bootstrap") and kafka.get("security_protocol"):
        security = KafkaSecurityOut(
            protocol=kafka.get("security_protocol", "PLAINTEXT"),
            sasl_mechanism=kafka.get("sasl_mechanism"),
            username=kafka.get("username"),
            password="***" if kafka.get("has_password") else None,
            ca_cert="***" if kafka.get("has_ca_cert") else None,
        )
    return KafkaDestinationOut(
        topic=kafka["topic"], bootstrap_servers=kafka.get("bootstrap"), security=security
    )


# --- checks -----------------------------------------------------------------------------------


def _invalid(field: str, message: str) -> InvalidError:
    return InvalidError(ErrorCode.VALIDATION_ERROR, f"{field}: {message}", field)


def check_destination(dest: KafkaDestinationIn, reach: Reach) -> None:
    """422 naming the field for what the body's shape cannot say: a topic of this cluster's that
    is not a tenant's, security settings that do not fit together, a CA that does not load, a
    cluster not in the allow-list."""
    servers = dest.bootstrap_servers
    security = dest.security
    own = server_list(reach.own_bootstrap)
    refused = refused_topic(dest.topic, servers, own, reach.kafka_topic_prefix, reach.own_topics)
    if refused:
        raise InvalidError(ErrorCode.DESTINATION_REFUSED, f"refused: {refused}", "destination.topic")
    if servers is None:
        if security is not None:
            raise _invalid(
                "destination.security", "only with bootstrapServers (this cluster uses its own settings)"
            )
        return
    if security is not None:
        sasl = security.protocol.startswith("SASL_")
        for name, value in (
            ("saslMechanism", security.sasl_mechanism),
            ("username", security.username),
            ("password", security.password),
        ):
            if sasl and value is None:
                raise _invalid(f"destination.security.{name}", f"required with protocol {security.protocol}")
            if not sasl and value is not None:
                raise _invalid(
                    f"destination.security.{name}", "only with protocol SASL_PLAINTEXT or SASL_SSL"
                )
        if security.ca_cert is not None:
            if not security.protocol.endswith("SSL"):
                raise _invalid("destination.security.caCert", "only with protocol SSL or SASL_SSL")
            try:
                ssl.create_default_context(cadata=security.ca_cert)
            except (ssl.SSLError, ValueError):
                raise _invalid("destination.security.caCert", "is not a PEM certificate") from None
    refused = refused_bootstrap(servers, own, reach.kafka_hosts)
    if refused:
        raise InvalidError(
            ErrorCode.DESTINATION_REFUSED, f"refused: {refused}", "destination.bootstrapServers"
        )


def kafka_doc(box: SecretBox, dest: KafkaDestinationIn) -> KafkaDestinationDoc:
    """How a destination is stored: the password and CA sealed, the rest in the clear."""
    security = dest.security
    doc: KafkaDestinationDoc = {"topic": dest.topic, "bootstrap": dest.bootstrap_servers}
    if dest.bootstrap_servers is None:
        return doc
    if security is None:
        security = KafkaSecurityIn()
    secrets: dict[str, str] = {}
    if security.password is not None:
        secrets["password"] = security.password
    if security.ca_cert is not None:
        secrets["caCert"] = security.ca_cert
    doc |= {
        "security_protocol": security.protocol,
        "sasl_mechanism": security.sasl_mechanism,
        "username": security.username,
        "secrets_enc": box.seal(json.dumps(secrets)) if secrets else None,
        "has_password": security.password is not None,
        "has_ca_cert": security.ca_cert is not None,
    }
    return doc


def _where(url: str | None, destination: KafkaDestinationIn | None) -> None:
    if url is not None and destination is not None:
        raise _invalid("destination", "give url (an HTTP endpoint) or destination (a Kafka topic), not both")
    if url is None and destination is None:
        raise _invalid("url", "required (or destination, for a Kafka topic)")


def check_filter(spec: dict[str, Any] | None) -> None:
    try:
        compile_endpoint_filter(spec)
    except FilterError as exc:
        field = f"filter.{exc.where}" if exc.where else "filter"
        raise InvalidError(ErrorCode.INVALID_FILTER, exc.problem, field) from None


async def vet_url(url: str, allowed: list[Network]) -> None:
    """422 if the SSRF guard would refuse ``url`` now: an internal IP literal, or a name that
    resolves to an internal address. A name that does not resolve (yet) is accepted: the
    dispatcher's guard decides at every send."""
    refused = ssrf_refusal(url, allowed, ALLOW_LIST_SETTING)
    if refused:
        raise InvalidError(ErrorCode.URL_REFUSED, f"refused by the SSRF guard: {refused}", "url")
    name = URL(url).raw_host or ""
    if ip_literal(name) is not None:
        return  # an address, checked above
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            await vet_host(name, allowed, ALLOW_LIST_SETTING)
    except AddressRefusedError as exc:
        raise InvalidError(ErrorCode.URL_REFUSED, f"refused by the SSRF guard: {exc.reason}", "url") from None
    except UnicodeError:
        # The IDNA codec refuses it before any lookup: an empty label, or one over 63 characters.
        raise _invalid("url", "the host is not a valid DNS name") from None
    except (OSError, TimeoutError):
        pass


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


@dataclass(frozen=True)
class Reach:
    """Where endpoints may send: the SSRF allow-list (HTTP), this cluster's bootstrap and the
    other clusters' allowed hosts (Kafka)."""

    networks: list[Network]
    own_bootstrap: str = ""
    kafka_hosts: list[str] = field(default_factory=list)
    # On this cluster: the prefix a topic must start with, and the stack's own topics.
    kafka_topic_prefix: str = DEFAULT_TOPIC_PREFIX
    own_topics: list[str] = field(default_factory=list)


async def _vet(
    reach: Reach, url: str | None, destination: KafkaDestinationIn | None, auth: WebhookAuthIn | None
) -> None:
    if destination is not None:
        check_destination(destination, reach)
        if auth is not None:
            raise _invalid("auth", "HTTP Basic credentials do not apply to a Kafka destination")
    elif url is not None:
        await vet_url(url, reach.networks)


async def create_endpoint(
    db: Database,
    box: SecretBox,
    reach: Reach,
    owner_id: str,
    channel_id: str | None,
    body: EndpointIn,
) -> EndpointCreated:
    await _own_scope(db, owner_id, channel_id)
    _where(body.url, body.destination)
    check_filter(body.filter)
    await _vet(reach, body.url, body.destination, body.auth)
    coll = collection(db, ENDPOINTS)
    if await coll.count_documents(_scope(owner_id, channel_id), limit=MAX_ENDPOINTS) >= MAX_ENDPOINTS:
        where = "this channel" if channel_id else "this account (account-wide)"
        raise ConflictError(
            ErrorCode.TOO_MANY_ENDPOINTS, f"{where} already has {MAX_ENDPOINTS} endpoints, the most allowed"
        )
    now = utcnow()
    secret = new_signing_secret()
    doc: EndpointDoc = {
        "_id": new_id("ep"),
        "owner_id": owner_id,
        "channel_id": channel_id,
        "url": body.url or "",
        "kafka": None,
        "description": body.description,
        "event_types": list(dict.fromkeys(body.event_types)),
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
    if body.destination is not None:
        doc["kafka"] = kafka_doc(box, body.destination)
        doc["url"] = display_url(body.destination.topic, body.destination.bootstrap_servers)
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
        raise NotFoundError("endpoint")
    return doc


async def patch_endpoint(
    db: Database,
    box: SecretBox,
    reach: Reach,
    owner_id: str,
    channel_id: str | None,
    endpoint_id: str,
    body: EndpointPatch,
) -> EndpointOut:
    given = body.model_fields_set
    update: Doc = {"updated_at": utcnow()}
    for name in ("url", "destination", "event_types", "format", "disabled"):
        if name in given and getattr(body, name) is None:
            raise InvalidError(ErrorCode.VALIDATION_ERROR, f"{_camel(name)} cannot be null", _camel(name))
    if body.url is not None and body.destination is not None:
        _where(body.url, body.destination)
    current = await get_endpoint(db, owner_id, channel_id, endpoint_id)
    # What it will be after the change: a Kafka one takes no Basic auth.
    kafka_after = body.destination is not None or (body.url is None and bool(current.get("kafka")))
    auth_after = body.auth if "auth" in given else None
    if kafka_after and auth_after is None and "auth" not in given and current.get("auth_enc"):
        raise _invalid("auth", "HTTP Basic credentials do not apply to a Kafka destination: set auth to null")
    if kafka_after and body.destination is None:
        if auth_after is not None:
            raise _invalid("auth", "HTTP Basic credentials do not apply to a Kafka destination")
    else:
        await _vet(reach, body.url, body.destination, auth_after)
    if body.url is not None:
        update["url"] = body.url
        update["kafka"] = None
    if body.destination is not None:
        update["kafka"] = kafka_doc(box, body.destination)
        update["url"] = display_url(body.destination.topic, body.destination.bootstrap_servers)
    if "filter" in given:
        check_filter(body.filter)
        update["filter_json"] = filter_json(body.filter)
    for name in ("description", "format", "rate_limit"):
        if name in given:
            update[name] = getattr(body, name)
    if body.event_types is not None:
        update["event_types"] = list(dict.fromkeys(body.event_types))
    if "headers" in given:
        update["headers_enc"], update["header_names"] = _sealed_headers(box, body.headers)
    if "auth" in given:
        update["auth_enc"], update["auth_username"] = _sealed_auth(box, body.auth)
    if body.disabled is not None:
        update |= {
            "disabled": body.disabled,
            "disabled_reason": "disabled by owner" if body.disabled else None,
            "auto_disabled_at": None,
        }
    elif "url" in given or "destination" in given:
        # A new URL lifts a disable caused by a 410 answer, as for an agent's default URL.
        update |= {"disabled": False, "disabled_reason": None, "auto_disabled_at": None}
    doc = await collection(db, ENDPOINTS).find_one_and_update(
        {"_id": endpoint_id, **_scope(owner_id, channel_id)},
        {"$set": update},
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        raise NotFoundError("endpoint")
    if update.get("disabled") is False:
        # Its incidents are over: the next failure is told again (sayso_common.incidents).
        await collection(db, INCIDENTS).update_many(*incidents.re_enabled(utcnow(), endpoint_id=endpoint_id))
    return endpoint_out(doc)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def delete_endpoint(db: Database, owner_id: str, channel_id: str | None, endpoint_id: str) -> None:
    """Its pending deliveries then fail at their next attempt (the endpoint is gone)."""
    await _own_scope(db, owner_id, channel_id)
    result = await collection(db, ENDPOINTS).delete_one({"_id": endpoint_id, **_scope(owner_id, channel_id)})
    if result.deleted_count == 0:
        raise NotFoundError("endpoint")


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
    except NotFoundError:
        raise NotFoundError("endpoint") from None
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
