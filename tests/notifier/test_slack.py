"""Slack: Block Kit messages with answer buttons to a local receiver standing in for Slack, and
Slack's interactive callbacks signed as Slack signs them (v0 HMAC-SHA256 over
``v0:{timestamp}:{body}``): a click answers once, as the recipient, and the message is replaced
with the outcome; forged, stale and replayed requests answer nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.notifier.conftest import SLACK_SECRET, Notify
from tests.notifier.test_email import APPROVAL
from tests.support.receiver import Received, Receiver
from tests.support.stack import Owner, eventually

pytestmark = pytest.mark.slow


def signed(
    payload: dict[str, Any], timestamp: int | None = None, secret: str = SLACK_SECRET
) -> tuple[bytes, dict[str, str]]:
    """A request body and headers exactly as Slack sends an interaction."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    body = urlencode({"payload": json.dumps(payload)}).encode()
    mac = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return body, {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": f"v0={mac}",
    }


async def posted(slack: Receiver, path: str, count: int = 1) -> list[Received]:
    async def arrived() -> list[Received] | None:
        found = slack.at(path)
        return found if len(found) >= count else None

    return await eventually(arrived, 20, f"{count} Slack post(s) to {path}")


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    actions = next(b for b in message["blocks"] if b["type"] == "actions")
    return [e for e in actions["elements"] if "value" in e]


async def click(notify: Notify, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=notify.api_url, timeout=10) as client:
        return await client.post("/api/integrations/slack/actions", content=body, headers=headers)


async def review_in(person: Owner, slack: Receiver) -> tuple[dict[str, Any], dict[str, Any]]:
    prefs = await person.human.put(
        "/api/v1/users/me/notifications", json={"email": False, "slackWebhookUrl": slack.url("/slack/user")}
    )
    assert prefs.status_code == 200, prefs.text
    assert prefs.json()["slackWebhookSet"] is True
    assert prefs.json()["slackWebhookHost"] == "127.0.0.1"
    assert "slack/user" not in prefs.text  # the URL is a credential: never shown back
    agent = await person.create_agent(name="slack-bot")
    msg = await person.post_message(agent["id"], text="Rotate the *prod* keys? <@channel>", review=APPROVAL)
    (first,) = await posted(slack, "/slack/user")
    return msg, first.json()


async def test_a_review_arrives_as_block_kit_with_a_button_per_option(
    notify: Notify, person: Owner, slack: Receiver
) -> None:
    msg, message = await review_in(person, slack)
    section = message["blocks"][0]["text"]["text"]
    # Slack's control characters are escaped: an agent cannot ping @channel through Sayso.
    assert "&lt;@channel&gt;" in section
    assert "<@channel>" not in json.dumps(message)
    found = buttons(message)
    assert [b["text"]["text"] for b in found] == ["Ship it", "Hold <b>back</b>"]
    assert [b.get("style") for b in found] == ["primary", "danger"]
    opener = next(b for b in message["blocks"] if b["type"] == "actions")["elements"][-1]
    assert opener["url"] == f"{notify.api_url}/#/c/{msg['channelId']}"
    assert "value" not in opener


async def test_a_signed_click_answers_once_and_replaces_the_message(
    notify: Notify, person: Owner, slack: Receiver
) -> None:
    msg, message = await review_in(person, slack)
    token = buttons(message)[1]["value"]
    payload = {
        "type": "block_actions",
        "user": {"id": "U024BE7LH", "username": "someone"},
        "actions": [{"action_id": "sayso_answer_1", "value": token}],
        "response_url": slack.url("/slack/response"),
    }
    body, headers = signed(payload)
    resp = await click(notify, body, headers)
    assert resp.status_code == 200, resp.text
    review = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]
    assert review["status"] == "completed"
    assert review["response"] == {"selectedOption": "reject"}
    assert review["respondedBy"] == person.user_id
    (update,) = await posted(slack, "/slack/response")
    replaced = update.json()
    assert replaced["replace_original"] is True
    assert f"Hold &lt;b&gt;back&lt;/b&gt; by {person.email}" in json.dumps(replaced)
    assert not any(b["type"] == "actions" for b in replaced["blocks"])

    # Replayed within the window (valid signature): nothing is answered a second time.
    again = await click(notify, body, headers)
    assert again.status_code == 200
    after = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]
    assert after["respondedAt"] == review["respondedAt"]
    assert after["response"] == review["response"]
    # The other button of the same message is spent too.
    other = {**payload, "actions": [{"action_id": "sayso_answer_0", "value": buttons(message)[0]["value"]}]}
    assert (await click(notify, *signed(other))).status_code == 200
    assert (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]["response"] == review[
        "response"
    ]


