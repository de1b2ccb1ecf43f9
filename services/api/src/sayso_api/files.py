"""Files: uploads stored in MongoDB GridFS, linked to messages as attachments.

A file has a record in ``files`` (owner, channel, message, state, name, type, size) and its bytes
in the GridFS bucket ``blobs`` under the same id. Uploads go through a short-lived signed URL the
API serves itself (Placet's presigned-upload flow, without an object store): the body is streamed
into GridFS chunk by chunk and refused with 413 past ``max_upload_bytes``, leaving nothing behind.

Messages call :func:`resolve_attachments`, :func:`store_text_attachments` and :func:`link`; every
returned attachment is a plain dict in the stored (snake_case) form that
``sayso_common.views.AttachmentView`` reads: ``id, channel_id, message_id, filename, mime_type,
size, plugin_type, text_content?, created_at``.

A file goes with the message it is attached to (:func:`remove_files`), and an uploaded file no
message took goes after ``file_unattached_ttl_seconds`` (:func:`run_sweeper`). Each owner account
has at most ``file_quota_unattached`` files attached to no message and ``file_quota_bytes`` in all.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Final, Literal

from bson import Int64
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo import ReturnDocument

from sayso_api.schemas import TextAttachmentIn
from sayso_api.settings import ApiSettings
from sayso_common import numerals
from sayso_common.clock import utcnow
from sayso_common.documents import AttachmentDoc, FileDoc, FileState
from sayso_common.errors import (
    ConflictError,
    DomainError,
    ErrorCode,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    RateLimitedError,
    TooLargeError,
)
from sayso_common.ids import new_id
from sayso_common.legacy import KEY_LABEL
from sayso_common.membership import Reach
from sayso_common.mongo import FILE_BUCKET, FILES, MESSAGES, Database, Doc, collection, untyped

log = logging.getLogger(__name__)

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
# A signed URL's expiry (Unix seconds), in digits: far beyond any real one.
EXPIRY_DIGITS: Final = 12

_MIME_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MIME = re.compile(
    rf"{_MIME_NAME}/{_MIME_NAME}"
    rf'(?:[ \t]*;[ \t]*[A-Za-z0-9!#$&^_.+-]+=(?:[A-Za-z0-9!#$&^_.+-]+|"[^"\\\x00-\x1f\x7f]*"))*'
)

Purpose = Literal["upload", "download"]


# --- validation ------------------------------------------------------------------------------


def check_filename(value: str, field: str) -> str:
    if not 1 <= len(value) <= 255:
        raise InvalidError(ErrorCode.VALIDATION_ERROR, f"{field}: must be 1 to 255 characters", field)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidError(ErrorCode.VALIDATION_ERROR, f"{field}: must not contain control characters", field)
    return value


def check_mime_type(value: str, field: str) -> str:
    """A media type (``type/subtype``, optional parameters): it is sent back as Content-Type."""
    if len(value) > 255 or not _MIME.fullmatch(value):
        raise InvalidError(
            ErrorCode.VALIDATION_ERROR,
            f"{field}: must be a media type such as text/plain or image/png",
            field,
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
        settings.secret_key.get_secret_value().encode(), KEY_LABEL + b"/files/signed-url/v1", hashlib.sha256
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
    expires = numerals.parse_uint(expires_text, EXPIRY_DIGITS)
    if not (file_id and expires is not None and mac):
        raise ForbiddenError(ErrorCode.INVALID_LINK, "this link is malformed")
    if not hmac.compare_digest(mac, _mac(key, purpose, file_id, expires)):
        raise ForbiddenError(ErrorCode.INVALID_LINK, "this link's signature does not match")
    if expires <= now.timestamp():
        raise ForbiddenError(ErrorCode.LINK_EXPIRED, "this link has expired; ask for a new one")
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
    await _admit(db, settings, record)
    return record, sign_token(url_signing_key(settings), "upload", record["_id"], expires_at), expires_at


# --- quotas ----------------------------------------------------------------------------------


def too_many_unattached(settings: ApiSettings) -> RateLimitedError:
    # 429: the condition passes by itself (unsent uploads and unattached files expire), or as soon
    # as the owner attaches or deletes some; the same request may then succeed.
    return RateLimitedError(
        ErrorCode.TOO_MANY_UNATTACHED_FILES,
        f"this account has {settings.file_quota_unattached} files registered or uploaded but attached "
        "to no message (SAYSO_FILE_QUOTA_UNATTACHED); attach or delete some, or let them expire",
    )


def storage_full(settings: ApiSettings, field: str = "file") -> TooLargeError:
    # 413, as for the upload limit: this body is too large for what the account may still store,
    # and sending it again changes nothing until files are deleted.
    return TooLargeError(
        ErrorCode.STORAGE_QUOTA_EXCEEDED,
        f"{field}: this account's files may hold {settings.file_quota_bytes} bytes in all "
        "(SAYSO_FILE_QUOTA_BYTES) and this one does not fit; delete files or messages to make room",
        field,
    )


async def unattached_files(db: Database, owner_id: str, cap: int) -> int:
    """Files of ``owner_id`` attached to no message (registered, uploading or uploaded), counted
    up to ``cap``."""
    return await collection(db, FILES).count_documents({"owner_id": owner_id, "message_id": None}, limit=cap)


async def stored_bytes(db: Database, owner_id: str) -> int:
    """The bytes of all of ``owner_id``'s files: uploaded ones, and uploads counted while they
    are checked (:func:`receive_upload`)."""
    rows = await (
        await untyped(db, FILES).aggregate(
            [{"$match": {"owner_id": owner_id}}, {"$group": {"_id": None, "bytes": {"$sum": "$size"}}}]
        )
    ).to_list()
    return int(rows[0]["bytes"]) if rows else 0


async def _admit(db: Database, settings: ApiSettings, record: FileDoc, field: str = "file") -> None:
    """Check the owner's quotas with ``record`` already stored, removing it if they are passed.
    Counted after the write, so of two requests racing for the last place each sees the other:
    neither goes past the limit (at worst both are refused)."""
    owner_id = record["owner_id"]
    error: DomainError | None = None
    cap = settings.file_quota_unattached
    if await unattached_files(db, owner_id, cap + 1) > cap:
        error = too_many_unattached(settings)
    elif record.get("size") and await stored_bytes(db, owner_id) > settings.file_quota_bytes:
        error = storage_full(settings, field)
    if error is not None:
        await asyncio.shield(remove_files(db, {"_id": record["_id"]}))
        raise error


def too_large(settings: ApiSettings) -> TooLargeError:
    return TooLargeError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        f"files are limited to {settings.max_upload_bytes} bytes (SAYSO_MAX_UPLOAD_BYTES)",
        "file",
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


class _StorageFullError(Exception):
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
            raise NotFoundError("file")
        if existing["state"] == "ready":
            raise ConflictError(
                ErrorCode.ALREADY_UPLOADED, "this file was already uploaded; ask for a new upload URL"
            )
        raise ConflictError(ErrorCode.UPLOAD_IN_PROGRESS, "an upload to this URL is in progress")
    # Left over by an upload whose process died: start from nothing.
    await discard_blob(db, file_id)
    # What the owner may still store (this file's size is unset until it is counted below).
    room = max(settings.file_quota_bytes - await stored_bytes(db, record["owner_id"]), 0)
    limit = min(settings.max_upload_bytes, room)
    try:
        if content_length is not None and content_length > limit:
            raise _StorageFullError
        size = await _write_blob(db, record, chunks, limit)
        # Counted before it is ready, then the total read back: of two uploads racing for the
        # last room each sees the other, and neither passes the quota (at worst both are refused).
        await files.update_one({"_id": file_id, "upload_claim": claim}, {"$set": {"size": size}})
        if await stored_bytes(db, record["owner_id"]) > settings.file_quota_bytes:
            raise _StorageFullError
    except BaseException as exc:
        if isinstance(exc, _StorageFullError):
            await asyncio.shield(discard_blob(db, file_id))
        # The URL stays usable until it expires (e.g. to retry with a smaller file).
        await asyncio.shield(
            files.update_one(
                {"_id": file_id, "upload_claim": claim},
                {
                    "$set": {"state": "pending"},
                    "$unset": {"upload_claim": "", "upload_started_at": "", "size": ""},
                },
            )
        )
        if isinstance(exc, _TooLargeError) and limit == settings.max_upload_bytes:
            raise too_large(settings) from None
        if isinstance(exc, (_TooLargeError, _StorageFullError)):
            raise storage_full(settings) from None
        raise
    now = utcnow()
    done = await files.find_one_and_update(
        {"_id": file_id, "upload_claim": claim},
        {
            "$set": {"state": "ready", "size": size, "uploaded_at": now, "unattached_since": now},
            "$unset": {"upload_claim": "", "upload_started_at": "", "expire_at": ""},
        },
        return_document=ReturnDocument.AFTER,
    )
    if done is None:  # the record was removed while the bytes streamed in
        await discard_blob(db, file_id)
        raise NotFoundError("file")
    return done


# --- reading ---------------------------------------------------------------------------------


async def get_file(db: Database, reach: Reach, file_id: str) -> FileDoc:
    """The file record, if it is the caller's or in a channel shared with them; 404 for a missing
    one and for anyone else's."""
    record = await collection(db, FILES).find_one({"_id": file_id, **reach.scope()})
    if record is None:
        raise NotFoundError("file")
    return record


