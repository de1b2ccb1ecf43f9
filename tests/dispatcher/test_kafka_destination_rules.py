"""The rules of Kafka endpoint destinations (sayso_common.kafka_destinations) and the dispatcher's
producers (sayso_dispatcher.producers), as tables; the producer cache against the real broker."""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from pydantic import ValidationError

from sayso_common import otel
from sayso_common.attempts import RETRYABLE_KINDS, ErrorKind
from sayso_common.deliveries import host_key
from sayso_common.documents import KafkaDestinationDoc
from sayso_common.kafka_destinations import (
    display_url,
    is_kafka_url,
    refused_bootstrap,
    split_server,
    topic_problem,
)
from sayso_common.secretbox import SecretBox
from sayso_dispatcher.producers import KafkaDestinations, kafka_error_kind, producer_key, security_options
from sayso_dispatcher.settings import DispatcherSettings
from sayso_dispatcher.worker import attempt_span
from tests.conftest import Infra

KEY = "k" * 40


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("reviews", True),
        ("team.reviews_v2-prod", True),
        ("a", True),
        ("t" * 249, True),
        ("t" * 250, False),
        ("", False),
        (".", False),
        ("..", False),
        ("...", True),  # only "." and ".." themselves are refused
        ("has space", False),
        ("slash/topic", False),
        ("é", False),
        ("tab\t", False),
        ("null\x00", False),
    ],
)
def test_topic_names(name: str, ok: bool) -> None:
    assert (topic_problem(name) is None) is ok


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("kafka:9092", ("kafka", 9092)),
        ("Broker-1.Example.COM:9093", ("broker-1.example.com", 9093)),
        ("10.0.0.5:1", ("10.0.0.5", 1)),
        ("[::1]:9092", ("[::1]", 9092)),
        ("h:65535", ("h", 65535)),
        ("h:65536", None),
        ("h:0", None),
        ("h:", None),
        (":9092", None),
        ("h", None),
        ("h:\uff19\uff10", None),  # digits, but not ASCII ones (full-width)
        ("h:-1", None),
        ("bad host:1", None),
        ("-h:1", None),
        ("h_1:1", None),
        ("a,b:1", None),
        ("::1:9092", None),  # an IPv6 address needs its brackets
    ],
)
def test_bootstrap_servers(server: str, expected: tuple[str, int] | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match=r"must be|invalid"):
            split_server(server)
    else:
        assert split_server(server) == expected


OWN = ["127.0.0.1:9092"]


@pytest.mark.parametrize(
    ("servers", "allowed", "refused"),
    [
        (["127.0.0.1:9092"], [], False),  # this cluster, named
        (["127.0.0.1:9093"], [], True),  # another port of the same host is another cluster
        (["kafka.example.com:9092"], [], True),  # default: only this cluster
        (["kafka.example.com:9092"], ["kafka.example.com"], False),  # a host: any port
        (["KAFKA.example.com:9092"], ["kafka.example.com"], False),
        (["kafka.example.com:9092"], ["kafka.example.com:9093"], True),  # host:port: that port only
        (["kafka.example.com:9093"], ["kafka.example.com:9093"], False),
        (["kafka.example.com:9092", "evil.example:9092"], ["kafka.example.com"], True),  # every one
        (["a.example:1", "b.example:2"], ["a.example", "b.example:2"], False),
        (["kafka.example.com.evil:9092"], ["kafka.example.com"], True),  # no suffix matching
    ],
)
def test_allow_list(servers: list[str], allowed: list[str], refused: bool) -> None:
    reason = refused_bootstrap(servers, OWN, allowed)
    assert (reason is not None) is refused
    if reason:
        assert "SAYSO_DISPATCHER_KAFKA_ALLOWED_HOSTS" in reason


def test_the_allow_list_setting_is_checked_at_start() -> None:
    settings = DispatcherSettings(secret_key=KEY, dispatcher_kafka_allowed_hosts="a.example, b.example:9093")
    assert settings.dispatcher_kafka_allowed_hosts == ["a.example", "b.example:9093"]
    with pytest.raises(ValidationError, match="host or host:port"):
        DispatcherSettings(secret_key=KEY, dispatcher_kafka_allowed_hosts="kafka://a.example")


@pytest.mark.parametrize(
    ("topic", "servers", "url", "host"),
    [
        ("t", None, "kafka:///t", "kafka:local"),
        ("t", ["A:1", "b:2"], "kafka://A:1,b:2/t", "kafka:a:1,b:2"),
    ],
)
def test_display_url_and_lane(topic: str, servers: list[str] | None, url: str, host: str) -> None:
    assert display_url(topic, servers) == url
    assert is_kafka_url(url)
    assert host_key(url) == host
    assert not is_kafka_url("https://kafka.example.com/t")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (TimeoutError(), ErrorKind.TIMEOUT),
        (KafkaTimeoutError(), ErrorKind.TIMEOUT),
        (KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]"), ErrorKind.CONNECT),
        (ConnectionRefusedError(), ErrorKind.CONNECT),
        (NotLeaderForPartitionError(), ErrorKind.CONNECT),
        (UnknownTopicOrPartitionError(), ErrorKind.CONNECT),
        (TopicAuthorizationFailedError(), ErrorKind.CONNECT),  # fixed by the owner: retried
        (ssl.SSLCertVerificationError(), ErrorKind.TLS),
        (MessageSizeTooLargeError(), ErrorKind.INVALID_REQUEST),
        (ValueError("bad ssl settings"), ErrorKind.INVALID_REQUEST),
        (RuntimeError("unexpected"), ErrorKind.INTERNAL),
    ],
)
def test_kafka_error_kinds(exc: Exception, kind: ErrorKind) -> None:
    assert kafka_error_kind(exc) is kind


