"""A receiver whose TLS cannot be trusted (a self-signed certificate, here on a real aiohttp
server on loopback) is a ``tls_error`` attempt for both senders - the dispatcher's webhooks and
the notifier's Slack posts - classified by sayso_common.attempts: retried, and counted by the
circuit breaker as a host not taking requests. It used to read as a plain ``connect_error``."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from sayso_common.attempts import Verdict, circuit_result, verdict
from sayso_devstack.processes import free_port
from sayso_dispatcher.sender import Sender
from sayso_dispatcher.settings import DispatcherSettings
from sayso_notifier.senders import Slack
from sayso_notifier.settings import NotifierSettings


def _self_signed(directory: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


@pytest.fixture
async def untrusted(tmp_path: Path) -> AsyncIterator[str]:
    """An HTTPS URL on loopback that would answer 200, behind a certificate nobody signed."""

    async def ok(_: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=_self_signed(tmp_path)).start()
    yield f"https://127.0.0.1:{port}/hook"
    await runner.cleanup()


async def test_the_dispatcher_records_an_untrusted_certificate_as_tls_error(untrusted: str) -> None:
    settings = DispatcherSettings(
        secret_key=SecretStr("k" * 40), dispatcher_allowed_networks=["127.0.0.1/32"]
    )
    sender = Sender(settings, "test")
    try:
        attempt = await sender.post(untrusted, "POST", b"{}", {"content-type": "application/json"})
    finally:
        await sender.close()
    assert (attempt.status_code, attempt.error_kind) == (None, "tls_error")
    assert attempt.error is not None
    assert attempt.error.startswith("TLS failed: ")
    assert "certificate verify failed" in attempt.error
    assert verdict(attempt.status_code, attempt.error_kind) is Verdict.RETRY
    assert circuit_result(attempt.status_code, attempt.error_kind) is False


async def test_the_notifier_records_an_untrusted_slack_certificate_as_tls_error(
    untrusted: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAYSO_SECRET_KEY", "k" * 32)
    monkeypatch.setenv("SAYSO_NOTIFIER_ALLOWED_NETWORKS", "127.0.0.0/8")
    slack = Slack(NotifierSettings())
    try:
        sent = await slack.post(untrusted, {"text": "hi"})
    finally:
        await slack.close()
    host = untrusted.removeprefix("https://").removesuffix("/hook")
    assert (sent.verdict, sent.error_kind, sent.error) == (
        "retry",
        "tls_error",
        f"TLS failed talking to {host}",
    )