def require_uploaded(record: FileDoc) -> None:
    if record.get("state") != "ready":
        raise ConflictError(ErrorCode.NOT_UPLOADED, "this file's bytes have not been uploaded yet")


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
        raise NotFoundError("file") from None

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
        raise NotFoundError("file")
    return record


# --- attachments -----------------------------------------------------------------------------


def text_too_large(field: str) -> TooLargeError:
    return TooLargeError(
        ErrorCode.PAYLOAD_TOO_LARGE,
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
    record["uploaded_at"] = record["unattached_since"] = record["created_at"]

    async def body() -> AsyncIterator[bytes]:
        yield data

    await _write_blob(db, record, body(), TEXT_CONTENT_MAX_BYTES)
    try:
        await collection(db, FILES).insert_one(record)
    except BaseException:
        await asyncio.shield(discard_blob(db, record["_id"]))
        raise
    return record


async def store_text_file(
    db: Database,
    settings: ApiSettings,
    owner_id: str,
    channel_id: str,
    content: str,
    filename: str,
    mime_type: str,
) -> FileDoc:
    """:func:`store_text` for a file to attach later: it counts against the owner's quotas."""
    record = await store_text(db, owner_id, channel_id, content, filename, mime_type)
    await _admit(db, settings, record, "content")
    return record


async def resolve_attachments(
    db: Database, owner_id: str, channel_id: str, attachment_ids: Sequence[str]
) -> list[AttachmentDoc]:
    """The attachment documents for uploaded files ``attachment_ids`` (in that order). Raises
    InvalidError naming ``attachmentIds[i]`` for an id that is unknown, not the owner's, of another
    channel, not yet uploaded, or already attached to another message."""
    ids = list(attachment_ids)
    found = {
        r["_id"]: r async for r in collection(db, FILES).find({"_id": {"$in": ids}, "owner_id": owner_id})
    }
    out: list[AttachmentDoc] = []
    for i, file_id in enumerate(ids):
        field = f"attachmentIds[{i}]"

        def invalid(reason: str, field: str = field) -> InvalidError:
            return InvalidError(ErrorCode.INVALID_ATTACHMENT, f"{field}: {reason}", field)

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
    if ids:
        # Offered to a message now: the sweep leaves them be while the message is stored and linked.
        await collection(db, FILES).update_many(
            {"_id": {"$in": ids}, "message_id": None}, {"$set": {"unattached_since": utcnow()}}
        )
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
    # They count against the owner's stored bytes as every other file does (not against the
    # unattached-file count: they are linked to their message in the same request).
    if out and await stored_bytes(db, owner_id) > settings.file_quota_bytes:
        await asyncio.shield(remove_files(db, {"_id": {"$in": [a["id"] for a in out]}}))
        raise storage_full(settings, "textAttachments")
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
            {
                "$set": {"message_id": message_id, "channel_id": channel_id},
                "$unset": {"unattached_since": ""},
            },
        )


