"""Server-sent events (``GET /api/v1/events``), read line by line.

The parser follows the SSE rules the server relies on: ``id:`` sets the id to resume from,
``event:`` names the event, ``data:`` lines are joined, ``:`` starts a comment (the heartbeat),
and a blank line ends an event. ``retry:`` says how long to wait before reconnecting.

A resume also sends again the events stored just before the id it resumes from (of two events
published together the server can hand on either first, so it cannot know which one a dropped
connection saw): the parser drops an event whose id it has already passed on.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from sayso.errors import Unauthorized
from sayso.models import Event
from sayso.numerals import parse_uint

DEFAULT_RETRY_MS = 2000
RETRY_DIGITS = 9  # a reconnection delay of more than eleven days is no delay the server meant
# Event ids remembered to drop repeats; a resume repeats at most the events of a few seconds.
SEEN_IDS = 10_000


class EventParser:
    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self.retry_ms = DEFAULT_RETRY_MS
        self._id: str | None = None
        self._type = ""
        self._data: list[str] = []
        self._seen: OrderedDict[str, None] = OrderedDict()

    def feed(self, line: str) -> Event | None:
        """One line (without its newline); the finished event when ``line`` is blank."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id" and "\x00" not in value:
            self._id = value
        elif name == "retry" and (retry_ms := parse_uint(value, RETRY_DIGITS)) is not None:
            self.retry_ms = retry_ms
        return None

    def _dispatch(self) -> Event | None:
        event_id, event_type, data = self._id, self._type or "message", self._data
        self._id, self._type, self._data = None, "", []
        if not data:
            return None
        if event_id is not None:
            if event_id in self._seen:
                return None  # a resume's repeat; the resume point stays where it was
            self._seen[event_id] = None
            if len(self._seen) > SEEN_IDS:
                self._seen.popitem(last=False)
            self.last_event_id = event_id
        text = "\n".join(data)
        payload: Any
        try:
            payload = json.loads(text)
        except json.JSONDecodeError:
            payload = text
        if (
            event_type == "error"
            and isinstance(payload, dict)
            and payload.get("code") == "credentials_revoked"
        ):
            # The server's last frame before it ends a stream whose credential stopped holding.
            raise Unauthorized(401, payload["code"], str(payload.get("message", "credentials revoked")))
        return Event(id=event_id, type=event_type, data=payload)
