"""The asyncio client: :class:`sayso.Client`'s methods, awaitable. See there for the docs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx

from sayso import calls, config, files
from sayso.client import ReviewSpec, Timeout, camel, next_poll_ms, seconds
from sayso.errors import Expired, WaitTimeout, error_from_response
from sayso.events import EventParser
from sayso.files import FileInfo, FileInput
from sayso.models import (
    Agent,
    AgentStatus,
    Answer,
    AuditEntry,
    Endpoint,
    EndpointRecovered,
    EndpointReplayed,
    EndpointSecret,
    Event,
    FeedPage,
    IterationChain,
    Message,
    MessagePage,
    MessageStatus,
    Policy,
    PolicyTest,
    Remembered,
    ScopedToken,
    StreamTicket,
    WaitResult,
)
from sayso.retry import RetryPolicy, next_delay
from sayso.streaming import AsyncStream

T = TypeVar("T")


class AsyncClient:
    """Talks to Sayso's public HTTP API with asyncio. ``url`` and ``api_key`` default to
    ``SAYSO_URL`` and ``SAYSO_API_KEY``; use ``async with`` or :meth:`aclose`."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = config.DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url, credential = config.resolve(url, api_key)
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=config.base_headers(credential, headers),
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def run(self, call: calls.Call[T]) -> T:
        attempt = 0
        while True:
            outcome: httpx.Response | Exception
            try:
                outcome = await self._http.send(self._request(call))
            except httpx.TransportError as exc:
                outcome = exc
            if isinstance(outcome, httpx.Response) and outcome.is_success:
                return call.parse(outcome)
            await asyncio.sleep(next_delay(self.retry, attempt, call.idempotent, outcome))
            attempt += 1

    def _request(self, call: calls.Call[Any]) -> httpx.Request:
        request = self._http.build_request(
            call.method,
            call.path,
            params=call.params,
            json=call.json,
            content=call.content,
            headers=call.headers,
            timeout=config.read_timeout(call.timeout) or httpx.USE_CLIENT_DEFAULT,
        )
        if call.anonymous:
            for name in calls.CREDENTIAL_HEADERS:
                request.headers.pop(name, None)
        return request

    # ── agents ───────────────────────────────────────────────────────────────────────────────

    async def create_agent(self, name: str, **fields: Any) -> Agent:
        return await self.run(calls.create_agent(name, camel(fields)))

    async def list_agents(self) -> list[Agent]:
        return await self.run(calls.list_agents())

    async def get_agent(self, agent_id: str) -> Agent:
        return await self.run(calls.get_agent(agent_id))

    async def update_agent(self, agent_id: str, **fields: Any) -> Agent:
        return await self.run(calls.update_agent(agent_id, camel(fields)))

    async def delete_agent(self, agent_id: str) -> bool:
        return await self.run(calls.delete_agent(agent_id))

    async def ping(self, agent_id: str, status: AgentStatus, message: str | None = None) -> Agent:
        return await self.run(calls.ping(agent_id, status, message))

    async def create_ticket(self, channel_ids: list[str] | None = None) -> StreamTicket:
        """A single-use ticket for one event stream or socket (within 60 s), for your channels or
        some of them: what a browser page opens native ``EventSource`` with
        (``/api/v1/events?ticket=…``). Works with an API key, a session or a scoped token."""
        return await self.run(calls.create_ticket(channel_ids))

    async def create_token(
        self,
        channel_ids: list[str],
        expires_in_seconds: int,
        *,
        answer: bool = False,
        name: str | None = None,
    ) -> ScopedToken:
        """A scoped read-only token for embedding (needs a user session). ``token`` is set only
        in this answer."""
        return await self.run(calls.create_token(channel_ids, expires_in_seconds, answer, name))

    async def list_tokens(self) -> list[ScopedToken]:
        return await self.run(calls.list_tokens())

    async def revoke_token(self, token_id: str) -> bool:
        return await self.run(calls.revoke_token(token_id))

    async def list_plugins(self) -> list[dict[str, Any]]:
        return await self.run(calls.list_plugins())

    # ── messages ─────────────────────────────────────────────────────────────────────────────

    async def send_message(
        self,
        channel: str,
        text: str | None = None,
        *,
        status: MessageStatus | None = None,
        review: ReviewSpec | None = None,
        metadata: Mapping[str, Any] | None = None,
        webhook_url: str | None = None,
        attachment_ids: Sequence[str] | None = None,
        text_attachments: Sequence[Mapping[str, str]] | None = None,
        iteration_of: str | None = None,
        client_id: str | None = None,
    ) -> Message:
        return await self.run(
            calls.send_message(
                channel,
                text,
                status=status,
                review=calls.review_body(review) if review is not None else None,
                metadata=metadata,
                webhook_url=webhook_url,
                attachment_ids=list(attachment_ids) if attachment_ids else None,
                text_attachments=[dict(t) for t in text_attachments] if text_attachments else None,
                iteration_of=iteration_of,
                client_id=client_id,
            )
        )

    async def get_message(self, message_id: str, channel: str | None = None) -> Message:
        return await self.run(calls.get_message(message_id, channel))

    async def list_messages(
        self,
        channel: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        search: str | None = None,
        has_attachments: bool = False,
    ) -> MessagePage:
        return await self.run(calls.list_messages(channel, limit, cursor, search, has_attachments))

    async def delete_message(self, message_id: str, channel: str | None = None) -> bool:
        return await self.run(calls.delete_message(message_id, channel))

    async def expunge_message(self, message_id: str, channel: str | None = None) -> Message:
        return await self.run(calls.expunge_message(message_id, channel))

    async def ack(self, message_id: str, channel: str | None = None) -> bool:
        return await self.run(calls.ack(message_id, channel))

    async def iterations(self, message_id: str, channel: str | None = None) -> IterationChain:
        return await self.run(calls.iterations(message_id, channel))

    def stream(
        self,
        channel: str,
        text: str = "",
        *,
        stream_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        min_interval: float = 0.2,
    ) -> AsyncStream:
        """A streamed message, as an async context manager (see :mod:`sayso.streaming`)."""
        return AsyncStream(
            self, channel, text, stream_id=stream_id, metadata=metadata, min_interval=min_interval
        )

    # ── reviews ──────────────────────────────────────────────────────────────────────────────

    async def request_review(
        self,
        channel: str,
        review: ReviewSpec,
        text: str | None = None,
        *,
        expires_in: Timeout = None,
        expires_at: datetime | None = None,
        webhook_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        iteration_of: str | None = None,
        attachment_ids: Sequence[str] | None = None,
        client_id: str | None = None,
    ) -> Message:
        return await self.run(
            calls.send_message(
                channel,
                text,
                review=calls.review_body(review, seconds(expires_in), expires_at),
                metadata=metadata,
                webhook_url=webhook_url,
                attachment_ids=list(attachment_ids) if attachment_ids else None,
                iteration_of=iteration_of,
                client_id=client_id,
            )
        )

    async def get_review(self, message_id: str, channel: str | None = None) -> Message:
        return await self.run(calls.get_review(message_id, channel))

    async def respond(
        self,
        message_id: str,
        response: Mapping[str, Any],
        *,
        feedback: str | None = None,
        remember: Mapping[str, Any] | float | None = None,
    ) -> Message:
        """Answer a review as a person (the client's credential is a user's JWT). ``remember``
        approves the same action again for that many seconds in the whole channel (or pass
        ``calls.remember_body(seconds, "run", run_id)``, or the API's own mapping); only an
        approving answer to a review whose message has ``metadata.tool`` can be remembered."""
        if isinstance(remember, int | float):
            remember = calls.remember_body(remember)
        return await self.run(calls.respond(message_id, response, feedback, remember))

    async def list_remembered(self, channel: str) -> list[Remembered]:
        """The channel's remembered approvals still in force, newest first."""
        return await self.run(calls.list_remembered(channel))

    async def revoke_remembered(self, channel: str, remembered_id: str) -> Remembered:
        """Revoke a remembered approval at once (owner: any; a member: their own)."""
        return await self.run(calls.revoke_remembered(channel, remembered_id))

    async def pending_reviews(self, channel: str | None = None) -> list[Message]:
        return await self.run(calls.pending_reviews(channel))

    async def wait_once(
        self, message_id: str, channel: str, timeout_ms: int = calls.POLL_CAP_MS
    ) -> WaitResult:
        return await self.run(calls.wait_once(message_id, channel, timeout_ms))

    async def wait(self, message_id: str, channel: str, timeout: Timeout = None) -> Answer:
        limit = seconds(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            poll_ms = next_poll_ms(deadline)
            if poll_ms <= 0:
                raise WaitTimeout(message_id, limit or 0.0)
            result = await self.wait_once(message_id, channel, poll_ms)
            if result.status == "completed" and result.message is not None:
                return Answer(message=result.message)
            if result.status == "expired" and result.message is not None:
                raise Expired(result.message)

    async def ask(
        self,
        channel: str,
        review: ReviewSpec,
        text: str | None = None,
        *,
        timeout: Timeout = None,
        **options: Any,
    ) -> Answer:
        message = await self.request_review(channel, review, text, **options)
        return await self.wait(message.id, channel, timeout)

    # ── live events ──────────────────────────────────────────────────────────────────────────

    async def events(
        self, channel: str | None = None, *, last_event_id: str | None = None, reconnect: bool = True
    ) -> AsyncGenerator[Event, None]:
        parser = EventParser()
        parser.last_event_id = last_event_id
        params = {"channel": channel} if channel else {}
        while True:
            headers = {"Accept": "text/event-stream"}
            if parser.last_event_id:
                headers["Last-Event-ID"] = parser.last_event_id
            try:
                async with self._http.stream(
                    "GET", "/api/v1/events", params=params, headers=headers, timeout=config.read_timeout(60.0)
                ) as resp:
                    if not resp.is_success:
                        await resp.aread()
                        raise error_from_response(resp)
                    async for line in resp.aiter_lines():
                        event = parser.feed(line)
                        if event is not None:
                            yield event
            except httpx.TransportError:
                if not reconnect:
                    raise
            if not reconnect:
                return
            await asyncio.sleep(parser.retry_ms / 1000)

    # ── files ────────────────────────────────────────────────────────────────────────────────

    async def upload_file(
        self,
        file: FileInput,
        channel: str | None = None,
        *,
        filename: str | None = None,
        mime_type: str | None = None,
    ) -> FileInfo:
        content, name, kind = files.read(file, filename, mime_type)
        ticket = await self.run(files.ticket_call(channel, name, kind))
        return await self.run(files.put_call(ticket, content, kind))

    async def store_text(
        self, channel: str, content: str, *, filename: str = "content.md", mime_type: str = "text/markdown"
    ) -> FileInfo:
        return await self.run(files.store_text_call(channel, content, filename, mime_type))

    async def get_file(self, file_id: str) -> FileInfo:
        return await self.run(files.get_call(file_id))

    async def list_files(self, channel: str, *, limit: int | None = None) -> list[FileInfo]:
        return await self.run(files.list_call(channel, limit))

    async def download_file(self, file_id: str) -> bytes:
        return await self.run(files.download_call(file_id))

    async def download_link(self, file_id: str) -> files.DownloadLink:
        return await self.run(files.link_call(file_id))

    # ── webhook endpoints and the pull feed ─────────────────────────────────────────────────

    async def create_endpoint(
        self, url: str | None = None, channel: str | None = None, **fields: Any
    ) -> Endpoint:
        """Add a webhook endpoint to ``channel`` (None: every channel of the account): ``url``
        (HTTP), or ``destination=kafka_destination(…)`` for a Kafka topic instead. Fields:
        description, event_types, filter, format, headers, auth, rate_limit, disabled. The answer
        carries its signing secret (``secret``) this once."""
        body = camel(fields) if url is None else {"url": url, **camel(fields)}
        return await self.run(calls.create_endpoint(channel, body))

    async def list_endpoints(self, channel: str | None = None) -> list[Endpoint]:
        return await self.run(calls.list_endpoints(channel))

    async def get_endpoint(self, endpoint_id: str, channel: str | None = None) -> Endpoint:
        return await self.run(calls.get_endpoint(channel, endpoint_id))

    async def update_endpoint(self, endpoint_id: str, channel: str | None = None, **fields: Any) -> Endpoint:
        """Change the given fields (None clears description, filter, headers, auth, rate_limit)."""
        return await self.run(calls.update_endpoint(channel, endpoint_id, camel(fields)))

    async def delete_endpoint(self, endpoint_id: str, channel: str | None = None) -> bool:
        return await self.run(calls.delete_endpoint(channel, endpoint_id))

    async def rotate_endpoint_secret(self, endpoint_id: str, channel: str | None = None) -> EndpointSecret:
        """A new signing secret (shown once); the old one keeps signing for the grace period."""
        return await self.run(calls.rotate_endpoint_secret(channel, endpoint_id))

    async def recover_endpoint(
        self, endpoint_id: str, channel: str | None = None, since: datetime | None = None
    ) -> EndpointRecovered:
        """Re-send the endpoint's deliveries that failed since ``since`` (default 24 h ago), each
        with its own webhook-id; while ``more``, call again."""
        return await self.run(calls.recover_endpoint(channel, endpoint_id, since))

    async def replay_endpoint(
        self,
        endpoint_id: str,
        start: datetime,
        end: datetime,
        channel: str | None = None,
        progress: Callable[[EndpointReplayed], None] | None = None,
    ) -> EndpointReplayed:
        """Deliver the stored events of ``[start, end)`` the endpoint matches, once each, following
        the cursor to the end of the range; the counts are summed over the calls. ``progress`` is
        called with the running totals after each call."""
        total = EndpointReplayed(queued=0, requeued=0, skipped=0, scanned=0, more=False)
        after: str | None = None
        while True:
            page = await self.run(calls.replay_endpoint(channel, endpoint_id, start, end, after))
            total = calls.add_replayed(total, page)
            if progress is not None:
                progress(total)
            if not page.more:
                return total
            after = page.next_cursor

    async def feed(
        self,
        channel: str | None = None,
        after: str | None = None,
        limit: int | None = None,
        wait_ms: int | None = None,
        types: Sequence[str] | None = None,
    ) -> FeedPage:
        """One page of the pull feed after the cursor ``after`` (None: from the oldest kept). With
        ``wait_ms`` (up to 30000), an empty page waits that long for the next event. ``types``:
        only events of these types or groups (``["review:*", "agent:status"]``)."""
        return await self.run(calls.feed_page(channel, after, limit, wait_ms, types))

    async def iter_feed(
        self,
        channel: str | None = None,
        after: str | None = None,
        limit: int | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every event after ``after``, page by page, until a page comes back empty. Each event
        carries its ``cursor``: keep the last one handled and pass it back as ``after`` (events
        come at least once: drop repeats by ``id``). ``types`` as for :meth:`feed`."""
        cursor = after
        while True:
            page = await self.feed(channel, cursor, limit, types=types)
            if not page.data:
                return
            for event in page.data:
                yield event
            cursor = page.next_cursor

    # ── policies and the audit log ───────────────────────────────────────────────────────────

    async def get_policy(self, channel: str | None = None) -> Policy:
        """The channel's policy, or the account's (``channel`` None). Owners only."""
        return await self.run(calls.get_policy(channel))

    async def set_policy(self, rules: Sequence[Mapping[str, Any]], channel: str | None = None) -> Policy:
        """Replace the channel's (or the account's) rules as a whole: a new version."""
        return await self.run(calls.set_policy(channel, list(rules)))

    async def test_policy(self, channel: str, message: Mapping[str, Any]) -> PolicyTest:
        """Dry run: which rule ``message`` (as an agent would POST it: ``text``, ``review``,
        ``metadata``) would match in ``channel``, and what would happen. Nothing is stored."""
        return await self.run(calls.test_policy(channel, message))

    async def audit(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        channel: str | None = None,
        actor: str | None = None,
        decision: str | None = None,
        kind: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[AuditEntry]:
        """Every audit entry you may read that matches, newest first, fetched a page at a time.
        ``actor`` is a user, policy or API key id, or ``policy`` / ``system`` / ``agent``."""
        filters = calls.audit_filters(
            since=since, until=until, channel=channel, actor=actor, decision=decision, kind=kind
        )
        cursor: str | None = None
        while True:
            page = await self.run(calls.audit_page(filters, cursor, page_size))
            for entry in page.data:
                yield entry
            if page.next_cursor is None or not page.data:
                return
            cursor = page.next_cursor

    async def audit_export(
        self,
        format: Literal["jsonl", "csv"] = "jsonl",
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        channel: str | None = None,
        actor: str | None = None,
        decision: str | None = None,
        kind: str | None = None,
    ) -> AsyncIterator[bytes]:
        """Every matching audit entry as JSON Lines or CSV, streamed (see Client.audit_export)."""
        filters = calls.audit_filters(
            since=since, until=until, channel=channel, actor=actor, decision=decision, kind=kind
        )
        params = {**filters, "format": format}
        async with self._http.stream("GET", "/api/v1/audit/export", params=params) as resp:
            if not resp.is_success:
                await resp.aread()
                raise error_from_response(resp)
            async for chunk in resp.aiter_bytes():
                yield chunk
