"""Processa receivers and Basic auth: an agent (or one message) chooses `webhookFormat: processa`,
and a receiver written like the Flask example in Processa's webhook docs (seed 004) handles an
approved and a rejected review, delivered signed and retried as any other webhook."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from pymongo import AsyncMongoClient
from standardwebhooks import Webhook

from sayso_common.events import MessageData, ReviewExpired, ReviewResponded
from sayso_common.views import MessageView, ReviewView
from sayso_common.webhook_bodies import body_for
from sayso_devstack.processes import free_port
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack

NOW = datetime(2026, 4, 1, 14, 32, tzinfo=UTC)
OPTIONS = [
    {"id": "approve", "label": "Approve", "style": "primary"},
    {"id": "reject", "label": "Reject", "style": "danger"},
]


def _message(response: Any, *, options: list[dict[str, Any]] = OPTIONS, **fields: Any) -> MessageView:
    review = ReviewView(
        type="approval",
        payload={"options": options},
        status="completed",
        response=response,
        responded_at=NOW,
        completed_at=NOW,
        feedback=fields.pop("feedback", None),
    )
    return MessageView(
        id="msg_1",
        channel_id="agt_1",
        text=fields.pop("text", "# Send welcome email\nTo the new user"),
        metadata=fields.pop("metadata", {"content": {"to": "user@example.com"}, "source": "ai_agent_v1"}),
        review=review,
        created_at=NOW - timedelta(minutes=5),
    )


def _responded(message: MessageView) -> ReviewResponded:
    return ReviewResponded(
        channel_id="agt_1", owner_id="u", occurred_at=NOW, data=MessageData(message=message)
    )


@pytest.mark.parametrize(
    ("response", "options", "event"),
    [
        ({"selectedOption": "approve"}, OPTIONS, "draft.approved"),
        ({"selectedOption": "reject", "comment": "Content violates policy"}, OPTIONS, "draft.rejected"),
        (
            {"selectedOption": "yes"},
            [{"id": "yes", "label": "Yes"}, {"id": "no", "label": "No"}],
            "draft.approved",
        ),
        (
            {"selectedOption": "no"},
            [{"id": "yes", "label": "Yes"}, {"id": "no", "label": "No"}],
            "draft.rejected",
        ),
        ({"selectedOption": "go"}, [{"id": "go", "label": "Go", "style": "success"}], "draft.approved"),
        (
            {"selectedOption": "later"},
            [{"id": "later", "label": "Later", "style": "ghost"}],
            "draft.rejected",
        ),
        ({"_dismissed": True}, OPTIONS, "draft.rejected"),
    ],
)
def test_which_answers_approve(response: dict[str, Any], options: list[dict[str, Any]], event: str) -> None:
    body = body_for(_responded(_message(response, options=options)), "processa")
    assert body is not None
    assert body["event"] == event


def test_processa_bodies_match_the_docs() -> None:
    approved = body_for(_responded(_message({"selectedOption": "approve"})), "processa")
    assert approved == {
        "event": "draft.approved",
        "draft": {
            "id": "msg_1",
            "title": "Send welcome email",
            "content": {"to": "user@example.com"},
            "metadata": {"source": "ai_agent_v1"},
            "reviewedAt": "2026-04-01T14:32:00.000Z",
        },
        "timestamp": "2026-04-01T14:32:00.000Z",
    }
    rejected = body_for(
        _responded(_message({"selectedOption": "reject", "comment": "Content violates policy"})), "processa"
    )
    assert rejected == {
        "event": "draft.rejected",
        "draft": {
            "id": "msg_1",
            "title": "Send welcome email",
            "rejectionReason": "Content violates policy",
            "reviewedAt": "2026-04-01T14:32:00.000Z",
        },
        "timestamp": "2026-04-01T14:32:00.000Z",
    }
    by_feedback = body_for(_responded(_message({"selectedOption": "reject"}, feedback="shorter")), "processa")
    assert by_feedback is not None
    assert by_feedback["draft"]["rejectionReason"] == "shorter"
    plain = _message({"selectedOption": "approve"}, metadata=None, text="")
    assert body_for(_responded(plain), "processa")["draft"] | {} == {  # type: ignore[index]
        "id": "msg_1",
        "title": "Review msg_1",
        "content": "",
        "metadata": {},
        "reviewedAt": "2026-04-01T14:32:00.000Z",
    }
    expired_view = _message(None).model_copy(
        update={"review": _message(None).review.model_copy(update={"status": "expired"})}  # type: ignore[union-attr]
    )
    expired = ReviewExpired(
        channel_id="agt_1", owner_id="u", occurred_at=NOW, data=MessageData(message=expired_view)
    )
    assert body_for(expired, "processa") == {
        "event": "draft.rejected",
        "draft": {"id": "msg_1", "title": "Send welcome email", "rejectionReason": "expired", "reviewedAt": "2026-04-01T14:32:00.000Z"},
        "timestamp": "2026-04-01T14:32:00.000Z",
    }  # fmt: skip
    # Other review types keep Placet's body whatever the format.
    form = _message({"a": 1}).model_copy(
        update={"review": _message({"a": 1}).review.model_copy(update={"type": "form"})}  # type: ignore[union-attr]
    )
    assert body_for(_responded(form), "processa")["event"] == "review:responded"  # type: ignore[index]


class ProcessaReceiver:
    """Written like Processa's Flask example: reads only event, draft.id, draft.content and
    draft.rejectionReason, and answers 200 {"received": true}."""

    def __init__(self) -> None:
        self.executed: list[Any] = []
        self.rejected: list[tuple[str, str | None]] = []
        self.headers: list[dict[str, str]] = []
        self.raw: list[bytes] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.raw.append(await request.read())
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        data = await request.json()
        event = data["event"]
        draft = data["draft"]
        if event == "draft.approved":
            self.executed.append(draft["content"])  # execute_action(draft['content'])
            return web.json_response({"received": True})
        if event == "draft.rejected":
            self.rejected.append((draft["id"], draft.get("rejectionReason")))
            return web.json_response({"received": True})
        return web.json_response({"received": False}, status=400)

    async def __aenter__(self) -> ProcessaReceiver:
        app = web.Application()
        app.router.add_post("/webhooks/processa", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._runner:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/processa"


async def _until(check: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


async def test_a_processa_receiver_handles_approved_and_rejected(owner: Owner) -> None:
    async with ProcessaReceiver() as processa:
        agent = await owner.create_agent(webhookUrl=processa.url, webhookFormat="processa")
        assert agent["webhookFormat"] == "processa"
        review = {"type": "approval", "payload": {"options": OPTIONS}}
        content = {"to": "user@example.com", "subject": "Welcome!", "body": "Hello..."}
        good = await owner.post_message(
            agent["id"], text="Send welcome email", metadata={"content": content}, review=review
        )
        bad = await owner.post_message(agent["id"], text="Send promo blast", review=review)
        assert (await owner.respond(good["id"], {"selectedOption": "approve"})).status_code == 200
        assert (
            await owner.respond(bad["id"], {"selectedOption": "reject", "comment": "Content violates policy"})
        ).status_code == 200
        await _until(lambda: processa.executed and processa.rejected)
        assert processa.executed == [content]
        assert processa.rejected == [(bad["id"], "Content violates policy")]
        # Signed the Standard Webhooks way, with the agent's secret.
        for raw, headers in zip(processa.raw, processa.headers, strict=True):
            assert Webhook(agent["webhookSecret"]).verify(raw, headers)["event"].startswith("draft.")
        # The test button sends a Processa-shaped event the same handler accepts.
        test = await owner.agent.post(f"/api/v1/agents/{agent['id']}/webhook/test")
        assert test.status_code == 200, test.text
        assert test.json()["delivered"] is True
        assert len(processa.executed) == 2


async def test_one_message_can_ask_for_processa(owner: Owner, receiver: Receiver) -> None:
    async with ProcessaReceiver() as processa:
        agent = await owner.create_agent(webhookUrl=receiver.url("/placet"))
        review = {"type": "approval", "payload": {}}
        own = await owner.post_message(
            agent["id"], review=review, webhookUrl=processa.url, webhookFormat="processa"
        )
        other = await owner.post_message(agent["id"], review=review)
        await owner.respond(own["id"], {"selectedOption": "approve"})
        await owner.respond(other["id"], {"selectedOption": "approve"})
        await _until(lambda: bool(processa.executed))
        (placet,) = await receiver.wait_for("/placet")
        assert placet.json()["event"] == "review:responded"
        assert placet.json()["message_id"] == other["id"]


async def test_basic_auth_reaches_the_receiver_and_is_stored_sealed(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent(
        webhookUrl=receiver.url("/auth"), webhookAuth={"username": "bot", "password": "s3cr3t-pass"}
    )
    assert agent["webhookAuth"] == {"username": "bot", "password": "***"}
    first = await owner.post_message(agent["id"], review={"type": "approval", "payload": {}})
    await owner.respond(first["id"], {"selectedOption": "approve"})
    v2 = await owner.post_message(
        agent["id"], review={"type": "approval", "payload": {}}, iterationOf=first["id"]
    )
    await owner.human.post(
        f"/api/v1/reviews/{v2['id']}/respond",
        json={
            "response": {"selectedOption": "reject"},
            "feedback": "add numbers",
            "modifiedFileIds": {"a": "b"},
        },
    )
    hooks = await receiver.wait_for("/auth", count=2)
    expected = "Basic " + base64.b64encode(b"bot:s3cr3t-pass").decode()
    assert all(h.headers["authorization"] == expected for h in hooks)
    second = next(h.json() for h in hooks if h.json()["message_id"] == v2["id"])
    assert (second["iteration"], second["iterationGroupId"], second["feedback"]) == (
        2,
        first["id"],
        "add numbers",
    )
    assert second["modifiedFileIds"] == {"a": "b"}
    assert list(second)[:5] == ["event", "channelId", "message_id", "review_type", "response"]
    mongo: AsyncMongoClient[dict[str, Any]] = stack.mongo()
    try:
        db = mongo.sayso
        for name in ("agents", "deliveries", "messages"):
            async for doc in db[name].find(
                {"channel_id": agent["id"]} if name != "agents" else {"_id": agent["id"]}
            ):
                assert "s3cr3t-pass" not in str(doc), name
    finally:
        await mongo.close()


async def test_an_expired_review_reaches_processa_as_rejected(owner: Owner) -> None:
    async with ProcessaReceiver() as processa:
        agent = await owner.create_agent(webhookUrl=processa.url, webhookFormat="processa")
        msg = await owner.post_message(
            agent["id"],
            text="Send promo blast",
            review={"type": "approval", "payload": {"options": OPTIONS}, "expiresInSeconds": 1},
        )
        await _until(lambda: bool(processa.rejected))
        assert processa.rejected == [(msg["id"], "expired")]
        assert processa.executed == []
        body = json.loads(processa.raw[0])
        assert set(body) == {"event", "draft", "timestamp", "actionDigest"}
        assert body["actionDigest"] == msg["review"]["actionDigest"]
        assert set(body["draft"]) == {"id", "title", "rejectionReason", "reviewedAt"}


def test_edited_args_reach_both_formats() -> None:
    """Edit-before-approve (#32): the reviewer's editedArgs are in Placet's response as recorded and
    a top-level key of Processa's draft.approved; a body without them is unchanged."""
    edited = {"amount": 90, "currency": "EUR"}
    event = _responded(_message({"selectedOption": "approve", "editedArgs": edited}))
    processa = body_for(event, "processa")
    assert processa is not None
    assert processa["event"] == "draft.approved"
    assert processa["editedArgs"] == edited
    assert list(processa) == ["event", "draft", "timestamp", "editedArgs"]
    placet = body_for(event, "placet")
    assert placet is not None
    assert placet["response"] == {"selectedOption": "approve", "editedArgs": edited}
    plain = body_for(_responded(_message({"selectedOption": "approve"})), "processa")
    assert plain is not None
    assert "editedArgs" not in plain
