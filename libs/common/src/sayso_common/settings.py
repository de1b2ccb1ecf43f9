"""Settings base shared by every service. Each service subclasses it and builds it once, in its
lifespan, so a bad value fails start-up with a clear message instead of at first use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sayso_common import legacy, otel

if TYPE_CHECKING:  # PyJWT loads most of cryptography; only the services that check tokens need it
    from sayso_common.jwt_keys import JwtKeys


class ServiceSettings(BaseSettings):
    # hide_input_in_errors: a refused value is often a secret (a JWT key too short, an SMTP URL with
    # its password); the start-up error names the setting and the reason, never the value.
    model_config = SettingsConfigDict(env_prefix="SAYSO_", extra="ignore", hide_input_in_errors=True)

    mongo_url: str = "mongodb://127.0.0.1:27017/?replicaSet=rs0"
    mongo_db: str = "sayso"
    # Short server-selection timeout: with MongoDB down, requests fail fast (503) instead of hanging.
    # It only ever waits while no usable server is known, so a healthy but busy MongoDB never trips it.
    mongo_timeout_ms: int = Field(default=1000, ge=100)
    # Opening a connection and each heartbeat: kept longer, so a slow moment on a busy host does not
    # mark a healthy server unreachable.
    mongo_connect_timeout_ms: int = Field(default=3000, ge=100)
    # Finished deliveries and notifications, and stored events, are removed this many days after
    # they finished (or were stored) by TTL indexes; pending work is never (sayso_common.retention).
    retention_days: int = Field(default=30, ge=1, le=36500)
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    topic_partitions: int = Field(default=6, ge=1)
    # Tansu (the local broker) has no idempotent producer; real Kafka may turn this on.
    kafka_idempotence: bool = False
    # How long a consumer's fetch may wait for data. Tansu holds a fetch for the whole wait even
    # when records arrive (measured: 253 ms produce->consume at 500, 8 ms at 10), so keep it short;
    # real Kafka answers as soon as data arrives, so give it 500 ms (docker-compose, deploy/k8s).
    kafka_fetch_max_wait_ms: int = Field(default=10, ge=1, le=500)
    # With such short waits an idle consumer would fetch 100 times a second (measured: half a core
    # for the idle local stack, issue #36): pause its partitions once it has read everything,
    # resume them when the outbox relay stores a published event, and at the latest every
    # kafka_idle_recheck_seconds (sayso_common.fetch_gate). Off where the broker answers fetches as
    # soon as data arrives (Apache Kafka, with a 500 ms wait).
    kafka_pause_when_idle: bool = True
    kafka_idle_recheck_seconds: float = Field(default=10.0, gt=0)
    # Encrypts stored secrets and signs user JWTs (under a derived key), unless the settings below
    # are given. Required.
    secret_key: SecretStr
    # Keys for stored secrets, comma-separated, newest first: new secrets are sealed with the first,
    # every listed key still opens its own (see secretbox.py and `sayso-api rotate-secrets`).
    secret_keys: SecretStr | None = None
    # Browser origins allowed to call the API and open SSE streams, long-polls and Socket.IO
    # besides the page's own origin (always allowed), a JSON list; one rule for all of them
    # (sayso_service.cors). Clients that send no Origin header (scripts, the SDK) are not affected.
    # "*" allows every origin (answered with the origin itself, never "*"). An empty list means
    # "same origin only"; the default is the local edge's own origin.
    cors_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:8000", "http://127.0.0.1:8000"]
    )

    def __init__(self, **values: Any) -> None:
        # Every service builds its settings here: the former names are read as their SAYSO_*
        # ones, with a warning, for one release (sayso_common.legacy). Before pydantic-settings
        # reads the environment, which it does when the sources are made.
        legacy.adopt_old_environment()
        super().__init__(**values)

    def box_keys(self) -> list[str]:
        """The keys for :class:`sayso_common.secretbox.SecretBox`, newest first."""
        if self.secret_keys is not None:
            listed = [k.strip() for k in self.secret_keys.get_secret_value().split(",") if k.strip()]
            if listed:
                return listed
        return [self.secret_key.get_secret_value()]

    # User-token signing keys, comma-separated, newest first: the first signs, every listed key
    # still verifies the tokens it signed (each token names its key in ``kid``). Unset: one key
    # derived from secret_key. Rotate by adding a new key first; drop the old one after the
    # token lifetime (SAYSO_JWT_TTL_SECONDS, 12 h by default).
    jwt_keys: SecretStr | None = None

    def jwt_signing_keys(self) -> JwtKeys:
        from sayso_common.jwt_keys import JwtKeys, derived_jwt_key

        if self.jwt_keys is not None:
            listed = [k.strip() for k in self.jwt_keys.get_secret_value().split(",") if k.strip()]
            if listed:
                return JwtKeys(listed)
        return JwtKeys([derived_jwt_key(self.secret_key.get_secret_value())])

    @field_validator("jwt_keys")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and any(
            len(k.strip()) < 32 for k in value.get_secret_value().split(",") if k.strip()
        ):
            raise ValueError("each JWT signing key must be at least 32 characters")
        return value

    host: str = "127.0.0.1"
    http_port: int = 8100
    # Proxies whose X-Forwarded-For is believed (the edge). Compose sets "*" on its private network.
    forwarded_allow_ips: str = "127.0.0.1"
    # How long an idle keep-alive connection is kept. Longer than whatever sits in front (nginx
    # ingress keeps idle upstream connections 60 s, Caddy here 4 s, HTTP clients such as aiohttp
    # 15 s): the side that closes first must be the client, or a request written to a connection
    # the server is closing fails with a reset (uvicorn's own default is 5 s).
    http_keepalive_seconds: int = Field(default=75, ge=1)
    log_level: str = "INFO"
    # OpenTelemetry export of traces and metrics over OTLP/HTTP, configured by the standard OTEL_*
    # variables (sayso_common.otel), with FastAPI's own request spans and metrics. Off by default:
    # Sayso exports Prometheus metrics, and FastAPI's hooks alone cost about 2 % of the API's CPU
    # per request (profiled).
    otel: bool = False
    # Service-name label used in logs and Kafka client ids; set by each service.
    instance: str = ""

    def fastapi_telemetry(self) -> dict[str, bool]:
        """The ``telemetry=`` argument for this service's FastAPI app."""
        # Spans and metrics go through the providers sayso_common.otel installs (auto_configure
        # off: FastAPI would add a second exporter to them); logs stay JSON on stderr.
        on = self.otel and not otel.disabled_by_environment()
        return {"tracing": on, "metrics": on, "logs": False, "auto_configure": False}