# --- deleting --------------------------------------------------------------------------------

# Files removed per round trip (a channel's files are removed in batches of this many).
DELETE_BATCH: Final = 500


async def remove_files(db: Database, query: Doc) -> int:
    """Delete the files ``query`` matches, records first and then their bytes; how many. Once a
    record is gone its downloads and signed links answer 404 (both read the record), and the
    bytes are freed even for an upload still streaming (it finds its record gone and discards)."""
    files = collection(db, FILES)
    removed = 0
    kept: set[str] = set()
    while True:
        scope = {"$and": [query, {"_id": {"$nin": sorted(kept)}}]} if kept else query
        ids = [r["_id"] for r in await files.find(scope, {"_id": 1}).limit(DELETE_BATCH).to_list()]
        if not ids:
            return removed
        # The query again: a file that changed since it was read (attached, say) is left alone.
        await files.delete_many({"$and": [query, {"_id": {"$in": ids}}]})
        left = {r["_id"] for r in await files.find({"_id": {"$in": ids}}, {"_id": 1}).to_list()}
        gone = [file_id for file_id in ids if file_id not in left]
        await untyped(db, f"{FILE_BUCKET}.chunks").delete_many({"files_id": {"$in": gone}})
        await untyped(db, f"{FILE_BUCKET}.files").delete_many({"_id": {"$in": gone}})
        removed += len(gone)
        kept |= left


