"""Files: uploads stored in MongoDB GridFS, linked to messages as attachments.

A file has a record in ``files`` (owner, channel, message, state, name, type, size) and its bytes
in the GridFS bucket ``blobs`` under the same id. Uploads go through a short-lived signed URL the
API serves itself (Placet's presigned-upload flow, without an object store): the body is streamed
into GridFS chunk by chunk and refused with 413 past ``max_upload_bytes``, leaving nothing behind.

Messages call :func:`resolve_attachments`, :func:`store_text_attachments` and :func:`link`; every
returned attachment is a plain dict in the stored (snake_case) form that
``signoff_common.views.AttachmentView`` reads: ``id, channel_id, message_id, filename, mime_type,
size, plugin_type, text_content?, created_at``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Final, Literal

from bson import Int64
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo import ReturnDocument

from signoff_api.schemas import TextAttachmentIn
from signoff_api.settings import ApiSettings
from signoff_common.clock import utcnow
from signoff_common.documents import AttachmentDoc, FileDoc, FileState
from signoff_common.http_errors import ApiError, not_found
from signoff_common.ids import new_id
from signoff_common.membership import Reach
from signoff_common.mongo import FILE_BUCKET, FILES, Database, Doc, collection, untyped

# Placet inlines the content of small text files into message answers (``textContent``).
TEXT_CONTENT_MAX_BYTES: Final = 64 * 1024
TEXT_MIME_TYPES: Final = frozenset({"text/markdown", "text/plain", "text/html", "text/csv"})
# GridFS's default chunk size; chunks are written a few at a time, so an upload holds about
# CHUNK_SIZE * CHUNKS_PER_WRITE bytes in memory whatever its size.
CHUNK_SIZE: Final = 255 * 1024
CHUNKS_PER_WRITE: Final = 4
# Records of presigned uploads whose bytes never came are removed by a TTL index this long after
# their URL expired; an upload claimed longer ago than this is taken to have died with its process.
UNCLAIMED_GRACE: Final = timedelta(hours=1)

_MIME_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MIME = re.compile(
    rf"{_MIME_NAME}/{_MIME_NAME}"
    rf'(?:[ \t]*;[ \t]*[A-Za-z0-9!#$&^_.+-]+=(?:[A-Za-z0-9!#$&^_.+-]+|"[^"\\\x00-\x1f\x7f]*"))*'
)

Purpose = Literal["upload", "download"]


# --- validation ------------------------------------------------------------------------------


def check_filename(value: str, field: str) -> str:
    if not 1 <= len(value) <= 255:
        raise ApiError(422, "validation_error", f"{field}: must be 1 to 255 characters", field)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ApiError(422, "validation_error", f"{field}: must not contain control characters", field)
    return value


def check_mime_type(value: str, field: str) -> str:
    """A media type (``type/subtype``, optional parameters): it is sent back as Content-Type."""
    if len(value) > 255 or not _MIME.fullmatch(value):
        raise ApiError(
            422, "validation_error", f"{field}: must be a media type such as text/plain or image/png", field
        )
    kind, _, params = value.partition(";")
    return kind.strip().lower() + (f";{params}" if params else "")


def base_type(mime_type: str) -> str:
    return mime_type.partition(";")[0].strip().lower()


def plugin_type(mime_type: str) -> str:
    # Placet's attachment renderers: images are shown inline, anything else as a file card.
    return "@uax/image" if base_type(mime_type).startswith("image/") else "@uax/file"


# --- signed URLs -----------------------------------------------------------------------------


def url_signing_key(settings: ApiSettings) -> bytes:
    """A key of its own for file URLs, derived from the secret key with a distinct context, so a
    signature made here can never stand for a JWT or anything else signed with the secret."""
    return hmac.new(
        settings.secret_key.get_secret_value().encode(), b"signoff/files/signed-url/v1", hashlib.sha256
    ).digest()


def _mac(key: bytes, purpose: Purpose, file_id: str, expires: int) -> str:
    digest = hmac.new(key, f"{purpose}\n{file_id}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_token(key: bytes, purpose: Purpose, file_id: str, expires_at: datetime) -> str:
    """``<file id>.<expiry, unix seconds>.<HMAC-SHA256>``: what a signed URL ends with."""
    expires = int(expires_at.timestamp())
    return f"{file_id}.{expires}.{_mac(key, purpose, file_id, expires)}"


def verify_token(key: bytes, purpose: Purpose, token: str, now: datetime) -> str:
    """The file id a valid, unexpired ``purpose`` token names; 403 otherwise."""
    file_id, _, rest = token.partition(".")
    expires_text, _, mac = rest.partition(".")
    if not (file_id and expires_text.isdigit() and mac and len(expires_text) <= 12):
        raise ApiError(403, "invalid_link", "this link is malformed")
    expires = int(expires_text)
    if not hmac.compare_digest(mac, _mac(key, purpose, file_id, expires)):
        raise ApiError(403, "invalid_link", "this link's signature does not match")
    if expires <= now.timestamp():
        raise ApiError(403, "link_expired", "this link has expired; ask for a new one")
    return file_id


# --- records ---------------------------------------------------------------------------------


def attachment_doc(record: FileDoc, text_content: str | None = None) -> AttachmentDoc:
    """The stored attachment form of a file record (what messages embed)."""
    doc: AttachmentDoc = {
        "id": record["_id"],
        "channel_id": record.get("channel_id"),
        "message_id": record.get("message_id"),
        "filename": record["filename"],
        "mime_type": record["mime_type"],
        "size": record.get("size") or 0,
        "plugin_type": record["plugin_type"],
        "created_at": record["created_at"],
    }
    if text_content is not None:
        doc["text_content"] = text_content
    return doc


def _new_record(
    owner_id: str, channel_id: str | None, filename: str, mime_type: str, now: datetime, state: FileState
) -> FileDoc:
    return {
        "_id": new_id("file"),
        "owner_id": owner_id,
        "channel_id": channel_id,
        "message_id": None,
        "filename": filename,
        "mime_type": mime_type,
        "size": None,
        "plugin_type": plugin_type(mime_type),
        "state": state,
        "created_at": now,
    }


async def create_upload(
    db: Database,
    settings: ApiSettings,
    owner_id: str,
    channel_id: str | None,
    filename: str,
    mime_type: str,
) -> tuple[FileDoc, str, datetime]:
    """Register a file to be uploaded: (record, upload token, token expiry)."""
    now = utcnow()
    record = _new_record(
        owner_id,
        channel_id,
        check_filename(filename, "filename"),
        check_mime_type(mime_type, "mimeType"),
        now,
        "pending",
    )
    expires_at = now + timedelta(seconds=settings.file_upload_url_ttl_seconds)
    record["expire_at"] = expires_at + UNCLAIMED_GRACE
    await collection(db, FILES).insert_one(record)
    return record, sign_token(url_signing_key(settings), "upload", record["_id"], expires_at), expires_at


def too_large(settings: ApiSettings) -> ApiError:
    return ApiError(
        413, "payload_too_large", f"files are limited to {settings.max_upload_bytes} bytes", "file"
    )


class _BlobWriter:
    """Writes one GridFS file (the spec's layout: ``<bucket>.chunks`` then ``<bucket>.files``) a
    few chunks at a time. pymongo's ``AsyncGridIn`` keeps every chunk of a file in memory until
    48 MB have accumulated (its insert batch size), i.e. whole uploads of the sizes allowed here;
    reading and deleting still go through ``AsyncGridFSBucket``."""

    def __init__(self, db: Database, file_id: str, limit: int) -> None:
        self._chunks = untyped(db, f"{FILE_BUCKET}.chunks")
        self._files = untyped(db, f"{FILE_BUCKET}.files")
        self._id = file_id
        self._limit = limit
        self._buffer = bytearray()
        self._pending: list[Doc] = []
        self._n = 0
        self.length = 0

    async def write(self, data: bytes) -> None:
        if self.length + len(data) > self._limit:
            raise _TooLargeError
        self.length += len(data)
        self._buffer += data
        while len(self._buffer) >= CHUNK_SIZE:
            self._take(CHUNK_SIZE)
            if len(self._pending) >= CHUNKS_PER_WRITE:
                await self._flush()

    def _take(self, size: int) -> None:
        self._pending.append({"files_id": self._id, "n": self._n, "data": bytes(self._buffer[:size])})
        del self._buffer[:size]
        self._n += 1

    async def _flush(self) -> None:
        if self._pending:
            await self._chunks.insert_many(self._pending, ordered=True)
            self._pending = []

    async def close(self, filename: str, mime_type: str) -> None:
        if self._buffer:
            self._take(len(self._buffer))
        await self._flush()
        await self._files.insert_one(
            {
                "_id": self._id,
                "length": Int64(self.length),
                "chunkSize": CHUNK_SIZE,
                "uploadDate": utcnow(),
                "filename": filename,
                "metadata": {"contentType": mime_type},
            }
        )

    async def discard(self) -> None:
        self._pending = []
        self._buffer.clear()
        await discard_blob(self._chunks.database, self._id)


class _TooLargeError(Exception):
    pass


async def discard_blob(db: Database, file_id: str) -> None:
    """Remove a file's bytes, complete or partial (a partial one has chunks and no file document)."""
    await untyped(db, f"{FILE_BUCKET}.chunks").delete_many({"files_id": file_id})
    await untyped(db, f"{FILE_BUCKET}.files").delete_one({"_id": file_id})


async def _write_blob(db: Database, record: FileDoc, chunks: AsyncIterator[bytes], limit: int) -> int:
    """Stream ``chunks`` into GridFS as the bytes of ``record``; its size. On any failure (too
    large, client gone, database error) whatever was written is deleted before re-raising."""
    writer = _BlobWriter(db, record["_id"], limit)
    try:
        async for piece in chunks:
            if piece:
                await writer.write(piece)
        await writer.close(record["filename"], record["mime_type"])
    except BaseException:
        # Shielded: a cancelled request (client gone) must still not leave chunks behind.
        await asyncio.shield(writer.discard())
        raise
    return writer.length


async def receive_upload(
    db: Database,
    settings: ApiSettings,
    token: str,
    content_length: int | None,
    chunks: AsyncIterator[bytes],
) -> FileDoc:
    """The body of a signed upload URL: stream it into GridFS and mark the file ready."""
    now = utcnow()
    file_id = verify_token(url_signing_key(settings), "upload", token, now)
    if content_length is not None and content_length > settings.max_upload_bytes:
        raise too_large(settings)
    files = collection(db, FILES)
    claim = secrets.token_hex(8)
    record = await files.find_one_and_update(
        {
            "_id": file_id,
            "$or": [
                {"state": "pending"},
                {"state": "uploading", "upload_started_at": {"$lt": now - UNCLAIMED_GRACE}},
            ],
        },
        {"$set": {"state": "uploading", "upload_started_at": now, "upload_claim": claim}},
        return_document=ReturnDocument.AFTER,
    )
    if record is None:
        existing = await files.find_one({"_id": file_id}, {"state": 1})
        if existing is None:
            raise not_found("file")
        if existing["state"] == "ready":
            raise ApiError(
                409, "already_uploaded", "this file was already uploaded; ask for a new upload URL"
            )
        raise ApiError(409, "upload_in_progress", "an upload to this URL is in progress")
    # Left over by an upload whose process died: start from nothing.
    await discard_blob(db, file_id)
    try:
        size = await _write_blob(db, record, chunks, settings.max_upload_bytes)
    except BaseException as exc:
        # The URL stays usable until it expires (e.g. to retry with a smaller file).
        await asyncio.shield(
            files.update_one(
                {"_id": file_id, "upload_claim": claim},
                {"$set": {"state": "pending"}, "$unset": {"upload_claim": "", "upload_started_at": ""}},
            )
        )
        if isinstance(exc, _TooLargeError):
            raise too_large(settings) from None
        raise
    done = await files.find_one_and_update(
        {"_id": file_id, "upload_claim": claim},
        {
            "$set": {"state": "ready", "size": size, "uploaded_at": utcnow()},
            "$unset": {"upload_claim": "", "upload_started_at": "", "expire_at": ""},
        },
        return_document=ReturnDocument.AFTER,
    )
    if done is None:  # the record was removed while the bytes streamed in
        await discard_blob(db, file_id)
        raise not_found("file")
    return done


# --- reading ---------------------------------------------------------------------------------


async def get_file(db: Database, reach: Reach, file_id: str) -> FileDoc:
    """The file record, if it is the caller's or in a channel shared with them; 404 for a missing
    one and for anyone else's."""
    record = await collection(db, FILES).find_one({"_id": file_id, **reach.scope()})
    if record is None:
        raise not_found("file")
    return record


def require_uploaded(record: FileDoc) -> None:
    if record.get("state") != "ready":
        raise ApiError(409, "not_uploaded", "this file's bytes have not been uploaded yet")


async def list_files(db: Database, owner_id: str, channel_id: str, limit: int) -> list[FileDoc]:
    """Uploaded files of a channel, newest first."""
    cursor = (
        collection(db, FILES)
        .find({"channel_id": channel_id, "owner_id": owner_id, "state": "ready"})
        .sort([("created_at", -1), ("_id", -1)])
        .limit(limit)
    )
    return await cursor.to_list()


async def open_blob(db: Database, record: FileDoc) -> AsyncIterator[bytes]:
    """The file's bytes, one GridFS chunk at a time. Opened before it is returned, so a missing
    blob is a 404 rather than a response that breaks off."""
    require_uploaded(record)
    bucket = AsyncGridFSBucket(db, bucket_name=FILE_BUCKET)
    try:
        grid_out = await bucket.open_download_stream(record["_id"])
    except NoFile:
        raise not_found("file") from None

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await grid_out.readchunk():
                yield chunk
        finally:
            await grid_out.close()

    return chunks()


async def read_text(db: Database, record: FileDoc) -> str | None:
    """A small text file's content (Placet's ``textContent``), or None for other files."""
    if (
        base_type(record["mime_type"]) not in TEXT_MIME_TYPES
        or (record.get("size") or 0) > TEXT_CONTENT_MAX_BYTES
    ):
        return None
    data = bytearray()
    async for chunk in await open_blob(db, record):
        data += chunk
    return data.decode("utf-8", errors="replace")


def download_url(settings: ApiSettings, file_id: str) -> tuple[str, datetime]:
    expires_at = utcnow() + timedelta(seconds=settings.file_download_url_ttl_seconds)
    token = sign_token(url_signing_key(settings), "download", file_id, expires_at)
    return f"{settings.public_url.rstrip('/')}/api/v1/files/signed/{token}", expires_at


async def record_for_link(db: Database, settings: ApiSettings, token: str) -> FileDoc:
    file_id = verify_token(url_signing_key(settings), "download", token, utcnow())
    record = await collection(db, FILES).find_one({"_id": file_id})
    if record is None:
        raise not_found("file")
    return record


# --- attachments -----------------------------------------------------------------------------


def text_too_large(field: str) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"{field}: text attachments are limited to {TEXT_CONTENT_MAX_BYTES} bytes",
        field,
    )


