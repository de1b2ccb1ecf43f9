"""Expunging a message's content on the real stack: the content goes from the message, its
attachments (GridFS bytes too) and its stored events; id, channel, times and statuses stay,
marked expunged; the audit keeps its entries and gains one for the expunge; owners only;
idempotent. And the pure pieces (what the update and the events' rewrite remove) as tables."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aiohttp import web

import sayso
from sayso_api import expunge
from sayso_common.documents import MessageDoc
from sayso_common.events import MessageCreated, MessageData, ReviewVoted, VoteData
from sayso_common.views import MessageView, ReviewView, VoteView
from tests.api.test_audit import everything
from tests.api.test_files import blob_state, upload
from tests.clients.test_cli import cli_env, run
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack, eventually

SECRET = "the-launch-code-is-4417"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def people(stack: RunningStack) -> AsyncIterator[tuple[Owner, Owner, Owner]]:
    """(owner, member, outsider) for the module (creating a user is slow: Argon2)."""
    async with stack.new_owners(3) as made:
        yield made[0], made[1], made[2]


async def stored_events(stack: RunningStack, message_id: str) -> list[dict[str, Any]]:
    mongo = stack.mongo()
    try:
        found = mongo[stack.mongo_db].events.find({"data.message.id": message_id})
        return [doc async for doc in found]
    finally:
        await mongo.close()


async def answered_message(stack: RunningStack, owner: Owner, channel: str) -> tuple[dict[str, Any], str]:
    """A message with secret text, metadata, an attachment and an answered review whose events
    are all stored; and the attachment's file id."""
    file_id = await upload(
        stack, owner, channel, SECRET.encode() * 100, filename="secret.txt", mimeType="text/plain"
    )
    msg = await owner.post_message(
        channel,
        text=f"deploy? {SECRET}",
        metadata={"note": SECRET},
        attachmentIds=[file_id],
        review={
            "type": "approval",
            "payload": {"options": [{"id": "ok", "label": SECRET}], "allowComment": True},
        },
    )
    answer = await owner.human.post(
        f"/api/v1/reviews/{msg['id']}/respond", json={"response": {"selectedOption": "ok", "comment": SECRET}}
    )
    assert answer.status_code == 200, answer.text

    async def both_stored() -> bool:
        types = {e["type"] for e in await stored_events(stack, msg["id"])}
        return {"message.created", "review.responded"} <= types

    await eventually(both_stored, what="the message's events stored")
    return msg, file_id


async def test_expunge_removes_the_content_everywhere_and_keeps_the_record(
    stack: RunningStack, people: tuple[Owner, Owner, Owner]
) -> None:
    owner = people[0]
    channel = (await owner.create_agent())["id"]
    msg, file_id = await answered_message(stack, owner, channel)
    assert (await blob_state(stack, file_id))[0] > 0

    resp = await owner.agent.post(f"/api/v1/messages/{msg['id']}/expunge")
    assert resp.status_code == 200, resp.text
    gone = resp.json()
    assert (gone["expunged"], gone["text"], gone["metadata"], gone["attachments"]) == (True, None, None, [])
    assert (gone["review"]["payload"], gone["review"]["response"]) == ({}, None)
    kept = ("id", "channelId", "createdAt", "status", "senderType", "correlationId")
    assert {k: gone[k] for k in kept} == {k: msg[k] for k in kept}
    assert gone["review"]["status"] == "completed"
    assert gone["expungedAt"] is not None
    # Read back, the same; nothing of the content is left in the message.
    read = (await owner.human.get(f"/api/v1/messages/{msg['id']}")).json()
    assert read["expunged"] is True
    assert SECRET not in json.dumps(read)
    # The attachment: record and GridFS bytes gone.
    assert (await owner.agent.get(f"/api/v1/files/{file_id}/download")).status_code == 404
    assert await blob_state(stack, file_id) == (0, 0)
    # The stored events: still there, without the content.
    events = await stored_events(stack, msg["id"])
    assert {e["type"] for e in events} >= {"message.created", "review.responded"}
    assert all(e["data"]["message"]["expunged"] is True for e in events)
    assert SECRET not in json.dumps(events, default=str)
    # The audit keeps the answer and records the expunge, by the API key's owner.
    entries = await everything(owner.human, channelId=channel)
    assert {e["kind"] for e in entries if e["messageId"] == msg["id"]} == {"answered", "expunged"}
    [entry] = [e for e in entries if e["kind"] == "expunged"]
    assert entry["actor"]["type"] == "agent"

    # Again: the same answer, the first expunge's time, still one entry.
    again = await owner.human.post(f"/api/v1/messages/{msg['id']}/expunge")
    assert again.status_code == 200, again.text
    assert again.json()["expungedAt"] == gone["expungedAt"]
    assert len([e for e in await everything(owner.human, channelId=channel) if e["kind"] == "expunged"]) == 1


