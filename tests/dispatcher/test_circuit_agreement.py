"""The operator page's circuit view and the dispatcher's breakers agree (issue #28): both count
an attempt with ``sayso_common.attempts.circuit_result``. A receiver refusing every delivery
with 400 is up: its circuit stays closed in the dispatcher and on the page (the page used to
show it open). One answering 503 to every delivery opens in both. The real stack: the API and
the dispatcher as processes, real receivers; the dispatcher's breaker is read from its log,
where it says which lane's circuit opened."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.support.receiver import Received, Receiver
from tests.support.stack import Owner, RunningStack, eventually

DELIVERIES = 10  # the breaker's default min_calls: enough to judge, all of them failing


def _answer(status: int) -> Any:
    async def handler(_: web.Request, __: Received) -> web.StreamResponse:
        return web.Response(status=status)

    return handler


def _opened_lanes(stack: RunningStack) -> set[str]:
    lanes = set()
    for line in stack.procs["dispatcher"].log_path.read_text(errors="replace").splitlines():
        if '"circuit opened"' in line:
            lanes.add(json.loads(line)["lane"])
    return lanes


async def test_a_receiver_answering_400_is_closed_on_the_operator_page_as_in_the_dispatcher(
    stack: RunningStack, owner: Owner
) -> None:
    refusing, down = await Receiver().start(), await Receiver().start()
    refusing.routes["/refuse"] = _answer(400)
    down.routes["/down"] = _answer(503)
    try:
        # One long retry: the 503s' retries come after the test, so each host gets exactly ten.
        agents = {
            "/refuse": await owner.create_agent(webhookUrl=refusing.url("/refuse")),
            "/down": await owner.create_agent(webhookUrl=down.url("/down"), webhookRetrySchedule=[3600]),
        }
        approval = {"type": "approval", "payload": {}}
        for agent in agents.values():
            for _ in range(DELIVERIES):
                msg = await owner.post_message(agent["id"], review=approval)
                assert (await owner.respond(msg["id"], {"selectedOption": "approve"})).status_code == 200
        await refusing.wait_for("/refuse", count=DELIVERIES)
        await down.wait_for("/down", count=DELIVERIES)
        refusing_host, down_host = f"127.0.0.1:{refusing.port}", f"127.0.0.1:{down.port}"

        async def both_recorded() -> dict[str, Any] | None:
            resp = await owner.human.get("/api/v1/stats/overview")
            assert resp.status_code == 200, resp.text
            data: dict[str, Any] = resp.json()
            counted = {h["host"]: h["attempts"] for h in data["hosts"]}
            return data if counted == {refusing_host: DELIVERIES, down_host: DELIVERIES} else None

        page = await eventually(both_recorded, timeout=20, what="ten attempts to each host")
        refusing_lane, down_lane = f"{owner.user_id}|{refusing_host}", f"{owner.user_id}|{down_host}"

        async def down_opened() -> set[str] | None:
            return _opened_lanes(stack) & {down_lane} or None

        # The dispatcher opened the 503 host's circuit, never the 400 one's ...
        await eventually(down_opened, timeout=10, what="the dispatcher's log line for the 503 host")
        assert refusing_lane not in _opened_lanes(stack)
        # ... and the page says the same of both.
        hosts = {h["host"]: h for h in page["hosts"]}
        assert hosts[refusing_host] == {
            "host": refusing_host, "attempts": 10, "failures": 10, "circuitFailures": 0, "open": False
        }  # fmt: skip
        assert hosts[down_host] == {
            "host": down_host, "attempts": 10, "failures": 10, "circuitFailures": 10, "open": True
        }  # fmt: skip
        assert page["openCircuits"] == 1
    finally:
        await refusing.stop()
        await down.stop()
