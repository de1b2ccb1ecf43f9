"""CORS as a browser applies it: a page on another loopback origin calls the API and opens the SSE
stream with fetch() (an API key header, so Chromium sends a preflight first), against an API and
a realtime gateway that list the page's origin in SAYSO_CORS_ORIGINS. The same page under another
name (localhost instead of 127.0.0.1) is another, unlisted origin, and the browser refuses it.

The page comes from a real loopback server: a page Playwright answers itself counts as a public
one, and Chromium's local-network checks would refuse its calls to loopback whatever CORS says."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sayso_devstack.processes import free_port
from tests.conftest import Infra
from tests.support.private import beside
from tests.support.stack import Owner, RunningStack
from tests.web.conftest import Tab

PAGE = b"<!doctype html><html lang=en><title>another origin</title></html>"

# Runs in the page: the agents list and the first bytes of the event stream, or why it failed.
CALLS = """async ([api, realtime, key]) => {
  const headers = { "x-api-key": key };
  try {
    const agents = await fetch(`${api}/api/v1/agents`, { headers });
    const body = await agents.json();
    const events = await fetch(`${realtime}/api/v1/events`, { headers });
    const reader = events.body.getReader();
    const first = await reader.read();
    await reader.cancel();
    return {
      agents: agents.status,
      names: body.map(a => a.name),
      events: events.status,
      type: events.headers.get("content-type"),
      streamed: !first.done,
    };
  } catch (err) {
    return { refused: String(err) };
  }
}"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def services(infra: Infra, stack: RunningStack, page_port: int) -> Iterator[tuple[str, str]]:
    """An API and a realtime gateway listing the page's origin, http://127.0.0.1:<page_port>."""
    origins = json.dumps([f"http://127.0.0.1:{page_port}"])
    with (
        beside(stack, infra, "api", "api-cors-web", SAYSO_CORS_ORIGINS=origins) as api,
        beside(stack, infra, "realtime", "realtime-cors-web", SAYSO_CORS_ORIGINS=origins) as realtime,
    ):
        yield f"http://127.0.0.1:{api.port}", f"http://127.0.0.1:{realtime.port}"


async def _calls(tab: Tab, page: str, services: tuple[str, str], owner: Owner) -> dict[str, Any]:
    await tab.page.goto(page)
    got: dict[str, Any] = await tab.page.evaluate(CALLS, [*services, owner.api_key])
    return got


async def test_a_page_on_a_listed_origin_reads_the_api_and_the_stream(
    tab: Tab, services: tuple[str, str], page_port: int, owner: Owner
) -> None:
    await owner.create_agent(name="seen-cross-origin")
    got = await _calls(tab, f"http://127.0.0.1:{page_port}/", services, owner)
    assert got.get("agents") == 200, got
    assert "seen-cross-origin" in got["names"]
    assert got["events"] == 200
    assert got["type"].startswith("text/event-stream")
    assert got["streamed"]


async def test_a_page_on_an_unlisted_origin_is_refused_by_the_browser(
    tab: Tab, services: tuple[str, str], page_port: int, owner: Owner
) -> None:
    refusals: list[str] = []
    tab.page.on("console", lambda m: refusals.append(m.text))
    got = await _calls(tab, f"http://localhost:{page_port}/", services, owner)
    assert "refused" in got, got
    # Refused for CORS (the preflight), not for anything else.
    assert any("blocked by CORS policy" in r and "preflight" in r for r in refusals), refusals
