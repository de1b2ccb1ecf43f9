"""The API-ingest baseline: a bare FastAPI endpoint that parses a similar body and does one
MongoDB insert, served with exactly the settings the real API uses (``sayso_common.runtime``)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from sayso_service.serve import serve

from sayso_common.clock import utcnow
from sayso_common.ids import new_id
from sayso_common.mongo import create_client
from sayso_common.settings import ServiceSettings


class Body(BaseModel):
    channelId: str  # noqa: N815 - the wire name
    text: str
    review: dict[str, Any] | None = None


def create_app(settings: ServiceSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = create_client(settings)
        app.state.coll = client[settings.mongo_db]["baseline_messages"]
        yield
        await client.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/api/v1/messages", status_code=201)
    async def create(body: Body) -> dict[str, Any]:
        doc = {"_id": new_id("msg"), "channel_id": body.channelId, "text": body.text, "review": body.review,
               "created_at": utcnow()}  # fmt: skip
        await app.state.coll.insert_one(doc)
        return {"id": doc["_id"], "channelId": body.channelId, "text": body.text}

    return app


def main() -> None:
    settings = ServiceSettings(secret_key=os.environ.get("SAYSO_SECRET_KEY", secrets.token_urlsafe(32)))
    serve(create_app(settings), settings, "baseline")


if __name__ == "__main__":
    main()
