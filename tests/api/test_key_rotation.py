"""Stored-secret encryption keys rotate: MultiFernet with SIGNOFF_SECRET_KEYS, tokens of the earlier
AES-GCM box still open, and `signoff-api rotate-secrets` re-seals everything under the newest key."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo import AsyncMongoClient

from signoff_common.secretbox import SecretBox
from signoff_devstack.processes import start_service
from tests.conftest import Infra
from tests.support.stack import admin_headers

OLD = "old-key-" + "o" * 24
NEW = "new-key-" + "n" * 24


def _legacy_seal(key: str, plaintext: str) -> str:
    """A token as the AES-GCM box before MultiFernet made it (version byte 0x01)."""
    aead = AESGCM(hashlib.sha256(b"signoff-secretbox:" + key.encode()).digest())
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
        SIGNOFF_MONGO_DB=db_name,
        SIGNOFF_SECRET_KEYS=OLD,
        SIGNOFF_BOOTSTRAP_ADMIN_EMAIL=admin["email"],
        SIGNOFF_BOOTSTRAP_ADMIN_PASSWORD=admin["password"],
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
        run_env = {**os.environ, **env, "SIGNOFF_SECRET_KEYS": f"{NEW},{OLD}"}
        done = subprocess.run(  # noqa: ASYNC221 - a short command, run to completion
            [sys.executable, "-m", "signoff_api", "rotate-secrets"],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "agents: 1 documents re-sealed" in done.stdout
        assert "triggers: 1 documents re-sealed" in done.stdout
        only_new = SecretBox(NEW)
        agent = await db.agents.find_one({"_id": made.json()["id"]})
        assert agent is not None
        assert only_new.open(agent["webhook_headers_enc"]) == '{"X-Token": "v"}'
        assert "auth-secret" in only_new.open(agent["webhook_auth_enc"])
        assert all(only_new.open(s["secret_enc"]).startswith("whsec_") for s in agent["signing_secrets"])
        trigger = await db.triggers.find_one({"channel_id": made.json()["id"]})
        assert trigger is not None
        assert all(only_new.open(s["secret_enc"]) for s in trigger["secrets"])
        # A key nobody configured: the command says which documents it could not open, exits 1.
        bad = subprocess.run(  # noqa: ASYNC221
            [sys.executable, "-m", "signoff_api", "rotate-secrets"],
            env={**run_env, "SIGNOFF_SECRET_KEYS": "unrelated-" + "u" * 24},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode == 1
        assert "cannot open agents/" in bad.stderr
    finally:
        await mongo.close()
