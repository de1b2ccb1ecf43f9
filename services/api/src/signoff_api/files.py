"""Files: uploads stored in MongoDB GridFS, linked to messages as attachments.

INTERFACE STUB written by the lead; the files helper implements it. Messages call these three
functions; every returned attachment is a plain dict in the stored (snake_case) form that
``signoff_common.views.AttachmentView`` reads: ``id, channel_id, message_id, filename,
mime_type, size, plugin_type, text_content?, created_at``.
"""

from __future__ import annotations

from collections.abc import Sequence

from signoff_api.schemas import TextAttachmentIn
from signoff_api.settings import ApiSettings
from signoff_common.mongo import Database, Doc


async def resolve_attachments(
    db: Database, owner_id: str, channel_id: str, attachment_ids: Sequence[str]
) -> list[Doc]:
    """The attachment documents for uploaded files ``attachment_ids`` (in that order). Raises
    ApiError 422 naming ``attachmentIds[i]`` for an id that is unknown, not the owner's, of another
    channel, not yet uploaded, or already attached to another message."""
    raise NotImplementedError


async def store_text_attachments(
    db: Database, settings: ApiSettings, owner_id: str, channel_id: str, items: Sequence[TextAttachmentIn]
) -> list[Doc]:
    """Store each inline text as a file and return its attachment document, with ``text_content``
    (at most 64 KB; larger content answers 413 naming ``textAttachments[i].content``)."""
    raise NotImplementedError


async def link(db: Database, message_id: str, attachments: Sequence[Doc]) -> None:
    """Mark the files as attached to ``message_id`` (after the message is inserted)."""
    raise NotImplementedError
