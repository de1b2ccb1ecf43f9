"""Scoped read-only tokens for embedding (issue #33 item 2): created, listed and revoked by the
owner of their channels; as a bearer credential they read their channels' messages and reviews and
open their streams (directly or with a ticket), answer only when granted, expire, and every other
route of the API's route table refuses them."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from sayso_api.app import PUBLIC_PATHS, create_app
from sayso_api.settings import ApiSettings
from sayso_common.clock import utcnow
from sayso_common.credentials import hash_secret
from tests.realtime.clients import socket_client, sse_stream
from tests.realtime.test_revocation import CLOSED_WITHIN, open_stream
from tests.support.stack import Owner, RunningStack

TOKENS = "/api/v1/tokens"
APPROVAL = {"type": "approval", "payload": {"options": [{"id": "yes", "label": "Yes"}]}}

# The only API routes a scoped token may use; each is checked for scope below.
READER_ROUTES = {
    ("GET", "/api/v1/messages"),
    ("GET", "/api/v1/messages/{message_id}"),
    ("GET", "/api/v1/reviews/pending"),
    ("GET", "/api/v1/reviews/{message_id}"),
    ("POST", "/api/v1/reviews/{message_id}/respond"),
}


@dataclass
class Scene:
    owner: Owner
    a: str  # the token's channel
    b: str  # another of the owner's channels
    in_a: dict[str, Any]
    in_b: dict[str, Any]


@pytest.fixture
async def scene(owner: Owner) -> Scene:
    a = (await owner.create_agent(name="embed-a"))["id"]
    b = (await owner.create_agent(name="embed-b"))["id"]
    # The owner's webhook settings, which a token reads as a member would: not at all.
    in_a = await owner.post_message(
        a, text="review in A", review=APPROVAL, webhookUrl="https://hooks.example.test/a?t=secret"
    )
    assert in_a["webhookUrl"]
    in_b = await owner.post_message(b, text="review in B", review=APPROVAL)
    return Scene(owner, a, b, in_a, in_b)


async def _token(owner: Owner, channels: list[str], **body: Any) -> dict[str, Any]:
    resp = await owner.human.post(TOKENS, json={"channelIds": channels, "expiresInSeconds": 600, **body})
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


def _bearer(stack: RunningStack, token: str) -> httpx.AsyncClient:
    return stack.client(Authorization=f"Bearer {token}")


def _route_table(stack: RunningStack) -> list[tuple[str, str]]:
    """Every (method, path) of the API app, read from the app built from this code (its OpenAPI
    document: the routes hidden from it are the inbox's pages, the API docs and the signed answer
    links, none of which reads a credential)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in stack.env.items():
            patch.setenv(name, value)
        settings = ApiSettings()
    paths = create_app(settings).openapi()["paths"]
    return sorted((method.upper(), path) for path, ops in paths.items() for method in ops)


def _filled(path: str, message_id: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: message_id if m.group(0) == "{message_id}" else "x1", path)


async def test_every_other_route_refuses_a_scoped_token(stack: RunningStack, scene: Scene) -> None:
    token = (await _token(scene.owner, [scene.a], answer=True))["token"]
    routes = _route_table(stack)
    assert set(routes) >= READER_ROUTES, "a reader route was renamed: update READER_ROUTES"
    assert len(routes) > 50
    refused, public = [], []
    async with stack.client() as anonymous, _bearer(stack, token) as bearer:
        for method, path in routes:
            if (method, path) in READER_ROUTES:
                continue
            url = _filled(path, scene.in_a["id"])
            nobody = await anonymous.request(method, url)
            with_token = await bearer.request(method, url)
            if path in PUBLIC_PATHS or nobody.status_code != 401:
                # Open to anyone (pages, probes, signed URLs): the token must change nothing.
                public.append(path)
                assert with_token.status_code == nobody.status_code, (method, path, with_token.text)
                continue
            refused.append(path)
            assert with_token.status_code == 403, (method, path, with_token.status_code, with_token.text)
            assert with_token.json()["error"]["code"] == "scoped_token_not_allowed", (method, path)
    assert len(refused) > 40, refused
    # The long-poll (realtime) refuses it too.
    async with _bearer(stack, token) as bearer:
        wait = await bearer.get(f"/api/v1/reviews/{scene.in_a['id']}/wait", params={"timeout": 1})
        assert wait.status_code == 403, wait.text


