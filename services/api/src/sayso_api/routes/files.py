"""Files: signed upload URLs into GridFS, downloads, signed download links (Placet's files API)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import Field, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Scope

from sayso_api import files
from sayso_api.deps import Ctx, CurrentPrincipal
from sayso_api.schemas import DeletedOut, Out, _In
from sayso_common import numerals
from sayso_common.documents import FileDoc
from sayso_common.errors import ErrorCode, InvalidError, UnsupportedError

router = APIRouter(prefix="/api/v1/files", tags=["files"])

UPLOAD_PATH: Final = "/api/v1/files/upload"
MAX_LIST: Final = 1000

# Shown inline by a browser; anything else (HTML, SVG, scripts, archives…) is a download. Every
# download also carries a sandboxing CSP and nosniff: the bytes are the uploader's, the origin ours.
INLINE_TYPES: Final = frozenset(
    {
        "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "text/plain", "text/csv",
        "text/markdown", "application/json", "audio/mpeg", "audio/ogg", "audio/wav", "video/mp4",
        "video/webm",
    }
)  # fmt: skip
BINARY: Final = {"schema": {"type": "string", "format": "binary"}}
FILE_BYTES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "The file's bytes, with the Content-Type it was uploaded with",
        "content": {"*/*": BINARY},
    }
}
DOWNLOAD_CSP: Final = (
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"
)


def streams_own_body(scope: Scope) -> bool:
    """Requests whose body the files routes read themselves: exempt from the 256 KiB body limit
    and the JSON guard. The upload enforces its own limit while streaming; a multipart POST is
    refused (415) without reading its body."""
    path = scope.get("path", "")
    method = scope.get("method")
    if method == "PUT" and path.startswith(UPLOAD_PATH + "/"):
        return True
    if method == "POST" and path == UPLOAD_PATH:
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                return bool(value.lower().startswith(b"multipart/"))
    return False


class UploadIn(_In):
    filename: str = Field(min_length=1, max_length=255)
    mime_type: str = Field(min_length=1, max_length=255, description="Content-Type the file is served with")
    channel_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Channel the file belongs to; without it, the first message it is attached to",
    )


class UploadOut(Out):
    id: str = Field(description="The file id: put it in a message's attachmentIds")
    file_key: str = Field(description="Same as id (Placet's name for it)")
    upload_url: str = Field(description="PUT the raw bytes here, without credentials, before expiresAt")
    method: Literal["PUT"] = "PUT"
    expires_at: datetime
    max_bytes: int


class StoreTextIn(_In):
    channel_id: str = Field(min_length=1, max_length=100)
    content: str = Field(min_length=1)
    filename: str = Field(default="content.md", min_length=1, max_length=255)
    mime_type: str = Field(default="text/markdown", min_length=1, max_length=255)


class FileOut(Out):
    id: str
    channel_id: str | None = None
    message_id: str | None = None
    filename: str
    mime_type: str
    size: int
    plugin_type: str
    text_content: str | None = Field(default=None, description="Content of text files (store-text only)")
    created_at: datetime


class DownloadLinkOut(Out):
    download_url: str = Field(description="GET without credentials before expiresAt")
    expires_at: datetime


def file_out(record: FileDoc, text_content: str | None = None) -> FileOut:
    return FileOut.model_validate(files.attachment_doc(record, text_content))


def content_disposition(filename: str, mime_type: str) -> str:
    kind = "inline" if files.base_type(mime_type) in INLINE_TYPES else "attachment"
    # An ASCII fallback with nothing that could end the quoted string or the header, plus the
    # exact name in RFC 8187 form for clients that read it.
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _download(record: FileDoc, body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        body,
        headers={
            "Content-Type": record["mime_type"],
            "Content-Length": str(record.get("size") or 0),
            "Content-Disposition": content_disposition(record["filename"], record["mime_type"]),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": DOWNLOAD_CSP,
            "Cache-Control": "private, no-store",
        },
    )


@router.get("", response_model=list[FileOut])
async def list_files(
    channel: Annotated[str, Query(min_length=1, max_length=100, description="Agent/channel id")],
    who: CurrentPrincipal,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, description=f"Default 100; above {MAX_LIST} is capped")] = 100,
) -> list[FileOut]:
    """Uploaded files of a channel, newest first: a bare array, as Placet answers."""
    await ctx.own_channel(who.owner_id, channel)
    docs = await files.list_files(ctx.db, who.owner_id, channel, min(limit, MAX_LIST))
    return [file_out(d) for d in docs]


@router.post(
    "/upload",
    status_code=201,
    response_model=UploadOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": UploadIn.model_json_schema(by_alias=True)}},
        }
    },
)
async def create_upload(request: Request, who: CurrentPrincipal, ctx: Ctx) -> UploadOut:
    """Register a file and get a signed URL to PUT its bytes to (Placet's presigned upload).
    The URL needs no credentials and is valid for 15 minutes (``SAYSO_FILE_UPLOAD_URL_TTL_SECONDS``)."""
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/"):
        raise UnsupportedError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            "multipart uploads are not supported: POST {filename, mimeType, channelId?} as JSON, "
            "then PUT the bytes to the uploadUrl of the answer",
        )
    try:
        body = UploadIn.model_validate_json(await request.body() or b"null")
    except ValidationError as exc:
        raise RequestValidationError(_body_errors(exc)) from None
    if body.channel_id is not None:
        await ctx.own_channel(who.owner_id, body.channel_id)
    record, token, expires_at = await files.create_upload(
        ctx.db, ctx.settings, who.owner_id, body.channel_id, body.filename, body.mime_type
    )
    return UploadOut(
        id=record["_id"],
        file_key=record["_id"],
        upload_url=f"{ctx.settings.public_url.rstrip('/')}{UPLOAD_PATH}/{token}",
        expires_at=expires_at,
        max_bytes=ctx.settings.max_upload_bytes,
    )


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    # The shape FastAPI's own body validation produces, so the one error handler answers it.
    return [{**err, "loc": ("body", *err.get("loc", ()))} for err in exc.errors(include_url=False)]


@router.put(
    "/upload/{token}",
    response_model=FileOut,
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": BINARY}}},
)
async def upload_bytes(token: str, request: Request, ctx: Ctx) -> FileOut:
    """The signed upload URL: the request body is the file, streamed into storage. 413 past
    ``SAYSO_MAX_UPLOAD_BYTES`` (nothing is kept); 409 once the file is uploaded."""
    length = numerals.parse_uint(request.headers.get("content-length"), numerals.CONTENT_LENGTH_DIGITS)
    record = await files.receive_upload(ctx.db, ctx.settings, token, length, _body(request))
    return file_out(record)


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for piece in request.stream():
            yield piece
    except ClientDisconnect:
        # Answered to nobody; raised as a domain error so it is not logged as a server error.
        raise InvalidError(ErrorCode.CLIENT_DISCONNECTED, "the upload was interrupted") from None


@router.post("/store-text", status_code=201, response_model=FileOut)
async def store_text(body: StoreTextIn, who: CurrentPrincipal, ctx: Ctx) -> FileOut:
    """Store text (at most 64 KB) as a file to attach later through ``attachmentIds``."""
    await ctx.own_channel(who.owner_id, body.channel_id)
    record = await files.store_text_file(
        ctx.db, ctx.settings, who.owner_id, body.channel_id, body.content, body.filename, body.mime_type
    )
    return file_out(record, body.content)


@router.get("/signed/{token}", response_class=StreamingResponse, responses=FILE_BYTES)
async def signed_download(token: str, ctx: Ctx) -> Response:
    """A signed download link (from ``presign-download``): no credentials, until it expires."""
    record = await files.record_for_link(ctx.db, ctx.settings, token)
    return _download(record, await files.open_blob(ctx.db, record))


@router.get("/{file_id}", response_model=FileOut)
async def get_file(file_id: str, who: CurrentPrincipal, ctx: Ctx) -> FileOut:
    return file_out(await files.get_file(ctx.db, await ctx.reach(who), file_id))


@router.delete("/{file_id}", response_model=DeletedOut)
async def delete_file(file_id: str, who: CurrentPrincipal, ctx: Ctx) -> DeletedOut:
    """Delete one of your files and its bytes (its download links stop working). 409 naming the
    message while the file is attached to one: it is deleted with that message."""
    await files.delete_file(ctx.db, who.owner_id, file_id)
    return DeletedOut()


@router.get("/{file_id}/download", response_class=StreamingResponse, responses=FILE_BYTES)
async def download(file_id: str, who: CurrentPrincipal, ctx: Ctx) -> Response:
    """The file's bytes, with its Content-Type."""
    record = await files.get_file(ctx.db, await ctx.reach(who), file_id)
    return _download(record, await files.open_blob(ctx.db, record))


@router.get("/{file_id}/presign-download", response_model=DownloadLinkOut)
async def presign_download(file_id: str, who: CurrentPrincipal, ctx: Ctx) -> DownloadLinkOut:
    """A short-lived URL that downloads the file without credentials (5 minutes,
    ``SAYSO_FILE_DOWNLOAD_URL_TTL_SECONDS``)."""
    record = await files.get_file(ctx.db, await ctx.reach(who), file_id)
    files.require_uploaded(record)
    url, expires_at = files.download_url(ctx.settings, record["_id"])
    return DownloadLinkOut(download_url=url, expires_at=expires_at)
