"""Test-side view of a running stack: API clients for fresh owners, helpers to wait on state."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import httpx
from pymongo import AsyncMongoClient

from sayso_devstack.processes import Proc

T = TypeVar("T")


@dataclass
class Owner:
    """A user with a JWT and an API key; ``agent`` talks with the key, ``human`` with the JWT."""

    user_id: str
    email: str
    password: str
    token: str
    api_key: str
    agent: httpx.AsyncClient
    human: httpx.AsyncClient

    async def create_agent(self, **body: Any) -> dict[str, Any]:
        resp = await self.agent.post("/api/v1/agents", json={"name": "test-agent", **body})
        assert resp.status_code == 201, resp.text
        data: dict[str, Any] = resp.json()
        return data

    async def post_message(self, channel_id: str, **body: Any) -> dict[str, Any]:
        resp = await self.agent.post("/api/v1/messages", json={"channelId": channel_id, "text": "hi", **body})
        assert resp.status_code == 201, resp.text
        data: dict[str, Any] = resp.json()
        return data

    async def respond(self, message_id: str, response: Any) -> httpx.Response:
        return await self.human.post(f"/api/v1/reviews/{message_id}/respond", json={"response": response})

    async def aclose(self) -> None:
        await self.agent.aclose()
        await self.human.aclose()

    async def __aenter__(self) -> Owner:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


@dataclass
class RunningStack:
    url: str  # the edge
    api_url: str
    mongo_url: str
    kafka_bootstrap: str
    env: dict[str, str]
    procs: dict[str, Proc]
    admin_token: str

    def client(self, **headers: str) -> httpx.AsyncClient:
        """A client on the edge; the caller closes it (``async with`` or ``aclose``)."""
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def new_owner(self) -> Owner:
        async with self.client(Authorization=f"Bearer {self.admin_token}") as admin:
            return await create_owner(admin, self.client)

    @contextlib.asynccontextmanager
    async def new_owners(self, count: int) -> AsyncIterator[list[Owner]]:
        """``count`` users, closed on the way out (for a module's fixture: Argon2 makes each slow)."""
        people = [await self.new_owner() for _ in range(count)]
        try:
            yield people
        finally:
            for person in people:
                await person.aclose()

    @property
    def mongo_db(self) -> str:
        return self.env.get("SAYSO_MONGO_DB", "sayso")

    def mongo(self) -> AsyncMongoClient[dict[str, Any]]:
        return AsyncMongoClient(self.mongo_url, tz_aware=True, serverSelectionTimeoutMS=5000)


class ClientFactory(Protocol):
    """Builds a client on one API (the stack's edge, or the app in this process)."""

    def __call__(self, **headers: str) -> httpx.AsyncClient: ...


async def create_owner(admin: httpx.AsyncClient, client: ClientFactory) -> Owner:
    """A new user with a JWT and an API key, created through the API by ``admin``; the owner's
    clients come from ``client`` and are the caller's to close."""
    email = f"user-{secrets.token_hex(6)}@example.test"
    password = secrets.token_urlsafe(12)
    created = await admin.post("/api/v1/users", json={"email": email, "password": password})
    assert created.status_code == 201, created.text
    login = await admin.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    token = login.json()["token"]
    human = client(Authorization=f"Bearer {token}")
    key = await human.post("/api/v1/api-keys", json={"label": "test"})
    if key.status_code != 201:
        await human.aclose()
    assert key.status_code == 201, key.text
    api_key = key.json()["key"]
    return Owner(
        user_id=created.json()["id"],
        email=email,
        password=password,
        token=token,
        api_key=api_key,
        agent=client(**{"x-api-key": api_key}),
        human=human,
    )


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 15.0, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy (tests only; the product never polls)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s: {what} (last value: {last!r})")


async def admin_headers(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """For a private stack's bootstrap admin: (human headers with a JWT, agent headers with a new
    API key)."""
    login = await client.post("/api/v1/auth/login", json=admin)
    assert login.status_code == 200, login.text
    human = {"Authorization": f"Bearer {login.json()['token']}"}
    key = await client.post("/api/v1/api-keys", json={"label": "test"}, headers=human)
    assert key.status_code == 201, key.text
    return human, {"x-api-key": key.json()["key"]}
