from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from sayso_common.kafka_destinations import DEFAULT_TOPIC_PREFIX, check_allowed_hosts, check_topic_prefix
from sayso_common.settings import CircuitSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split(value: object) -> object:
    # Comma-separated in the environment ("10.0.0.0/8, 127.0.0.0/8"); lists pass through.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ApiSettings(CircuitSettings):
    """API settings. The circuit-breaker policy is the dispatcher's (SAYSO_DISPATCHER_CIRCUIT_*),
    read here too so the operator page estimates open circuits as the dispatchers run them."""

    http_port: int = 8101
    # The URL people and agents use (the edge); inbound webhook URLs are built from it.
    public_url: str = "http://127.0.0.1:8000"
    # First admin, created at start-up when no user has this e-mail (``make run`` sets these).
    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: SecretStr | None = None
    jwt_ttl_seconds: int = Field(default=12 * 3600, ge=60)
    # Review deadlines: the default when a message names none, and the longest allowed.
    review_default_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    # Placet caps a requested deadline at 36 h (MAX_REVIEW_DURATION_SECONDS); longer ones are capped.
    review_max_ttl_seconds: int = Field(default=36 * 3600, ge=1)
    # Size limits (documented in the README). The body limit applies before parsing.
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_text_chars: int = Field(default=20_000, ge=1)
    max_metadata_bytes: int = Field(default=16 * 1024, ge=64)
    max_payload_bytes: int = Field(default=64 * 1024, ge=64)
    # Login throttling: failures allowed per e-mail, and per client address, within the window.
    login_max_failures: int = Field(default=10, ge=1)
    login_max_failures_per_address: int = Field(default=100, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    # Argon2id cost of password hashes made from now on. The defaults are RFC 9106's second
    # recommended option (64 MiB, 3 passes, 4 lanes); the floors are OWASP's minimum for Argon2id
    # (19 MiB, 2 passes, 1 lane), so no setting makes a weak hash. The test stacks run at the
    # floors (tests/conftest.py): a hash there costs a seventh of the default's CPU.
    password_hash_memory_kib: int = Field(default=65536, ge=19456)
    password_hash_time_cost: int = Field(default=3, ge=2)
    password_hash_parallelism: int = Field(default=4, ge=1)
    # How long an API-key or channel lookup is cached; also the upper bound for revocation lag.
    auth_cache_seconds: float = Field(default=5.0, ge=0)
    # Inbound token webhooks: executions allowed per webhook per minute (429 beyond).
    inbound_rate_per_minute: int = Field(default=60, ge=1)
    # Signed triggers: body limit, allowed clock skew, and how long a rotated-out secret still works.
    trigger_max_body_bytes: int = Field(default=64 * 1024, ge=256)
    trigger_tolerance_seconds: int = Field(default=300, ge=1)
    trigger_rotation_grace_seconds: int = Field(default=24 * 3600, ge=0)
    webhook_rotation_grace_seconds: int = Field(default=24 * 3600, ge=0)
    # A deleted channel's webhook settings and signing secrets are kept this long (longer if its
    # own retry schedule spans more), so the webhooks that tell its agent its pending reviews were
    # closed are still delivered, retried and signed (sayso_common.deleted_channels).
    deleted_channel_retention_seconds: int = Field(default=3 * 24 * 3600, ge=3600)
    # Audit entries (GET /api/v1/audit) are removed this many days after they were made, by a TTL
    # index; 0 keeps them for ever. A year covers the usual yearly compliance review window.
    audit_retention_days: int = Field(default=365, ge=0, le=36500)
    # Outbox relay lease: a crashed relay is replaced by another replica after this long.
    relay_lease_seconds: float = Field(default=10.0, gt=0)
    # Files (GridFS): the largest upload, streamed to MongoDB chunk by chunk (413 beyond), and how
    # long the signed upload and download URLs stay valid.
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1)
    file_upload_url_ttl_seconds: int = Field(default=15 * 60, ge=1)
    file_download_url_ttl_seconds: int = Field(default=5 * 60, ge=1)
    # Per owner account: files registered or uploaded but attached to no message (429 beyond), and
    # the bytes of all its files together (413 beyond). An uploaded file attached to no message is
    # deleted, bytes and all, this long after it was uploaded (or last offered to a message); the
    # sweep that deletes it runs this often in every API process.
    file_quota_unattached: int = Field(default=100, ge=1)
    file_quota_bytes: int = Field(default=1024 * 1024 * 1024, ge=0)
    file_unattached_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    file_sweep_interval_seconds: float = Field(default=60.0, gt=0)
    # Slack's interactive callbacks (POST /api/integrations/slack/actions) are checked with the Slack
    # app's signing secret and a timestamp window; unset, that endpoint answers 404.
    slack_signing_secret: SecretStr | None = None
    slack_tolerance_seconds: int = Field(default=300, ge=1)
    # The dispatcher's SSRF allow-list (SAYSO_DISPATCHER_ALLOWED_NETWORKS), read here too so a
    # webhook endpoint the dispatcher would refuse is refused when it is saved.
    dispatcher_allowed_networks: Annotated[list[Network], NoDecode] = Field(default_factory=list)

    # The bootstrap hosts a Kafka endpoint on another cluster may name (SAYSO_DISPATCHER_KAFKA_ALLOWED_HOSTS),
    # read here too so a destination the dispatcher would refuse is refused when it is saved.
    dispatcher_kafka_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The prefix a Kafka endpoint's topic on this cluster must start with (SAYSO_DISPATCHER_KAFKA_TOPIC_PREFIX).
    dispatcher_kafka_topic_prefix: str = DEFAULT_TOPIC_PREFIX

    _networks = field_validator("dispatcher_allowed_networks", mode="before")(_split)
    _kafka_hosts = field_validator("dispatcher_kafka_allowed_hosts", mode="before")(_split)
    _kafka_hosts_shape = field_validator("dispatcher_kafka_allowed_hosts")(check_allowed_hosts)
    _kafka_topic_prefix = field_validator("dispatcher_kafka_topic_prefix")(check_topic_prefix)
