"""Kafka topic destinations of webhook endpoints: the rules the API checks when an endpoint is
saved and the dispatcher checks again at every send.

An endpoint whose destination is a Kafka topic gets the same signed body an HTTP endpoint would,
with the webhook headers as record headers and the channel id as the record key (one channel's
events stay in order on one partition). The topic is on the stack's own cluster (no bootstrap
servers given) or on another cluster whose every bootstrap host is in the allow-list setting
(:data:`ALLOW_LIST_SETTING`); the stack's own bootstrap servers are always allowed.

The endpoint keeps a ``url`` that names the destination for display and for the delivery
documents: ``kafka:///<topic>`` on this cluster, ``kafka://<host:port>,<host:port>/<topic>``
on another one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final, Literal, get_args

SCHEME: Final = "kafka"
# Named in a refusal: the one setting that lifts it (the API and the dispatcher both read it).
ALLOW_LIST_SETTING: Final = "SAYSO_DISPATCHER_KAFKA_ALLOWED_HOSTS"
# On this cluster an endpoint's topic must start with this (the API and the dispatcher both read
# it): the stack's own event topics, Kafka's internal ones and other applications' are not a
# tenant's to write into.
TOPIC_PREFIX_SETTING: Final = "SAYSO_DISPATCHER_KAFKA_TOPIC_PREFIX"
DEFAULT_TOPIC_PREFIX: Final = "endpoints."
MAX_BOOTSTRAP_SERVERS: Final = 10
# Kafka's own limit on a topic name (it keeps 249 characters; metric names use the rest).
MAX_TOPIC_CHARS: Final = 249
_TOPIC = re.compile(r"[A-Za-z0-9._-]+")
# A DNS name (letters, digits, hyphens, dots), an IPv4 address, or an IPv6 one in brackets.
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]")

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SECURITY_PROTOCOLS: Final[tuple[str, ...]] = get_args(SecurityProtocol)
SASL_MECHANISMS: Final[tuple[str, ...]] = get_args(SaslMechanism)


def topic_problem(name: str) -> str | None:
    """Why ``name`` is not a Kafka topic name (Kafka's rules), or None."""
    if not name:
        return "must not be empty"
    if len(name) > MAX_TOPIC_CHARS:
        return f"must be at most {MAX_TOPIC_CHARS} characters"
    if name in (".", ".."):
        return 'must not be "." or ".."'
    if not _TOPIC.fullmatch(name):
        return "may hold only ASCII letters, digits, '.', '_' and '-'"
    return None


def split_server(server: str) -> tuple[str, int]:
    """``host:port`` (an IPv6 host in brackets) as (lower-case host, port). Raises ``ValueError``
    with the reason."""
    host, sep, port_text = server.rpartition(":")
    if not sep or not host:
        raise ValueError("must be host:port")
    if not (_HOST.fullmatch(host) or _IPV6.fullmatch(host)) or len(host) > 253:
        raise ValueError("has an invalid host")
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("has an invalid port (a number from 1 to 65535)")
    return host.lower(), int(port_text)


def server_list(text: str) -> list[str]:
    """A comma-separated bootstrap setting (``SAYSO_KAFKA_BOOTSTRAP``) as its servers."""
    return [part.strip() for part in text.split(",") if part.strip()]


def allowed_entry_problem(entry: str) -> str | None:
    """Why ``entry`` of the allow-list is neither ``host`` nor ``host:port``, or None."""
    if _HOST.fullmatch(entry) or _IPV6.fullmatch(entry):
        return None
    try:
        split_server(entry)
    except ValueError as exc:
        return str(exc)
    return None


def check_topic_prefix(prefix: str) -> str:
    """A settings validator: the prefix holds only what a topic name may (it may be empty)."""
    if prefix and not _TOPIC.fullmatch(prefix):
        raise ValueError("may hold only ASCII letters, digits, '.', '_' and '-'")
    return prefix


def check_allowed_hosts(entries: list[str]) -> list[str]:
    """The allow-list setting's validator: every entry ``host`` or ``host:port``."""
    for entry in entries:
        problem = allowed_entry_problem(entry)
        if problem:
            raise ValueError(f"{entry!r} {problem} (give host or host:port)")
    return entries


def refused_bootstrap(servers: Sequence[str], own: Iterable[str], allowed: Iterable[str]) -> str | None:
    """Why a destination on ``servers`` may not be sent to, or None. ``own`` is the stack's own
    bootstrap (always allowed); ``allowed`` the allow-list: ``host`` (any port) or ``host:port``
    entries. Every server must be allowed: the client may connect to any of them."""
    own_pairs = {_pair(s) for s in own}
    hosts: set[str] = set()
    pairs: set[tuple[str, int]] = set()
    for entry in allowed:
        if _HOST.fullmatch(entry) or _IPV6.fullmatch(entry):
            hosts.add(entry.lower())
        else:
            pairs.add(_pair(entry))
    for server in servers:
        host, port = split_server(server)
        if (host, port) in own_pairs or (host, port) in pairs or host in hosts:
            continue
        return f"{server} is not this cluster and not in {ALLOW_LIST_SETTING} (add {host} or {host}:{port} to it)"
    return None


def refused_topic(
    topic: str, servers: Sequence[str] | None, own: Iterable[str], prefix: str, reserved: Iterable[str]
) -> str | None:
    """Why ``topic`` may not be written to, or None. Only a topic on this cluster (no ``servers``,
    or one of them among ``own``) is ruled: it must start with ``prefix`` and be none of the
    stack's own topics (``reserved``) nor Kafka's internal ones (``__…``). A cluster of the
    allow-list is the operator's to vouch for."""
    own_pairs = {_pair(s) for s in own}
    if servers and not any(_pair(s) in own_pairs for s in servers):
        return None
    if topic.startswith("__") or topic in set(reserved):
        return f"{topic} is one of this cluster's own topics"
    if not topic.startswith(prefix):
        return f"a topic on this cluster must start with {prefix!r} ({TOPIC_PREFIX_SETTING})"
    return None


def _pair(server: str) -> tuple[str, int]:
    try:
        return split_server(server)
    except ValueError:
        return (server.lower(), 0)


def display_url(topic: str, servers: Sequence[str] | None) -> str:
    """The endpoint's ``url`` for a Kafka destination (see the module's docstring)."""
    return f"{SCHEME}://{','.join(servers or ())}/{topic}"


def is_kafka_url(url: str) -> bool:
    return url.startswith(f"{SCHEME}://")


def lane_host(url: str) -> str:
    """What per-host lanes and circuits key a Kafka delivery on: its cluster (``kafka:`` and the
    bootstrap servers; ``kafka:local`` for this cluster)."""
    servers = url.removeprefix(f"{SCHEME}://").partition("/")[0]
    return f"{SCHEME}:{servers.lower() or 'local'}"


__all__ = [
    "ALLOW_LIST_SETTING",
    "DEFAULT_TOPIC_PREFIX",
    "MAX_BOOTSTRAP_SERVERS",
    "MAX_TOPIC_CHARS",
    "SASL_MECHANISMS",
    "SCHEME",
    "SECURITY_PROTOCOLS",
    "TOPIC_PREFIX_SETTING",
    "SaslMechanism",
    "SecurityProtocol",
    "allowed_entry_problem",
    "check_allowed_hosts",
    "check_topic_prefix",
    "display_url",
    "is_kafka_url",
    "lane_host",
    "refused_bootstrap",
    "refused_topic",
    "server_list",
    "split_server",
    "topic_problem",
]