async def store_text(
    db: Database,
    owner_id: str,
    channel_id: str,
    content: str,
    filename: str,
    mime_type: str,
    prefix: str = "",
) -> FileDoc:
    """Store ``content`` as a ready file (unattached); returns its record. ``prefix`` goes before
    the field names in errors (``textAttachments[0].`` for a message's text attachments)."""
    data = content.encode("utf-8")
    if len(data) > TEXT_CONTENT_MAX_BYTES:
        raise text_too_large(f"{prefix}content")
    record = _new_record(
        owner_id,
        channel_id,
        check_filename(filename, f"{prefix}filename"),
        check_mime_type(mime_type, f"{prefix}mimeType"),
        utcnow(),
        "ready",
    )
    record["size"] = len(data)
    record["uploaded_at"] = record["created_at"]

    async def body() -> AsyncIterator[bytes]:
        yield data

    await _write_blob(db, record, body(), TEXT_CONTENT_MAX_BYTES)
    try:
        await collection(db, FILES).insert_one(record)
    except BaseException:
        await asyncio.shield(discard_blob(db, record["_id"]))
        raise
    return record


async def resolve_attachments(
    db: Database, owner_id: str, channel_id: str, attachment_ids: Sequence[str]
) -> list[AttachmentDoc]:
    """The attachment documents for uploaded files ``attachment_ids`` (in that order). Raises
    ApiError 422 naming ``attachmentIds[i]`` for an id that is unknown, not the owner's, of another
    channel, not yet uploaded, or already attached to another message."""
    ids = list(attachment_ids)
    found = {
        r["_id"]: r async for r in collection(db, FILES).find({"_id": {"$in": ids}, "owner_id": owner_id})
    }
    out: list[AttachmentDoc] = []
    for i, file_id in enumerate(ids):
        field = f"attachmentIds[{i}]"

        def invalid(reason: str, field: str = field) -> ApiError:
            return ApiError(422, "invalid_attachment", f"{field}: {reason}", field)

        record = found.get(file_id)
        if record is None:
            raise invalid("no such file")
        if file_id in ids[:i]:
            raise invalid("this file is listed twice")
        if record.get("channel_id") not in (None, channel_id):
            raise invalid("this file belongs to another channel")
        if record.get("state") != "ready":
            raise invalid("this file has not been uploaded yet")
        if record.get("message_id") is not None:
            raise invalid("this file is already attached to another message")
        text = await read_text(db, record)
        out.append(attachment_doc({**record, "channel_id": channel_id}, text))
    return out


