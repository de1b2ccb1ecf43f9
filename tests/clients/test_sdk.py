"""The Python SDK end to end against the real stack: reviews answered over REST by a human,
expiry, typed errors, idempotent retries, streaming, live events and files."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import pytest
from aiohttp import web

import sayso
from sayso import calls
from tests.clients.support import answer_next
from tests.support.receiver import Received, Receiver
from tests.support.stack import Owner, RunningStack

FAST_RETRY = sayso.RetryPolicy(max_retries=3, max_wait=5.0, backoff=0.05)


def client_for(stack: RunningStack, owner: Owner, **options: Any) -> sayso.AsyncClient:
    return sayso.AsyncClient(stack.url, owner.api_key, **options)


async def test_review_round_trip(stack: RunningStack, owner: Owner) -> None:
    async with client_for(stack, owner) as client:
        agent = await client.create_agent("deploy-bot", description="ships things")
        assert agent.webhook_secret is not None
        assert agent.webhook_secret.startswith("whsec_")
        assert [a.id for a in await client.list_agents()] == [agent.id]

        message = await client.request_review(
            agent.id, sayso.Approval(allow_comment=True), "Deploy v2.1?", expires_in=600
        )
        assert message.review is not None
        assert (message.review.type, message.review.status) == ("approval", "pending")
        assert message.client_id  # set by the SDK
        assert [m.id for m in await client.pending_reviews(agent.id)] == [message.id]

        human = asyncio.create_task(
            answer_next(owner, agent.id, {"selectedOption": "approve", "comment": "ship"})
        )
        answer = await asyncio.wait_for(client.wait(message.id, agent.id), 30)
        await human
        assert answer.message_id == message.id
        assert answer.value == sayso.ApprovalAnswer(selected_option="approve", comment="ship")
        assert answer.review.status == "completed"
        assert answer.review.answer == answer.value
        assert await client.pending_reviews(agent.id) == []
        # Already answered: the first poll returns it.
        again = await asyncio.wait_for(client.wait(message.id, agent.id), 10)
        assert again.response == {"selectedOption": "approve", "comment": "ship"}


async def test_sync_client_waits_for_a_form(stack: RunningStack, owner: Owner) -> None:
    form = sayso.Form(
        fields=[
            sayso.FormField(
                name="env",
                label="Environment",
                type="select",
                required=True,
                options=[sayso.Choice(value="staging", label="Staging"), "production"],
            ),
            sayso.FormField(name="instances", label="Instances", type="number", min=1, max=10),
        ],
        submit_label="Deploy",
    )
    with sayso.Client(stack.url, owner.api_key) as client:
        agent = client.create_agent("form-bot")
        message = client.request_review(agent.id, form, "Configure the deployment")
        human = asyncio.create_task(answer_next(owner, agent.id, {"env": "production", "instances": 3}))
        answer = await asyncio.wait_for(asyncio.to_thread(client.wait, message.id, agent.id, 30), 40)
        await human
    assert isinstance(answer.value, sayso.FormAnswer)
    assert (answer.value["env"], answer.value.get("instances")) == ("production", 3)


@pytest.mark.parametrize(
    ("review", "response", "expected"),
    [
        (
            sayso.Selection(
                mode="multi", items=[sayso.Item(id="a", label="A"), sayso.Item(id="b", label="B")]
            ),
            {"selectedIds": ["a", "b"]},
            sayso.SelectionAnswer(selected_ids=["a", "b"]),
        ),
        (sayso.TextInput(placeholder="why?"), {"text": "because"}, sayso.TextInputAnswer(text="because")),
        (
            sayso.Freeform(plugin="json", data={"x": 1}),
            {"ok": True},
            sayso.FreeformAnswer(data={"ok": True}),
        ),
        (sayso.Approval(dismiss_label="Not now"), {"_dismissed": True}, sayso.Dismissed()),
    ],
    ids=["selection", "text-input", "freeform", "dismissed"],
)
async def test_typed_answers(
    stack: RunningStack, owner: Owner, review: sayso.ReviewRequest, response: dict[str, Any], expected: Any
) -> None:
    async with client_for(stack, owner) as client:
        agent = await client.create_agent("typed")
        human = asyncio.create_task(answer_next(owner, agent.id, response, delay=0))
        answer = await asyncio.wait_for(client.ask(agent.id, review, "?"), 30)
        await human
    assert answer.value == expected


async def test_expired_review_raises(stack: RunningStack, owner: Owner) -> None:
    async with client_for(stack, owner) as client:
        agent = await client.create_agent("impatient")
        message = await client.request_review(agent.id, sayso.TextInput(), "quick?", expires_in=1)
        with pytest.raises(sayso.Expired) as expired:
            await asyncio.wait_for(client.wait(message.id, agent.id), 30)
    assert expired.value.message.id == message.id
    assert expired.value.message.review is not None
    assert expired.value.message.review.status == "expired"


async def test_wait_timeout_leaves_the_review_pending(stack: RunningStack, owner: Owner) -> None:
    async with client_for(stack, owner) as client:
        agent = await client.create_agent("patient")
        message = await client.request_review(agent.id, sayso.Approval(), "later?")
        started = time.monotonic()
        with pytest.raises(sayso.WaitTimeout):
            await asyncio.wait_for(client.wait(message.id, agent.id, timeout=1.0), 15)
        assert 0.9 <= time.monotonic() - started < 10
        # One poll that runs out is "pending" with timedOut (Placet's clients loop on it).
        once = await client.wait_once(message.id, agent.id, 200)
        assert (once.status, once.timed_out, once.done) == ("pending", True, False)
        assert [m.id for m in await client.pending_reviews(agent.id)] == [message.id]


async def test_typed_errors(stack: RunningStack, owner: Owner) -> None:
    async with client_for(stack, owner) as client:
        agent = await client.create_agent("errors")
        with pytest.raises(sayso.ValidationError) as invalid:
            await client.request_review(agent.id, sayso.RawReview(type="selection", data={"items": []}))
        assert invalid.value.status == 422
        assert invalid.value.field == "review.payload.items"
        assert invalid.value.code  # the API's machine-readable reason
        assert invalid.value.message

        with pytest.raises(sayso.NotFound):
            await client.get_message("msg_missing", agent.id)
        with pytest.raises(sayso.NotFound):
            await client.request_review("agt_not_mine", sayso.Approval())

        await client.send_message(agent.id, "one", client_id="same-key")
        with pytest.raises(sayso.Conflict) as conflict:
            await client.send_message(agent.id, "another body", client_id="same-key")
        assert conflict.value.status == 409

    async with sayso.AsyncClient(stack.url, "hp_not-a-real-key") as stranger:
        with pytest.raises(sayso.Unauthorized):
            await stranger.list_agents()


def test_configuration_from_arguments_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAYSO_URL", raising=False)
    monkeypatch.delenv("SAYSO_API_KEY", raising=False)
    with pytest.raises(sayso.ConfigurationError, match="SAYSO_URL"):
        sayso.Client()
    monkeypatch.setenv("SAYSO_URL", "http://127.0.0.1:9/")
    with pytest.raises(sayso.ConfigurationError, match="SAYSO_API_KEY"):
        sayso.Client()
    monkeypatch.setenv("SAYSO_API_KEY", "hp_from_env")
    with sayso.Client() as client:
        assert client.url == "http://127.0.0.1:9"


async def test_client_id_makes_creation_idempotent(stack: RunningStack, owner: Owner) -> None:
    async with client_for(stack, owner) as client:
        agent = await client.create_agent("idempotent")
        first = await client.send_message(agent.id, "hello", client_id="run-42")
        second = await client.send_message(agent.id, "hello", client_id="run-42")
        assert first.id == second.id
        assert first.client_id == "run-42"
        page = await client.list_messages(agent.id)
        assert [m.id for m in page.data] == [first.id]


class DropFirstAnswer(httpx.AsyncHTTPTransport):
    """Lets the first message creation reach the server, then loses its answer, as a connection
    reset after the request was processed would."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.method == "POST" and request.url.path == "/api/v1/messages" and not self.dropped:
            await response.aread()
            await response.aclose()
            self.dropped.append(request.content.decode())
            raise httpx.ReadError("connection reset", request=request)
        return response


