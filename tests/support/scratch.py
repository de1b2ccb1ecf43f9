"""A throwaway database on the session's real MongoDB, with what the client sent recorded."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase


class CommandLog(monitoring.CommandListener):
    """Every command the client started, in order (name and body)."""

    def __init__(self) -> None:
        self.started_commands: list[tuple[str, dict[str, Any]]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.started_commands]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [body for sent, body in self.started_commands if sent == name]

    def clear(self) -> None:
        self.started_commands.clear()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.started_commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@contextlib.asynccontextmanager
async def scratch_db(mongo_url: str, log: CommandLog, prefix: str) -> AsyncIterator[AsyncDatabase[Any]]:
    """A database of its own (dropped afterwards) on a client whose commands go to ``log``."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, event_listeners=[log])
    db = client[f"{prefix}_{secrets.token_hex(4)}"]
    try:
        yield db
    finally:
        await client.drop_database(db.name)
        await client.close()
