"""CORS: one origin rule (SAYSO_CORS_ORIGINS, sayso_service.cors) for the REST API, the SSE stream
and the long-poll, as for Socket.IO. A listed origin gets its preflight and its origin echoed on
every answer, streams included; an unlisted one gets no Access-Control-Allow-Origin; nothing is
ever answered with "*" or with Access-Control-Allow-Credentials (credentials are headers, never
cookies). Through the edge too: Caddy passes OPTIONS through."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from sayso_devstack.processes import Proc
from tests.conftest import Infra
from tests.support.private import beside
from tests.support.stack import Owner, RunningStack

LISTED = "http://127.0.0.1:5173"
UNLISTED = "http://evil.example"


@pytest.fixture(scope="module")
def listed(infra: Infra, stack: RunningStack) -> Iterator[tuple[str, str]]:
    """An API and a realtime gateway beside the stack's, allowing LISTED."""
    origins = json.dumps([LISTED])
    with (
        beside(stack, infra, "api", "api-cors", SAYSO_CORS_ORIGINS=origins) as api,
        beside(stack, infra, "realtime", "realtime-cors", SAYSO_CORS_ORIGINS=origins) as realtime,
    ):
        yield _url(api), _url(realtime)


@pytest.fixture(scope="module")
def any_origin(infra: Infra, stack: RunningStack) -> Iterator[str]:
    with beside(stack, infra, "realtime", "realtime-cors-any", SAYSO_CORS_ORIGINS='["*"]') as realtime:
        yield _url(realtime)


def _url(proc: Proc) -> str:
    return f"http://127.0.0.1:{proc.port}"


async def _preflight(url: str, path: str, origin: str, method: str, headers: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.options(
            f"{url}{path}",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": headers,
            },
        )


async def _get(url: str, headers: dict[str, str], params: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(url, headers=headers, params=params)


def _vary(headers: httpx.Headers) -> set[str]:
    return {v.strip().lower() for v in headers.get("vary", "").split(",")}


def _allowed_preflight(resp: httpx.Response, origin: str, method: str, headers: str) -> None:
    assert resp.status_code == 204, resp.text
    assert resp.headers["access-control-allow-origin"] == origin
    assert method in resp.headers["access-control-allow-methods"].split(", ")
    allowed = set(resp.headers["access-control-allow-headers"].split(", "))
    assert {h.strip() for h in headers.split(",")} <= allowed
    assert 0 < int(resp.headers["access-control-max-age"]) <= 7200
    assert "origin" in _vary(resp.headers)
    assert "access-control-allow-credentials" not in resp.headers


async def _open_stream(url: str, headers: dict[str, str]) -> httpx.Headers:
    """The answer's headers of an SSE stream, which is then closed."""
    async with (
        httpx.AsyncClient(timeout=15) as client,
        client.stream("GET", f"{url}/api/v1/events", headers=headers) as resp,
    ):
        assert resp.status_code == 200, await resp.aread()
        assert resp.headers["content-type"].startswith("text/event-stream")
        return resp.headers


async def test_listed_origin_gets_preflight_and_headers_on_api_sse_and_long_poll(
    listed: tuple[str, str], owner: Owner
) -> None:
    api, realtime = listed
    sent = "authorization, content-type, idempotency-key"
    preflight = await _preflight(api, "/api/v1/messages", LISTED, "POST", sent)
    _allowed_preflight(preflight, LISTED, "POST", sent)
    got = await _get(f"{api}/api/v1/agents", {"Origin": LISTED, "x-api-key": owner.api_key})
    assert got.status_code == 200, got.text
    assert got.headers["access-control-allow-origin"] == LISTED
    assert "origin" in _vary(got.headers)
    exposed = got.headers["access-control-expose-headers"].split(", ")
    assert {"Retry-After", "Location"} <= set(exposed)
    assert "access-control-allow-credentials" not in got.headers

    resume = "x-api-key, last-event-id"
    preflight = await _preflight(realtime, "/api/v1/events", LISTED, "GET", resume)
    _allowed_preflight(preflight, LISTED, "GET", resume)
    stream = await _open_stream(realtime, {"Origin": LISTED, "x-api-key": owner.api_key})
    assert stream["access-control-allow-origin"] == LISTED
    assert "origin" in _vary(stream)

    wait = "/api/v1/reviews/msg_nothing/wait"
    preflight = await _preflight(realtime, wait, LISTED, "GET", "authorization")
    _allowed_preflight(preflight, LISTED, "GET", "authorization")
    polled = await _get(f"{realtime}{wait}", {"Origin": LISTED, "x-api-key": owner.api_key}, {"timeout": "1"})
    assert polled.status_code == 404, polled.text
    assert polled.headers["access-control-allow-origin"] == LISTED  # a script may read the refusal


async def test_unlisted_origin_gets_no_allow_origin(listed: tuple[str, str], owner: Owner) -> None:
    api, realtime = listed
    for url, path in ((api, "/api/v1/messages"), (realtime, "/api/v1/events")):
        refused = await _preflight(url, path, UNLISTED, "POST", "authorization")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "origin_not_allowed"
        assert "SAYSO_CORS_ORIGINS" in refused.json()["error"]["message"]
        assert not any(h.startswith("access-control-allow") for h in refused.headers)
    # The answer itself is not withheld (the browser withholds it from the script), but it carries
    # no Access-Control-Allow-Origin, and says it varies by Origin.
    got = await _get(f"{api}/api/v1/agents", {"Origin": UNLISTED, "x-api-key": owner.api_key})
    assert got.status_code == 200
    assert "access-control-allow-origin" not in got.headers
    assert "origin" in _vary(got.headers)
    stream = await _open_stream(realtime, {"Origin": UNLISTED, "x-api-key": owner.api_key})
    assert "access-control-allow-origin" not in stream
    # A method no client uses cross-origin is refused by name.
    odd = await _preflight(api, "/api/v1/messages", LISTED, "TRACE", "authorization")
    assert odd.status_code == 403
    assert odd.json()["error"]["code"] == "method_not_allowed"


async def test_any_origin_is_answered_with_the_origin_never_a_wildcard(any_origin: str, owner: Owner) -> None:
    sent = "authorization"
    preflight = await _preflight(any_origin, "/api/v1/events", UNLISTED, "GET", sent)
    _allowed_preflight(preflight, UNLISTED, "GET", sent)
    stream = await _open_stream(any_origin, {"Origin": UNLISTED, "Authorization": f"Bearer {owner.token}"})
    assert stream["access-control-allow-origin"] == UNLISTED
    assert "access-control-allow-credentials" not in stream


async def test_edge_passes_preflights_and_the_default_allows_only_the_edge_origin(
    stack: RunningStack, owner: Owner
) -> None:
    sent = "authorization, content-type"
    # The default list names the local edge's own origin (make run's), nothing else.
    for path, method in (("/api/v1/messages", "POST"), ("/api/v1/events", "GET")):
        resp = await _preflight(stack.url, path, "http://localhost:8000", method, sent)
        _allowed_preflight(resp, "http://localhost:8000", method, sent)
        assert (await _preflight(stack.url, path, UNLISTED, method, sent)).status_code == 403
    # The page's own origin (the edge's Host) is always allowed.
    own = await _get(f"{stack.url}/api/v1/agents", {"Origin": stack.url, "x-api-key": owner.api_key})
    assert own.headers["access-control-allow-origin"] == stack.url
