"""Where the server is and how to authenticate: arguments first, then the environment."""

from __future__ import annotations

import os

import httpx

from signoff.errors import ConfigurationError

VERSION = "0.1.0"
USER_AGENT = f"signoff-python/{VERSION}"
# Every call but the long-poll and the event stream, which set their own read timeouts.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def resolve(url: str | None, api_key: str | None) -> tuple[str, str]:
    """The base URL (without a trailing slash) and the credential."""
    url = url or os.environ.get("SIGNOFF_URL")
    api_key = api_key or os.environ.get("SIGNOFF_API_KEY")
    if not url:
        raise ConfigurationError("no Signoff URL: pass url=... or set SIGNOFF_URL")
    if not api_key:
        raise ConfigurationError("no API key: pass api_key=... or set SIGNOFF_API_KEY (hp_…)")
    return url.rstrip("/"), api_key


def auth_headers(credential: str) -> dict[str, str]:
    """Agent keys (``hp_…``, or ``sk_…`` from earlier versions) go in ``x-api-key``, as Placet's
    clients send them; anything else is taken for a user's JWT."""
    if credential.startswith(("hp_", "sk_")):
        return {"x-api-key": credential}
    return {"Authorization": f"Bearer {credential}"}


def base_headers(credential: str, extra: dict[str, str] | None) -> dict[str, str]:
    return {"User-Agent": USER_AGENT, **auth_headers(credential), **(extra or {})}


def read_timeout(seconds: float | None) -> httpx.Timeout | None:
    return None if seconds is None else httpx.Timeout(seconds, connect=10.0)
