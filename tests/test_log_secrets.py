"""No credential reaches a log the stack writes (issue #25, finding 5).

Caddy logs the request's URI and headers on every upstream error and on every stream a client
leaves ("aborting with incomplete response"); it redacts ``Authorization`` and ``Cookie`` by
itself, not ``X-Api-Key``, and the URI carries the credential of every signed URL. The test
sends each kind of credential through the session's edge (real traffic, and an SSE stream the
client drops mid-stream) and through an edge whose API is down (every request an upstream
error), then reads every log file both edges, the services, mongod and the broker wrote.
"""

from __future__ import annotations

import asyncio
import secrets
import stat
import time
from pathlib import Path

import httpx

from sayso_common.answer_links import AnswerLink, link_key, sign
from sayso_devstack.processes import free_port, start_caddy
from tests.conftest import Infra
from tests.support.stack import Owner, RunningStack, eventually

ABORTED = "aborting with incomplete response"


def _log_files(*dirs: Path) -> list[Path]:
    return sorted(p for d in dirs for p in d.rglob("*") if p.is_file())


async def _drop_a_stream(
    stack: RunningStack, owner: Owner, channel: str, ticket: str | None = None, **headers: str
) -> None:
    """Open the SSE stream, read one event, and leave while the server still streams."""
    params = {"channel": channel, **({"ticket": ticket} if ticket else {})}
    async with (
        stack.client(**headers) as client,
        client.stream("GET", "/api/v1/events", params=params) as stream,
    ):
        assert stream.status_code == 200
        await owner.post_message(channel, text="wakes the stream")
        async for line in stream.aiter_lines():
            if line.startswith("id:"):
                break


async def test_no_credential_reaches_a_log(
    stack: RunningStack, infra: Infra, owner: Owner, tmp_path: Path
) -> None:
    agent = (await owner.create_agent(name="log-secrets"))["id"]
    message = await owner.post_message(
        agent,
        text="Ship it?",
        review={"type": "approval", "payload": {"options": [{"id": "yes", "label": "Yes"}]}},
    )

    # Every credential the API hands out or accepts, used once for real through the edge.
    upload = await owner.agent.post(
        "/api/v1/files/upload", json={"filename": "a.txt", "mimeType": "text/plain", "channelId": agent}
    )
    assert upload.status_code == 201, upload.text
    upload_token = upload.json()["uploadUrl"].rsplit("/", 1)[1]
    async with stack.client() as anonymous:
        put = await anonymous.put(
            f"/api/v1/files/upload/{upload_token}", content=b"hello", headers={"content-type": "text/plain"}
        )
        assert put.status_code == 200, put.text
        link = await owner.agent.get(f"/api/v1/files/{upload.json()['id']}/presign-download")
        assert link.status_code == 200, link.text
        download_token = link.json()["downloadUrl"].rsplit("/", 1)[1]
        assert (await anonymous.get(f"/api/v1/files/signed/{download_token}")).content == b"hello"
        inbound = await owner.agent.post(f"/api/v1/agents/{agent}/inbound-webhooks", json={"name": "ci"})
        assert inbound.status_code == 201, inbound.text
        inbound_token = inbound.json()["token"]
        executed = await anonymous.post(f"/api/webhooks/execute/{inbound_token}", json={"content": "from CI"})
        assert executed.status_code < 300, executed.text
    answer_token = sign(
        link_key(stack.env["SAYSO_SECRET_KEY"]),
        AnswerLink(
            "ntf_" + secrets.token_hex(8), message["id"], owner.user_id, "yes", int(time.time()) + 600
        ),
    )
    assert (await owner.human.get(f"/a/{answer_token}")).status_code < 500
    query_secret = "qs_" + secrets.token_urlsafe(24)
    minted = await owner.agent.post("/api/v1/events/tickets", json={"channelIds": [agent]})
    assert minted.status_code == 201, minted.text
    ticket = minted.json()["ticket"]

    path_tokens = {
        "upload URL": upload_token,
        "download URL": download_token,
        "inbound token URL": inbound_token,
        "answer link": answer_token,
    }
    secrets_by_kind = {
        "API key": owner.api_key,
        "JWT": owner.token,
        "query token": query_secret,
        "stream ticket": ticket,
        **path_tokens,
    }

    # Streams left mid-stream, with the key and with the JWT: the edge logs each request's headers.
    edge_log = stack.procs["caddy"].log_path
    aborted_before = edge_log.read_text().count(ABORTED)
    await _drop_a_stream(stack, owner, agent, **{"x-api-key": owner.api_key})
    await _drop_a_stream(stack, owner, agent, Authorization=f"Bearer {owner.token}")
    # A browser's EventSource: the ticket in the query string.
    await _drop_a_stream(stack, owner, agent, ticket)

    async def both_aborts_logged() -> bool:
        return edge_log.read_text().count(ABORTED) >= aborted_before + 3

    await eventually(both_aborts_logged, what="the edge to log the three dropped streams")

    # An edge whose API is down: every request is an upstream error, logged with URI and headers.
    down_logs = tmp_path / "down-edge"
    down = start_caddy(down_logs, free_port(), free_port(), stack.procs["realtime"].port)
    try:
        origin = f"http://127.0.0.1:{down.port}"
        async with httpx.AsyncClient(base_url=origin, timeout=60) as edge:
            failed = await asyncio.gather(
                edge.get("/api/v1/agents", headers={"x-api-key": owner.api_key}),
                edge.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {owner.token}"}),
                edge.get(f"/api/v1/files/signed/{path_tokens['download URL']}"),
                edge.put(f"/api/v1/files/upload/{path_tokens['upload URL']}", content=b"x"),
                edge.post(f"/api/webhooks/execute/{path_tokens['inbound token URL']}", json={"content": "x"}),
                edge.get(f"/a/{answer_token}", headers={"Referer": f"{stack.url}/a/{answer_token}"}),
                edge.get("/api/v1/messages", params={"token": query_secret, "ticket": query_secret}),
            )
        assert {r.status_code for r in failed} <= {502, 503}, [r.status_code for r in failed]

        async def errors_logged() -> bool:
            return down.log_path.read_text().count('"uri"') >= len(failed)

        await eventually(errors_logged, what="the down edge to log every upstream error")
    finally:
        down.stop()

    files = _log_files(infra.log_dir, down_logs)
    assert {p.name for p in files} >= {"caddy.log", "api.log", "realtime.log", "mongod.log"}
    texts = {path: path.read_text(errors="replace") for path in files}
    leaks = {
        f"{path.name}: {kind}"
        for path, text in texts.items()
        for kind, value in secrets_by_kind.items()
        if value in text
    }
    assert not leaks, sorted(leaks)
    modes = {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in files}
    assert set(modes.values()) == {"0o600"}, modes
    # What was filtered is still there to read: the routes, with the credentials taken out.
    assert "/api/v1/files/signed/REDACTED" in down.log_path.read_text()
    assert '"X-Api-Key":"REDACTED"' in edge_log.read_text()
    for directory in (infra.log_dir, down_logs):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
