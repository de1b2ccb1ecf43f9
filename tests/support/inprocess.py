"""The API in the test process: the app ``sayso_api.app.create_app`` builds, its lifespan run
here, reached through httpx's ASGI transport. No edge, no server process, no socket: what is
left of a request is the app itself (middleware, routes, MongoDB), which is all a test of what
the API accepts and refuses needs.

It runs against the session's real MongoDB and Kafka, in a database and under a topic prefix of
its own: its outbox relay then never takes the lease of the stack's relay (which the stack's
dispatcher and realtime tests depend on), and no stack service consumes its events."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from sayso_api.app import create_app
from sayso_api.settings import ApiSettings
from tests.support.stack import Owner, create_owner


@dataclass
class InProcessApi:
    app: FastAPI
    settings: ApiSettings
    admin_token: str

    def client(self, **headers: str) -> httpx.AsyncClient:
        """A client on the app; the caller closes it (``async with`` or ``aclose``)."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://api.test",
            headers=headers,
            timeout=30,
        )

    async def new_owner(self) -> Owner:
        async with self.client(Authorization=f"Bearer {self.admin_token}") as admin:
            return await create_owner(admin, self.client)

    @property
    def mongo_db(self) -> str:
        return self.settings.mongo_db

    def mongo(self) -> AsyncMongoClient[dict[str, Any]]:
        return AsyncMongoClient(self.settings.mongo_url, tz_aware=True, serverSelectionTimeoutMS=5000)


@contextlib.asynccontextmanager
async def running_api(env: Mapping[str, str]) -> AsyncIterator[InProcessApi]:
    """The app with the settings a process started with ``env`` would read, for as long as the
    block runs. ``env`` names the bootstrap admin; it is logged in once."""
    # Settings come from the environment exactly as in the API process, set only while they are
    # read: the services the session starts later must not inherit them.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**env, "SAYSO_MONGO_DB": f"inproc_{secrets.token_hex(4)}"}.items():
            patch.setenv(name, value)
        patch.setenv("SAYSO_TOPIC_PREFIX", f"{env.get('SAYSO_TOPIC_PREFIX', '')}inproc.")
        settings = ApiSettings()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test"
        ) as anon:
            login = await anon.post(
                "/api/v1/auth/login",
                json={
                    "email": env["SAYSO_BOOTSTRAP_ADMIN_EMAIL"],
                    "password": env["SAYSO_BOOTSTRAP_ADMIN_PASSWORD"],
                },
            )
        assert login.status_code == 200, login.text
        yield InProcessApi(app=app, settings=settings, admin_token=login.json()["token"])
