"""Keys rotate. Stored-secret encryption: MultiFernet with SAYSO_SECRET_KEYS, tokens of the
earlier AES-GCM box still open, and `sayso-api rotate-secrets` re-seals everything under the
newest key. User-token signing: SAYSO_JWT_KEYS, each token naming its key in ``kid``."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import ValidationError
from pymongo import AsyncMongoClient

from sayso_common.jwt_keys import JWT_AUDIENCE, JwtKeys
from sayso_common.legacy import KEY_LABEL
from sayso_common.secretbox import SecretBox
from sayso_common.settings import ServiceSettings
from sayso_devstack.processes import start_service
from tests.conftest import Infra
from tests.support.stack import admin_headers

OLD = "old-key-" + "o" * 24
NEW = "new-key-" + "n" * 24


def _legacy_seal(key: str, plaintext: str) -> str:
    """A token as the AES-GCM box before MultiFernet made it (version byte 0x01)."""
    aead = AESGCM(hashlib.sha256(KEY_LABEL + b"-secretbox:" + key.encode()).digest())
    nonce = os.urandom(12)
    return base64.urlsafe_b64encode(
        b"\x01" + nonce + aead.encrypt(nonce, plaintext.encode(), b"\x01")
    ).decode()


def test_boxes_open_old_tokens_and_seal_with_the_newest_key() -> None:
    old_box, both = SecretBox(OLD), SecretBox([NEW, OLD])
    legacy, sealed_old = _legacy_seal(OLD, "s1"), old_box.seal("s2")
    assert both.open(legacy) == "s1"
    assert both.open(sealed_old) == "s2"
    fresh = both.seal("s3")
    assert SecretBox(NEW).open(fresh) == "s3"
    with pytest.raises(ValueError, match="no configured secret key"):
        old_box.open(fresh)
    for token in (legacy, sealed_old):
        with pytest.raises(ValueError, match="no configured secret key"):
            SecretBox(NEW).open(token)
        assert SecretBox(NEW).open(both.rotate(token)) in ("s1", "s2")
    with pytest.raises(ValueError, match="at least one"):
        SecretBox([])
    with pytest.raises(ValueError, match="at least 16"):
        SecretBox("short")


async def test_rotate_secrets_command(infra: Infra) -> None:
    db_name = "rotation"
    admin = {"email": "admin@rotation.test", "password": "admin-password-rotation"}
    env = infra.service_env(
        SAYSO_MONGO_DB=db_name,
        SAYSO_SECRET_KEYS=OLD,
        SAYSO_BOOTSTRAP_ADMIN_EMAIL=admin["email"],
        SAYSO_BOOTSTRAP_ADMIN_PASSWORD=admin["password"],
    )
    api = start_service("api", infra.log_dir, env, name="api-rotation")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}", timeout=30) as client:
            _, agent_headers = await admin_headers(client, admin)
            made = await client.post(
                "/api/v1/agents",
                headers=agent_headers,
                json={
                    "name": "rot",
                    "webhookHeaders": {"X-Token": "header-secret"},
                    "webhookAuth": {"username": "bot", "password": "auth-secret"},
                },
            )
            assert made.status_code == 201, made.text
            trig = await client.post(
                f"/api/v1/agents/{made.json()['id']}/triggers",
                headers=agent_headers,
                json={"name": "t", "mapping": {"text": "/x"}},
            )
            assert trig.status_code == 201, trig.text
            endpoint = await client.post(
                f"/api/v1/agents/{made.json()['id']}/endpoints",
                headers=agent_headers,
                json={
                    "url": "http://127.0.0.1:9/hook",
                    "headers": {"X-Token": "endpoint-header"},
                    "auth": {"username": "ep", "password": "endpoint-auth"},
                },
            )
            assert endpoint.status_code == 201, endpoint.text
            sasl = {
                "protocol": "SASL_PLAINTEXT",
                "saslMechanism": "PLAIN",
                "username": "u",
                "password": "kafka-pw",
            }
            topic = await client.post(
                f"/api/v1/agents/{made.json()['id']}/endpoints",
                headers=agent_headers,
                json={
                    "destination": {
                        "type": "kafka",
                        "topic": "t",
                        "bootstrapServers": ["127.0.0.1:9"],
                        "security": sasl,
                    }
                },
            )
            assert topic.status_code == 201, topic.text
    finally:
        api.stop()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    try:
        db = mongo[db_name]
        # An agent stored by the earlier box, too.
        await db.agents.update_one(
            {"_id": made.json()["id"]},
            {"$set": {"webhook_headers_enc": _legacy_seal(OLD, '{"X-Token": "v"}')}},
        )
        # A deleted channel's kept webhook settings (as DELETE /api/v1/agents/{id} leaves them).
        kept = await db.agents.find_one({"_id": made.json()["id"]})
        assert kept is not None
        await db.deleted_agents.insert_one({**kept, "_id": "agt_deleted"})
        run_env = {**os.environ, **env, "SAYSO_SECRET_KEYS": f"{NEW},{OLD}"}
        done = subprocess.run(  # noqa: ASYNC221 - a short command, run to completion
            [sys.executable, "-m", "sayso_api", "rotate-secrets"],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "agents: 1 documents re-sealed" in done.stdout
        assert "triggers: 1 documents re-sealed" in done.stdout
        assert "deleted_agents: 1 documents re-sealed" in done.stdout
        assert "endpoints: 2 documents re-sealed" in done.stdout
        only_new = SecretBox(NEW)
        gone = await db.deleted_agents.find_one({"_id": "agt_deleted"})
        assert gone is not None
        assert only_new.open(gone["webhook_headers_enc"]) == '{"X-Token": "v"}'
        assert all(only_new.open(s["secret_enc"]).startswith("whsec_") for s in gone["signing_secrets"])
        agent = await db.agents.find_one({"_id": made.json()["id"]})
        assert agent is not None
        assert only_new.open(agent["webhook_headers_enc"]) == '{"X-Token": "v"}'
        assert "auth-secret" in only_new.open(agent["webhook_auth_enc"])
        assert all(only_new.open(s["secret_enc"]).startswith("whsec_") for s in agent["signing_secrets"])
        stored = await db.endpoints.find_one({"_id": endpoint.json()["id"]})
        assert stored is not None
        assert only_new.open(stored["headers_enc"]) == '{"X-Token": "endpoint-header"}'
        assert "endpoint-auth" in only_new.open(stored["auth_enc"])
        assert [only_new.open(s["secret_enc"]) for s in stored["signing_secrets"]] == [
            endpoint.json()["secret"]
        ]
        kafka = await db.endpoints.find_one({"_id": topic.json()["id"]})
        assert kafka is not None
        assert only_new.open(kafka["kafka"]["secrets_enc"]) == '{"password": "kafka-pw"}'
        trigger = await db.triggers.find_one({"channel_id": made.json()["id"]})
        assert trigger is not None
        assert all(only_new.open(s["secret_enc"]) for s in trigger["secrets"])
        # A key nobody configured: the command says which documents it could not open, exits 1.
        bad = subprocess.run(  # noqa: ASYNC221
            [sys.executable, "-m", "sayso_api", "rotate-secrets"],
            env={**run_env, "SAYSO_SECRET_KEYS": "unrelated-" + "u" * 24},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode == 1
        assert "cannot open agents/" in bad.stderr
    finally:
        await mongo.close()


JWT_OLD = "jwt-old-" + "j" * 32
JWT_NEW = "jwt-new-" + "k" * 32


def _claims(sub: str = "usr_1", ttl: int = 60) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "aud": JWT_AUDIENCE, "iat": now, "exp": now + ttl, "typ": "user"}


def test_jwt_keys_verify_their_own_tokens_by_kid() -> None:
    old, both, new = JwtKeys([JWT_OLD]), JwtKeys([JWT_NEW, JWT_OLD]), JwtKeys([JWT_NEW])
    token = old.sign(_claims())
    assert jwt.get_unverified_header(token)["kid"] == old.current
    assert both.verify(token)["sub"] == "usr_1"  # still valid while the old key is listed
    fresh = both.sign(_claims())
    assert jwt.get_unverified_header(fresh)["kid"] == new.current != old.current
    assert new.verify(fresh)["sub"] == "usr_1"
    with pytest.raises(jwt.InvalidTokenError, match="unknown or retired"):
        new.verify(token)  # the old key was dropped
    # A token naming a listed key but signed by another is refused by the signature check.
    forged = jwt.encode(_claims(), JWT_OLD, algorithm="HS256", headers={"kid": new.current})
    with pytest.raises(jwt.InvalidSignatureError):
        new.verify(forged)
    # No kid: refused (every token this service issues names its key).
    with pytest.raises(jwt.InvalidTokenError):
        old.verify(jwt.encode(_claims(), JWT_OLD, algorithm="HS256"))
    with pytest.raises(ValueError, match="at least one"):
        JwtKeys([])


def test_jwt_keys_are_not_the_stored_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAYSO_SECRET_KEY", OLD)
    settings = ServiceSettings()
    token = settings.jwt_signing_keys().sign(_claims())
    # Signed under a key derived from the secret key, never the secret key itself.
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, OLD, algorithms=["HS256"], audience=JWT_AUDIENCE)
    monkeypatch.setenv("SAYSO_JWT_KEYS", f"{JWT_NEW}, {JWT_OLD}")
    assert ServiceSettings().jwt_signing_keys().current == JwtKeys([JWT_NEW]).current
    monkeypatch.setenv("SAYSO_JWT_KEYS", f"{JWT_NEW},short")
    with pytest.raises(ValidationError, match="at least 32 characters"):
        ServiceSettings()


async def test_jwt_signing_key_rotation_keeps_sessions_until_the_old_key_is_dropped(infra: Infra) -> None:
    """Three restarts of a real API: old key only, then new key first (old sessions still work,
    new ones are signed by the new key), then new key only (old sessions are refused)."""
    admin = {"email": "admin@jwt-rotation.test", "password": "admin-password-jwt"}
    base = infra.service_env(
        SAYSO_MONGO_DB="jwt_rotation",
        SAYSO_BOOTSTRAP_ADMIN_EMAIL=admin["email"],
        SAYSO_BOOTSTRAP_ADMIN_PASSWORD=admin["password"],
    )

    async def session(keys: str, token: str | None) -> tuple[int | None, str]:
        """(status of /auth/me with ``token``, a fresh login token) on an API run with ``keys``."""
        api = start_service("api", infra.log_dir, {**base, "SAYSO_JWT_KEYS": keys}, name="api-jwt")
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}", timeout=30) as client:
                status = None
                if token is not None:
                    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
                    status = me.status_code
                login = await client.post("/api/v1/auth/login", json=admin)
                assert login.status_code == 200, login.text
                return status, login.json()["token"]
        finally:
            api.stop()

    _, old_token = await session(JWT_OLD, None)
    status, new_token = await session(f"{JWT_NEW},{JWT_OLD}", old_token)
    assert status == 200
    assert jwt.get_unverified_header(new_token)["kid"] == JwtKeys([JWT_NEW]).current
    status, _ = await session(JWT_NEW, old_token)
    assert status == 401
    status, _ = await session(JWT_NEW, new_token)
    assert status == 200
