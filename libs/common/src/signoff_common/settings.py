"""Settings base shared by every service. Each service subclasses it and builds it once, in its
lifespan, so a bad value fails start-up with a clear message instead of at first use."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNOFF_", extra="ignore")

    mongo_url: str = "mongodb://127.0.0.1:27017/?replicaSet=rs0"
    mongo_db: str = "signoff"
    # Short server-selection timeout: with MongoDB down, requests fail fast (503) instead of hanging.
    # It only ever waits while no usable server is known, so a healthy but busy MongoDB never trips it.
    mongo_timeout_ms: int = Field(default=1000, ge=100)
    # Opening a connection and each heartbeat: kept longer, so a slow moment on a busy host does not
    # mark a healthy server unreachable.
    mongo_connect_timeout_ms: int = Field(default=3000, ge=100)
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    topic_partitions: int = Field(default=6, ge=1)
    # Tansu (the local broker) has no idempotent producer; real Kafka may turn this on.
    kafka_idempotence: bool = False
    # How long a consumer's fetch may wait for data. Tansu holds a fetch for the whole wait even
    # when records arrive (measured: 253 ms produce->consume at 500, 8 ms at 10), so keep it short;
    # real Kafka answers as soon as data arrives, and an idle consumer's extra fetches are cheap.
    kafka_fetch_max_wait_ms: int = Field(default=10, ge=1, le=500)
    # Signs user JWTs and encrypts stored secrets, unless the two settings below are given. Required.
    secret_key: SecretStr
    # Keys for stored secrets, comma-separated, newest first: new secrets are sealed with the first,
    # every listed key still opens its own (see secretbox.py and `signoff-api rotate-secrets`).
    secret_keys: SecretStr | None = None

    def box_keys(self) -> list[str]:
        """The keys for :class:`signoff_common.secretbox.SecretBox`, newest first."""
        if self.secret_keys is not None:
            listed = [k.strip() for k in self.secret_keys.get_secret_value().split(",") if k.strip()]
            if listed:
                return listed
        return [self.secret_key.get_secret_value()]

    host: str = "127.0.0.1"
    http_port: int = 8100
    # Proxies whose X-Forwarded-For is believed (the edge). Compose sets "*" on its private network.
    forwarded_allow_ips: str = "127.0.0.1"
    log_level: str = "INFO"
    # FastAPI's built-in OpenTelemetry instrumentation (spans, metrics and logs through the global
    # providers you configure). Off by default: Signoff exports Prometheus metrics, and the hooks
    # cost about 2 % of the API's CPU per request even with no SDK installed (profiled).
    otel: bool = False
    # Service-name label used in logs and Kafka client ids; set by each service.
    instance: str = ""

    def fastapi_telemetry(self) -> dict[str, bool]:
        """The ``telemetry=`` argument for this service's FastAPI app."""
        return {"tracing": self.otel, "metrics": self.otel, "logs": self.otel}
