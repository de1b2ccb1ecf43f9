"""A refusal that a server setting can lift names that setting (issue #27, item 3): an operator
reading the error knows what to change, and an agent's author knows it is a limit, not a bug."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import STACK_SETTINGS, Infra
from tests.support.inprocess import InProcessApi, running_api
from tests.support.stack import Owner

SMALL = {
    "SAYSO_MAX_BODY_BYTES": "2048",
    "SAYSO_MAX_TEXT_CHARS": "10",
    "SAYSO_MAX_METADATA_BYTES": "64",
    "SAYSO_MAX_PAYLOAD_BYTES": "64",
    "SAYSO_MAX_UPLOAD_BYTES": "10",
    "SAYSO_TRIGGER_MAX_BODY_BYTES": "256",
    "SAYSO_INBOUND_RATE_PER_MINUTE": "1",
    "SAYSO_LOGIN_MAX_FAILURES": "1",
}


@pytest.fixture(scope="module")
async def small(infra: Infra) -> AsyncIterator[InProcessApi]:
    async with running_api(infra.service_env(**{**STACK_SETTINGS, **SMALL})) as api:
        yield api


@pytest.fixture(scope="module")
async def owner(small: InProcessApi) -> AsyncIterator[Owner]:
    async with await small.new_owner() as created:
        yield created


def named(answer_text: str, *settings: str) -> bool:
    return all(setting in answer_text for setting in settings)


async def test_size_limits_name_their_setting(small: InProcessApi, owner: Owner) -> None:
    channel = (await owner.create_agent())["id"]
    cases = [
        ({"channelId": channel, "text": "x" * 3000}, 413, "SAYSO_MAX_BODY_BYTES"),
        ({"channelId": channel, "text": "x" * 11}, 413, "SAYSO_MAX_TEXT_CHARS"),
        ({"channelId": channel, "text": "x", "metadata": {"k": "m" * 100}}, 413, "SAYSO_MAX_METADATA_BYTES"),
        (
            {"channelId": channel, "text": "x", "review": {"type": "freeform", "payload": {"p": "p" * 100}}},
            413,
            "SAYSO_MAX_PAYLOAD_BYTES",
        ),
    ]
    for body, status, setting in cases:
        answer = await owner.agent.post("/api/v1/messages", json=body)
        assert answer.status_code == status, answer.text
        assert named(answer.json()["error"]["message"], setting), answer.text
    await owner.post_message(channel, text="start", streamId="s1")
    patched = await owner.agent.patch(
        "/api/v1/messages/streams/s1", json={"channelId": channel, "text": "y" * 11}
    )
    assert patched.status_code == 413, patched.text
    assert named(patched.json()["error"]["message"], "SAYSO_MAX_TEXT_CHARS")
    ticket = await owner.agent.post(
        "/api/v1/files/upload", json={"filename": "a.bin", "mimeType": "application/octet-stream"}
    )
    assert ticket.status_code == 201, ticket.text
    path = "/" + ticket.json()["uploadUrl"].split("/", 3)[3]
    async with small.client() as anonymous:
        too_big = await anonymous.put(path, content=b"z" * 11)
        assert too_big.status_code == 413, too_big.text
        assert named(too_big.json()["error"]["message"], "SAYSO_MAX_UPLOAD_BYTES")
    trigger = await owner.agent.post(
        f"/api/v1/agents/{channel}/triggers", json={"name": "t", "mapping": {"text": "/a"}}
    )
    assert trigger.status_code == 201, trigger.text
    async with small.client() as caller:
        big = await caller.post(
            f"/api/triggers/{trigger.json()['id']}",
            content=b'{"a": "' + b"b" * 300 + b'"}',
            headers={"content-type": "application/json"},
        )
    assert big.status_code == 413, big.text
    assert named(big.json()["error"]["message"], "SAYSO_TRIGGER_MAX_BODY_BYTES")


async def test_rate_and_login_limits_name_their_setting(small: InProcessApi, owner: Owner) -> None:
    channel = (await owner.create_agent())["id"]
    hook = await owner.agent.post(f"/api/v1/agents/{channel}/inbound-webhooks", json={"name": "ci"})
    assert hook.status_code == 201, hook.text
    async with small.client() as anonymous:
        url = f"/api/webhooks/execute/{hook.json()['token']}"
        first = await anonymous.post(url, json={"content": "one"})
        assert first.status_code == 200, first.text
        second = await anonymous.post(url, json={"content": "two"})
        assert second.status_code == 429, second.text
        assert named(second.json()["error"]["message"], "SAYSO_INBOUND_RATE_PER_MINUTE")
        wrong = {"email": owner.email, "password": "not-the-password"}
        answers = [await anonymous.post("/api/v1/auth/login", json=wrong) for _ in range(3)]
    throttled = [a for a in answers if a.status_code == 429]
    assert throttled, [a.status_code for a in answers]
    assert named(throttled[0].json()["error"]["message"], "SAYSO_LOGIN_MAX_FAILURES")