async def test_expunge_reaches_webhook_deliveries_and_dead_letters(
    stack: RunningStack, people: tuple[Owner, Owner, Owner], receiver: Receiver
) -> None:
    """The answer also sits in the webhook deliveries (the body sent, the receivers' replies) and
    in any entry the relay could not publish: an expunge clears those too, and is refused while a
    delivery is still being retried (it would send the content afterwards)."""

    async def failing(request: web.Request, got: Any) -> web.Response:
        return web.Response(status=503, text=f"busy {SECRET}")

    async def echo(request: web.Request, got: Any) -> web.Response:
        return web.Response(text=f"got {SECRET}")

    receiver.routes["/down"] = failing
    receiver.routes["/echo"] = echo
    owner = people[0]
    channel = (await owner.create_agent(webhookUrl=receiver.url("/echo")))["id"]
    msg, _ = await answered_message(stack, owner, channel)
    async with stack.mongo() as mongo:
        db = mongo[stack.mongo_db]

        async def delivered() -> list[dict[str, Any]] | None:
            found = await db.deliveries.find({"message_id": msg["id"]}).to_list()
            done = found and all(d["state"] == "delivered" for d in found)
            return found if done and SECRET in json.dumps(found, default=str) else None

        await eventually(delivered, what="the answer's webhook delivered")
        await db.outbox_dead_letters.insert_one(
            {"_id": f"evt_dead_{msg['id']}", "reason": "too_large", "detail": "test", "collection": "messages",
             "document_id": msg["id"], "entry": {"id": "evt_x", "data": {"text": SECRET}}, "at": NOW}
        )  # fmt: skip
        resp = await owner.agent.post(f"/api/v1/messages/{msg['id']}/expunge")
        assert resp.status_code == 200, resp.text
        deliveries = await db.deliveries.find({"message_id": msg["id"]}).to_list()
        assert deliveries
        assert SECRET not in json.dumps(deliveries, default=str)
        assert all(d["state"] == "delivered" and d["attempts"] for d in deliveries)  # the record stays
        dead = await db.outbox_dead_letters.find({"document_id": msg["id"]}).to_list()
        assert dead
        assert SECRET not in json.dumps(dead, default=str)

    retrying = (await owner.create_agent(webhookUrl=receiver.url("/down")))["id"]
    pending, _ = await answered_message(stack, owner, retrying)
    await receiver.wait_for("/down")
    refused = await owner.agent.post(f"/api/v1/messages/{pending['id']}/expunge")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "deliveries_pending"


async def test_only_the_owner_may_expunge(stack: RunningStack, people: tuple[Owner, Owner, Owner]) -> None:
    owner, member, outsider = people
    channel = (await owner.create_agent())["id"]
    shared = await owner.human.post(f"/api/v1/agents/{channel}/members", json={"email": member.email})
    assert shared.status_code in (200, 201), shared.text
    msg = await owner.post_message(channel, text=SECRET)
    # The member reads it, but expunging is the owner's, as deleting is: 404, as for a stranger.
    assert (await member.human.get(f"/api/v1/messages/{msg['id']}")).status_code == 200
    for who in (member.human, member.agent, outsider.human, outsider.agent):
        refused = await who.post(f"/api/v1/messages/{msg['id']}/expunge")
        assert refused.status_code == 404, refused.text
        assert refused.json()["error"]["code"] == "not_found"
    assert (await owner.human.post("/api/v1/messages/msg_nosuchmessage/expunge")).status_code == 404
    # Still whole.
    assert (await owner.agent.get(f"/api/v1/messages/{msg['id']}")).json()["text"] == SECRET


async def test_a_pending_review_is_refused_until_it_closes(people: tuple[Owner, Owner, Owner]) -> None:
    owner = people[0]
    channel = (await owner.create_agent())["id"]
    msg = await owner.post_message(channel, text=SECRET, review={"type": "text-input"})
    refused = await owner.agent.post(f"/api/v1/messages/{msg['id']}/expunge")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "review_pending"
    assert (await owner.respond(msg["id"], {"text": "done"})).status_code == 200

    async def expunged() -> dict[str, Any] | None:
        # The answer's event may still be in the outbox for a moment (then 409 events_pending).
        resp = await owner.agent.post(f"/api/v1/messages/{msg['id']}/expunge")
        return resp.json() if resp.status_code == 200 else None

    done = await eventually(expunged, what="the expunge after the answer")
    assert (done["text"], done["review"]["response"]) == (None, None)