async def store_text_attachments(
    db: Database, settings: ApiSettings, owner_id: str, channel_id: str, items: Sequence[TextAttachmentIn]
) -> list[AttachmentDoc]:
    """Store each inline text as a file and return its attachment document, with ``text_content``
    (at most 64 KB; larger content answers 413 naming ``textAttachments[i].content``)."""
    # Every item is checked before any is stored, so a refused message leaves no files behind.
    for i, item in enumerate(items):
        prefix = f"textAttachments[{i}]."
        if len(item.content.encode("utf-8")) > TEXT_CONTENT_MAX_BYTES:
            raise text_too_large(f"{prefix}content")
        check_filename(item.filename, f"{prefix}filename")
        check_mime_type(item.mime_type, f"{prefix}mimeType")
    out: list[AttachmentDoc] = []
    for i, item in enumerate(items):
        record = await store_text(
            db, owner_id, channel_id, item.content, item.filename, item.mime_type, f"textAttachments[{i}]."
        )
        out.append(attachment_doc(record, item.content))
    return out


async def link(db: Database, message_id: str, attachments: Sequence[AttachmentDoc]) -> None:
    """Mark the files as attached to ``message_id`` (after the message is inserted)."""
    by_channel: dict[str, list[str]] = {}
    for attachment in attachments:
        channel_id = attachment.get("channel_id")
        if channel_id is not None:  # always set on a message's attachments
            by_channel.setdefault(channel_id, []).append(attachment["id"])
    for channel_id, ids in by_channel.items():
        # Conditional on message_id being unset: of two messages racing for one file, the first
        # to link keeps it.
        await collection(db, FILES).update_many(
            {"_id": {"$in": ids}, "message_id": None},
            {"$set": {"message_id": message_id, "channel_id": channel_id}},
        )
