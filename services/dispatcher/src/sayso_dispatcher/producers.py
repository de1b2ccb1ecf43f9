"""The Kafka side of delivery: an endpoint whose destination is a topic
(:mod:`sayso_common.kafka_destinations`) gets its signed body as one record, the webhook headers
as record headers, the channel id as key. Like :class:`sayso_dispatcher.sender.Sender`, a produce
becomes an ``Attempt`` (never an exception): acknowledged (acks=all) is delivered, a broker error
or no acknowledgement in time is retried, a cluster outside the allow-list is refused at once.

Producers are made on first use and cached per cluster and security settings: one for this
cluster, one per other (bootstrap servers, security) in use. One unused for
``SAYSO_DISPATCHER_KAFKA_IDLE_SECONDS`` is closed, and all are closed at shutdown. Idempotence
stays off (Tansu, the local broker, has no idempotent producer): a retry after a lost
acknowledgement may write the record twice, with the same ``webhook-id`` to dedupe on, as an
HTTP retry may.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError, RequestTimedOutError
from aiokafka.helpers import create_ssl_context

from sayso_common.attempts import ErrorKind
from sayso_common.clock import utcnow
from sayso_common.deliveries import Attempt
from sayso_common.documents import KafkaDestinationDoc
from sayso_common.kafka import create_producer
from sayso_common.kafka_destinations import refused_bootstrap, refused_topic, server_list
from sayso_common.topics import all_topics
from sayso_dispatcher.settings import DispatcherSettings

log = logging.getLogger(__name__)

# Producers for other clusters kept at once; past it the least recently used is closed.
MAX_PRODUCERS = 64
# The largest record (Kafka's default message.max.bytes is about the same).
MAX_RECORD_BYTES = 1024 * 1024

ProducerKey = tuple[tuple[str, ...], str]


def kafka_error_kind(exc: BaseException) -> ErrorKind:
    """The kind of an exception raised while producing one record (or making its producer)."""
    if isinstance(exc, TimeoutError | KafkaTimeoutError | RequestTimedOutError):
        return ErrorKind.TIMEOUT
    if isinstance(exc, ssl.SSLError):
        return ErrorKind.TLS
    if isinstance(exc, MessageSizeTooLargeError):
        return ErrorKind.INVALID_REQUEST  # the same record will never fit
    if isinstance(exc, KafkaError | OSError):
        # Unreachable, not the leader, not authorised, unknown topic…: the broker's to fix, retried.
        return ErrorKind.CONNECT
    if isinstance(exc, ValueError | TypeError):
        return ErrorKind.INVALID_REQUEST
    return ErrorKind.INTERNAL


def describe(kind: ErrorKind, exc: BaseException) -> str:
    """The attempt's error text: the exception's class and message (aiokafka names servers and
    topics there, never credentials)."""
    if kind is ErrorKind.TIMEOUT:
        return "no acknowledgement from the broker within the timeout"
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def producer_key(destination: KafkaDestinationDoc, opener: Callable[[str], str]) -> ProducerKey:
    """Endpoints that name the same cluster with the same settings share a producer. The opened
    secrets go into a hash (the key stays in memory; the same secrets sealed twice read
    differently)."""
    servers = tuple(destination.get("bootstrap") or ())
    if not servers:
        return ((), "")
    sealed = destination.get("secrets_enc")
    settings = [
        destination.get("security_protocol") or "PLAINTEXT",
        destination.get("sasl_mechanism"),
        destination.get("username"),
        opener(sealed) if sealed else None,
    ]
    return servers, hashlib.sha256(json.dumps(settings).encode()).hexdigest()


def security_options(destination: KafkaDestinationDoc, opener: Callable[[str], str]) -> dict[str, object]:
    """aiokafka's producer arguments for the destination's security settings (opened here, at
    the moment the producer is made, and kept nowhere else)."""
    protocol = destination.get("security_protocol") or "PLAINTEXT"
    sealed = destination.get("secrets_enc")
    secrets = json.loads(opener(sealed)) if sealed else {}
    options: dict[str, object] = {"security_protocol": protocol}
    if protocol.endswith("SSL"):
        options["ssl_context"] = create_ssl_context(cadata=secrets.get("caCert"))
    if protocol.startswith("SASL_"):
        options |= {
            "sasl_mechanism": destination.get("sasl_mechanism") or "PLAIN",
            "sasl_plain_username": destination.get("username"),
            "sasl_plain_password": secrets.get("password"),
        }
    return options


async def _stop(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except Exception:
        log.warning("closing a Kafka endpoint producer failed", exc_info=True)


class UnreadableCredentialsError(RuntimeError):
    """A destination's sealed credentials no configured key opens (``SAYSO_SECRET_KEYS`` lost the
    old key): an internal error, retried as the HTTP path's is, never an invalid request that
    fails the delivery (and counts toward disabling the endpoint) at once."""


@dataclass
class _Cached:
    producer: AIOKafkaProducer
    used: float


class KafkaDestinations:
    def __init__(self, settings: DispatcherSettings, opener: Callable[[str], str], instance: str) -> None:
        self._settings = settings
        self._own = server_list(settings.kafka_bootstrap)
        self._allowed = list(settings.dispatcher_kafka_allowed_hosts)
        self._topic_prefix = settings.dispatcher_kafka_topic_prefix
        self._own_topics = all_topics(settings.topic_prefix)
        self._opener = opener
        self._instance = instance
        self._timeout = settings.timeout_seconds
        self._idle = settings.dispatcher_kafka_idle_seconds
        self._producers: dict[ProducerKey, _Cached] = {}
        self._starting: dict[ProducerKey, asyncio.Lock] = {}

    def _open(self, sealed: str) -> str:
        try:
            return self._opener(sealed)
        except (ValueError, TypeError):
            # ``from None``: whatever the decoder said stays out of the logs and the attempt.
            raise UnreadableCredentialsError(
                "the endpoint's stored Kafka credentials cannot be opened"
            ) from None

    @property
    def open_producers(self) -> int:
        return len(self._producers)

    async def produce(
        self, destination: KafkaDestinationDoc, key: bytes, body: bytes, headers: Mapping[str, str]
    ) -> Attempt:
        at = utcnow()
        started = time.perf_counter()

        def done(kind: ErrorKind | None = None, error: str | None = None) -> Attempt:
            return Attempt(
                at=at, duration_ms=(time.perf_counter() - started) * 1000, status_code=None,
                error_kind=kind, error=error, body=None, by=self._instance,
            )  # fmt: skip

        servers = destination.get("bootstrap")
        # Checked at every send too: the settings may have narrowed since the endpoint was saved.
        refused = refused_topic(
            destination["topic"], servers, self._own, self._topic_prefix, self._own_topics
        )
        if not refused and servers:
            refused = refused_bootstrap(servers, self._own, self._allowed)
        if refused:
            return done(ErrorKind.SSRF, f"refused: {refused}")
        # Lower-case names: record headers are matched exactly, and HTTP's are any case.
        record_headers = [(name.lower(), value.encode()) for name, value in headers.items()]
        try:
            async with asyncio.timeout(self._timeout):
                producer = await self._producer(destination)
                await producer.send_and_wait(destination["topic"], body, key=key, headers=record_headers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            kind = kafka_error_kind(exc)
            return done(kind, describe(kind, exc))
        return done()

    async def _producer(self, destination: KafkaDestinationDoc) -> AIOKafkaProducer:
        key = producer_key(destination, self._open)
        cached = self._producers.get(key)
        if cached is None:
            # One start per cluster at a time: deliveries that arrive together share it.
            async with self._starting.setdefault(key, asyncio.Lock()):
                cached = self._producers.get(key)
                if cached is None:
                    started = _Cached(await self._start(destination), time.monotonic())
                    await self._make_room()
                    cached = self._producers.setdefault(key, started)
                    if cached is not started:
                        # A close dropped this key's lock while we started, and a second start
                        # stored first: keep one producer, stop ours (none left running unowned).
                        await _stop(started.producer)
        cached.used = time.monotonic()
        return cached.producer

    async def _start(self, destination: KafkaDestinationDoc) -> AIOKafkaProducer:
        servers = destination.get("bootstrap")
        if servers:
            producer = AIOKafkaProducer(
                bootstrap_servers=list(servers),
                client_id=f"{self._instance}-endpoints",
                acks="all",
                enable_idempotence=False,
                linger_ms=0,
                request_timeout_ms=int(self._timeout * 1000),
                retry_backoff_ms=200,
                max_request_size=MAX_RECORD_BYTES,
                **security_options(destination, self._open),
            )
        else:
            producer = create_producer(self._settings)
        try:
            await producer.start()
        except BaseException:
            # A cluster that is down is tried again at the next attempt, by a new producer.
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        return producer

    async def _make_room(self) -> None:
        while len(self._producers) >= MAX_PRODUCERS:
            oldest = min(self._producers, key=lambda k: self._producers[k].used)
            await self._close(oldest)

    async def _close(self, key: ProducerKey) -> None:
        cached = self._producers.pop(key, None)
        self._starting.pop(key, None)
        if cached is not None:
            await _stop(cached.producer)

    async def close_idle(self) -> None:
        """Close the producers unused for the idle time."""
        limit = time.monotonic() - self._idle
        idle = [key for key, cached in self._producers.items() if cached.used < limit]
        for key in idle:
            await self._close(key)

    async def close(self) -> None:
        for key in list(self._producers):
            await self._close(key)
