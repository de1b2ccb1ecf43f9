"""The blocking client. :class:`sayso.AsyncClient` has the same methods, awaitable."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx
from pydantic.alias_generators import to_camel

from sayso import calls, config, files
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
from sayso.reviews import ReviewRequest
from sayso.streaming import Stream

T = TypeVar("T")

ReviewSpec = ReviewRequest | Mapping[str, Any]
Timeout = float | timedelta | None


def seconds(timeout: Timeout) -> float | None:
    return timeout.total_seconds() if isinstance(timeout, timedelta) else timeout


def camel(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {to_camel(k): v for k, v in fields.items()}


def next_poll_ms(deadline: float | None) -> int:
    """How long the next long-poll may hold (ms); 0 once the caller's deadline has passed."""
    if deadline is None:
        return calls.POLL_CAP_MS
    return max(0, min(calls.POLL_CAP_MS, int((deadline - time.monotonic()) * 1000)))


class Client:
    """Talks to Sayso's public HTTP API (or Placet's Agent API v1).

    ``url`` and ``api_key`` default to ``SAYSO_URL`` and ``SAYSO_API_KEY``. Use it as a
    context manager, or call :meth:`close`, to release its connections.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = config.DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, credential = config.resolve(url, api_key)
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=self.url,
            headers=config.base_headers(credential, headers),
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def run(self, call: calls.Call[T]) -> T:
        """Send one call, retrying per :attr:`retry`; the parsed answer or a typed error."""
        attempt = 0
        while True:
            outcome: httpx.Response | Exception
            try:
                outcome = self._http.send(self._request(call))
            except httpx.TransportError as exc:
                outcome = exc
            if isinstance(outcome, httpx.Response) and outcome.is_success:
                return call.parse(outcome)
            time.sleep(next_delay(self.retry, attempt, call.idempotent, outcome))
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

    def create_agent(self, name: str, **fields: Any) -> Agent:
        """Create an agent (a channel). Keyword fields are the API's, in snake_case
        (``description``, ``webhook_url``, ``webhook_events`` …). The answer carries
        ``webhook_secret`` (``whsec_…``) this once."""
        return self.run(calls.create_agent(name, camel(fields)))

    def list_agents(self) -> list[Agent]:
        return self.run(calls.list_agents())

    def get_agent(self, agent_id: str) -> Agent:
        return self.run(calls.get_agent(agent_id))

    def update_agent(self, agent_id: str, **fields: Any) -> Agent:
        return self.run(calls.update_agent(agent_id, camel(fields)))

    def delete_agent(self, agent_id: str) -> bool:
        return self.run(calls.delete_agent(agent_id))

    def ping(self, agent_id: str, status: AgentStatus, message: str | None = None) -> Agent:
        """Report the agent's state (``active``, ``busy``, ``error``, ``offline``)."""
        return self.run(calls.ping(agent_id, status, message))

    def create_ticket(self, channel_ids: list[str] | None = None) -> StreamTicket:
        """A single-use ticket for one event stream or socket (within 60 s), for your channels or
        some of them: what a browser page opens native ``EventSource`` with
        (``/api/v1/events?ticket=…``). Works with an API key, a session or a scoped token."""
        return self.run(calls.create_ticket(channel_ids))

    def create_token(
        self,
        channel_ids: list[str],
        expires_in_seconds: int,
        *,
        answer: bool = False,
        name: str | None = None,
    ) -> ScopedToken:
        """A scoped read-only token for embedding (needs a user session). ``token`` is set only
        in this answer."""
        return self.run(calls.create_token(channel_ids, expires_in_seconds, answer, name))

    def list_tokens(self) -> list[ScopedToken]:
        return self.run(calls.list_tokens())

    def revoke_token(self, token_id: str) -> bool:
        return self.run(calls.revoke_token(token_id))

    def list_plugins(self) -> list[dict[str, Any]]:
        return self.run(calls.list_plugins())

    # ── messages ─────────────────────────────────────────────────────────────────────────────

    def send_message(
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
        """Post a message. A ``client_id`` (a fresh UUID unless given) makes retries safe: the
        server answers a repeat with the message the first attempt created."""
        return self.run(
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

    def get_message(self, message_id: str, channel: str | None = None) -> Message:
        return self.run(calls.get_message(message_id, channel))

    def list_messages(
        self,
        channel: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        search: str | None = None,
        has_attachments: bool = False,
    ) -> MessagePage:
        """One page, newest first; pass ``page.next_cursor`` as ``cursor`` for the next."""
        return self.run(calls.list_messages(channel, limit, cursor, search, has_attachments))

    def delete_message(self, message_id: str, channel: str | None = None) -> bool:
        return self.run(calls.delete_message(message_id, channel))

    def expunge_message(self, message_id: str, channel: str | None = None) -> Message:
        """Remove the message's content, attachments included, keeping its record (marked
        ``expunged``) and its audit entries. Owners only; safe to repeat."""
        return self.run(calls.expunge_message(message_id, channel))

    def ack(self, message_id: str, channel: str | None = None) -> bool:
        """Confirm the agent received the answer (delivery status ``agent_received``)."""
        return self.run(calls.ack(message_id, channel))

    def iterations(self, message_id: str, channel: str | None = None) -> IterationChain:
        return self.run(calls.iterations(message_id, channel))

    def stream(
        self,
        channel: str,
        text: str = "",
        *,
        stream_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        min_interval: float = 0.2,
    ) -> Stream:
        """A streamed message, as a context manager (see :mod:`sayso.streaming`)."""
        return Stream(self, channel, text, stream_id=stream_id, metadata=metadata, min_interval=min_interval)

    # ── reviews ──────────────────────────────────────────────────────────────────────────────

    def request_review(
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
        """Ask a human: ``review`` is :class:`Approval`, :class:`Selection`, :class:`Form`,
        :class:`TextInput`, :class:`Freeform` (or Placet's ``{"type", "payload"}``). The
        deadline is ``expires_in`` (seconds or a timedelta) or ``expires_at``; the server's
        default is 24 h and its cap 36 h. Returns the message; :meth:`wait` for the answer."""
        return self.run(
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

    def get_review(self, message_id: str, channel: str | None = None) -> Message:
        return self.run(calls.get_review(message_id, channel))

    def respond(
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
        return self.run(calls.respond(message_id, response, feedback, remember))

    def list_remembered(self, channel: str) -> list[Remembered]:
        """The channel's remembered approvals still in force, newest first."""
        return self.run(calls.list_remembered(channel))

    def revoke_remembered(self, channel: str, remembered_id: str) -> Remembered:
        """Revoke a remembered approval at once (owner: any; a member: their own)."""
        return self.run(calls.revoke_remembered(channel, remembered_id))

    def pending_reviews(self, channel: str | None = None) -> list[Message]:
        """Pending reviews of ``channel`` (or of all the caller's channels), newest first."""
        return self.run(calls.pending_reviews(channel))

    def wait_once(self, message_id: str, channel: str, timeout_ms: int = calls.POLL_CAP_MS) -> WaitResult:
        """One long-poll (at most 30 s): check ``result.done``."""
        return self.run(calls.wait_once(message_id, channel, timeout_ms))

    def wait(self, message_id: str, channel: str, timeout: Timeout = None) -> Answer:
        """Wait for the answer, long-polling 30 s at a time. Raises :class:`Expired` if the review
        expires, :class:`WaitTimeout` if ``timeout`` (seconds or a timedelta) runs out first;
        without one it waits until the review ends."""
        limit = seconds(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            poll_ms = next_poll_ms(deadline)
            if poll_ms <= 0:
                raise WaitTimeout(message_id, limit or 0.0)
            result = self.wait_once(message_id, channel, poll_ms)
            if result.status == "completed" and result.message is not None:
                return Answer(message=result.message)
            if result.status == "expired" and result.message is not None:
                raise Expired(result.message)
            # "pending" with timedOut (Sayso) or "timeout" (Placet): the poll ran out; again.

    def ask(
        self,
        channel: str,
        review: ReviewSpec,
        text: str | None = None,
        *,
        timeout: Timeout = None,
        **options: Any,
    ) -> Answer:
        """:meth:`request_review` then :meth:`wait`."""
        message = self.request_review(channel, review, text, **options)
        return self.wait(message.id, channel, timeout)

    # ── live events ──────────────────────────────────────────────────────────────────────────

    def events(
        self, channel: str | None = None, *, last_event_id: str | None = None, reconnect: bool = True
    ) -> Generator[Event, None, None]:
        """Live events over SSE, forever. After a dropped connection it reconnects and resumes
        from the last event seen (``Last-Event-ID``): nothing is missed, and the repeats a resume
        sends (events stored just before that one) are dropped by event id."""
        parser = EventParser()
        parser.last_event_id = last_event_id
        params = {"channel": channel} if channel else {}
        while True:
            headers = {"Accept": "text/event-stream"}
            if parser.last_event_id:
                headers["Last-Event-ID"] = parser.last_event_id
            try:
                with self._http.stream(
                    "GET", "/api/v1/events", params=params, headers=headers, timeout=config.read_timeout(60.0)
                ) as resp:
                    if not resp.is_success:
                        resp.read()
                        raise error_from_response(resp)
                    for line in resp.iter_lines():
                        event = parser.feed(line)
                        if event is not None:
                            yield event
            except httpx.TransportError:
                if not reconnect:
                    raise
            if not reconnect:
                return
            time.sleep(parser.retry_ms / 1000)

    # ── files ────────────────────────────────────────────────────────────────────────────────

    def upload_file(
        self,
        file: FileInput,
        channel: str | None = None,
        *,
        filename: str | None = None,
        mime_type: str | None = None,
    ) -> FileInfo:
        """Upload a file (a path, bytes or an open binary file); attach it to a message with
        ``attachment_ids=[info.id]``. Without ``channel`` it joins the channel of the first
        message it is attached to."""
        content, name, kind = files.read(file, filename, mime_type)
        ticket = self.run(files.ticket_call(channel, name, kind))
        return self.run(files.put_call(ticket, content, kind))

    def store_text(
        self, channel: str, content: str, *, filename: str = "content.md", mime_type: str = "text/markdown"
    ) -> FileInfo:
        """Store text (at most 64 KB) as a file to attach later."""
        return self.run(files.store_text_call(channel, content, filename, mime_type))

    def get_file(self, file_id: str) -> FileInfo:
        return self.run(files.get_call(file_id))

    def list_files(self, channel: str, *, limit: int | None = None) -> list[FileInfo]:
        """The channel's files, newest first."""
        return self.run(files.list_call(channel, limit))

    def download_file(self, file_id: str) -> bytes:
        """The file's bytes."""
        return self.run(files.download_call(file_id))

    def download_link(self, file_id: str) -> files.DownloadLink:
        """A short-lived URL that downloads the file without credentials."""
        return self.run(files.link_call(file_id))

    # ── webhook endpoints and the pull feed ─────────────────────────────────────────────────

    def create_endpoint(self, url: str | None = None, channel: str | None = None, **fields: Any) -> Endpoint:
        """Add a webhook endpoint to ``channel`` (None: every channel of the account): ``url``
        (HTTP), or ``destination=kafka_destination(…)`` for a Kafka topic instead. Fields:
        description, event_types, filter, format, headers, auth, rate_limit, disabled. The answer
        carries its signing secret (``secret``) this once."""
        body = camel(fields) if url is None else {"url": url, **camel(fields)}
        return self.run(calls.create_endpoint(channel, body))

    def list_endpoints(self, channel: str | None = None) -> list[Endpoint]:
        return self.run(calls.list_endpoints(channel))

    def get_endpoint(self, endpoint_id: str, channel: str | None = None) -> Endpoint:
        return self.run(calls.get_endpoint(channel, endpoint_id))

    def update_endpoint(self, endpoint_id: str, channel: str | None = None, **fields: Any) -> Endpoint:
        """Change the given fields (None clears description, filter, headers, auth, rate_limit)."""
        return self.run(calls.update_endpoint(channel, endpoint_id, camel(fields)))

    def delete_endpoint(self, endpoint_id: str, channel: str | None = None) -> bool:
        return self.run(calls.delete_endpoint(channel, endpoint_id))

    def rotate_endpoint_secret(self, endpoint_id: str, channel: str | None = None) -> EndpointSecret:
        """A new signing secret (shown once); the old one keeps signing for the grace period."""
        return self.run(calls.rotate_endpoint_secret(channel, endpoint_id))

    def recover_endpoint(
        self, endpoint_id: str, channel: str | None = None, since: datetime | None = None
    ) -> EndpointRecovered:
        """Re-send the endpoint's deliveries that failed since ``since`` (default 24 h ago), each
        with its own webhook-id; while ``more``, call again."""
        return self.run(calls.recover_endpoint(channel, endpoint_id, since))

    def replay_endpoint(
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
            page = self.run(calls.replay_endpoint(channel, endpoint_id, start, end, after))
            total = calls.add_replayed(total, page)
            if progress is not None:
                progress(total)
            if not page.more:
                return total
            after = page.next_cursor

    def feed(
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
        return self.run(calls.feed_page(channel, after, limit, wait_ms, types))

    def iter_feed(
        self,
        channel: str | None = None,
        after: str | None = None,
        limit: int | None = None,
        types: Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every event after ``after``, page by page, until a page comes back empty. Each event
        carries its ``cursor``: keep the last one handled and pass it back as ``after`` (events
        come at least once: drop repeats by ``id``). ``types`` as for :meth:`feed`."""
        cursor = after
        while True:
            page = self.feed(channel, cursor, limit, types=types)
            if not page.data:
                return
            yield from page.data
            cursor = page.next_cursor

    # ── policies and the audit log ───────────────────────────────────────────────────────────

    def get_policy(self, channel: str | None = None) -> Policy:
        """The channel's policy, or the account's (``channel`` None). Owners only."""
        return self.run(calls.get_policy(channel))

    def set_policy(self, rules: Sequence[Mapping[str, Any]], channel: str | None = None) -> Policy:
        """Replace the channel's (or the account's) rules as a whole: a new version."""
        return self.run(calls.set_policy(channel, list(rules)))

    def test_policy(self, channel: str, message: Mapping[str, Any]) -> PolicyTest:
        """Dry run: which rule ``message`` (as an agent would POST it: ``text``, ``review``,
        ``metadata``) would match in ``channel``, and what would happen. Nothing is stored."""
        return self.run(calls.test_policy(channel, message))

    def audit(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        channel: str | None = None,
        actor: str | None = None,
        decision: str | None = None,
        kind: str | None = None,
        page_size: int = 100,
    ) -> Iterator[AuditEntry]:
        """Every audit entry you may read that matches, newest first, fetched a page at a time.
        ``actor`` is a user, policy or API key id, or ``policy`` / ``system`` / ``agent``."""
        filters = calls.audit_filters(
            since=since, until=until, channel=channel, actor=actor, decision=decision, kind=kind
        )
        cursor: str | None = None
        while True:
            page = self.run(calls.audit_page(filters, cursor, page_size))
            yield from page.data
            if page.next_cursor is None or not page.data:
                return
            cursor = page.next_cursor

    def audit_export(
        self,
        format: Literal["jsonl", "csv"] = "jsonl",
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        channel: str | None = None,
        actor: str | None = None,
        decision: str | None = None,
        kind: str | None = None,
    ) -> Iterator[bytes]:
        """Every matching audit entry as JSON Lines or CSV (a header row first), streamed: the
        bytes as they arrive, newest entry first."""
        filters = calls.audit_filters(
            since=since, until=until, channel=channel, actor=actor, decision=decision, kind=kind
        )
        params = {**filters, "format": format}
        with self._http.stream("GET", "/api/v1/audit/export", params=params) as resp:
            if not resp.is_success:
                resp.read()
                raise error_from_response(resp)
            yield from resp.iter_bytes()