def env_names(settings: type[BaseSettings]) -> dict[str, str]:
    """The environment variable each field of a settings class is read from, by field name. A
    string alias is the variable's whole name, unless the class prefixes aliases too (the shared
    worker settings, read under each service's name: ``sayso_service.leased_worker``)."""
    config = settings.model_config
    prefix = str(config.get("env_prefix", ""))
    aliases_prefixed = config.get("env_prefix_target") in ("alias", "all")
    names: dict[str, str] = {}
    for field, info in settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            names[field] = ((prefix if aliases_prefixed else "") + alias).upper()
        else:
            names[field] = (prefix + field).upper()
    return names


@dataclass(frozen=True)
class CircuitPolicy:
    """When a host's circuit breaker opens: among its last ``window`` attempt results (at least
    ``min_calls``), the failure ratio reaches ``failure_ratio``; it stays open ``open_seconds``.
    The dispatcher's breakers run it; the API's operator page estimates open hosts with it."""

    window: int = 20
    min_calls: int = 10
    failure_ratio: float = 0.8
    open_seconds: float = 30.0

    def trips(self, results: list[bool]) -> bool:
        """Whether these results (at most ``window`` of them, any order) open the circuit."""
        return len(results) >= self.min_calls and results.count(False) / len(results) >= self.failure_ratio


class CircuitSettings(ServiceSettings):
    """The breaker policy's settings, read by the dispatcher (which runs the breakers) and the API
    (which reports them), so setting ``SAYSO_DISPATCHER_CIRCUIT_*`` changes both alike."""

    dispatcher_circuit_window: int = Field(default=20, ge=1)
    dispatcher_circuit_min_calls: int = Field(default=10, ge=1)
    dispatcher_circuit_failure_ratio: float = Field(default=0.8, gt=0, le=1)
    dispatcher_circuit_open_seconds: float = Field(default=30.0, gt=0)

    def circuit_policy(self) -> CircuitPolicy:
        return CircuitPolicy(
            window=self.dispatcher_circuit_window,
            min_calls=self.dispatcher_circuit_min_calls,
            failure_ratio=self.dispatcher_circuit_failure_ratio,
            open_seconds=self.dispatcher_circuit_open_seconds,
        )
