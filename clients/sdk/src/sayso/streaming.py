"""Streamed messages: a draft whose text grows in the inbox while the agent writes it.

>>> with client.stream(channel, "Thinking…") as s:      # POST with a streamId
...     s.status("searching the docs")                     # a progress step
...     for token in tokens:
...         s.write(token)                                 # PATCH with the whole text so far
...                                                        # complete: true on exit;
...                                                        # streamState "aborted" on an exception

Writes are coalesced: at most one PATCH per ``min_interval`` seconds (the rest are sent by the
next write after it, by :meth:`flush`, or at exit), so a token-by-token writer does not send a
request per token.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sayso import calls
from sayso.errors import SaysoError
from sayso.models import Message, StatusEvent

if TYPE_CHECKING:
    from sayso.aio import AsyncClient
    from sayso.client import Client


class _Draft:
    def __init__(self, channel: str, text: str, stream_id: str | None, min_interval: float) -> None:
        self.channel = channel
        self.stream_id = stream_id or f"stream-{uuid.uuid4().hex}"
        self.min_interval = min_interval
        self._text = text
        self._sent_text = text
        self._last_sent = 0.0
        self.message: Message | None = None

    @property
    def text(self) -> str:
        """The whole text so far (what the next PATCH sends)."""
        return self._text

    def _append(self, chunk: str) -> None:
        self._text += chunk

    def _replace(self, text: str) -> None:
        self._text = text

    def _due(self) -> bool:
        return self._text != self._sent_text and time.monotonic() - self._last_sent >= self.min_interval

    def _sent(self, text: str, message: Message) -> None:
        self._sent_text = text
        self._last_sent = time.monotonic()
        self.message = message

    def _open(self, metadata: Mapping[str, Any] | None) -> calls.Call[Message]:
        return calls.send_message(
            self.channel,
            self._text or None,
            metadata=metadata,
            stream_id=self.stream_id,
            stream_state="streaming",
        )


class Stream(_Draft):
    """A streamed message (blocking). Get one from :meth:`sayso.Client.stream`."""

    def __init__(
        self,
        client: Client,
        channel: str,
        text: str = "",
        *,
        stream_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        min_interval: float = 0.2,
    ) -> None:
        super().__init__(channel, text, stream_id, min_interval)
        self._client = client
        self._metadata = metadata

    def __enter__(self) -> Stream:
        self.message = self._client.run(self._open(self._metadata))
        self._last_sent = time.monotonic()
        return self

    def write(self, chunk: str) -> None:
        """Append ``chunk``; sends the whole text if ``min_interval`` has passed since the last send."""
        self._append(chunk)
        if self._due():
            self.flush()

    def set_text(self, text: str) -> None:
        """Replace the whole text."""
        self._replace(text)
        if self._due():
            self.flush()

    def flush(self) -> None:
        """Send the text now if it changed since the last send."""
        if self._text != self._sent_text:
            text = self._text
            self._sent(text, self._client.run(calls.patch_stream(self.stream_id, self.channel, text)))

    def status(self, text: str, *, tool_hint: bool = False) -> StatusEvent:
        """Add a progress step (``POST …/streams/{streamId}/status``)."""
        return self._client.run(calls.stream_status(self.stream_id, self.channel, text, tool_hint))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        text = self._text
        if exc_type is None:
            self._sent(
                text, self._client.run(calls.patch_stream(self.stream_id, self.channel, text, complete=True))
            )
            return
        # The original exception is what the caller needs to see; a failed abort must not hide it.
        with contextlib.suppress(SaysoError):
            self._sent(
                text, self._client.run(calls.patch_stream(self.stream_id, self.channel, text, aborted=True))
            )


class AsyncStream(_Draft):
    """A streamed message (asyncio). Get one from :meth:`sayso.AsyncClient.stream`."""

    def __init__(
        self,
        client: AsyncClient,
        channel: str,
        text: str = "",
        *,
        stream_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        min_interval: float = 0.2,
    ) -> None:
        super().__init__(channel, text, stream_id, min_interval)
        self._client = client
        self._metadata = metadata

    async def __aenter__(self) -> AsyncStream:
        self.message = await self._client.run(self._open(self._metadata))
        self._last_sent = time.monotonic()
        return self

    async def write(self, chunk: str) -> None:
        self._append(chunk)
        if self._due():
            await self.flush()

    async def set_text(self, text: str) -> None:
        self._replace(text)
        if self._due():
            await self.flush()

    async def flush(self) -> None:
        if self._text != self._sent_text:
            text = self._text
            self._sent(text, await self._client.run(calls.patch_stream(self.stream_id, self.channel, text)))

    async def status(self, text: str, *, tool_hint: bool = False) -> StatusEvent:
        return await self._client.run(calls.stream_status(self.stream_id, self.channel, text, tool_hint))

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        text = self._text
        if exc_type is None:
            closed = await self._client.run(
                calls.patch_stream(self.stream_id, self.channel, text, complete=True)
            )
            self._sent(text, closed)
            return
        with contextlib.suppress(SaysoError):
            aborted = await self._client.run(
                calls.patch_stream(self.stream_id, self.channel, text, aborted=True)
            )
            self._sent(text, aborted)
