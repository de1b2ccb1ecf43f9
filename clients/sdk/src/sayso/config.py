"""Where the server is and how to authenticate: arguments first, then the environment."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

import httpx

from sayso.errors import ConfigurationError

VERSION = "0.1.0"
USER_AGENT = f"sayso-python/{VERSION}"
# Every call but the long-poll and the event stream, which set their own read timeouts.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


# The product was called Signoff: for one release its SIGNOFF_* names still work, with a warning.
_NEW_PREFIX, _OLD_PREFIX = "SAYSO_", "SIGNOFF_"


def env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The environment variable ``name`` (a ``SAYSO_*`` name), or else its former ``SIGNOFF_*``
    name with a FutureWarning that names the new one."""
    source = os.environ if environ is None else environ
    value = source.get(name)
    if value is None and name.startswith(_NEW_PREFIX):
        old = _OLD_PREFIX + name[len(_NEW_PREFIX) :]
        value = source.get(old)
        if value is not None:
            warnings.warn(
                f"{old} is deprecated: rename it {name} (Signoff is now Sayso)", FutureWarning, stacklevel=2
            )
    return value


def resolve(url: str | None, api_key: str | None) -> tuple[str, str]:
    """The base URL (without a trailing slash) and the credential."""
    url = url or env("SAYSO_URL")
    api_key = api_key or env("SAYSO_API_KEY")
    if not url:
        raise ConfigurationError("no Sayso URL: pass url=... or set SAYSO_URL")
    if not api_key:
        raise ConfigurationError("no API key: pass api_key=... or set SAYSO_API_KEY (hp_…)")
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
