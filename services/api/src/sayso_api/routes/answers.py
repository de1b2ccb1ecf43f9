"""One-click answer links from e-mails: ``GET /a/{token}`` only shows a confirmation page (mail
scanners that open links answer nothing); its ``POST`` answers. No session: the signed,
single-use token is the credential."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse

from sayso_api import answer_pages, answers
from sayso_api.deps import Ctx
from sayso_api.web import PAGE_HEADERS
from sayso_common.answer_links import MAX_TOKEN, link_key
from sayso_common.clock import utcnow

router = APIRouter(tags=["notifications"], include_in_schema=False)

Token = Annotated[str, Path(max_length=MAX_TOKEN)]
HEADERS = {**PAGE_HEADERS, **answer_pages.HEADERS}


def _key(ctx: Ctx) -> bytes:
    return link_key(ctx.settings.secret_key.get_secret_value())


@router.get("/a/{token}", response_class=HTMLResponse)
async def confirm(token: Token, ctx: Ctx) -> HTMLResponse:
    found = await answers.look_up(ctx.db, _key(ctx), token, utcnow())
    if found.status != "ready":
        return HTMLResponse(answer_pages.result(found), status_code=_status(found), headers=HEADERS)
    return HTMLResponse(answer_pages.confirm(found, token), headers=HEADERS)


@router.post("/a/{token}", response_class=HTMLResponse)
async def answer(token: Token, ctx: Ctx) -> HTMLResponse:
    found = await answers.answer(ctx.db, ctx.reviewing, _key(ctx), token)
    if found.status == "answered":
        ctx.outbox_written()
    return HTMLResponse(answer_pages.result(found), status_code=_status(found), headers=HEADERS)


def _status(found: answers.Found) -> int:
    return {"answered": 200, "ready": 200, "used": 409, "closed": 409}.get(found.status, 403)
