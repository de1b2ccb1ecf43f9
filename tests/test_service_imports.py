"""What each service loads at start stays what it uses (issue #36: every module a service imports
is resident memory for as long as it runs). Each case imports a service's entry point
(``sayso_<service>.__main__``, which ``python -m`` and the console scripts run) in a fresh
interpreter, as the process would at start, and lists the heavy modules it must not hold: the
ones a library would pull in for something the service never does (sayso_service.imports), and
the ones only another service needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Everywhere: uvicorn's reloader, pymongo's pyOpenSSL attempt (pyOpenSSL is not installed; it
# loads cryptography.x509 before it gives up), the OpenTelemetry SDK (only with SAYSO_OTEL on),
# requests (a blocking HTTP client; the services send with aiohttp).
EVERY = ("watchfiles", "pymongo.pyopenssl_context", "opentelemetry.sdk", "requests")
# Form parsing: only the API takes forms (file uploads).
FORMS = ("python_multipart", "multipart")
NOT_LOADED = {
    # Sends nothing (aiohttp is there for the SSRF guard's resolver, which vets endpoint URLs).
    "api": (*EVERY, "faststream"),
    # Serves socket.io and checks HS256 tokens: no socket.io client side, no cryptography.
    "realtime": (*EVERY, *FORMS, "aiohttp", "cryptography", "faststream"),
    # Resolves every address through the SSRF guard's own resolver.
    "dispatcher": (*EVERY, *FORMS, "jwt"),
    # Seals nothing, checks no token, sends nothing.
    "expirer": (*EVERY, *FORMS, "cryptography", "jwt", "aiohttp", "faststream", "jsonschema"),
    "notifier": (*EVERY, *FORMS),
}


def loaded_at_start(service: str, **env: str) -> set[str]:
    probe = f"import json, sys\nimport sayso_{service}.__main__\nprint(json.dumps([n for n, m in sys.modules.items() if m is not None]))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, **env},
    )
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("service", sorted(NOT_LOADED))
def test_a_service_loads_no_module_it_does_not_use(service: str) -> None:
    loaded = loaded_at_start(service)
    assert sorted(loaded & set(NOT_LOADED[service])) == []
    # What it does use is there (the probe imported the whole app).
    assert f"sayso_{service}.app" in loaded


def test_realtime_keeps_what_the_otlp_exporter_sends_with_when_export_is_on() -> None:
    """The OTLP exporter sends with requests: with SAYSO_OTEL on, realtime must be able to import
    it (left out, the gateway exited at start in tests/test_otel.py)."""
    probe = "import sayso_realtime.__main__, importlib\nimportlib.import_module('requests')\n"
    for value in ("true", "1", "on"):
        subprocess.run(
            [sys.executable, "-c", probe], check=True, timeout=120, env={**os.environ, "SAYSO_OTEL": value}
        )
    refused = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        timeout=120,
        env={**os.environ, "SAYSO_OTEL": "false"},
    )
    assert refused.returncode != 0
