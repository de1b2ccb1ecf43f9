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
# requests (a blocking HTTP client; the services send with aiohttp), uvicorn's command line and
# click (sayso_service.uvicorn_internals).
EVERY = ("watchfiles", "pymongo.pyopenssl_context", "opentelemetry.sdk", "requests", "uvicorn.main", "click")
# Form parsing: only the API takes forms (file uploads).
FORMS = ("python_multipart", "multipart")
NOT_LOADED = {
    # Sends nothing; vets endpoint URLs through the system resolver, not aiohttp's.
    "api": (*EVERY, "faststream", "aiohttp"),
    # Serves socket.io and checks HS256 tokens: no socket.io client side, no cryptography.
    "realtime": (*EVERY, *FORMS, "aiohttp", "cryptography", "faststream"),
    # Resolves every address through the SSRF guard's own resolver.
    "dispatcher": (*EVERY, *FORMS, "jwt"),
    # Seals nothing, checks no token, sends nothing.
    "expirer": (*EVERY, *FORMS, "cryptography", "jwt", "aiohttp", "faststream", "jsonschema"),
    # Reads reviews, checks no arguments against a schema (jsonschema and re2 come with that).
    "notifier": (*EVERY, *FORMS, "jsonschema", "re2", "sayso_common.arg_schema"),
}
# What sayso_<service>.__main__ makes unimportable beyond EVERY and FORMS (sayso_service.imports).
LEFT_OUT = {"realtime": {"aiohttp", "cryptography"}}
# Loaded at start where a request needs it, so no request pays the import.
AT_START = {"api": ("sayso_common.arg_schema", "jsonschema", "re2")}


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
    assert sorted(set(AT_START.get(service, ())) - loaded) == []


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


@pytest.mark.parametrize("service", sorted(NOT_LOADED))
def test_what_a_service_does_not_load_it_can_still_import(service: str) -> None:
    """Not loaded at start is not left out: a path that needs one of these (the notifier checking
    edited arguments, aiohttp's error kinds) imports it when it runs. Only the modules of
    ``sayso_service.imports`` are made unimportable."""
    left_out = {"watchfiles", "pymongo.pyopenssl_context", "requests", *FORMS}
    left_out |= LEFT_OUT.get(service, set())
    wanted = [n for n in NOT_LOADED[service] if n not in left_out and n != "opentelemetry.sdk"]
    probe = (
        f"import importlib, sayso_{service}.__main__\n"
        f"for name in {wanted!r}:\n    importlib.import_module(name)\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=120)


def test_the_notifier_checks_edited_arguments_against_a_schema() -> None:
    """The notifier does not load the schema checker at start; a review it reads that checks
    edited arguments against a schema still gets it (loaded there, sayso_common.reviews)."""
    probe = (
        "import sayso_notifier.__main__, sys\n"
        "from sayso_common import reviews\n"
        "payload = {'edit': {'args': {'n': 1}, 'schema': {'type': 'object', 'properties': {'n': {'type': 'string'}}}}}\n"
        "try:\n    reviews.normalise_payload('approval', payload)\n"
        "except reviews.ReviewError as exc:\n    print(exc.field)\n"
        "print('sayso_common.arg_schema' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["review.payload.edit.args.n", "True"]
