"""Webhook endpoints whose destination is a Kafka topic (issue #31, 4a): what the API accepts,
refuses (422 naming the field) and shows back, on the API app with the real MongoDB. Delivery
itself is tests/dispatcher/test_kafka_destinations.py."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pymongo import AsyncMongoClient

from sayso_common.mongo import ENDPOINTS
from tests.support.inprocess import InProcessApi
from tests.support.stack import Owner

# Allowed in the test settings (SAYSO_DISPATCHER_KAFKA_ALLOWED_HOSTS=127.0.0.1, tests/conftest.py).
ALLOWED = "127.0.0.1:19092"


def ca_pem() -> str:
    """A self-signed CA certificate, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def kafka(**fields: Any) -> dict[str, Any]:
    return {"type": "kafka", "topic": "endpoints.events", **fields}


SASL = {"protocol": "SASL_PLAINTEXT", "saslMechanism": "SCRAM-SHA-256", "username": "u", "password": "p"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"destination": kafka(topic="has space")}, "destination.topic"),
        ({"destination": kafka(topic="")}, "destination.topic"),
        ({"destination": kafka(topic="..")}, "destination.topic"),
        ({"destination": kafka(topic="t" * 250)}, "destination.topic"),
        ({"destination": kafka(topic="é")}, "destination.topic"),
        ({"destination": kafka(type="sqs")}, "destination.type"),
        ({"destination": {"topic": "t"}}, "destination.type"),
        ({"destination": kafka(partition=1)}, "destination.partition"),
        ({"destination": kafka(bootstrapServers=[])}, "destination.bootstrapServers"),
        ({"destination": kafka(bootstrapServers="127.0.0.1:9092")}, "destination.bootstrapServers"),
        ({"destination": kafka(bootstrapServers=["nohost"])}, "destination.bootstrapServers[0]"),
        ({"destination": kafka(bootstrapServers=["127.0.0.1:0"])}, "destination.bootstrapServers[0]"),
        ({"destination": kafka(bootstrapServers=[ALLOWED, "bad host:1"])}, "destination.bootstrapServers[1]"),
        ({"destination": kafka(bootstrapServers=["h:70000"])}, "destination.bootstrapServers[0]"),
        (
            {"destination": kafka(bootstrapServers=[f"h{i}:1" for i in range(11)])},
            "destination.bootstrapServers",
        ),
        # A cluster that is neither this one nor in the allow-list.
        ({"destination": kafka(bootstrapServers=["kafka.example.com:9092"])}, "destination.bootstrapServers"),
        ({"destination": kafka(bootstrapServers=[ALLOWED, "10.0.0.5:9092"])}, "destination.bootstrapServers"),
        # Security settings that do not fit together.
        ({"destination": kafka(security={"protocol": "SSL"})}, "destination.security"),
        (
            {"destination": kafka(bootstrapServers=[ALLOWED], security={"protocol": "TLS"})},
            "destination.security.protocol",
        ),
        (
            {"destination": kafka(bootstrapServers=[ALLOWED], security={**SASL, "password": None})},
            "destination.security.password",
        ),
        (
            {"destination": kafka(bootstrapServers=[ALLOWED], security={**SASL, "username": ""})},
            "destination.security.username",
        ),
        (
            {"destination": kafka(bootstrapServers=[ALLOWED], security={**SASL, "saslMechanism": None})},
            "destination.security.saslMechanism",
        ),
        (
            {"destination": kafka(bootstrapServers=[ALLOWED], security={**SASL, "saslMechanism": "GSSAPI"})},
            "destination.security.saslMechanism",
        ),
        (
            {"destination": kafka(bootstrapServers=[ALLOWED], security={"protocol": "SSL", "username": "u"})},
            "destination.security.username",
        ),
        (
            {
                "destination": kafka(
                    bootstrapServers=[ALLOWED], security={"protocol": "SSL", "caCert": "not a pem"}
                )
            },
            "destination.security.caCert",
        ),
        (
            {"destination": kafka(bootstrapServers=[ALLOWED], security={**SASL, "caCert": "x"})},
            "destination.security.caCert",
        ),
        # Where it goes: one of the two, and Basic auth is HTTP's.
        ({"url": "http://127.0.0.1:9/x", "destination": kafka()}, "destination"),
        ({"description": "nowhere"}, "url"),
        ({"url": "kafka:///sayso.events"}, "url"),
        ({"destination": kafka(), "auth": {"username": "u", "password": "p"}}, "auth"),
    ],
)
async def test_a_bad_destination_is_refused_naming_the_field(
    api_owner: Owner, body: dict[str, Any], field: str
) -> None:
    resp = await api_owner.agent.post("/api/v1/endpoints", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["field"] == field, resp.text


async def test_a_cluster_not_in_the_allow_list_is_named_with_the_setting(api_owner: Owner) -> None:
    body = {"destination": kafka(bootstrapServers=["kafka.example.com:9092"])}
    resp = await api_owner.agent.post("/api/v1/endpoints", json=body)
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "destination_refused"
    assert "SAYSO_DISPATCHER_KAFKA_ALLOWED_HOSTS" in error["message"]
    assert "kafka.example.com" in error["message"]


@pytest.mark.parametrize(
    "topic",
    # The stack's own event topics, Kafka's internal ones, and anything without the prefix
    # (SAYSO_DISPATCHER_KAFKA_TOPIC_PREFIX, default "endpoints.").
    ["review.responded", "message.created", "operator.endpoint_disabled", "__consumer_offsets", "orders"],
)
async def test_a_topic_of_this_cluster_must_be_a_tenants(
    api: InProcessApi, api_owner: Owner, topic: str
) -> None:
    for destination in (
        kafka(topic=topic),
        kafka(topic=topic, bootstrapServers=[api.settings.kafka_bootstrap]),
    ):
        resp = await api_owner.agent.post("/api/v1/endpoints", json={"destination": destination})
        assert resp.status_code == 422, resp.text
        error = resp.json()["error"]
        assert (error["code"], error["field"]) == ("destination_refused", "destination.topic"), error
    # Another cluster's topics are its operator's to vouch for (the allow-list).
    elsewhere = await api_owner.agent.post(
        "/api/v1/endpoints", json={"destination": kafka(topic=topic, bootstrapServers=[ALLOWED])}
    )
    assert elsewhere.status_code == 201, elsewhere.text


async def test_credentials_are_sealed_and_never_shown(api: InProcessApi, api_owner: Owner) -> None:
    agent = await api_owner.create_agent()
    password, ca = "s3cr3t-Kafka-Pass", ca_pem()
    security = {
        "protocol": "SASL_SSL",
        "saslMechanism": "SCRAM-SHA-512",
        "username": "svc",
        "password": password,
        "caCert": ca,
    }
    body = {
        "destination": kafka(topic="team.reviews", bootstrapServers=[ALLOWED], security=security),
        "headers": {"X-Team": "ops"},
    }
    resp = await api_owner.agent.post(f"/api/v1/agents/{agent['id']}/endpoints", json=body)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["url"] == f"kafka://{ALLOWED}/team.reviews"
    assert created["destination"] == {
        "type": "kafka",
        "topic": "team.reviews",
        "bootstrapServers": [ALLOWED],
        "security": {
            "protocol": "SASL_SSL",
            "saslMechanism": "SCRAM-SHA-512",
            "username": "svc",
            "password": "***",
            "caCert": "***",
        },
    }
    assert created["secret"].startswith("whsec_")
    listed = await api_owner.agent.get(f"/api/v1/agents/{agent['id']}/endpoints")
    shown = await api_owner.agent.get(f"/api/v1/agents/{agent['id']}/endpoints/{created['id']}")
    for text in (resp.text, listed.text, shown.text):
        assert password not in text
        assert "BEGIN CERTIFICATE" not in text
    assert shown.json()["destination"] == created["destination"]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(api.settings.mongo_url)
    try:
        stored = await client[api.settings.mongo_db][ENDPOINTS].find_one({"_id": created["id"]})
    finally:
        await client.close()
    assert stored is not None
    assert password not in repr(stored)
    assert "BEGIN CERTIFICATE" not in repr(stored)


async def test_this_cluster_needs_no_servers(api_owner: Owner) -> None:
    resp = await api_owner.agent.post(
        "/api/v1/endpoints", json={"destination": kafka(topic="endpoints.all-reviews")}
    )
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert made["url"] == "kafka:///endpoints.all-reviews"
    assert made["destination"] == {
        "type": "kafka",
        "topic": "endpoints.all-reviews",
        "bootstrapServers": None,
        "security": None,
    }


async def test_an_endpoint_switches_between_url_and_topic(api_owner: Owner) -> None:
    made = (
        await api_owner.agent.post(
            "/api/v1/endpoints",
            json={"url": "http://127.0.0.1:9/hook", "auth": {"username": "u", "password": "p"}},
        )
    ).json()
    path = f"/api/v1/endpoints/{made['id']}"
    # Basic auth is HTTP's: it has to go when the endpoint becomes a topic.
    refused = await api_owner.agent.patch(path, json={"destination": kafka()})
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "auth"
    topic = await api_owner.agent.patch(path, json={"destination": kafka(), "auth": None})
    assert topic.status_code == 200, topic.text
    assert topic.json()["url"] == "kafka:///endpoints.events"
    assert topic.json()["auth"] is None
    assert (await api_owner.agent.patch(path, json={"auth": {"username": "u", "password": "p"}})).json()[
        "error"
    ]["field"] == "auth"
    nulled = await api_owner.agent.patch(path, json={"destination": None})
    assert nulled.status_code == 422
    assert nulled.json()["error"]["field"] == "destination"
    far = await api_owner.agent.patch(
        path, json={"destination": kafka(bootstrapServers=["kafka.example.com:9092"])}
    )
    assert far.status_code == 422
    assert far.json()["error"]["field"] == "destination.bootstrapServers"
    both = await api_owner.agent.patch(path, json={"url": "http://127.0.0.1:9/a", "destination": kafka()})
    assert both.status_code == 422
    back = await api_owner.agent.patch(path, json={"url": "http://127.0.0.1:9/back"})
    assert back.status_code == 200, back.text
    assert back.json()["url"] == "http://127.0.0.1:9/back"
    assert back.json()["destination"] is None
