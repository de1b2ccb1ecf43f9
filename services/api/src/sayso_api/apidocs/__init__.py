"""``/docs``: the interactive API reference, with Swagger UI served from this origin.

FastAPI's default page loads Swagger UI from a CDN, without integrity hashes, on the origin whose
``localStorage`` holds the inbox's JWT. Here the assets come from the pinned ``swagger-ui-bundle-v2``
wheel, the page has no inline script, and a Content-Security-Policy allows scripts from this
origin only.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

HERE = Path(__file__).parent
# Swagger UI sets inline style attributes; scripts stay same-origin only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs() -> FileResponse:
    return FileResponse(HERE / "docs.html", media_type="text/html", headers=HEADERS)


@router.get("/docs/init.js")
async def init_script() -> FileResponse:
    return FileResponse(HERE / "init.js", media_type="text/javascript", headers=HEADERS)


def assets() -> StaticFiles:
    """Swagger UI's own files, mounted at ``/docs/assets``."""
    return StaticFiles(directory=str(swagger_ui_path))