async def test_forged_stale_and_unsigned_requests_are_refused(
    notify: Notify, person: Owner, slack: Receiver
) -> None:
    msg, message = await review_in(person, slack)
    payload = {
        "type": "block_actions",
        "actions": [{"value": buttons(message)[0]["value"]}],
        "response_url": slack.url("/r"),
    }
    body, headers = signed(payload)
    cases = {
        "invalid_signature": (body, {**headers, "x-slack-signature": "v0=" + "0" * 64}),
        "wrong secret": signed(payload, secret="not-the-signing-secret"),
        "timestamp_out_of_range": signed(payload, timestamp=int(time.time()) - 600),
        "future": signed(payload, timestamp=int(time.time()) + 600),
        "missing_headers": (body, {"content-type": "application/x-www-form-urlencoded"}),
        "altered body": (body + b"&extra=1", headers),
    }
    for name, (b, h) in cases.items():
        resp = await click(notify, b, h)
        assert resp.status_code == 401, (name, resp.text)
        assert resp.json()["error"]["code"] in (
            "invalid_signature",
            "timestamp_out_of_range",
            "missing_headers",
        ), name
    assert (await click(notify, *cases["timestamp_out_of_range"])).json()["error"][
        "code"
    ] == "timestamp_out_of_range"
    review = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]
    assert review["status"] == "pending"
    assert slack.at("/r") == []


async def test_a_channel_webhook_and_an_inbox_answer_get_a_follow_up(
    notify: Notify, person: Owner, slack: Receiver
) -> None:
    agent = await person.create_agent(name="team-channel")
    set_hook = await person.agent.put(
        f"/api/v1/agents/{agent['id']}/notifications", json={"slackWebhookUrl": slack.url("/slack/team")}
    )
    assert set_hook.status_code == 200, set_hook.text
    assert set_hook.json() == {"slackWebhookSet": True, "slackWebhookHost": "127.0.0.1"}
    msg = await person.post_message(agent["id"], text="Merge the release branch?", review=APPROVAL)
    (first,) = await posted(slack, "/slack/team")
    assert len(buttons(first.json())) == 2
    assert (await person.respond(msg["id"], {"selectedOption": "approve"})).status_code == 200
    _, follow_up = await posted(slack, "/slack/team", 2)
    text = json.dumps(follow_up.json())
    assert f"Ship it by {person.email}" in text
    assert "replace_original" not in follow_up.json()

    # A refused destination fails at once with the guard's reason, never reaching the address.
    refused = await person.agent.put(
        f"/api/v1/agents/{agent['id']}/notifications",
        json={"slackWebhookUrl": "http://169.254.169.254/latest"},
    )
    assert refused.status_code == 200
    second = await person.post_message(agent["id"], text="Again?", review=APPROVAL)

    async def failed() -> dict[str, Any] | None:
        data = (await person.human.get("/api/v1/notifications", params={"message": second["id"]})).json()[
            "data"
        ]
        return next((n for n in data if n["kind"] == "slack" and n["state"] == "failed"), None)

    entry = await eventually(failed, 15, "the refused Slack notice recorded as failed")
    assert entry["attempts"][0]["errorKind"] == "ssrf_refused"
    assert "169.254.169.254" in entry["lastError"]
    assert "latest" not in json.dumps(entry)