async def test_retry_after_a_lost_answer_creates_one_message(stack: RunningStack, owner: Owner) -> None:
    transport = DropFirstAnswer()
    async with client_for(stack, owner, transport=transport, retry=FAST_RETRY) as client:
        agent = await client.create_agent("flaky-network")
        message = await client.send_message(agent.id, "exactly once")
        assert len(transport.dropped) == 1
        assert message.client_id
        assert message.client_id in transport.dropped[0]
        page = await client.list_messages(agent.id)
        assert [m.id for m in page.data] == [message.id]


def _answers(*statuses: tuple[int, dict[str, str]]) -> Any:
    """A receiver route answering with the given statuses in turn, then 200 ``[]``."""
    queue = list(statuses)

    async def handler(_: web.Request, __: Received) -> web.StreamResponse:
        if queue:
            status, headers = queue.pop(0)
            body = {"error": {"code": "rate_limited" if status == 429 else "unavailable", "message": "later"}}
            return web.json_response(body, status=status, headers=headers)
        return web.json_response([])

    return handler


async def test_throttled_honours_retry_after_then_gives_up(receiver: Receiver) -> None:
    receiver.routes["/api/v1/agents"] = _answers((429, {"Retry-After": "1"}))
    async with sayso.AsyncClient(receiver.base, "hp_test", retry=FAST_RETRY) as client:
        started = time.monotonic()
        assert await client.list_agents() == []
        assert time.monotonic() - started >= 0.95  # waited as told
        assert len(receiver.at("/api/v1/agents")) == 2

        # Asked to wait longer than the policy allows: raised at once, with the hint.
        receiver.routes["/api/v1/agents"] = _answers((429, {"Retry-After": "3600"}))
        with pytest.raises(sayso.Throttled) as throttled:
            await client.list_agents()
        assert throttled.value.retry_after == 3600
        assert len(receiver.at("/api/v1/agents")) == 3

        # 429 forever: bounded by max_retries.
        receiver.routes["/api/v1/agents"] = _answers(*[(429, {"Retry-After": "0"})] * 10)
        with pytest.raises(sayso.Throttled):
            await client.list_agents()
        assert len(receiver.at("/api/v1/agents")) == 3 + 1 + FAST_RETRY.max_retries