async def test_sdk_and_cli_expunge(stack: RunningStack, people: tuple[Owner, Owner, Owner]) -> None:
    owner = people[0]
    channel = (await owner.create_agent())["id"]
    first = await owner.post_message(channel, text=SECRET)
    async with sayso.AsyncClient(stack.url, owner.api_key) as client:
        gone = await client.expunge_message(first["id"])
    assert (gone.id, gone.text, gone.expunged) == (first["id"], None, True)
    assert gone.expunged_at is not None
    second = await owner.post_message(channel, text=SECRET)
    code, out, _ = await run(cli_env(stack, owner), "expunge", second["id"], "--json")
    assert code == 0
    assert (json.loads(out)["text"], json.loads(out)["expunged"]) == (None, True)
    # Someone else's (or no such) message: the CLI's usual error exit.
    code, _, err = await run(cli_env(stack, people[2]), "expunge", first["id"])
    assert code != 0
    assert "not found" in err


# --- the pure pieces ---------------------------------------------------------------------------


def stored(**fields: Any) -> MessageDoc:
    doc: dict[str, Any] = {"_id": "msg_1", "channel_id": "agt_1", "owner_id": "usr_1", "created_at": NOW}
    return cast(MessageDoc, doc | fields)


@pytest.mark.parametrize(
    ("doc", "unset", "votes"),
    [
        (stored(text="x"), {"text", "metadata", "status_events", "attachments", "outbox_dead"}, None),
        (
            stored(text="x", review={"type": "approval", "status": "completed", "response": 1}),
            {
                "text", "metadata", "status_events", "attachments", "outbox_dead", "review.payload", "review.response",
                "review.feedback", "review.default_response", "review.on_expire", "review.modified_file_ids",
            },
            None,
        ),
        (
            stored(
                review={
                    "type": "approval",
                    "status": "completed",
                    "votes": [{"user_id": "u", "email": "e", "response": {"selectedOption": "ok"}, "at": NOW}],
                }
            ),
            None,
            [{"user_id": "u", "email": "e", "response": None, "at": NOW}],
        ),
    ],
)  # fmt: skip
def test_message_update_removes_the_content(doc: MessageDoc, unset: set[str] | None, votes: Any) -> None:
    update = expunge.message_update(doc, NOW)
    assert (update["$set"]["expunged"], update["$set"]["expunged_at"]) == (True, NOW)
    if unset is not None:
        assert set(update["$unset"]) == unset
    assert update["$set"].get("review.votes") == votes
    # Identity, channel, times and statuses are never touched.
    touched = set(update["$set"]) | set(update["$unset"])
    assert not touched & {"_id", "channel_id", "owner_id", "created_at", "status", "review.status"}


def view(**fields: Any) -> MessageView:
    return MessageView(id="msg_1", channel_id="agt_1", created_at=NOW, **fields)


@pytest.mark.parametrize(
    "message",
    [
        view(text=SECRET),
        view(text=SECRET, metadata={"k": SECRET}),
        view(
            review=ReviewView(
                type="approval",
                payload={"x": SECRET},
                status="completed",
                response={"c": SECRET},
                feedback=SECRET,
            )
        ),
        view(
            review=ReviewView(
                type="approval",
                status="pending",
                votes=[VoteView(user_id="u", email="e", response={"c": SECRET}, voted_at=NOW)],
            )
        ),
    ],
)
def test_events_lose_the_content_and_keep_the_rest(message: MessageView) -> None:
    created = MessageCreated(channel_id="agt_1", owner_id="usr_1", data=MessageData(message=message))
    vote = VoteView(user_id="u", email="e", response={"c": SECRET}, voted_at=NOW)
    voted = ReviewVoted(channel_id="agt_1", owner_id="usr_1", data=VoteData(message=message, vote=vote))
    for event in (created, voted):
        clean = expunge.expunged_event(event, NOW)
        dumped = clean.model_dump_json()
        assert SECRET not in dumped
        assert (clean.id, clean.type, clean.occurred_at) == (event.id, event.type, event.occurred_at)
        assert isinstance(clean.data, MessageData | VoteData)
        kept = clean.data.message
        assert (kept.id, kept.expunged, kept.expunged_at) == ("msg_1", True, NOW)
        if message.review is not None:
            assert kept.review is not None
            assert kept.review.status == message.review.status