async def test_a_token_reads_only_its_channels(stack: RunningStack, scene: Scene) -> None:
    created = await _token(scene.owner, [scene.a], name="wall")
    assert created["token"].startswith("sct_")
    assert created["channelIds"] == [scene.a]
    assert created["answer"] is False
    async with _bearer(stack, created["token"]) as bearer:
        listed = await bearer.get("/api/v1/messages", params={"channel": scene.a})
        assert listed.status_code == 200, listed.text
        assert [m["id"] for m in listed.json()["data"]] == [scene.in_a["id"]]
        # Read as a member reads: without the owner's webhook settings.
        assert listed.json()["data"][0].get("webhookUrl") is None
        pending = await bearer.get("/api/v1/reviews/pending")
        assert [m["id"] for m in pending.json()] == [scene.in_a["id"]]
        assert (await bearer.get(f"/api/v1/reviews/{scene.in_a['id']}")).status_code == 200
        assert (await bearer.get(f"/api/v1/messages/{scene.in_a['id']}")).status_code == 200
        # Channel B is the owner's, not the token's: as if it did not exist.
        for url, params in (
            ("/api/v1/messages", {"channel": scene.b}),
            ("/api/v1/reviews/pending", {"channel": scene.b}),
            (f"/api/v1/reviews/{scene.in_b['id']}", {}),
            (f"/api/v1/messages/{scene.in_b['id']}", {}),
        ):
            resp = await bearer.get(url, params=params)
            assert resp.status_code == 404, (url, resp.text)
        refused = await bearer.post(TOKENS, json={"channelIds": [scene.a], "expiresInSeconds": 600})
        assert refused.status_code == 403, refused.text


async def test_answer_only_when_granted_and_only_in_its_channels(stack: RunningStack, scene: Scene) -> None:
    reader = (await _token(scene.owner, [scene.a]))["token"]
    answerer = (await _token(scene.owner, [scene.a], answer=True))["token"]
    body = {"response": {"selectedOption": "yes"}}
    async with _bearer(stack, reader) as bearer:
        denied = await bearer.post(f"/api/v1/reviews/{scene.in_a['id']}/respond", json=body)
        assert denied.status_code == 403, denied.text
        assert denied.json()["error"]["code"] == "answer_not_granted"
    async with _bearer(stack, answerer) as bearer:
        other = await bearer.post(f"/api/v1/reviews/{scene.in_b['id']}/respond", json=body)
        assert other.status_code == 404, other.text
        answered = await bearer.post(f"/api/v1/reviews/{scene.in_a['id']}/respond", json=body)
        assert answered.status_code == 200, answered.text
        assert answered.json()["review"]["status"] == "completed"
        # The answer comes back as the token reads: never with the owner's webhook settings.
        assert answered.json()["webhookUrl"] is None
        # A quorum vote is a person's: a token casts none (the owner can still vote).
        quorum = await scene.owner.post_message(
            scene.a, text="two people", review={"type": "approval", "quorum": {"approvals": 2}}
        )
        approve = {"response": {"selectedOption": "approve"}}
        vote = await bearer.post(f"/api/v1/reviews/{quorum['id']}/respond", json=approve)
        assert vote.status_code == 403, vote.text
        assert vote.json()["error"]["code"] == "vote_not_allowed"
    assert (await scene.owner.respond(quorum["id"], {"selectedOption": "approve"})).status_code == 200


async def test_an_expired_or_revoked_token_is_refused(stack: RunningStack, scene: Scene) -> None:
    expired = await _token(scene.owner, [scene.a])
    # Time passing, without waiting: its expiry moved into the past before its first use.
    async with stack.mongo() as mongo:
        moved = await mongo[stack.mongo_db]["scoped_tokens"].update_one(
            {"_id": expired["id"]}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}}
        )
        assert moved.modified_count == 1
        stored = await mongo[stack.mongo_db]["scoped_tokens"].find_one({"_id": expired["id"]})
        assert stored is not None
        assert stored["token_hash"] == hash_secret(expired["token"])
        assert expired["token"] not in json.dumps(stored, default=str)
    async with _bearer(stack, expired["token"]) as bearer:
        resp = await bearer.get("/api/v1/messages", params={"channel": scene.a})
        assert resp.status_code == 401, resp.text
        assert (await bearer.post("/api/v1/events/tickets")).status_code == 401
    listed = await scene.owner.human.get(TOKENS)
    assert expired["id"] not in [t["id"] for t in listed.json()["data"]]

    live = await _token(scene.owner, [scene.a])
    listed = await scene.owner.human.get(TOKENS)
    assert next(t for t in listed.json()["data"] if t["id"] == live["id"]).get("token") is None
    revoked = await scene.owner.human.delete(f"{TOKENS}/{live['id']}")
    assert revoked.status_code == 204
    async with _bearer(stack, live["token"]) as bearer:
        assert (await bearer.get("/api/v1/messages", params={"channel": scene.a})).status_code == 401
    assert (await scene.owner.human.delete(f"{TOKENS}/{live['id']}")).status_code == 404


