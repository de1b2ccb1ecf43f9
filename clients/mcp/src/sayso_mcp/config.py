"""Settings from the environment: Sayso's names first, Placet's MCP server's names as well, so
a client configured for Placet's server starts this one unchanged."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from sayso import config

Transport = Literal["stdio", "http"]
KEY_PREFIXES = ("hp_", "sk_")
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    api_url: str
    api_key: str | None = None
    default_channel: str | None = None
    host: str = "127.0.0.1"
    port: int = 3002
    path: str = "/mcp"
    # Longest a wait_for_review (or waitInline) call holds before answering "timeout".
    connection_timeout_ms: int = 300_000
    transport: Transport = "stdio"
    # HTTP: a caller that sends no x-api-key is refused unless the operator lends it the
    # configured key on purpose (SAYSO_MCP_SHARE_CONFIGURED_KEY / --share-configured-key).
    share_configured_key: bool = False
    # HTTP: Host names (host or host:port) accepted besides loopback and the bound address.
    allowed_hosts: tuple[str, ...] = ()


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        # A SAYSO_* name also reads its former spelling, with a warning, for one release.
        value = (config.env(name, env) or "").strip()
        if value:
            return value
    return None


def _int(env: Mapping[str, str], default: int, *names: str) -> int:
    raw = _first(env, *names)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{names[0]} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{names[0]} must be positive")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (_first(env, name) or "false").lower()
    if raw not in TRUE | FALSE:
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    return raw in TRUE


def hosts(raw: str) -> tuple[str, ...]:
    """A comma-separated list of Host names (``name`` or ``name:port``)."""
    names = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    for name in names:
        if any(c in name for c in "/ ?#@\\") or name.endswith(":"):
            raise ConfigError(f"SAYSO_MCP_ALLOWED_HOSTS: {name!r} is not a host or host:port")
    return names


def load(env: Mapping[str, str] | None = None, transport: Transport | None = None) -> Settings:
    """Read the settings; ``transport`` (from the command line) wins over ``MCP_TRANSPORT``."""
    env = os.environ if env is None else env
    url = _first(env, "SAYSO_URL", "PLACET_API_URL")
    if not url:
        raise ConfigError("SAYSO_URL (or PLACET_API_URL) environment variable is required")
    key = _first(env, "SAYSO_API_KEY", "PLACET_API_KEY")
    if key is not None and not key.startswith(KEY_PREFIXES):
        raise ConfigError('SAYSO_API_KEY (or PLACET_API_KEY) must start with "hp_"')
    # stdio unless asked for HTTP: an MCP client that launches the command speaks stdio.
    named = (_first(env, "SAYSO_MCP_TRANSPORT", "MCP_TRANSPORT") or "stdio").lower()
    if named not in ("stdio", "http", "streamable-http"):
        raise ConfigError(f"MCP_TRANSPORT must be stdio or http, got {named!r}")
    chosen: Transport = transport or ("stdio" if named == "stdio" else "http")
    if chosen == "stdio" and key is None:
        raise ConfigError("SAYSO_API_KEY (or PLACET_API_KEY) environment variable is required for stdio mode")
    path = _first(env, "SAYSO_MCP_PATH", "MCP_PATH") or "/mcp"
    share = _flag(env, "SAYSO_MCP_SHARE_CONFIGURED_KEY")
    if share and key is None:
        raise ConfigError("SAYSO_MCP_SHARE_CONFIGURED_KEY needs SAYSO_API_KEY (or PLACET_API_KEY)")
    return Settings(
        api_url=url.rstrip("/"),
        api_key=key,
        default_channel=_first(env, "SAYSO_DEFAULT_CHANNEL", "PLACET_DEFAULT_CHANNEL"),
        host=_first(env, "SAYSO_MCP_HOST") or "127.0.0.1",
        port=_int(env, 3002, "SAYSO_MCP_PORT", "MCP_PORT"),
        path=path if path.startswith("/") else "/" + path,
        connection_timeout_ms=_int(
            env, 300_000, "SAYSO_MCP_CONNECTION_TIMEOUT_MS", "MCP_CONNECTION_TIMEOUT_MS"
        ),
        transport=chosen,
        share_configured_key=share,
        allowed_hosts=hosts(_first(env, "SAYSO_MCP_ALLOWED_HOSTS") or ""),
    )
