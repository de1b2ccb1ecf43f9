"""Fault: MongoDB stops answering (SIGSTOP: connections stay open, nothing comes back) while a
long-poll makes its first read, or looks up the poll's credential. pymongo bounds server selection, not the wait for an answer, so
the poll was held as long as MongoDB was: in the chaos soak, on an overloaded host, polls with a
5 s timeout came back after a minute. The read is bounded by the poll's own timeout (at least
``MIN_READ_SECONDS``), and a read that runs out is a ConnectionFailure, which the endpoint answers
503 with Retry-After."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure
from starlette.types import Message, Scope

from sayso_common.credentials import ApiKeyResolver, generate_api_key
from sayso_common.membership import Reach
from sayso_common.principals import Authenticator
from sayso_devstack.processes import Proc, mongo_url, start_mongod
from sayso_realtime.longpoll import wait_for_review
from sayso_realtime.quotas import Quotas
from sayso_realtime.settings import RealtimeSettings
from sayso_realtime.wait_endpoint import WaitEndpoint
from sayso_realtime.waiters import Waiters

pytestmark = pytest.mark.slow


def _thread_states(pid: int) -> set[str]:
    return {
        (t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in Path(f"/proc/{pid}/task").iterdir()
    }


async def _stop(proc: Proc) -> None:
    """SIGSTOP, and wait until the kernel reports every thread of it stopped: only then can no
    request be answered any more."""
    os.kill(proc.popen.pid, signal.SIGSTOP)
    for _ in range(500):
        if (states := _thread_states(proc.popen.pid)) == {"T"}:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{proc.name} did not stop: thread states {states}")


async def test_a_stalled_database_does_not_hold_a_long_poll_past_its_timeout(tmp_path: Path) -> None:
    mongo = start_mongod(tmp_path / "db", tmp_path / "logs", name="mongod-stalled")
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        mongo_url(mongo.port), serverSelectionTimeoutMS=1000, connectTimeoutMS=3000
    )
    try:
        db = client["stalled"]
        await db.command("ping")  # a pooled connection, so the read goes out rather than selecting
        await _stop(mongo)
        try:
            # Without the bound this waits for MongoDB (here: until the outer 30 s give up).
            with pytest.raises(ConnectionFailure, match=f"within {2.0:.1f}s"):
                await asyncio.wait_for(
                    wait_for_review(db, Waiters(), Reach("usr_x"), "msg_x", None, timeout=2.0), 30
                )
        finally:
            os.kill(mongo.popen.pid, signal.SIGCONT)
    finally:
        await client.close()
        mongo.stop()


async def test_a_stalled_credential_lookup_does_not_hold_a_long_poll_past_its_timeout(tmp_path: Path) -> None:
    """The API key is looked up before the poll's first read; that lookup shares its budget."""
    mongo: Proc = start_mongod(tmp_path / "db", tmp_path / "logs", name="mongod-stalled-auth")
    # pymongo's own timeouts far beyond the poll's, so only the poll's budget can end the wait.
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        mongo_url(mongo.port),
        serverSelectionTimeoutMS=60_000,
        connectTimeoutMS=60_000,
        heartbeatFrequencyMS=60_000,
    )
    settings = RealtimeSettings(secret_key="s" * 40)
    endpoint = WaitEndpoint(settings, Waiters(), Quotas.of(settings).polls)
    db = client["stalled"]
    endpoint.bind(db, Authenticator(ApiKeyResolver(db), settings.jwt_signing_keys()))
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/reviews/msg_x/wait",
        "query_string": b"timeout=2000",
        "headers": [(b"x-api-key", generate_api_key().encode())],
    }
    try:
        await db.command("ping")
        await _stop(mongo)
        try:
            # Without the bound this waits for MongoDB (here: until the outer 15 s give up).
            await asyncio.wait_for(endpoint(scope, receive, send, "msg_x"), 15)
        finally:
            os.kill(mongo.popen.pid, signal.SIGCONT)
    finally:
        await client.close()
        mongo.stop()
    assert sent[0]["status"] == 503
    assert dict(sent[0]["headers"])[b"retry-after"] == b"2"
