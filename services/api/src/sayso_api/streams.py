"""Streamed messages: a draft created with ``streamId`` whose text grows until it is complete.

Every change is one conditional write on the draft (still ``streaming``) that also queues a
``message.updated`` event, which realtime pushes over Socket.IO and SSE.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from pymongo import ReturnDocument

from sayso_api.schemas import StatusEventIn, StreamPatchIn
from sayso_api.settings import ApiSettings
from sayso_common.clock import utcnow
from sayso_common.documents import MessageDoc
from sayso_common.errors import ConflictError, ErrorCode, NotFoundError, TooLargeError
from sayso_common.events import MessageData, MessageUpdated, outbox_entry
from sayso_common.ids import new_id
from sayso_common.mongo import MESSAGES, Database, Doc, collection
from sayso_common.views import MESSAGE_PROJECTION, MessageView, StatusEventView, message_view

MAX_STATUS_EVENTS = 500
# All of a stream's status steps together, as UTF-8: every message.updated event carries them all
# (the inbox redraws the card from it), so 500 steps of 1,000 four-byte characters made events of
# 2 MB, more than the broker takes, each kept 24 h for resume.
MAX_STATUS_BYTES = 32 * 1024


# Given the draft and the time, the fields to $set on it.
Build = Callable[[MessageDoc, datetime], Doc]


async def _change(db: Database, owner_id: str, channel_id: str, stream_id: str, build: Build) -> MessageView:
    """Apply ``build(draft) -> $set fields`` to the streaming draft, with its event, atomically."""
    messages = collection(db, MESSAGES)
    key = {"owner_id": owner_id, "channel_id": channel_id, "stream_id": stream_id}
    for _ in range(5):
        draft = await messages.find_one(key, MESSAGE_PROJECTION)
        if draft is None:
            raise NotFoundError("stream")
        if draft.get("stream_state") != "streaming":
            raise ConflictError(
                ErrorCode.STREAM_CLOSED, f"this stream is {draft.get('stream_state')}; it cannot change"
            )
        now = utcnow()
        changes: Doc = {**build(draft, now), "updated_at": now}
        view = message_view(cast(MessageDoc, {**draft, **changes}))
        event = MessageUpdated(
            channel_id=channel_id, owner_id=owner_id, occurred_at=now, data=MessageData(message=view)
        )
        # Conditional on the version read, so concurrent patches never lose a status step.
        done = await messages.find_one_and_update(
            {**key, "stream_state": "streaming", "updated_at": draft["updated_at"]},
            {"$set": changes, "$push": {"outbox": outbox_entry(event)}},
            projection={"_id": 1},
            return_document=ReturnDocument.AFTER,
        )
        if done is not None:
            return view
    raise ConflictError(ErrorCode.STREAM_BUSY, "the stream changed concurrently; retry")


async def patch_stream(
    db: Database, settings: ApiSettings, owner_id: str, stream_id: str, body: StreamPatchIn
) -> MessageView:
    if len(body.text) > settings.max_text_chars:
        raise TooLargeError(
            ErrorCode.TEXT_TOO_LARGE,
            f"text is limited to {settings.max_text_chars} characters (SAYSO_MAX_TEXT_CHARS)",
            "text",
        )

    def build(draft: MessageDoc, _: datetime) -> Doc:
        if "review" in draft and body.text != (draft.get("text") or ""):
            # The review is on screen from the moment the message exists; an answer must stay
            # an answer to what the human read (a later "approved" must not cover new text).
            raise ConflictError(
                ErrorCode.REVIEW_TEXT_FIXED,
                "this message asks for a review, so its text cannot change; send the same text to "
                "complete or abort the stream, or post a new message",
                "text",
            )
        state = body.stream_state or ("complete" if body.complete else "streaming")
        return {"text": body.text, "stream_state": state}

    return await _change(db, owner_id, body.channel_id, stream_id, build)


async def append_status(db: Database, owner_id: str, stream_id: str, body: StatusEventIn) -> StatusEventView:
    created: dict[str, Any] = {}

    def build(draft: MessageDoc, now: datetime) -> Doc:
        events = list(draft.get("status_events") or [])
        if len(events) >= MAX_STATUS_EVENTS:
            raise TooLargeError(
                ErrorCode.TOO_MANY_STATUS_EVENTS, f"at most {MAX_STATUS_EVENTS} status steps", "text"
            )
        used = sum(len(e.get("text", "").encode()) for e in events)
        if used + len(body.text.encode()) > MAX_STATUS_BYTES:
            raise TooLargeError(
                ErrorCode.STATUS_EVENTS_TOO_LARGE,
                f"a stream's status steps may hold {MAX_STATUS_BYTES} bytes of text in all "
                f"({used} used); finish this stream and start another",
                "text",
            )
        created.update(
            id=new_id("sev"),
            channel_id=body.channel_id,
            stream_id=stream_id,
            index=len(events),
            text=body.text,
            tool_hint=body.tool_hint,
            created_at=now,
        )
        return {"status_events": [*events, dict(created)]}

    await _change(db, owner_id, body.channel_id, stream_id, build)
    return StatusEventView.model_validate(created)