async def test_unavailable_is_retried_only_when_safe(receiver: Receiver) -> None:
    receiver.routes["/api/v1/agents"] = _answers((503, {"Retry-After": "0"}))
    async with sayso.AsyncClient(receiver.base, "hp_test", retry=FAST_RETRY) as client:
        assert await client.list_agents() == []  # a read: retried
        receiver.routes["/api/v1/agents"] = _answers((503, {"Retry-After": "2"}))
        with pytest.raises(sayso.Unavailable) as unavailable:
            await client.create_agent("x")  # not idempotent: raised, not repeated
        assert unavailable.value.retry_after == 2
    assert [r.method for r in receiver.at("/api/v1/agents")] == ["GET", "GET", "POST"]
    assert receiver.requests[0].headers["x-api-key"] == "hp_test"


async def test_streaming_helper(stack: RunningStack, owner: Owner) -> None:
    async with client_for(stack, owner) as client:
        agent = await client.create_agent("streamer")
        async with client.stream(agent.id, "Hel", min_interval=0) as stream:
            await stream.write("lo")
            step = await stream.status("searching the docs", tool_hint=True)
            await stream.write(" world")
        assert (step.index, step.text, step.tool_hint) == (0, "searching the docs", True)
        assert stream.message is not None
        done = await client.get_message(stream.message.id, agent.id)
        assert (done.text, done.stream_state, done.stream_id) == ("Hello world", "complete", stream.stream_id)
        assert [e.text for e in done.status_events] == ["searching the docs"]
        with pytest.raises(sayso.Conflict):  # a closed stream
            await client.run(calls.patch_stream(stream.stream_id, agent.id, "more"))

        streams: list[sayso.AsyncStream] = []

        async def crash() -> None:
            async with client.stream(agent.id, min_interval=60) as broken:
                streams.append(broken)
                await broken.write("partial answer")  # coalesced: not sent before the crash
                raise RuntimeError("model crashed")

        with pytest.raises(RuntimeError, match="model crashed"):
            await crash()
        [broken] = streams
        assert broken.message is not None
        aborted = await client.get_message(broken.message.id, agent.id)
        assert (aborted.text, aborted.stream_state) == ("partial answer", "aborted")

    with sayso.Client(stack.url, owner.api_key) as sync_client, sync_client.stream(agent.id, "a") as s:
        s.write("b")
        s.set_text("replaced")
    assert s.message is not None
    assert (s.message.text, s.message.stream_state) == ("replaced", "complete")


