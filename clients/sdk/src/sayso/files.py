"""Files: upload (a signed URL, then the bytes), text storage, listing and download.

Uploading is two requests, as in Placet's files API: ``POST /api/v1/files/upload`` with the
name and type answers a signed ``uploadUrl``; the bytes are PUT there without credentials. The
file's ``id`` then goes into a message's ``attachment_ids``.
"""

from __future__ import annotations

import mimetypes
from datetime import datetime
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx
from pydantic import TypeAdapter

from sayso.calls import Call, seg
from sayso.models import ApiModel

# A path, the bytes themselves, or an open binary file.
FileInput = str | Path | bytes | IO[bytes]
UPLOAD_PATH = "/api/v1/files/upload/"


class FileInfo(ApiModel):
    """A stored file. ``channel_id`` is None until it is attached, for files uploaded without
    one; ``text_content`` is set for text stored with :meth:`Client.store_text`."""

    id: str
    channel_id: str | None = None
    message_id: str | None = None
    filename: str
    mime_type: str
    size: int
    plugin_type: str
    text_content: str | None = None
    created_at: datetime


class UploadTicket(ApiModel):
    id: str
    file_key: str
    upload_url: str
    method: str = "PUT"
    expires_at: datetime
    max_bytes: int


class DownloadLink(ApiModel):
    download_url: str
    expires_at: datetime


_FILES = TypeAdapter(list[FileInfo])


def read(file: FileInput, filename: str | None, mime_type: str | None) -> tuple[bytes, str, str]:
    """The bytes, a file name and a MIME type (guessed from the name unless given). Read whole,
    so a retried request sends the same bytes."""
    if isinstance(file, str | Path):
        path = Path(file)
        content, name = path.read_bytes(), filename or path.name
    elif isinstance(file, bytes):
        content, name = file, filename or "file"
    else:
        content = file.read()
        name = filename or Path(str(getattr(file, "name", "file"))).name
    kind = mime_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return content, name, kind


def upload_target(upload_url: str) -> str:
    """Where to PUT the bytes. Sayso's own upload URLs are sent to the server this client
    talks to (the path only): the server builds them on its configured public URL, which is not
    always the address a client reaches it at. Any other URL is used as given."""
    parts = urlsplit(upload_url)
    if parts.path.startswith(UPLOAD_PATH):
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return upload_url


def ticket_call(channel: str | None, filename: str, mime_type: str) -> Call[UploadTicket]:
    body = {"filename": filename, "mimeType": mime_type}
    if channel:
        body["channelId"] = channel
    return Call("POST", "/api/v1/files/upload", lambda r: UploadTicket.model_validate(r.json()), json=body)


def put_call(ticket: UploadTicket, content: bytes, mime_type: str) -> Call[FileInfo]:
    return Call(
        "PUT",
        upload_target(ticket.upload_url),
        _file,
        content=content,
        headers={"Content-Type": mime_type},
        anonymous=True,
        # Uploads may be large and slow: no read timeout beyond the client's connect one.
        timeout=300.0,
    )


def _file(resp: httpx.Response) -> FileInfo:
    return FileInfo.model_validate(resp.json())


def store_text_call(channel: str, content: str, filename: str, mime_type: str) -> Call[FileInfo]:
    body = {"channelId": channel, "content": content, "filename": filename, "mimeType": mime_type}
    return Call("POST", "/api/v1/files/store-text", _file, json=body)


def get_call(file_id: str) -> Call[FileInfo]:
    return Call("GET", f"/api/v1/files/{seg(file_id)}", _file, idempotent=True)


def list_call(channel: str, limit: int | None) -> Call[list[FileInfo]]:
    params = {"channel": channel}
    if limit:
        params["limit"] = str(limit)
    return Call(
        "GET", "/api/v1/files", lambda r: _FILES.validate_python(r.json()), params=params, idempotent=True
    )


def download_call(file_id: str) -> Call[bytes]:
    return Call(
        "GET", f"/api/v1/files/{seg(file_id)}/download", lambda r: r.content, idempotent=True, timeout=300.0
    )


def link_call(file_id: str) -> Call[DownloadLink]:
    return Call(
        "GET",
        f"/api/v1/files/{seg(file_id)}/presign-download",
        lambda r: DownloadLink.model_validate(r.json()),
        idempotent=True,
    )