def sealed(box: SecretBox, **secrets: str) -> str:
    return box.seal(json.dumps(secrets))


def test_security_options_and_producer_sharing() -> None:
    box = SecretBox([KEY])
    sasl: KafkaDestinationDoc = {
        "topic": "t",
        "bootstrap": ["k.example:9093"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "username": "svc",
        "secrets_enc": sealed(box, password="pw"),
    }
    options: dict[str, Any] = security_options(sasl, box.open)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", "pw")
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert security_options({"topic": "t", "bootstrap": ["k.example:9092"]}, box.open) == {
        "security_protocol": "PLAINTEXT"
    }

    # Another topic on the same cluster with the same credentials shares the producer (even
    # sealed again); other credentials or servers do not.
    def key(destination: KafkaDestinationDoc) -> object:
        return producer_key(destination, box.open)

    assert key({**sasl, "topic": "u", "secrets_enc": sealed(box, password="pw")}) == key(sasl)
    assert key({**sasl, "secrets_enc": sealed(box, password="other")}) != key(sasl)
    assert key({**sasl, "username": "other"}) != key(sasl)
    assert key({**sasl, "sasl_mechanism": "PLAIN"}) != key(sasl)
    assert key({**sasl, "bootstrap": ["k2.example:9093"]}) != key(sasl)
    assert key({"topic": "t"}) == key({"topic": "u", "bootstrap": None})
    assert "pw" not in repr(key(sasl))


async def test_producers_are_cached_per_cluster_and_closed_when_idle(infra: Infra) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic("endpoints.producer-cache-a", 1, 1), NewTopic("endpoints.producer-cache-b", 1, 1)]
        )
    finally:
        await admin.close()
    settings = DispatcherSettings(
        secret_key=KEY,
        kafka_bootstrap=infra.kafka_bootstrap,
        dispatcher_kafka_idle_seconds=0.05,
    )
    box = SecretBox([KEY])
    kafka = KafkaDestinations(settings, box.open, "test")
    named: KafkaDestinationDoc = {"topic": "endpoints.producer-cache-a", "bootstrap": [infra.kafka_bootstrap]}
    try:
        for topic in ("endpoints.producer-cache-a", "endpoints.producer-cache-b"):
            attempt = await kafka.produce({**named, "topic": topic}, b"k", b"{}", {"webhook-id": "x"})
            assert attempt.error_kind is None, attempt.error
        own = await kafka.produce({"topic": "endpoints.producer-cache-a"}, b"k", b"{}", {})
        assert own.error_kind is None, own.error
        assert kafka.open_producers == 2  # this cluster's, and the one for its servers by name
        await asyncio.sleep(0.1)
        await kafka.close_idle()
        assert kafka.open_producers == 0
        again = await kafka.produce(named, b"k", b"{}", {})
        assert again.error_kind is None, again.error
        assert kafka.open_producers == 1
    finally:
        await kafka.close()
    assert kafka.open_producers == 0


def test_an_attempt_span_names_its_transport() -> None:
    doc: Any = {"url": "https://hooks.example.com/x"}
    assert attempt_span(doc, "POST", None) == (
        "POST",
        otel.Kind.CLIENT,
        {"http.request.method": "POST", "server.address": "hooks.example.com"},
    )
    # A Kafka delivery's URL names servers a URL parser refuses ("a:1,b:2"): never parsed.
    kafka: Any = {"url": "kafka://a:1,b:2/reviews"}
    assert attempt_span(kafka, "POST", {"topic": "reviews", "bootstrap": ["a:1", "b:2"]}) == (
        "send reviews",
        otel.Kind.PRODUCER,
        {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": "reviews",
        },
    )


async def test_credentials_no_key_opens_are_a_retried_internal_error() -> None:
    """SAYSO_SECRET_KEYS lost the key that sealed them: retried (as the HTTP path's unreadable
    auth is), not an invalid request that fails the delivery at once and counts toward disabling
    the endpoint; and nothing of the decoder's reply in the attempt."""
    settings = DispatcherSettings(
        secret_key=KEY, kafka_bootstrap="127.0.0.1:1", dispatcher_kafka_allowed_hosts=["127.0.0.1"]
    )
    sealed_elsewhere = SecretBox(["x" * 40]).seal(json.dumps({"password": "pw"}))
    kafka = KafkaDestinations(settings, SecretBox([KEY]).open, "test")
    destination: KafkaDestinationDoc = {
        "topic": "t",
        "bootstrap": ["127.0.0.1:9"],
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "username": "u",
        "secrets_enc": sealed_elsewhere,
    }
    try:
        attempt = await kafka.produce(destination, b"k", b"{}", {})
    finally:
        await kafka.close()
    assert attempt.error_kind is ErrorKind.INTERNAL
    assert (
        attempt.error
        == "UnreadableCredentialsError: the endpoint's stored Kafka credentials cannot be opened"
    )
    assert ErrorKind.INTERNAL in RETRYABLE_KINDS
