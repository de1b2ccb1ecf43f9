"""Files against the real stack: signed upload URLs streamed into GridFS, downloads, signed
download links, size limits, ownership, and attachments on messages. Bad input and the upload
limit are asked of the app in this process (tests/support/inprocess.py), the limit with a small
setting of its own."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from sayso_api import files
from sayso_api.routes.files import content_disposition
from sayso_api.settings import ApiSettings
from sayso_common.clock import utcnow
from sayso_common.errors import DomainError
from sayso_common.mongo import FILE_BUCKET
from tests.conftest import STACK_SETTINGS, Infra
from tests.support.inprocess import InProcessApi, running_api
from tests.support.stack import Owner, RunningStack, eventually

MiB = 1024 * 1024
SMALL_LIMIT = 256 * 1024


def path_of(url: str) -> str:
    """Signed URLs are built on SAYSO_PUBLIC_URL; the tests' edge listens on another port."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def pieces(total: int, size: int = 64 * 1024, seed: int = 7) -> AsyncIterator[bytes]:
    """``total`` deterministic bytes, sent as a chunked body (no Content-Length)."""
    sent = 0
    block = 0
    while sent < total:
        piece = hashlib.sha256(f"{seed}:{block}".encode()).digest() * (size // 32)
        piece = piece[: min(size, total - sent)]
        sent += len(piece)
        block += 1
        yield piece


async def collect(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([p async for p in it])


async def presign(owner: Owner, channel_id: str | None, **body: Any) -> dict[str, Any]:
    payload = {"filename": "data.bin", "mimeType": "application/octet-stream", **body}
    if channel_id is not None:
        payload["channelId"] = channel_id
    resp = await owner.agent.post("/api/v1/files/upload", json=payload)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def upload(
    stack: RunningStack | InProcessApi, owner: Owner, channel_id: str | None, data: bytes, **body: Any
) -> str:
    ticket = await presign(owner, channel_id, **body)
    async with stack.client() as anonymous:
        put = await anonymous.put(path_of(ticket["uploadUrl"]), content=data)
    assert put.status_code == 200, put.text
    file_id: str = ticket["id"]
    return file_id


def settings_for(stack: RunningStack) -> ApiSettings:
    return ApiSettings(secret_key=SecretStr(stack.env["SAYSO_SECRET_KEY"]))


async def blob_state(api: RunningStack | InProcessApi, file_id: str) -> tuple[int, int]:
    """(GridFS chunks, GridFS file documents) stored for ``file_id``."""
    mongo = api.mongo()
    try:
        db = mongo[api.mongo_db]
        chunks = await db[f"{FILE_BUCKET}.chunks"].count_documents({"files_id": file_id})
        docs = await db[f"{FILE_BUCKET}.files"].count_documents({"_id": file_id})
    finally:
        await mongo.close()
    return chunks, docs


# --- the flow ------------------------------------------------------------------------------


async def test_upload_through_signed_url_and_download_byte_identical(
    stack: RunningStack, owner: Owner
) -> None:
    channel = (await owner.create_agent())["id"]
    ticket = await presign(owner, channel, filename="build.tar.gz", mimeType="application/gzip")
    assert ticket["fileKey"] == ticket["id"]
    assert ticket["method"] == "PUT"
    assert ticket["maxBytes"] == 25 * MiB
    assert path_of(ticket["uploadUrl"]).startswith(f"/api/v1/files/upload/{ticket['id']}.")
    size = 3 * MiB + 12_345  # several GridFS chunks, the last one partial
    expected = await collect(pieces(size))
    async with stack.client() as anonymous:  # the URL is the credential
        put = await anonymous.put(path_of(ticket["uploadUrl"]), content=pieces(size))
        assert put.status_code == 200, put.text
        assert put.json()["size"] == size
        assert put.json()["channelId"] == channel
        again = await anonymous.put(path_of(ticket["uploadUrl"]), content=b"other")
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] == "already_uploaded"
        unauthenticated = await anonymous.get(f"/api/v1/files/{ticket['id']}/download")
        assert unauthenticated.status_code == 401
    async with owner.agent.stream("GET", f"/api/v1/files/{ticket['id']}/download") as down:
        assert down.status_code == 200
        got = b"".join([chunk async for chunk in down.aiter_bytes()])
        headers = down.headers
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert headers["content-type"] == "application/gzip"
    assert headers["content-length"] == str(size)
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-disposition"].startswith('attachment; filename="build.tar.gz"')
    assert "sandbox" in headers["content-security-policy"]
    assert await blob_state(stack, ticket["id"]) == (-(-size // files.CHUNK_SIZE), 1)
    meta = (await owner.agent.get(f"/api/v1/files/{ticket['id']}")).json()
    assert meta["filename"] == "build.tar.gz"
    assert meta["pluginType"] == "@uax/file"
    assert meta["messageId"] is None


async def test_empty_file_round_trip(stack: RunningStack, owner: Owner) -> None:
    file_id = await upload(stack, owner, None, b"", filename="empty.txt", mimeType="text/plain")
    down = await owner.agent.get(f"/api/v1/files/{file_id}/download")
    assert down.status_code == 200, down.text
    assert down.content == b""
    assert down.headers["content-length"] == "0"


async def test_blob_writer_streams_chunks_before_the_end(stack: RunningStack) -> None:
    """The upload path writes chunks as they fill instead of holding the file until it ends."""
    mongo = stack.mongo()
    try:
        db = mongo.sayso
        writer = files._BlobWriter(db, "file_streaming_probe", limit=4 * MiB)
        async for piece in pieces(3 * MiB):
            await writer.write(piece)
        written = await db[f"{FILE_BUCKET}.chunks"].count_documents({"files_id": "file_streaming_probe"})
        assert written >= 3 * MiB // files.CHUNK_SIZE - files.CHUNKS_PER_WRITE
        await writer.discard()
        assert await db[f"{FILE_BUCKET}.chunks"].count_documents({"files_id": "file_streaming_probe"}) == 0
    finally:
        await mongo.close()


async def test_presigned_download_works_without_credentials_until_expiry(
    stack: RunningStack, owner: Owner
) -> None:
    channel = (await owner.create_agent())["id"]
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)
    file_id = await upload(stack, owner, channel, png, filename="chart.png", mimeType="image/png")
    other_id = await upload(stack, owner, channel, b"other file", filename="b.txt", mimeType="text/plain")
    link = await owner.agent.get(f"/api/v1/files/{file_id}/presign-download")
    assert link.status_code == 200, link.text
    url = path_of(link.json()["downloadUrl"])
    assert url.startswith(f"/api/v1/files/signed/{file_id}.")
    token = url.rsplit("/", 1)[1]
    _, expires, mac = token.split(".")
    settings = settings_for(stack)
    key = files.url_signing_key(settings)
    past = files.sign_token(key, "download", file_id, utcnow() - timedelta(seconds=1))
    upload_token = files.sign_token(key, "upload", file_id, utcnow() + timedelta(minutes=5))
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    async with stack.client() as anonymous:
        got = await anonymous.get(url)
        assert got.status_code == 200, got.text
        assert got.content == png
        assert got.headers["content-type"] == "image/png"
        assert got.headers["content-disposition"].startswith("inline;")
        assert got.headers["x-content-type-options"] == "nosniff"
        refused = {
            "tampered signature": f"{file_id}.{expires}.{flipped}",
            "another file": f"{other_id}.{expires}.{mac}",
            "later expiry": f"{file_id}.{int(expires) + 3600}.{mac}",
            "expired": past,
            "upload token": upload_token,
            "garbage": "not-a-token",
        }
        for what, bad in refused.items():
            resp = await anonymous.get(f"/api/v1/files/signed/{bad}")
            assert resp.status_code == 403, (what, resp.text)
            assert resp.json()["error"]["code"] in ("invalid_link", "link_expired"), what
        expired = await anonymous.get(f"/api/v1/files/signed/{past}")
        assert expired.json()["error"]["code"] == "link_expired"


async def test_upload_url_refused_when_expired_or_tampered(stack: RunningStack, owner: Owner) -> None:
    ticket = await presign(owner, None)
    key = files.url_signing_key(settings_for(stack))
    past = files.sign_token(key, "upload", ticket["id"], utcnow() - timedelta(seconds=1))
    download_token = files.sign_token(key, "download", ticket["id"], utcnow() + timedelta(minutes=5))
    good = path_of(ticket["uploadUrl"])
    async with stack.client() as anonymous:
        for bad in (past, download_token, good.rsplit("/", 1)[1][:-3] + "abc"):
            resp = await anonymous.put(f"/api/v1/files/upload/{bad}", content=b"x")
            assert resp.status_code == 403, resp.text
        # Nothing was claimed: the real URL still works.
        ok = await anonymous.put(good, content=b"payload")
        assert ok.status_code == 200, ok.text
        assert ok.json()["channelId"] is None  # given by the first message it is attached to


# --- deleting files, with their message or agent or by themselves ---------------------------


async def gone(api: InProcessApi, owner: Owner, file_id: str, signed_link: str) -> None:
    """The file answers 404 everywhere (its signed link made earlier too) and its bytes are freed."""
    for path in (f"/api/v1/files/{file_id}", f"/api/v1/files/{file_id}/download"):
        resp = await owner.agent.get(path)
        assert resp.status_code == 404, (path, resp.text)
    async with api.client() as anonymous:
        link = await anonymous.get(path_of(signed_link))
    assert link.status_code == 404, link.text
    assert link.json()["error"]["code"] == "not_found"
    assert await blob_state(api, file_id) == (0, 0)


async def still_there(api: InProcessApi, owner: Owner, file_id: str, data: bytes) -> None:
    down = await owner.agent.get(f"/api/v1/files/{file_id}/download")
    assert down.status_code == 200, down.text
    assert down.content == data
    assert (await blob_state(api, file_id))[1] == 1


async def signed_link(owner: Owner, file_id: str) -> str:
    resp = await owner.agent.get(f"/api/v1/files/{file_id}/presign-download")
    assert resp.status_code == 200, resp.text
    url: str = resp.json()["downloadUrl"]
    return url


async def test_deleting_a_message_deletes_its_files(api: InProcessApi, api_owner: Owner) -> None:
    owner = api_owner
    channel = (await owner.create_agent())["id"]
    attached = await upload(api, owner, channel, b"attached bytes", filename="a.txt", mimeType="text/plain")
    kept = await upload(api, owner, channel, b"unattached bytes", filename="k.txt", mimeType="text/plain")
    message = await owner.post_message(
        channel, attachmentIds=[attached], textAttachments=[{"content": "inline notes"}]
    )
    inline = message["attachments"][1]["id"]
    other = await owner.post_message(channel, text="keeps its file", textAttachments=[{"content": "other"}])
    links = {file_id: await signed_link(owner, file_id) for file_id in (attached, inline)}
    deleted = await owner.agent.delete(f"/api/v1/messages/{message['id']}")
    assert deleted.status_code == 200, deleted.text
    for file_id, link in links.items():
        await gone(api, owner, file_id, link)
    listed = (await owner.agent.get(f"/api/v1/files?channel={channel}")).json()
    assert {f["id"] for f in listed} == {kept, other["attachments"][0]["id"]}
    await still_there(api, owner, kept, b"unattached bytes")
    await still_there(api, owner, other["attachments"][0]["id"], b"other")


async def test_deleting_an_agent_deletes_its_messages_and_files(api: InProcessApi, api_owner: Owner) -> None:
    owner = api_owner
    channel = (await owner.create_agent(name="doomed"))["id"]
    neighbour = (await owner.create_agent(name="neighbour"))["id"]
    attached = await upload(api, owner, channel, b"in a message", filename="a.txt", mimeType="text/plain")
    loose = await upload(api, owner, channel, b"not attached", filename="l.txt", mimeType="text/plain")
    message = await owner.post_message(channel, attachmentIds=[attached])
    theirs = await owner.post_message(neighbour, textAttachments=[{"content": "neighbour's"}])
    links = {file_id: await signed_link(owner, file_id) for file_id in (attached, loose)}
    deleted = await owner.agent.delete(f"/api/v1/agents/{channel}")
    assert deleted.status_code == 200, deleted.text
    for file_id, link in links.items():
        await gone(api, owner, file_id, link)
    assert (await owner.agent.get(f"/api/v1/messages/{message['id']}")).status_code == 404
    mongo = api.mongo()
    try:
        db = mongo[api.mongo_db]
        assert await db.messages.count_documents({"channel_id": channel}) == 0
        assert await db.files.count_documents({"channel_id": channel}) == 0
    finally:
        await mongo.close()
    assert (await owner.agent.get(f"/api/v1/messages/{theirs['id']}")).status_code == 200
    await still_there(api, owner, theirs["attachments"][0]["id"], b"neighbour's")
    again = await owner.agent.delete(f"/api/v1/agents/{channel}")
    assert again.status_code == 404, again.text


async def test_delete_file(api: InProcessApi, api_owner: Owner) -> None:
    owner = api_owner
    channel = (await owner.create_agent())["id"]
    loose = await upload(api, owner, channel, b"loose", filename="l.txt", mimeType="text/plain")
    unbound = await upload(api, owner, None, b"no channel", filename="n.txt", mimeType="text/plain")
    attached = await upload(api, owner, channel, b"attached", filename="a.txt", mimeType="text/plain")
    message = await owner.post_message(channel, attachmentIds=[attached])
    registered = await presign(owner, channel)  # bytes never sent
    stranger = await api.new_owner()
    try:
        for file_id in (loose, attached, registered["id"]):
            for client in (stranger.agent, stranger.human):
                refused = await client.delete(f"/api/v1/files/{file_id}")
                assert refused.status_code == 404, refused.text
                assert refused.json()["error"]["code"] == "not_found"
    finally:
        await stranger.aclose()
    # Attached to a message that is still there: it goes with the message, not before.
    busy = await owner.agent.delete(f"/api/v1/files/{attached}")
    assert busy.status_code == 409, busy.text
    assert busy.json()["error"]["code"] == "file_attached"
    assert message["id"] in busy.json()["error"]["message"]
    await still_there(api, owner, attached, b"attached")
    for file_id, client in ((loose, owner.agent), (unbound, owner.human)):
        link = await signed_link(owner, file_id)
        resp = await client.delete(f"/api/v1/files/{file_id}")
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"deleted": True}
        await gone(api, owner, file_id, link)
        again = await client.delete(f"/api/v1/files/{file_id}")
        assert again.status_code == 404, again.text
    withdrawn = await owner.agent.delete(f"/api/v1/files/{registered['id']}")
    assert withdrawn.status_code == 200, withdrawn.text
    async with api.client() as anonymous:
        late = await anonymous.put(path_of(registered["uploadUrl"]), content=b"too late")
    assert late.status_code == 404, late.text
    assert await blob_state(api, registered["id"]) == (0, 0)
    assert [f["id"] for f in (await owner.agent.get(f"/api/v1/files?channel={channel}")).json()] == [attached]


# --- per-owner quotas and expiry (the API in this process, with small settings) -------------

QUOTA_FILES = 3
QUOTA_BYTES = 100_000


@pytest.fixture(scope="module")
async def quota_api(infra: Infra) -> AsyncIterator[InProcessApi]:
    async with running_api(
        infra.service_env(
            **STACK_SETTINGS,
            SAYSO_FILE_QUOTA_UNATTACHED=str(QUOTA_FILES),
            SAYSO_FILE_QUOTA_BYTES=str(QUOTA_BYTES),
        )
    ) as api:
        yield api


@pytest.fixture
async def quota_owner(quota_api: InProcessApi) -> AsyncIterator[Owner]:
    async with await quota_api.new_owner() as created:
        yield created


async def test_unattached_files_are_limited_per_owner(quota_api: InProcessApi, quota_owner: Owner) -> None:
    owner = quota_owner
    channel = (await owner.create_agent())["id"]
    body = {"filename": "a.txt", "mimeType": "text/plain", "channelId": channel}
    # Registered at once: however they interleave, no more than the limit get through. Each is
    # counted after its write (files._admit), so racing requests may all see each other and all
    # be refused (a clean-clone CI run: 0 of 16): the limit holds, and places stay free.
    answers = await asyncio.gather(
        *(owner.agent.post("/api/v1/files/upload", json=body) for _ in range(4 * QUOTA_FILES))
    )
    assert {a.status_code for a in answers} <= {201, 429}, [a.text for a in answers]
    taken: list[dict[str, Any]] = [a.json() for a in answers if a.status_code == 201]
    assert len(taken) <= QUOTA_FILES
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["code"] == "too_many_unattached_files"
    assert "SAYSO_FILE_QUOTA_UNATTACHED" in refused.json()["error"]["message"]
    for _ in range(QUOTA_FILES - len(taken)):
        taken.append(await presign(owner, channel))
    for path, payload in (
        ("/api/v1/files/upload", body),
        ("/api/v1/files/store-text", {"channelId": channel, "content": "notes"}),
    ):
        full = await owner.agent.post(path, json=payload)
        assert full.status_code == 429, full.text
        assert full.json()["error"]["code"] == "too_many_unattached_files"
    mongo = quota_api.mongo()
    try:
        assert (
            await mongo[quota_api.mongo_db].files.count_documents({"owner_id": owner.user_id}) == QUOTA_FILES
        )
    finally:
        await mongo.close()
    # Uploaded and attached to a message, a file no longer counts; a withdrawn one neither.
    async with quota_api.client() as anonymous:
        put = await anonymous.put(path_of(taken[0]["uploadUrl"]), content=b"x")
    assert put.status_code == 200, put.text
    await owner.post_message(channel, attachmentIds=[taken[0]["id"]])
    assert (await owner.agent.post("/api/v1/files/upload", json=body)).status_code == 201
    assert (await owner.agent.delete(f"/api/v1/files/{taken[1]['id']}")).status_code == 200
    text = await owner.agent.post("/api/v1/files/store-text", json={"channelId": channel, "content": "n"})
    assert text.status_code == 201, text.text
    # Per owner: another account is not held back by this one.
    other = await quota_api.new_owner()
    try:
        assert (await presign(other, None))["id"]
    finally:
        await other.aclose()


async def test_stored_bytes_are_limited_per_owner(quota_api: InProcessApi, quota_owner: Owner) -> None:
    owner = quota_owner
    channel = (await owner.create_agent())["id"]
    first = await upload(quota_api, owner, channel, b"1" * 60_000)
    ticket = await presign(owner, channel)
    url = path_of(ticket["uploadUrl"])
    async with quota_api.client() as anonymous:
        # Declared, then chunked (found out while counting): either way nothing is kept.
        for body in (b"2" * 60_000, pieces(60_000, size=8192)):
            full = await anonymous.put(url, content=body)
            assert full.status_code == 413, full.text
            error = full.json()["error"]
            assert (error["code"], error["field"]) == ("storage_quota_exceeded", "file")
            assert f"{QUOTA_BYTES} bytes" in error["message"]
            assert "SAYSO_FILE_QUOTA_BYTES" in error["message"]
            assert await blob_state(quota_api, ticket["id"]) == (0, 0)
        # What fits still goes through the same URL.
        fits = await anonymous.put(url, content=b"3" * 30_000)
        assert fits.status_code == 200, fits.text
    text = await owner.agent.post(
        "/api/v1/files/store-text", json={"channelId": channel, "content": "4" * 20_000}
    )
    assert text.status_code == 413, text.text
    assert (text.json()["error"]["code"], text.json()["error"]["field"]) == (
        "storage_quota_exceeded",
        "content",
    )
    # A message's inline texts are files too: refused whole, nothing of it kept.
    message = await owner.agent.post(
        "/api/v1/messages",
        json={"channelId": channel, "text": "notes", "textAttachments": [{"content": "6" * 10_000}] * 2},
    )
    assert message.status_code == 413, message.text
    assert (message.json()["error"]["code"], message.json()["error"]["field"]) == (
        "storage_quota_exceeded",
        "textAttachments",
    )
    # Deleting a file makes room again.
    assert (await owner.agent.delete(f"/api/v1/files/{first}")).status_code == 200
    again = await upload(quota_api, owner, channel, b"5" * 60_000)
    await still_there(quota_api, owner, again, b"5" * 60_000)
    mongo = quota_api.mongo()
    try:
        stored = await mongo[quota_api.mongo_db].files.find({"owner_id": owner.user_id}).to_list()
    finally:
        await mongo.close()
    assert sorted(f.get("size") or 0 for f in stored) == [30_000, 60_000]


@pytest.fixture(scope="module")
async def expiring_api(infra: Infra) -> AsyncIterator[InProcessApi]:
    async with running_api(
        infra.service_env(
            **STACK_SETTINGS,
            SAYSO_FILE_UNATTACHED_TTL_SECONDS="2",
            SAYSO_FILE_SWEEP_INTERVAL_SECONDS="0.2",
        )
    ) as api:
        yield api


async def test_unattached_uploads_expire_with_their_bytes(expiring_api: InProcessApi) -> None:
    owner = await expiring_api.new_owner()
    try:
        channel = (await owner.create_agent())["id"]
        loose = await upload(
            expiring_api, owner, channel, b"never attached", filename="l.txt", mimeType="text/plain"
        )
        stored = await owner.agent.post(
            "/api/v1/files/store-text", json={"channelId": channel, "content": "x"}
        )
        assert stored.status_code == 201, stored.text
        # Stored and attached in one request: a message's files stay.
        message = await owner.post_message(channel, textAttachments=[{"content": "kept"}])
        kept = message["attachments"][0]["id"]
        links = {file_id: await signed_link(owner, file_id) for file_id in (loose, stored.json()["id"])}

        async def swept() -> bool:
            mongo = expiring_api.mongo()
            try:
                left = await mongo[expiring_api.mongo_db].files.count_documents({"_id": {"$in": list(links)}})
            finally:
                await mongo.close()
            return left == 0

        await eventually(swept, timeout=60, what="unattached files swept")
        for file_id, link in links.items():
            await gone(expiring_api, owner, file_id, link)
        await still_there(expiring_api, owner, kept, b"kept")
    finally:
        await owner.aclose()


# --- size limit (the API in this process, with a small limit) -----------------------------


@pytest.fixture(scope="module")
async def small_api(infra: Infra) -> AsyncIterator[InProcessApi]:
    async with running_api(
        infra.service_env(**STACK_SETTINGS, SAYSO_MAX_UPLOAD_BYTES=str(SMALL_LIMIT))
    ) as api:
        yield api


async def test_over_the_limit_is_413_and_leaves_nothing(small_api: InProcessApi) -> None:
    owner = await small_api.new_owner()
    ticket = await presign(owner, None)
    await owner.aclose()
    token_path = path_of(ticket["uploadUrl"])
    async with small_api.client() as direct:
        # Declared too large: refused before a byte is stored.
        declared = await direct.put(token_path, content=b"x" * (SMALL_LIMIT + 1))
        assert declared.status_code == 413, declared.text
        assert declared.json()["error"]["code"] == "payload_too_large"
        # Chunked, so only counting finds out: several chunks were written, then all removed.
        streamed = await direct.put(token_path, content=pieces(SMALL_LIMIT + 100_000))
        assert streamed.status_code == 413, streamed.text
        assert await blob_state(small_api, ticket["id"]) == (0, 0)
        # The URL stays valid for a file within the limit.
        fits = await direct.put(token_path, content=pieces(SMALL_LIMIT))
        assert fits.status_code == 200, fits.text
        assert fits.json()["size"] == SMALL_LIMIT
    assert await blob_state(small_api, ticket["id"]) == (-(-SMALL_LIMIT // files.CHUNK_SIZE), 1)


async def test_declared_oversize_is_refused_at_the_edge_before_the_body(
    stack: RunningStack, owner: Owner
) -> None:
    ticket = await presign(owner, None)
    size = 25 * MiB + 1
    # Written on a raw connection, the body beside the read: the edge may answer and close while
    # the client is still sending, which made httpx fail with a write error before it read the 413.
    edge = urlsplit(stack.url)
    reader, writer = await asyncio.open_connection(edge.hostname, edge.port)

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(
                f"PUT {path_of(ticket['uploadUrl'])} HTTP/1.1\r\nHost: {edge.netloc}\r\n"
                f"Content-Length: {size}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
            )
            async for piece in pieces(size):
                writer.write(piece)
                await writer.drain()

    sending = asyncio.create_task(send())
    try:
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)).decode("latin-1")
        status = int(head.split(" ", 2)[1])
        lengths = [
            line.split(":", 1)[1] for line in head.split("\r\n") if line.lower().startswith("content-length:")
        ]
        body = json.loads(await asyncio.wait_for(reader.readexactly(int(lengths[0])), 30))
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sending
        writer.close()
    assert status == 413, head
    assert body["error"]["field"] == "file"
    assert await blob_state(stack, ticket["id"]) == (0, 0)


async def test_client_gone_mid_upload_leaves_nothing(stack: RunningStack, owner: Owner) -> None:
    ticket = await presign(owner, None)
    api = urlsplit(stack.api_url)
    _reader, writer = await asyncio.open_connection(api.hostname, api.port)
    writer.write(
        f"PUT {path_of(ticket['uploadUrl'])} HTTP/1.1\r\nHost: x\r\nContent-Length: {4 * MiB}\r\n\r\n".encode()
    )
    async for piece in pieces(2 * MiB):  # enough for chunks to reach MongoDB
        writer.write(piece)
        await writer.drain()

    async def chunks_written() -> bool:
        return (await blob_state(stack, ticket["id"]))[0] > 0

    await eventually(chunks_written, what="chunks stored while the body streams")
    writer.close()
    await writer.wait_closed()

    async def cleaned() -> bool:
        return await blob_state(stack, ticket["id"]) == (0, 0)

    await eventually(cleaned, what="partial upload removed")
    # The URL is usable again.
    async with stack.client() as anonymous:
        retry = await anonymous.put(path_of(ticket["uploadUrl"]), content=b"complete")
    assert retry.status_code == 200, retry.text


async def test_small_bodies_elsewhere_keep_the_body_limit(api_owner: Owner) -> None:
    """The upload exemption is narrow: a large JSON body to the presign endpoint is still 413."""
    resp = await api_owner.agent.post(
        "/api/v1/files/upload", json={"filename": "x" * (300 * 1024), "mimeType": "text/plain"}
    )
    assert resp.status_code == 413, resp.text


# --- ownership and listing -----------------------------------------------------------------


async def test_other_owners_files_are_404_everywhere(stack: RunningStack, owner: Owner) -> None:
    channel = (await owner.create_agent())["id"]
    file_id = await upload(stack, owner, channel, b"secret bytes", filename="s.txt", mimeType="text/plain")
    stranger = await stack.new_owner()
    try:
        their_channel = (await stranger.create_agent())["id"]
        for path in (
            f"/api/v1/files/{file_id}",
            f"/api/v1/files/{file_id}/download",
            f"/api/v1/files/{file_id}/presign-download",
            f"/api/v1/files?channel={channel}",
        ):
            for client in (stranger.agent, stranger.human):
                resp = await client.get(path)
                assert resp.status_code == 404, (path, resp.text)
                assert resp.json()["error"]["code"] == "not_found"
        presign_elsewhere = await stranger.agent.post(
            "/api/v1/files/upload", json={"filename": "a", "mimeType": "text/plain", "channelId": channel}
        )
        assert presign_elsewhere.status_code == 404
        attach = await stranger.agent.post(
            "/api/v1/messages", json={"channelId": their_channel, "attachmentIds": [file_id]}
        )
        assert attach.status_code == 422, attach.text
        assert attach.json()["error"]["field"] == "attachmentIds[0]"
        assert (await stranger.agent.get(f"/api/v1/files?channel={their_channel}")).json() == []
    finally:
        await stranger.aclose()


async def test_list_by_channel_newest_first(stack: RunningStack, owner: Owner) -> None:
    first = (await owner.create_agent(name="a"))["id"]
    second = (await owner.create_agent(name="b"))["id"]
    a1 = await upload(stack, owner, first, b"1", filename="a1.txt", mimeType="text/plain")
    a2 = await upload(stack, owner, first, b"22", filename="a2.txt", mimeType="text/plain")
    b1 = await upload(stack, owner, second, b"333", filename="b1.txt", mimeType="text/plain")
    pending = (await presign(owner, first))["id"]  # never uploaded: not listed, not downloadable
    for path in (f"/api/v1/files/{pending}/download", f"/api/v1/files/{pending}/presign-download"):
        resp = await owner.agent.get(path)
        assert resp.status_code == 409, resp.text
        assert resp.json()["error"]["code"] == "not_uploaded"
    listed = await owner.agent.get(f"/api/v1/files?channel={first}")
    assert listed.status_code == 200, listed.text
    assert [f["id"] for f in listed.json()] == [a2, a1]
    assert listed.json()[0]["size"] == 2
    assert [f["id"] for f in (await owner.human.get(f"/api/v1/files?channel={second}")).json()] == [b1]
    assert [f["id"] for f in (await owner.agent.get(f"/api/v1/files?channel={first}&limit=1")).json()] == [a2]
    missing = await owner.agent.get("/api/v1/files")
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "channel"


# --- attachments on messages ---------------------------------------------------------------


async def test_message_with_uploaded_attachments(stack: RunningStack, owner: Owner) -> None:
    channel = (await owner.create_agent())["id"]
    other_channel = (await owner.create_agent(name="other"))["id"]
    notes = await upload(stack, owner, None, b"# Notes\n", filename="notes.md", mimeType="text/markdown")
    image = await upload(stack, owner, channel, b"GIF89a...", filename="x.gif", mimeType="image/gif")
    message = await owner.post_message(channel, text="see files", attachmentIds=[notes, image])
    atts = message["attachments"]
    assert [a["id"] for a in atts] == [notes, image]
    assert all(a["messageId"] == message["id"] and a["channelId"] == channel for a in atts)
    assert atts[0]["textContent"] == "# Notes\n"  # small text files are inlined, as Placet does
    assert atts[1]["pluginType"] == "@uax/image"
    assert atts[1].get("textContent") is None
    linked = (await owner.agent.get(f"/api/v1/files/{notes}")).json()
    assert (linked["messageId"], linked["channelId"]) == (message["id"], channel)
    pending = (await presign(owner, channel))["id"]
    elsewhere = await upload(stack, owner, other_channel, b"o", filename="o.txt", mimeType="text/plain")
    for ids, reason in (
        ([notes], "already attached"),
        ([elsewhere], "another channel"),
        ([pending], "not been uploaded"),
        (["file_unknown"], "no such file"),
        ([elsewhere, elsewhere], "another channel"),
    ):
        resp = await owner.agent.post("/api/v1/messages", json={"channelId": channel, "attachmentIds": ids})
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["field"] == "attachmentIds[0]", ids
        assert reason in resp.json()["error"]["message"]
    fresh = await upload(stack, owner, channel, b"f", filename="f.txt", mimeType="text/plain")
    twice = await owner.agent.post(
        "/api/v1/messages", json={"channelId": channel, "attachmentIds": [fresh, fresh]}
    )
    assert twice.status_code == 422
    assert twice.json()["error"]["field"] == "attachmentIds[1]"


async def test_text_attachments_round_trip(stack: RunningStack, owner: Owner) -> None:
    channel = (await owner.create_agent())["id"]
    content = "# Draft\n\nÜnïcödé ✓\n" * 100
    message = await owner.post_message(
        channel,
        text="review the draft",
        textAttachments=[
            {"content": content, "filename": "draft.md"},
            {"content": "a,b\n1,2\n", "mimeType": "text/csv"},
        ],
    )
    first, second = message["attachments"]
    assert first["textContent"] == content
    assert (first["filename"], first["mimeType"]) == ("draft.md", "text/markdown")
    assert first["size"] == len(content.encode())
    assert (second["filename"], second["mimeType"], second["textContent"]) == (
        "content.md",
        "text/csv",
        "a,b\n1,2\n",
    )
    down = await owner.agent.get(f"/api/v1/files/{first['id']}/download")
    assert down.content == content.encode()
    assert down.headers["content-type"] == "text/markdown"
    listed = (await owner.agent.get(f"/api/v1/files?channel={channel}")).json()
    assert {f["id"]: f["messageId"] for f in listed} == {
        first["id"]: message["id"],
        second["id"]: message["id"],
    }
    stored = (await owner.agent.get(f"/api/v1/messages/{message['id']}")).json()
    assert stored["attachments"][0]["textContent"] == content


async def test_oversized_text_attachment_is_413_and_stores_nothing(stack: RunningStack, owner: Owner) -> None:
    channel = (await owner.create_agent())["id"]
    resp = await owner.agent.post(
        "/api/v1/messages",
        json={
            "channelId": channel,
            "textAttachments": [{"content": "ok"}, {"content": "x" * (files.TEXT_CONTENT_MAX_BYTES + 1)}],
        },
    )
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"]["field"] == "textAttachments[1].content"
    bad_type = await owner.agent.post(
        "/api/v1/messages",
        json={"channelId": channel, "textAttachments": [{"content": "ok", "mimeType": "text/html\r\nX: y"}]},
    )
    assert bad_type.status_code == 422
    assert bad_type.json()["error"]["field"] == "textAttachments[0].mimeType"
    mongo = stack.mongo()
    try:
        assert await mongo.sayso.files.count_documents({"channel_id": channel}) == 0
    finally:
        await mongo.close()


async def test_store_text_then_attach(owner: Owner) -> None:
    channel = (await owner.create_agent())["id"]
    stored = await owner.agent.post(
        "/api/v1/files/store-text",
        json={"channelId": channel, "content": "plain words", "mimeType": "text/plain"},
    )
    assert stored.status_code == 201, stored.text
    body = stored.json()
    assert (body["filename"], body["textContent"], body["messageId"]) == ("content.md", "plain words", None)
    message = await owner.post_message(channel, text="attached", attachmentIds=[body["id"]])
    assert message["attachments"][0]["textContent"] == "plain words"
    too_big = await owner.agent.post(
        "/api/v1/files/store-text", json={"channelId": channel, "content": "x" * (64 * 1024 + 1)}
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"]["field"] == "content"


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"mimeType": "text/plain"}, 422, "filename"),
        ({"filename": "", "mimeType": "text/plain"}, 422, "filename"),
        ({"filename": "a\r\nb", "mimeType": "text/plain"}, 422, "filename"),
        ({"filename": "a.txt"}, 422, "mimeType"),
        ({"filename": "a.txt", "mimeType": "not a type"}, 422, "mimeType"),
        ({"filename": "a.txt", "mimeType": "text/html\r\nSet-Cookie: x=1"}, 422, "mimeType"),
        ({"filename": "a.txt", "mimeType": "text/plain", "channelId": ""}, 422, "channelId"),
        ({"filename": "a.txt", "mimeType": "text/plain", "channelId": "agt_missing"}, 404, None),
        ([], 422, None),
    ],
)
async def test_presign_validation(api_owner: Owner, body: Any, status: int, field: str | None) -> None:
    resp = await api_owner.agent.post("/api/v1/files/upload", json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"].get("field") == field


async def test_presign_refuses_multipart_and_bad_json(api_owner: Owner) -> None:
    multipart = await api_owner.agent.post(
        "/api/v1/files/upload", files={"file": ("a.txt", b"x" * (400 * 1024), "text/plain")}
    )
    assert multipart.status_code == 415, multipart.text
    assert "uploadUrl" in multipart.json()["error"]["message"]
    broken = await api_owner.agent.post(
        "/api/v1/files/upload", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert broken.json()["error"]["code"] == "invalid_json"


# --- pure pieces ---------------------------------------------------------------------------


KEY = b"k" * 32


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("", "invalid_link"),
        ("file_x", "invalid_link"),
        ("file_x.123", "invalid_link"),
        ("file_x.abc.sig", "invalid_link"),
        ("file_x.-5.sig", "invalid_link"),
        ("file_x.9999999999999.sig", "invalid_link"),
        ("file_x.4102444800.sig", "invalid_link"),
        ("file_x.4102444800." + "A" * 43, "invalid_link"),
    ],
)
def test_verify_token_refuses(token: str, code: str) -> None:
    with pytest.raises(DomainError) as caught:
        files.verify_token(KEY, "download", token, utcnow())
    assert (caught.value.code.status, caught.value.code) == (403, code)


