"""Credentials: API keys, JWTs, users, login throttling."""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx
import jwt

from sayso_common.clock import utcnow
from sayso_common.credentials import hash_secret
from sayso_devstack.processes import start_service
from tests.conftest import Infra
from tests.support.stack import Owner, RunningStack


async def test_missing_and_malformed_credentials(stack: RunningStack) -> None:
    async with stack.client() as anon:
        for headers in ({}, {"x-api-key": "sk_not-a-key"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"},
                        {"Authorization": "Bearer not.a.jwt"}):  # fmt: skip
            resp = await anon.get("/api/v1/agents", headers=headers)
            assert resp.status_code == 401, (headers, resp.text)
            assert resp.json()["error"]["code"] == "unauthorized"


async def test_bearer_api_key_works_like_header(owner: Owner, stack: RunningStack) -> None:
    async with stack.client(Authorization=f"Bearer {owner.api_key}") as bearer:
        assert (await bearer.get("/api/v1/agents")).status_code == 200


async def test_jwt_tampering_expiry_and_algorithms(stack: RunningStack, owner: Owner) -> None:
    header, _payload, signature = owner.token.split(".")
    claims = jwt.decode(owner.token, options={"verify_signature": False})
    forged_payload = jwt.utils.base64url_encode(
        jwt.api_jws.json.dumps({**claims, "adm": True}).encode()  # type: ignore[attr-defined]
    ).decode()
    tampered = f"{header}.{forged_payload}.{signature}"
    none_alg = jwt.encode({**claims}, key="", algorithm="none")
    wrong_key = jwt.encode(claims, "guessed-secret-guessed-secret-123", algorithm="HS256")
    expired = jwt.encode(
        {**claims, "exp": int(time.time()) - 10}, stack.env["SAYSO_SECRET_KEY"], algorithm="HS256"
    )
    for token in (tampered, none_alg, wrong_key, expired):
        async with stack.client(Authorization=f"Bearer {token}") as client:
            resp = await client.get("/api/v1/auth/me")
            assert resp.status_code == 401, token


async def test_api_keys_list_and_revoke(stack: RunningStack, owner: Owner) -> None:
    created = await owner.human.post("/api/v1/api-keys", json={"label": "ci"})
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("hp_")  # Placet's prefix: its MCP server refuses any other
    listed = (await owner.human.get("/api/v1/api-keys")).json()["data"]
    assert {k["label"] for k in listed} == {"test", "ci"}
    assert all("key" not in k and key not in str(k) for k in listed)
    async with stack.client(**{"x-api-key": key}) as client:
        assert (await client.get("/api/v1/agents")).status_code == 200
        revoke = await owner.human.delete(f"/api/v1/api-keys/{created.json()['id']}")
        assert revoke.status_code == 204
        # Revocation is immediate on the replica that handled it and within the cache TTL elsewhere.
        assert (await client.get("/api/v1/agents")).status_code == 401
    assert (await owner.agent.post("/api/v1/api-keys", json={"label": "x"})).status_code == 403


async def test_keys_issued_as_sk_keep_working(stack: RunningStack, owner: Owner) -> None:
    """Keys issued before the switch to ``hp_`` are stored as the hash of an ``sk_`` key."""
    legacy = "sk_" + secrets.token_urlsafe(30)
    async with stack.mongo() as client:
        await client.sayso.api_keys.insert_one(
            {"_id": "key_legacy_" + secrets.token_hex(4), "owner_id": owner.user_id, "key_hash": hash_secret(legacy),
             "prefix": legacy[:10], "label": "legacy", "created_at": utcnow(), "revoked_at": None}
        )  # fmt: skip
    async with stack.client(**{"x-api-key": legacy}) as client:
        assert (await client.get("/api/v1/agents")).status_code == 200
    async with stack.client(Authorization=f"Bearer {legacy}") as client:
        assert (await client.get("/api/v1/agents")).status_code == 200
    async with stack.client(**{"x-api-key": "sk_" + secrets.token_urlsafe(30)}) as client:
        assert (await client.get("/api/v1/agents")).status_code == 401


async def test_other_owner_cannot_revoke_my_key(stack: RunningStack, owner: Owner) -> None:
    other = await stack.new_owner()
    try:
        mine = (await owner.human.get("/api/v1/api-keys")).json()["data"][0]["id"]
        assert (await other.human.delete(f"/api/v1/api-keys/{mine}")).status_code == 404
        assert (await owner.agent.get("/api/v1/agents")).status_code == 200
    finally:
        await other.aclose()


async def test_only_admins_create_users(owner: Owner) -> None:
    resp = await owner.human.post("/api/v1/users", json={"email": "x@y.z", "password": "password123"})
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "admin_required"


async def test_login_is_throttled(stack: RunningStack, owner: Owner) -> None:
    # The stack allows 5 failures per e-mail and per address within the window.
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:
        codes = []
        for _ in range(7):
            resp = await client.post("/api/v1/auth/login", json={"email": owner.email, "password": "wrong"})
            codes.append(resp.status_code)
        assert codes[:5] == [401] * 5
        assert codes[5:] == [429, 429]
        blocked = await client.post(
            "/api/v1/auth/login", json={"email": owner.email, "password": owner.password}
        )
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0


async def test_login_is_throttled_per_client_address(infra: Infra) -> None:
    # Its own API process with a per-address limit of 8; the address comes from X-Forwarded-For
    # (127.0.0.1 is a trusted proxy). Different e-mails each time: only the address limit trips.
    env = infra.service_env(SAYSO_MONGO_DB="throttle_addr", SAYSO_LOGIN_MAX_FAILURES_PER_ADDRESS="8")
    api = start_service("api", infra.log_dir, env, name="api-throttle")
    try:
        base = f"http://127.0.0.1:{api.port}"
        async with httpx.AsyncClient(
            base_url=base, timeout=30, headers={"X-Forwarded-For": "203.0.113.7"}
        ) as client:
            codes = []
            for i in range(9):
                resp = await client.post(
                    "/api/v1/auth/login", json={"email": f"u{i}@spray.test", "password": "guess"}
                )
                codes.append(resp.status_code)
        assert codes == [401] * 8 + [429]
        async with httpx.AsyncClient(
            base_url=base, timeout=30, headers={"X-Forwarded-For": "203.0.113.8"}
        ) as other:
            resp = await other.post(
                "/api/v1/auth/login", json={"email": "u0@spray.test", "password": "guess"}
            )
            assert resp.status_code == 401
    finally:
        api.stop()


async def test_unknown_and_known_emails_fail_alike(stack: RunningStack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        results = await asyncio.gather(
            client.post("/api/v1/auth/login", json={"email": "ghost@nowhere.test", "password": "x"}),
            client.post("/api/v1/auth/login", json={"email": "admin@tests.local", "password": "x"}),
        )
    assert [r.status_code for r in results] == [401, 401]
    assert results[0].json() == results[1].json()