async def test_live_events(stack: RunningStack, owner: Owner) -> None:
    async with client_for(stack, owner) as client:
        agent = await client.create_agent("watcher")
        sent: list[str] = []

        async def first_event() -> sayso.Event:
            async with contextlib.aclosing(client.events(agent.id)) as events:
                async for event in events:
                    if event.type == "message:created" and event.data.get("id") in sent:
                        return event
            raise AssertionError("the event stream ended")

        async def keep_sending() -> None:
            # Until the stream is surely connected: the first messages may predate it.
            while True:
                sent.append((await client.send_message(agent.id, f"note {len(sent)}")).id)
                await asyncio.sleep(0.5)

        sender = asyncio.create_task(keep_sending())
        try:
            event = await asyncio.wait_for(first_event(), 20)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
    assert event.id
    assert event.data["channelId"] == agent.id
    assert event.data["text"].startswith("note ")


async def test_files(stack: RunningStack, owner: Owner, tmp_path: Any) -> None:
    report = tmp_path / "report.csv"
    report.write_bytes(b"a,b\n1,2\n")
    async with client_for(stack, owner) as client:
        agent = await client.create_agent("files")
        uploaded = await client.upload_file(report, agent.id)
        assert (uploaded.filename, uploaded.mime_type, uploaded.size) == ("report.csv", "text/csv", 8)
        loose = await client.upload_file(b"\x00\x01binary", filename="blob.bin")
        assert loose.channel_id is None
        text = await client.store_text(agent.id, "# Draft\n\nhello", filename="draft.md")
        assert text.text_content == "# Draft\n\nhello"

        message = await client.request_review(
            agent.id, sayso.Approval(), "Review the files", attachment_ids=[uploaded.id, loose.id, text.id]
        )
        assert [a.filename for a in message.attachments] == ["report.csv", "blob.bin", "draft.md"]
        assert message.attachments[2].text_content == "# Draft\n\nhello"

        assert await client.download_file(uploaded.id) == b"a,b\n1,2\n"
        assert await client.download_file(loose.id) == b"\x00\x01binary"
        assert (await client.get_file(loose.id)).channel_id == agent.id
        assert {f.id for f in await client.list_files(agent.id)} == {uploaded.id, loose.id, text.id}
        link = await client.download_link(uploaded.id)
        async with httpx.AsyncClient() as anonymous:  # the link needs no credentials
            got = await anonymous.get(f"{stack.url}{httpx.URL(link.download_url).raw_path.decode()}")
        assert got.content == b"a,b\n1,2\n"
        with pytest.raises(sayso.NotFound):
            await client.download_file("file_missing")
