"""What every running service owns: one MongoDB client and its readiness check (the HTTP
server around it: ``sayso_service.serve``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from pymongo import AsyncMongoClient

from sayso_common.mongo import Database, Doc, create_client, ensure_indexes, ping
from sayso_common.settings import ServiceSettings


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