async def delete_file(db: Database, owner_id: str, file_id: str) -> None:
    """Delete one of ``owner_id``'s files, in any state. A file attached to a message that still
    exists is a 409 naming the message: it goes when that message is deleted."""
    mine = {"_id": file_id, "owner_id": owner_id}
    for _ in range(3):
        record = await collection(db, FILES).find_one(mine, {"message_id": 1})
        if record is None:
            raise NotFoundError("file")
        message_id = record.get("message_id")
        # Attached to a message deleted before messages took their files along: free to go.
        if message_id and await collection(db, MESSAGES).find_one({"_id": message_id}, {"_id": 1}):
            raise ConflictError(
                ErrorCode.FILE_ATTACHED,
                f"this file is attached to message {message_id}; deleting the message deletes it",
                "id",
            )
        if await remove_files(db, {**mine, "message_id": message_id}):
            return
    raise ConflictError(
        ErrorCode.FILE_CHANGED, "this file changed while it was being deleted; try again", "id"
    )


async def sweep_unattached(db: Database, settings: ApiSettings) -> int:
    """Delete uploaded files no message took within ``file_unattached_ttl_seconds``; how many."""
    cutoff = utcnow() - timedelta(seconds=settings.file_unattached_ttl_seconds)
    return await remove_files(db, {"unattached_since": {"$lt": cutoff}, "message_id": None})


async def run_sweeper(db: Database, settings: ApiSettings) -> None:
    """:func:`sweep_unattached` every ``file_sweep_interval_seconds`` until cancelled. Every API
    process sweeps; the deletes are conditional, so two sweeping at once delete each file once."""
    marked = False
    while True:
        try:
            if not marked:
                # Files uploaded before unattached ones expired get the full time from now.
                await collection(db, FILES).update_many(
                    {"state": "ready", "message_id": None, "unattached_since": {"$exists": False}},
                    {"$set": {"unattached_since": utcnow()}},
                )
                marked = True
            swept = await sweep_unattached(db, settings)
            if swept:
                log.info("deleted %d uploaded files attached to no message in time", swept)
        except Exception:
            log.warning("the sweep of unattached files failed; retrying", exc_info=True)
        await asyncio.sleep(settings.file_sweep_interval_seconds)