def test_token_round_trip_and_bounds() -> None:
    now = utcnow()
    token = files.sign_token(KEY, "download", "file_abc", now + timedelta(seconds=30))
    assert files.verify_token(KEY, "download", token, now) == "file_abc"
    with pytest.raises(DomainError, match="expired"):
        files.verify_token(KEY, "download", token, now + timedelta(seconds=31))
    for other_key, purpose in ((b"j" * 32, "download"), (KEY, "upload")):
        with pytest.raises(DomainError, match="signature"):
            files.verify_token(other_key, purpose, token, now)  # type: ignore[arg-type]


def test_signing_key_is_not_the_secret_key() -> None:
    settings = ApiSettings(secret_key=SecretStr("s" * 40))
    key = files.url_signing_key(settings)
    assert key != b"s" * 40
    assert len(key) == 32


@pytest.mark.parametrize(
    ("filename", "mime", "expected"),
    [
        ("report.pdf", "application/pdf", "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"),
        ("chart.png", "image/png", "inline; filename=\"chart.png\"; filename*=UTF-8''chart.png"),
        ("page.html", "text/html", "attachment; filename=\"page.html\"; filename*=UTF-8''page.html"),
        ("logo.svg", "image/svg+xml", "attachment; filename=\"logo.svg\"; filename*=UTF-8''logo.svg"),
        ('a"b\\c.txt', "text/plain", "inline; filename=\"a_b_c.txt\"; filename*=UTF-8''a%22b%5Cc.txt"),
        (
            "résumé.txt",
            "text/plain; charset=utf-8",
            "inline; filename=\"r_sum_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt",
        ),
        (
            "a;b=c.bin",
            "application/octet-stream",
            "attachment; filename=\"a;b=c.bin\"; filename*=UTF-8''a%3Bb%3Dc.bin",
        ),
    ],
)
def test_content_disposition(filename: str, mime: str, expected: str) -> None:
    assert content_disposition(filename, mime) == expected


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("text/plain", "text/plain"),
        ("Image/PNG", "image/png"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        ('text/plain;charset="utf-8"', 'text/plain;charset="utf-8"'),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", None),
        ("text/plain\r\nX-Injected: 1", ""),
        ("text", ""),
        ("text/", ""),
        ("/plain", ""),
        ("text/plain; charset", ""),
        ("téxt/plain", ""),
        ("a/" + "b" * 300, ""),
    ],
)
def test_check_mime_type(value: str, normalised: str | None) -> None:
    if normalised == "":
        with pytest.raises(DomainError) as caught:
            files.check_mime_type(value, "mimeType")
        assert (caught.value.code.status, caught.value.field) == (422, "mimeType")
    else:
        assert files.check_mime_type(value, "mimeType") == (normalised or value)
