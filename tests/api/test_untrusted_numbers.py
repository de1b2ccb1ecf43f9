"""Numbers in unauthenticated requests (a signed URL's expiry, a Slack or Standard Webhooks
timestamp) that Python's parsers read differently from ASCII digits: each one is a 4xx naming
the problem, never a 500 (the server closes the connection after an unhandled error, and the edge
does not retry a POST: another tenant's request on it gets a 502)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from sayso_api import slack
from tests.conftest import STACK_SETTINGS, Infra
from tests.support.inprocess import InProcessApi, running_api
from tests.support.stack import Owner, RunningStack

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ARABIC_INDIC_TIME = ("\u0661\u0667" + "\u0660" * 8).encode()  # 1700000000 to int()
# "²" is a digit to str.isdigit(), and int() refuses it; Arabic-Indic and fullwidth digits are
# digits int() reads.
ODD_NUMBERS = ["%C2%B2", "1%C2%B2", "%D9%A1%D9%A2", "%EF%BC%91%EF%BC%92", "+1", "%201", "1_0", "9" * 5000]


@pytest.mark.parametrize("expiry", ODD_NUMBERS)
async def test_signed_file_urls_with_odd_expiries_are_403(stack: RunningStack, expiry: str) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as anyone:
        download = await anyone.get(f"/api/v1/files/signed/x.{expiry}.y")
        upload = await anyone.put(f"/api/v1/files/upload/x.{expiry}.y", content=b"hello")
    for resp in (download, upload):
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["code"] == "invalid_link"


async def test_a_trigger_refuses_odd_timestamps_with_401(stack: RunningStack, owner: Owner) -> None:
    agent = await owner.create_agent()
    made = await owner.agent.post(
        f"/api/v1/agents/{agent['id']}/triggers", json={"name": "t", "mapping": {"text": "/a"}}
    )
    assert made.status_code == 201, made.text
    body = json.dumps({"a": "hello"}).encode()
    stamps: list[bytes] = [
        b"\xb2",
        ARABIC_INDIC_TIME,
        b"+" + str(int(time.time())).encode(),
        b"9" * 400,
    ]
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as caller:
        for stamp in stamps:
            resp = await caller.post(
                f"/api/triggers/{made.json()['id']}",
                content=body,
                headers={b"webhook-id": b"m1", b"webhook-timestamp": stamp, b"webhook-signature": b"v1,AAAA"},
            )
            assert resp.status_code == 401, (stamp[:20], resp.text)
            assert resp.json()["error"]["code"] == "invalid_timestamp"


@pytest.fixture(scope="module")
async def slack_api(infra: Infra) -> AsyncIterator[InProcessApi]:
    async with running_api(
        infra.service_env(**STACK_SETTINGS, SAYSO_SLACK_SIGNING_SECRET=SLACK_SECRET)
    ) as api:
        yield api


@pytest.mark.parametrize(
    "stamp",
    [
        b"\xb2",
        b"1\xb2",
        ARABIC_INDIC_TIME,
        b"+1700000000",
        b" 1700000000",
    ],
)
async def test_slack_requests_with_odd_timestamps_are_401(slack_api: InProcessApi, stamp: bytes) -> None:
    body = b"payload=%7B%7D"
    # Signed over the very bytes sent, so only the timestamp's reading can refuse it.
    text = stamp.decode("latin-1")
    signature = slack.signature(SLACK_SECRET.encode(), text, body)
    async with slack_api.client() as anyone:
        resp = await anyone.post(
            "/api/integrations/slack/actions",
            content=body,
            headers={
                b"content-type": b"application/x-www-form-urlencoded",
                b"x-slack-request-timestamp": stamp,
                b"x-slack-signature": signature.encode(),
            },
        )
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"]["code"] == "invalid_timestamp"
