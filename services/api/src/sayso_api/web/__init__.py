"""The web app: one HTML page at ``/`` and its static ES modules and stylesheet under ``/static``.

No build step and nothing from a CDN: the browser loads exactly the files in ``static/``, which
ship in the wheel as package data. The page talks to the same JSON API as agents do (with the
user's JWT) and to the realtime gateway's SSE stream for live updates.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"

# Everything the page needs comes from this origin. Agent text is escaped before it is rendered;
# this policy is the second fence: no inline script, no foreign script, no plugins, no framing.
# Images may come from https (sender avatars).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)


class _Assets(StaticFiles):
    """Static files that browsers revalidate (ETag) instead of caching a stale module graph."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_revalidated(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"cache-control", b"no-cache"),
                    (b"x-content-type-options", b"nosniff"),
                ]
            await send(message)

        await super().__call__(scope, receive, send_revalidated)


def assets() -> StaticFiles:
    return _Assets(directory=STATIC)
