"""Every flow of Placet's MCP server (`packages/mcp-server` in placet-io/placet), replayed against
the real stack through the edge.

``PlacetClient`` sends exactly what that server's API client sends (``x-api-key`` with an ``hp_``
key, ``Content-Type: application/json`` on GET and POST, only the key on DELETE, encoded path
segments and ``channel``) and fails on any non-2xx, as it does; each ``tool_*`` function makes the
calls its tool makes and reads the fields it reads. Written from that contract, not from its code.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.stack import Owner, RunningStack

POLL_CAP_MS = 30_000


class PlacetApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"Placet API error {status}: {body}")
        self.status = status


class PlacetClient:
    def __init__(self, base_url: str, api_key: str) -> None:
        # The MCP server refuses to start with any other key.
        assert api_key.startswith("hp_"), 'PLACET_API_KEY must start with "hp_"'
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=60)
        self._key = api_key

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"x-api-key": self._key}
        if method in ("GET", "POST"):
            headers["Content-Type"] = "application/json"
        resp = await self._http.request(method, path, headers=headers, json=body)
        if not resp.is_success:
            raise PlacetApiError(resp.status_code, resp.text)
        return resp.json()

    @staticmethod
    def _ch(channel: str) -> str:
        return quote(channel, safe="")

    async def send_message(self, dto: dict[str, Any]) -> Any:
        return await self._call("POST", "/api/v1/messages", {k: v for k, v in dto.items() if v is not None})

    async def get_message(self, mid: str, ch: str) -> Any:
        return await self._call("GET", f"/api/v1/messages/{quote(mid, safe='')}?channel={self._ch(ch)}")

    async def get_messages(self, ch: str, **opts: Any) -> Any:
        query = "".join(f"&{k}={quote(str(v), safe='')}" for k, v in opts.items() if v)
        return await self._call("GET", f"/api/v1/messages?channel={self._ch(ch)}{query}")

    async def delete_message(self, mid: str, ch: str) -> Any:
        return await self._call("DELETE", f"/api/v1/messages/{quote(mid, safe='')}?channel={self._ch(ch)}")

    async def acknowledge(self, mid: str, ch: str) -> Any:
        return await self._call(
            "POST", f"/api/v1/messages/{quote(mid, safe='')}/ack?channel={self._ch(ch)}", {}
        )

    async def get_pending_reviews(self, ch: str) -> Any:
        return await self._call("GET", f"/api/v1/reviews/pending?channel={self._ch(ch)}")

    async def get_review(self, mid: str, ch: str) -> Any:
        return await self._call("GET", f"/api/v1/reviews/{quote(mid, safe='')}?channel={self._ch(ch)}")

    async def wait_for_review(self, mid: str, ch: str, timeout_ms: int = POLL_CAP_MS) -> Any:
        path = f"/api/v1/reviews/{quote(mid, safe='')}/wait?channel={self._ch(ch)}&timeout={timeout_ms}"
        return await self._call("GET", path)

    async def get_iteration_chain(self, mid: str, ch: str) -> Any:
        return await self._call(
            "GET", f"/api/v1/messages/iterations/{quote(mid, safe='')}?channel={self._ch(ch)}"
        )

    async def list_agents(self) -> Any:
        return await self._call("GET", "/api/v1/agents")

    async def create_agent(self, body: dict[str, Any]) -> Any:
        return await self._call("POST", "/api/v1/agents", body)

    async def ping_status(self, body: dict[str, Any]) -> Any:
        return await self._call("POST", "/api/v1/status/ping", body)

    async def list_plugins(self) -> Any:
        return await self._call("GET", "/api/v1/plugins")


# ── the tools ─────────────────────────────────────────────────────────────────────────────────


async def tool_send_message(c: PlacetClient, channel: str, text: str, **extra: Any) -> Any:
    msg = await c.send_message({"channelId": channel, "text": text, **extra})
    with contextlib.suppress(PlacetApiError):  # the tool swallows a failed ack
        await c.acknowledge(msg["id"], channel)
    return msg


async def _wait_loop(
    c: PlacetClient, mid: str, channel: str, connection_timeout_ms: int, progress: list[str]
) -> Any:
    deadline = time.monotonic() + connection_timeout_ms / 1000
    polls = 0
    while True:
        remaining = int((deadline - time.monotonic()) * 1000)
        poll = min(POLL_CAP_MS, remaining)
        if poll <= 0:
            break
        result = await c.wait_for_review(mid, channel, poll)
        if result["status"] in ("completed", "expired"):
            return {"status": result["status"], "message": result["message"]}
        polls += 1
        progress.append(f"{polls}/{math.ceil(connection_timeout_ms / POLL_CAP_MS)}")
    return {"status": "timeout", "messageId": mid, "hint": "Call wait_for_review again"}


async def tool_send_review_message(
    c: PlacetClient,
    channel: str,
    text: str,
    review_type: str,
    payload: dict[str, Any],
    *,
    wait_inline: bool = False,
    connection_timeout_ms: int = 300_000,
    progress: list[str] | None = None,
    **extra: Any,
) -> Any:
    review: dict[str, Any] = {"type": review_type, "payload": payload}
    if extra.get("expiresInSeconds"):
        review["expiresInSeconds"] = extra.pop("expiresInSeconds")
    msg = await c.send_message({"channelId": channel, "text": text, "review": review, **extra})
    mid, expires_at = msg["id"], msg["review"]["expiresAt"]
    with contextlib.suppress(PlacetApiError):
        await c.acknowledge(mid, channel)
    if not wait_inline:
        return {
            "status": "pending",
            "messageId": mid,
            "expiresAt": expires_at,
            "hint": "Call wait_for_review",
        }
    return await _wait_loop(c, mid, channel, connection_timeout_ms, progress if progress is not None else [])


async def tool_wait_for_review(
    c: PlacetClient, mid: str, channel: str, connection_timeout_ms: int, progress: list[str]
) -> Any:
    current = await c.get_review(mid, channel)
    assert "expiresAt" in current["review"]
    if current["review"]["status"] in ("completed", "expired"):
        return {"status": current["review"]["status"], "message": current}
    return await _wait_loop(c, mid, channel, connection_timeout_ms, progress)


# ── the flows ─────────────────────────────────────────────────────────────────────────────────


async def _answer_later(owner: Owner, mid: str, response: dict[str, Any], delay: float) -> int:
    await asyncio.sleep(delay)
    return (await owner.respond(mid, response)).status_code


async def test_every_mcp_tool_flow(stack: RunningStack, owner: Owner) -> None:
    assert owner.api_key.startswith("hp_")
    c = PlacetClient(stack.url + "/", owner.api_key)
    try:
        # create_channel / list_channels (bare array)
        channel = (
            await c.create_agent({"name": "mcp-agent", "description": "from MCP", "webhookUrl": None})
        )["id"]
        agents = await c.list_agents()
        assert [a["id"] for a in agents] == [channel]

        # ping_status
        pinged = await c.ping_status({"agentId": channel, "status": "busy", "message": "running"})
        assert (pinged["status"], pinged["statusMessage"]) == ("busy", "running")

        # send_message: created, then acknowledged by the tool
        note = await tool_send_message(
            c, channel, "## Build\nAll green", status="success", metadata={"run": 1}
        )
        assert (await c.get_message(note["id"], channel))["deliveryStatus"] == "agent_received"

        # send_review_message without waitInline, then wait_for_review over short polls
        pending = await tool_send_review_message(
            c, channel, "Deploy v2.1?", "approval",
            {"options": [{"id": "approve", "label": "Approve", "style": "primary"},
                         {"id": "reject", "label": "Reject", "style": "danger"}], "allowComment": True},
            expiresInSeconds=3600,
        )  # fmt: skip
        assert pending["status"] == "pending"
        assert pending["expiresAt"]
        mid = pending["messageId"]
        assert [m["id"] for m in await c.get_pending_reviews(channel)] == [mid]
        progress: list[str] = []
        # Nobody answers: a poll runs out (Sayso answers "pending" + timedOut) and the tool
        # gives up with "timeout" at its connection deadline.
        timed_out = await tool_wait_for_review(c, mid, channel, 1500, progress)
        assert timed_out["status"] == "timeout"
        assert progress
        # The human answers while the next wait holds its poll open.
        answer = asyncio.create_task(
            _answer_later(owner, mid, {"selectedOption": "approve", "comment": "ship"}, 1.0)
        )
        done = await tool_wait_for_review(c, mid, channel, 60_000, progress)
        assert await answer == 200
        assert done["status"] == "completed"
        assert done["message"]["review"]["response"] == {"selectedOption": "approve", "comment": "ship"}
        # Fast path: already completed, answered from GET /reviews/{id}.
        again = await tool_wait_for_review(c, mid, channel, 60_000, [])
        assert again["message"]["review"]["status"] == "completed"
        assert await c.get_pending_reviews(channel) == []

        # send_review_message with waitInline, answered during the wait
        answer = asyncio.create_task(_answer_later_for_latest(owner, c, channel, {"selectedIds": ["b"]}))
        inline = await tool_send_review_message(
            c, channel, "Which one?", "selection",
            {"mode": "single", "items": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}]},
            wait_inline=True, connection_timeout_ms=60_000,
        )  # fmt: skip
        assert await answer == 200
        assert inline["status"] == "completed"
        assert inline["message"]["review"]["response"] == {"selectedIds": ["b"]}

        # an iteration on the answered review; get_iteration_chain from either end
        v2 = await tool_send_review_message(c, channel, "Deploy v2.2?", "approval", {}, iterationOf=mid)
        chain = await c.get_iteration_chain(v2["messageId"], channel)
        assert chain["groupId"] == mid
        assert [m["iteration"] for m in chain["iterations"]] == [1, 2]
        assert (await c.get_iteration_chain(mid, channel))["groupId"] == mid

        # get_messages (paginated) and get_message
        page = await c.get_messages(channel, limit=2)
        assert len(page["data"]) == 2
        assert page["nextCursor"]
        rest = await c.get_messages(channel, limit=100, cursor=page["nextCursor"])
        found = await c.get_messages(channel, search="BUILD")
        assert [m["id"] for m in found["data"]] == [note["id"]]
        assert len(page["data"]) + len(rest["data"]) == 4

        # delete_message: {deleted: true}; a chain member is refused (PlacetApiError, non-2xx)
        assert await c.delete_message(note["id"], channel) == {"deleted": True}
        with pytest.raises(PlacetApiError) as refused:
            await c.delete_message(mid, channel)
        assert refused.value.status == 400  # as Placet's BadRequestException

        # list_plugins: a bare array of manifests with name/displayName/version
        plugins = await c.list_plugins()
        assert isinstance(plugins, list)
        assert plugins
        assert all({"name", "displayName", "version"} <= set(p) for p in plugins)

        # channel ids with odd characters are encoded, and an unknown one is a clean error
        with pytest.raises(PlacetApiError) as unknown:
            await c.get_pending_reviews("a/b")
        assert unknown.value.status in (403, 404)
    finally:
        await c.aclose()


async def _answer_later_for_latest(
    owner: Owner, c: PlacetClient, channel: str, response: dict[str, Any]
) -> int:
    for _ in range(100):
        pending = await c.get_pending_reviews(channel)
        if pending:
            await asyncio.sleep(0.5)  # let the tool's wait register first
            return (await owner.respond(pending[0]["id"], response)).status_code
        await asyncio.sleep(0.05)
    raise AssertionError("the review never appeared")


async def test_expired_review_ends_the_wait(stack: RunningStack, owner: Owner) -> None:
    c = PlacetClient(stack.url, owner.api_key)
    try:
        channel = (await c.create_agent({"name": "short"}))["id"]
        sent = await tool_send_review_message(
            c, channel, "quick?", "text-input", {"placeholder": "why"}, expiresInSeconds=1
        )
        result = await tool_wait_for_review(c, sent["messageId"], channel, 30_000, [])
        assert result["status"] == "expired"
        assert result["message"]["review"]["status"] == "expired"
    finally:
        await c.aclose()


async def test_file_and_streamed_message_flows(stack: RunningStack, owner: Owner) -> None:
    """The flows an agent runs next to the MCP tools: Placet's presigned upload (register, PUT the
    bytes, attach by id), download back, and a streamed reply that grows and completes."""
    c = PlacetClient(stack.url, owner.api_key)
    try:
        channel = (await c.create_agent({"name": "files-and-streams"}))["id"]
        ticket = await c._call(
            "POST", "/api/v1/files/upload", {"filename": "report.md", "mimeType": "text/markdown"}
        )
        assert ticket["fileKey"] == ticket["id"]
        payload = b"# Q1\n\nRevenue up.\n"
        async with httpx.AsyncClient(timeout=30) as raw:
            # The upload URL carries its own signature; Placet's clients PUT to it without the key.
            put = await raw.put(stack.url + httpx.URL(ticket["uploadUrl"]).raw_path.decode(), content=payload)
            assert put.status_code == 200, put.text
        msg = await c.send_message(
            {
                "channelId": channel,
                "text": "Please review the attached report.",
                "attachmentIds": [ticket["id"]],
            }
        )
        (attachment,) = msg["attachments"]
        assert (attachment["filename"], attachment["textContent"]) == ("report.md", payload.decode())
        listed = await c._call("GET", f"/api/v1/files?channel={channel}")
        assert [f["id"] for f in listed] == [ticket["id"]]
        async with httpx.AsyncClient(
            base_url=stack.url, headers={"x-api-key": owner.api_key}, timeout=30
        ) as http:
            got = await http.get(f"/api/v1/files/{ticket['id']}/download")
            assert got.content == payload
            link = (await http.get(f"/api/v1/files/{ticket['id']}/presign-download")).json()["downloadUrl"]
        async with httpx.AsyncClient(timeout=30) as anon:
            assert (await anon.get(stack.url + httpx.URL(link).raw_path.decode())).content == payload

        draft = await c.send_message(
            {"channelId": channel, "text": "Thinking", "streamId": "turn-1", "streamState": "streaming"}
        )
        assert draft["streamState"] == "streaming"
        for text in ("Thinking about", "Thinking about the report"):
            await c._call("PATCH", "/api/v1/messages/streams/turn-1", {"channelId": channel, "text": text})
        done = await c._call(
            "PATCH",
            "/api/v1/messages/streams/turn-1",
            {"channelId": channel, "text": "Done: looks good.", "complete": True},
        )
        assert (done["id"], done["streamState"], done["text"]) == (
            draft["id"],
            "complete",
            "Done: looks good.",
        )
        assert (await c.get_message(draft["id"], channel))["text"] == "Done: looks good."
    finally:
        await c.aclose()
