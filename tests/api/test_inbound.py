"""Inbound token webhooks and signed triggers against the real stack; what a trigger definition
may not say is asked of the app in this process (``api_owner``)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.support.stack import Owner, RunningStack


async def _messages(owner: Owner, channel: str, **params: Any) -> list[dict[str, Any]]:
    resp = await owner.agent.get("/api/v1/messages", params={"channel": channel, **params})
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


async def test_token_webhook_lifecycle(stack: RunningStack, owner: Owner) -> None:
    agent = await owner.create_agent()
    created = await owner.agent.post(
        f"/api/v1/agents/{agent['id']}/inbound-webhooks",
        json={"name": "CI", "avatarUrl": "https://x.test/ci.png"},
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    assert len(hook["token"]) == 64
    assert hook["url"].endswith(f"/api/webhooks/execute/{hook['token']}")
    listed = (await owner.agent.get(f"/api/v1/agents/{agent['id']}/inbound-webhooks")).json()["data"]
    assert [h["id"] for h in listed] == [hook["id"]]
    assert hook["token"] not in json.dumps(listed)
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as anon:
        ok = await anon.post(
            f"/api/webhooks/execute/{hook['token']}", json={"content": "Build #142 **passed**"}
        )
        assert ok.status_code == 200
        assert ok.content == b""
        named = await anon.post(
            f"/api/webhooks/execute/{hook['token']}",
            json={
                "content": "override",
                "username": "Deploy Bot",
                "avatar_url": "https://x.test/bot.png",
                "embeds": [],
            },
        )
        assert named.status_code == 200, named.text
        msgs = await _messages(owner, agent["id"])
        assert [(m["text"], m["senderType"], m["senderName"], m["senderAvatarUrl"]) for m in msgs] == [
            ("override", "webhook", "Deploy Bot", "https://x.test/bot.png"),
            ("Build #142 **passed**", "webhook", "CI", "https://x.test/ci.png"),
        ]
        for bad, field in [
            ({"content": ""}, "content"),
            ({"content": "x" * 4001}, "content"),
            ({"content": "x", "username": "u" * 65}, "username"),
            ({"content": "x", "avatar_url": "javascript:x"}, "avatar_url"),
            ({}, "content"),
        ]:
            resp = await anon.post(f"/api/webhooks/execute/{hook['token']}", json=bad)
            assert resp.status_code == 422, (bad, resp.text)
            assert resp.json()["error"]["field"] == field
        unknown = await anon.post("/api/webhooks/execute/" + "A" * 64, json={"content": "x"})
        disable = await owner.agent.patch(
            f"/api/webhooks/{hook['id']}", json={"active": False, "avatar_url": None}
        )
        assert disable.json()["active"] is False
        assert disable.json()["avatarUrl"] is None
        disabled = await anon.post(f"/api/webhooks/execute/{hook['token']}", json={"content": "x"})
        assert unknown.status_code == disabled.status_code == 404
        assert unknown.json() == disabled.json()
        assert (await owner.agent.post(f"/api/webhooks/{hook['id']}/enable")).json()["active"] is True
        assert (
            await anon.post(f"/api/webhooks/execute/{hook['token']}", json={"content": "back"})
        ).status_code == 200
        assert (await owner.agent.delete(f"/api/webhooks/{hook['id']}")).status_code == 204
        gone = await anon.post(f"/api/webhooks/execute/{hook['token']}", json={"content": "x"})
        assert gone.status_code == 404
    assert len(await _messages(owner, agent["id"])) == 3


async def test_token_webhooks_are_owner_only(stack: RunningStack, owner: Owner) -> None:
    other = await stack.new_owner()
    try:
        agent = await owner.create_agent()
        hook = (
            await owner.agent.post(f"/api/v1/agents/{agent['id']}/inbound-webhooks", json={"name": "x"})
        ).json()
        for resp in await asyncio.gather(
            other.agent.post(f"/api/v1/agents/{agent['id']}/inbound-webhooks", json={"name": "x"}),
            other.agent.get(f"/api/v1/agents/{agent['id']}/inbound-webhooks"),
            other.agent.patch(f"/api/webhooks/{hook['id']}", json={"active": False}),
            other.agent.post(f"/api/webhooks/{hook['id']}/disable"),
            other.agent.delete(f"/api/webhooks/{hook['id']}"),
            other.agent.post(
                f"/api/v1/agents/{agent['id']}/triggers", json={"name": "t", "mapping": {"text": "/a"}}
            ),
        ):
            assert resp.status_code == 404, resp.text
        assert (await owner.agent.get(f"/api/v1/agents/{agent['id']}/inbound-webhooks")).json()["data"][0][
            "active"
        ]
    finally:
        await other.aclose()


async def test_token_webhook_rate_limit(stack: RunningStack, owner: Owner) -> None:
    agent = await owner.create_agent()
    hook = (
        await owner.agent.post(f"/api/v1/agents/{agent['id']}/inbound-webhooks", json={"name": "spam"})
    ).json()
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as anon:
        codes = []
        limited = None
        for i in range(70):  # the default limit is 60 per minute per webhook
            resp = await anon.post(f"/api/webhooks/execute/{hook['token']}", json={"content": f"n{i}"})
            codes.append(resp.status_code)
            if resp.status_code == 429:
                limited = resp
                break
    # A minute boundary can fall inside the loop and reset the window once; never more.
    assert limited is not None, codes
    assert 60 <= codes.count(200) <= 120
    assert 1 <= int(limited.headers["retry-after"]) <= 61
    assert limited.json()["error"]["code"] == "rate_limited"


# --- signed triggers -----------------------------------------------------------------------

MAPPING = {
    "text": "/summary",
    "status": "/level",
    "reviewType": "approval",
    "metadata": {"export": "/export_id", "count": "/record_count"},
}


async def _trigger(owner: Owner, **extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    agent = await owner.create_agent()
    body = {"name": "exports", "mapping": MAPPING, "required": ["/export_id"], **extra}
    resp = await owner.agent.post(f"/api/v1/agents/{agent['id']}/triggers", json=body)
    assert resp.status_code == 201, resp.text
    return agent, resp.json()


def _sign(secret: str, msg_id: str, body: bytes, ts: int | None = None) -> dict[str, str]:
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(ts if ts is not None else time.time(), UTC)
    sig = Webhook(secret).sign(msg_id, stamp, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": sig,
        "content-type": "application/json",
    }


PAYLOAD = {
    "summary": "Export finished",
    "level": "success",
    "export_id": "exp_8f3c21",
    "record_count": 482910,
}


async def test_trigger_accepts_standardwebhooks_signature(stack: RunningStack, owner: Owner) -> None:
    agent, trig = await _trigger(owner)
    assert trig["secret"].startswith("whsec_")
    body = json.dumps(PAYLOAD).encode()
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as caller:
        resp = await caller.post(
            f"/api/triggers/{trig['id']}", content=body, headers=_sign(trig["secret"], "msg_1", body)
        )
        assert resp.status_code == 202, resp.text
        result = resp.json()
        assert result["replayed"] is False
        again = await caller.post(
            f"/api/triggers/{trig['id']}", content=body, headers=_sign(trig["secret"], "msg_1", body)
        )
        assert again.status_code == 202
        assert again.json()["correlationId"] == result["correlationId"]
        assert again.json()["replayed"] is True
    found = await _messages(owner, agent["id"], correlationId=result["correlationId"])
    assert len(found) == 1
    msg = found[0]
    assert msg["text"] == "Export finished"
    assert msg["status"] == "success"
    assert msg["senderType"] == "webhook"
    assert msg["metadata"] == {"export": "exp_8f3c21", "count": 482910}
    assert msg["review"]["type"] == "approval"
    assert len(await _messages(owner, agent["id"])) == 1


async def test_trigger_rejections(stack: RunningStack, owner: Owner) -> None:
    agent, trig = await _trigger(owner)
    url = f"/api/triggers/{trig['id']}"
    body = json.dumps(PAYLOAD).encode()
    wrong_secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    cases: list[tuple[bytes, dict[str, str], int, str]] = [
        (body + b" ", _sign(trig["secret"], "a1", body), 401, "invalid_signature"),  # tampered body
        (body.replace(b"success", b"error  "), _sign(trig["secret"], "a2", body), 401, "invalid_signature"),
        (body, _sign(wrong_secret, "a3", body), 401, "invalid_signature"),
        (body, _sign(trig["secret"], "a4", body, ts=int(time.time()) - 3600), 401, "timestamp_out_of_range"),
        (body, _sign(trig["secret"], "a5", body, ts=int(time.time()) + 3600), 401, "timestamp_out_of_range"),
        (body, {"content-type": "application/json"}, 401, "missing_headers"),
        (
            body,
            {**_sign(trig["secret"], "a6", body), "webhook-timestamp": "yesterday"},
            401,
            "invalid_timestamp",
        ),
    ]
    missing = json.dumps({"summary": "no id"}).encode()
    cases.append((missing, _sign(trig["secret"], "a7", missing), 422, "missing_keys"))
    not_json = b"{nope"
    cases.append((not_json, _sign(trig["secret"], "a8", not_json), 422, "invalid_json"))
    big = json.dumps({**PAYLOAD, "blob": "x" * 70_000}).encode()
    cases.append((big, _sign(trig["secret"], "a9", big), 413, "payload_too_large"))
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as caller:
        for content, headers, status, code in cases:
            resp = await caller.post(url, content=content, headers=headers)
            assert resp.status_code == status, (code, resp.text)
            assert resp.json()["error"]["code"] == code
        missing_resp = await caller.post(url, content=missing, headers=_sign(trig["secret"], "a10", missing))
        assert missing_resp.json()["error"]["message"] == "required keys missing: /export_id"
        unknown = await caller.post(
            "/api/triggers/trg_nope", content=body, headers=_sign(trig["secret"], "a11", body)
        )
        assert unknown.status_code == 404
    assert await _messages(owner, agent["id"]) == []


async def test_trigger_rotation_keeps_old_secret_for_grace(stack: RunningStack, owner: Owner) -> None:
    agent, trig = await _trigger(owner)
    rotated = await owner.agent.post(f"/api/v1/triggers/{trig['id']}/rotate")
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != trig["secret"]
    url = f"/api/triggers/{trig['id']}"
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as caller:
        for n, secret in enumerate((trig["secret"], new_secret)):
            body = json.dumps({**PAYLOAD, "export_id": f"exp_{n}"}).encode()
            resp = await caller.post(url, content=body, headers=_sign(secret, f"rot-{n}", body))
            assert resp.status_code == 202, resp.text
        # A second rotation drops the first secret (only the one just replaced keeps its grace).
        third = (await owner.agent.post(f"/api/v1/triggers/{trig['id']}/rotate")).json()["secret"]
        body = json.dumps(PAYLOAD).encode()
        old = await caller.post(url, content=body, headers=_sign(trig["secret"], "rot-old", body))
        assert old.status_code == 401
        for n, secret in enumerate((new_secret, third)):
            resp = await caller.post(url, content=body, headers=_sign(secret, f"rot-late-{n}", body))
            assert resp.status_code == 202
    assert len(await _messages(owner, agent["id"])) == 4


async def test_trigger_allow_list_disable_and_delete(stack: RunningStack, owner: Owner) -> None:
    _, trig = await _trigger(owner, allowIps=["10.0.0.0/8"])
    url = f"/api/triggers/{trig['id']}"
    body = json.dumps(PAYLOAD).encode()
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as caller:
        refused = await caller.post(url, content=body, headers=_sign(trig["secret"], "ip-1", body))
        assert refused.status_code == 403
        patched = await owner.agent.patch(
            f"/api/v1/triggers/{trig['id']}", json={"allowIps": ["127.0.0.0/8"]}
        )
        assert patched.status_code == 200
        assert (
            await caller.post(url, content=body, headers=_sign(trig["secret"], "ip-2", body))
        ).status_code == 202
        await owner.agent.patch(f"/api/v1/triggers/{trig['id']}", json={"active": False})
        assert (
            await caller.post(url, content=body, headers=_sign(trig["secret"], "ip-3", body))
        ).status_code == 404
        assert (await owner.agent.delete(f"/api/v1/triggers/{trig['id']}")).status_code == 204
        assert (await owner.agent.delete(f"/api/v1/triggers/{trig['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "t", "mapping": {"text": "summary"}}, "mapping.text"),
        ({"name": "t", "mapping": {"text": "/a", "reviewType": "poll"}}, "mapping.reviewType"),
        ({"name": "t", "mapping": {"text": "/a"}, "required": ["nope"]}, "required"),
        ({"name": "t", "mapping": {"text": "/a"}, "allowIps": ["300.1.1.1"]}, "allowIps"),
        ({"name": "", "mapping": {"text": "/a"}}, "name"),
        ({"name": "t"}, "mapping"),
    ],
)
async def test_trigger_validation(api_owner: Owner, body: dict[str, Any], field: str) -> None:
    agent = await api_owner.create_agent()
    resp = await api_owner.agent.post(f"/api/v1/agents/{agent['id']}/triggers", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["field"] == field


async def test_concurrent_trigger_rotations_lose_no_shown_secret(stack: RunningStack, owner: Owner) -> None:
    """Every secret a rotation answered with must verify afterwards, however the rotations race."""
    _, trig = await _trigger(owner)
    url = f"/api/triggers/{trig['id']}"
    for round_ in range(3):
        answers = await asyncio.gather(
            *(owner.agent.post(f"/api/v1/triggers/{trig['id']}/rotate") for _ in range(2))
        )
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as caller:
            for n, answer in enumerate(answers):
                body = json.dumps({**PAYLOAD, "export_id": f"race_{round_}_{n}"}).encode()
                resp = await caller.post(
                    url, content=body, headers=_sign(answer.json()["secret"], f"race-{round_}-{n}", body)
                )
                assert resp.status_code == 202, (round_, n, resp.text)