async def test_creating_checks_owner_channels_and_bounds(stack: RunningStack, scene: Scene) -> None:
    member = await stack.new_owner()
    try:
        added = await scene.owner.human.post(
            f"/api/v1/agents/{scene.a}/members", json={"email": member.email}
        )
        assert added.status_code == 201, added.text
        # A member reads channel A but does not own it: no token for it.
        shared = await member.human.post(TOKENS, json={"channelIds": [scene.a], "expiresInSeconds": 600})
        assert shared.status_code == 404, shared.text
        assert shared.json()["error"]["field"] == "channelIds[0]"
        # Nor can another owner revoke the owner's token.
        mine = await _token(scene.owner, [scene.a])
        assert (await member.human.delete(f"{TOKENS}/{mine['id']}")).status_code == 404
    finally:
        await member.aclose()
    by_key = await scene.owner.agent.post(TOKENS, json={"channelIds": [scene.a], "expiresInSeconds": 600})
    assert by_key.status_code == 403, by_key.text
    for body, field in (
        ({"channelIds": [], "expiresInSeconds": 600}, "channelIds"),
        ({"channelIds": [scene.a], "expiresInSeconds": 0}, "expiresInSeconds"),
        ({"channelIds": [scene.a], "expiresInSeconds": 10**9}, "expiresInSeconds"),
        ({"channelIds": [scene.a]}, "expiresInSeconds"),
        ({"channelIds": [scene.a], "expiresInSeconds": 600, "scope": "all"}, "scope"),
    ):
        bad = await scene.owner.human.post(TOKENS, json=body)
        assert bad.status_code == 422, (body, bad.text)
        assert bad.json()["error"]["field"] == field, (body, bad.text)


@pytest.fixture
async def token_stream_scene(scene: Scene) -> tuple[Scene, dict[str, Any]]:
    return scene, await _token(scene.owner, [scene.a])


async def test_a_token_streams_only_its_channels_and_revoking_it_ends_them(
    stack: RunningStack, token_stream_scene: tuple[Scene, dict[str, Any]]
) -> None:
    scene, created = token_stream_scene
    token = created["token"]
    async with _bearer(stack, token) as bearer:
        minted = await bearer.post("/api/v1/events/tickets")
        assert minted.status_code == 201, minted.text
        outside = await bearer.post("/api/v1/events/tickets", json={"channelIds": [scene.b]})
        assert outside.status_code == 404, outside.text
    async with (
        sse_stream(stack.url, {}, {"ticket": minted.json()["ticket"]}) as inbox,
        socket_client(stack.url, {"token": token}) as (_, socket_inbox),
    ):
        await scene.owner.post_message(scene.b, text="not for the token")
        seen = await scene.owner.post_message(scene.a, text="for the token")
        for reader in (inbox, socket_inbox):
            item = await reader.wait_for(
                lambda i: i.name == "message:created" and i.payload["id"] == seen["id"], what="A's event"
            )
            assert item.payload.get("webhookUrl") is None
            texts = [i.payload.get("text") for i in reader.items if i.name == "message:created"]
            assert texts == ["for the token"]
    async with open_stream(stack.url, {"Authorization": f"Bearer {token}"}) as stream:
        revoked = await scene.owner.human.delete(f"{TOKENS}/{created['id']}")
        assert revoked.status_code == 204
        got = await stream.inbox.wait_for(
            lambda i: i.name == "error" and i.payload.get("code") == "credentials_revoked",
            CLOSED_WITHIN,
            "the revoked frame",
        )
        assert got.payload["message"] == "the scoped token was revoked"
        await asyncio.wait_for(stream.ended.wait(), CLOSED_WITHIN)
