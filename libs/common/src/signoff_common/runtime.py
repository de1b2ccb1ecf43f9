"""Process lifecycle shared by every service: one MongoDB client, readiness checks, uvicorn.

SIGTERM handling comes from uvicorn: it stops accepting connections, lets in-flight requests
finish (up to the graceful timeout), then runs the lifespan shutdown, where consumers commit and
background loops finish their current item.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import uvicorn
from pymongo import AsyncMongoClient
from starlette.types import ASGIApp

from signoff_common.mongo import Database, Doc, create_client, ensure_indexes, ping
from signoff_common.observability import configure_logging
from signoff_common.settings import ServiceSettings


@dataclass
class Runtime:
    """What a running service owns. Built in the lifespan, closed at shutdown."""

    settings: ServiceSettings
    client: AsyncMongoClient[Doc]
    db: Database
    # Unique per process: lease holder ids, Kafka client ids, log correlation.
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @classmethod
    async def open(cls, settings: ServiceSettings, *, indexes: bool = True) -> Runtime:
        client = create_client(settings)
        db = client[settings.mongo_db]
        if indexes:
            await ensure_indexes(db)
        return cls(settings=settings, client=client, db=db)

    async def check_mongo(self) -> None:
        await ping(self.db)

    async def close(self) -> None:
        await self.client.close()


def serve(app: ASGIApp, settings: ServiceSettings, service: str) -> None:
    configure_logging(settings.instance or service, settings.log_level)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
