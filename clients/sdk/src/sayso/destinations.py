"""Endpoint destinations beyond HTTP: the ``destination`` body of
:meth:`sayso.Client.create_endpoint` and :meth:`sayso.Client.update_endpoint`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def kafka_destination(
    topic: str,
    bootstrap_servers: Sequence[str] | None = None,
    *,
    protocol: str | None = None,
    sasl_mechanism: str | None = None,
    username: str | None = None,
    password: str | None = None,
    ca_cert: str | None = None,
) -> dict[str, Any]:
    """A Kafka topic as an endpoint's destination: on the server's own cluster (no
    ``bootstrap_servers``), or on another one (``host:port`` servers its operator allowed) with
    its security settings: ``protocol`` PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL;
    ``sasl_mechanism`` PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with ``username`` and ``password``;
    ``ca_cert`` PEM. The server seals the password and CA and never shows them back."""
    destination: dict[str, Any] = {"type": "kafka", "topic": topic}
    if bootstrap_servers is not None:
        destination["bootstrapServers"] = list(bootstrap_servers)
    security = {
        "protocol": protocol,
        "saslMechanism": sasl_mechanism,
        "username": username,
        "password": password,
        "caCert": ca_cert,
    }
    given = {name: value for name, value in security.items() if value is not None}
    if given:
        destination["security"] = given
    return destination
