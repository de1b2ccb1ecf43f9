"""The example dashboard (examples/dashboard, issue #33 item 4) in Chromium: the static page served
from another loopback origin, given a scoped token, shows an account's pending reviews, then
follows them live over native EventSource with stream tickets (answers and webhook deliveries
too), through an edge whose API and gateway list the page's origin in SAYSO_CORS_ORIGINS.

The page comes from a real loopback server (see test_cors_browser.py for why)."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from sayso_devstack.processes import free_port, start_caddy
from tests.conftest import Infra
from tests.support.private import beside
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack
from tests.web.conftest import Tab

pytestmark = pytest.mark.slow

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "dashboard"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_port() -> Iterator[int]:
    handler = functools.partial(_Quiet, directory=str(DASHBOARD))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def edge(
    infra: Infra, stack: RunningStack, page_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One origin (as `make run` has) whose API and gateway list the page's origin."""
    origins = json.dumps([f"http://127.0.0.1:{page_port}"])
    with (
        beside(stack, infra, "api", "api-dashboard", SAYSO_CORS_ORIGINS=origins) as api,
        beside(stack, infra, "realtime", "realtime-dashboard", SAYSO_CORS_ORIGINS=origins) as realtime,
    ):
        proc = start_caddy(tmp_path_factory.mktemp("dashboard-edge"), free_port(), api.port, realtime.port)
        try:
            yield f"http://127.0.0.1:{proc.port}"
        finally:
            proc.stop()


async def test_the_dashboard_follows_reviews_answers_and_deliveries_live(
    tab: Tab, edge: str, page_port: int, owner: Owner, receiver: Receiver
) -> None:
    agent = (await owner.create_agent(name="dashboard-bot"))["id"]
    other = (await owner.create_agent(name="not-on-the-wall"))["id"]
    before = await owner.post_message(
        agent, text="Already waiting", review={"type": "approval", "payload": {}}
    )
    created = await owner.human.post(
        "/api/v1/tokens", json={"channelIds": [agent], "expiresInSeconds": 3600, "name": "ops wall"}
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    streams: list[str] = []
    tab.page.on("request", lambda r: streams.append(r.url) if "/api/v1/events?" in r.url else None)

    await tab.page.goto(f"http://127.0.0.1:{page_port}/index.html#api={edge}&token={token}")
    await expect(tab.page.locator("#state")).to_have_attribute("data-state", "live")
    await expect(tab.page.locator(f"#pending-{before['id']}")).to_contain_text("Already waiting")

    # Live: a new review, then its answer and the webhook delivery of that answer.
    live = await owner.post_message(
        agent,
        text="Deploy v2?",
        review={"type": "approval", "payload": {}},
        webhookUrl=receiver.url("/dashboard"),
    )
    hidden = await owner.post_message(
        other, text="Not for the wall", review={"type": "approval", "payload": {}}
    )
    await expect(tab.page.locator(f"#pending-{live['id']}")).to_contain_text("Deploy v2?")
    answered = await owner.respond(live["id"], {"selectedOption": "approve"})
    assert answered.status_code == 200, answered.text
    await expect(tab.page.locator(f"#pending-{live['id']}")).to_have_count(0)
    await expect(tab.page.locator(f"#answer-{live['id']}")).to_contain_text("approve")
    await expect(tab.page.locator("#deliveries li").first).to_contain_text("delivered")
    assert await tab.page.locator(f"#pending-{hidden['id']}").count() == 0

    # Every connection opened with a ticket in the URL, never with the token itself.
    assert streams, "no stream was opened"
    assert all("ticket=tk_" in url and token not in url for url in streams), streams
