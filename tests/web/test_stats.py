"""GET /api/v1/stats/*: the operator numbers. Table tests of the pure pieces, then the
endpoints against real deliveries to real receivers (owner-scoped)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from aiohttp import web

from sayso_api.settings import ApiSettings
from sayso_api.stats import (
    AttemptRow,
    Backlog,
    Bucket,
    Tried,
    age_seconds,
    bucket_seconds,
    endpoint_health,
    host_health,
    overview,
    rate,
    series,
)
from sayso_common.clock import utcnow
from sayso_common.documents import EndpointDoc
from sayso_common.settings import CircuitPolicy
from sayso_dispatcher.settings import DispatcherSettings
from tests.support.receiver import Received, Receiver
from tests.support.stack import Owner, RunningStack, eventually
from tests.web.conftest import Tab

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "expected"), [(300, 10), (60, 2), (3600, 120), (301, 11), (1, 1), (29, 1)]
)
def test_bucket_seconds(window: int, expected: int) -> None:
    assert bucket_seconds(window) == expected


@pytest.mark.parametrize(
    ("rows", "delivered", "failed"),
    [
        ([], [0, 0, 0], [0, 0, 0]),
        ([AttemptRow(0, True, 2), AttemptRow(0, False, 1), AttemptRow(2, True, 5)], [2, 0, 5], [1, 0, 0]),
        # The instant the window ends belongs to the last bucket; before the window, nowhere.
        ([AttemptRow(3, True, 1), AttemptRow(-1, True, 9)], [0, 0, 1], [0, 0, 0]),
        ([AttemptRow(1, False, 3), AttemptRow(1, False, 4)], [0, 0, 0], [0, 7, 0]),
    ],
)
def test_series_fills_every_bucket(rows: list[AttemptRow], delivered: list[int], failed: list[int]) -> None:
    out = series(rows, T0, 30, 10)
    assert [b.at for b in out] == [T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)]
    assert [b.delivered for b in out] == delivered
    assert [b.failed for b in out] == failed


def _buckets(delivered: list[int]) -> list[Bucket]:
    return [Bucket(at=T0, delivered=d, failed=99) for d in delivered]


@pytest.mark.parametrize(
    ("delivered", "size", "expected"),
    [
        ([], 10, 0.0),
        ([0] * 30, 10, 0.0),
        ([100] * 24 + [10] * 6, 10, 1.0),  # only the last 60 s count; failures never
        ([60], 60, 1.0),
        ([5, 5], 120, 0.042),  # a bucket longer than the span: rate over that bucket
        ([1, 2, 3], 10, 0.2),  # fewer buckets than the span: over what there is
    ],
)
def test_rate(delivered: list[int], size: int, expected: float) -> None:
    assert rate(_buckets(delivered), size) == expected


OK = Tried(200, None)
BAD = Tried(503, "http_status")
REFUSED = Tried(400, "http_status")  # the receiver is up and says no: not a breaker failure
TIMEOUT = Tried(None, "timeout")
SSRF = Tried(None, "ssrf_refused")  # never reached the host: not counted at all


@pytest.mark.parametrize(
    ("outcomes", "is_open", "attempts", "failures", "circuit_failures"),
    [
        ([BAD] * 10, True, 10, 10, 10),
        ([BAD] * 9, False, 9, 9, 9),  # too few calls to judge
        ([OK] + [BAD] * 15, False, 16, 15, 15),  # the latest succeeded: closed again
        ([BAD] * 8 + [OK] * 2, True, 10, 8, 8),  # 80 % is enough
        ([BAD] * 7 + [OK] * 3, False, 10, 7, 7),
        ([BAD] * 20 + [OK] * 50, True, 20, 20, 20),  # only the breaker window counts
        ([BAD, OK] * 20, False, 20, 10, 10),
        ([], False, 0, 0, 0),
        # The disagreement of issue #28: every delivery refused with 400 failed, and the page
        # showed an open circuit the dispatcher never opened.
        ([REFUSED] * 20, False, 20, 20, 0),
        ([BAD] + [REFUSED] * 19, False, 20, 20, 1),
        ([TIMEOUT] * 10, True, 10, 10, 10),
        ([SSRF] * 30, False, 0, 0, 0),
        ([BAD] + [SSRF] * 30 + [BAD] * 9, True, 10, 10, 10),  # the window skips what is not counted
        ([Tried(408, "http_status")] * 5 + [Tried(429, "http_status")] * 5, True, 10, 10, 10),
        ([Tried(302, "redirect_not_followed")] * 10, False, 10, 10, 0),
    ],
)
def test_host_health(
    outcomes: list[Tried], is_open: bool, attempts: int, failures: int, circuit_failures: int
) -> None:
    [health] = host_health({"h:80": outcomes}, CircuitPolicy())
    got = (health.open, health.attempts, health.failures, health.circuit_failures)
    assert got == (is_open, attempts, failures, circuit_failures)


def test_host_health_lists_open_then_most_failing() -> None:
    hosts = host_health(
        {"a:80": [OK] * 5, "b:80": [BAD, OK, BAD], "c:80": [BAD] * 12, "d:80": [BAD] * 3}, CircuitPolicy()
    )
    assert [h.host for h in hosts] == ["c:80", "d:80", "b:80", "a:80"]
    assert hosts[0].open
    assert not any(h.open for h in hosts[1:])
    assert len(host_health({f"h{i}:80": [BAD] for i in range(50)}, CircuitPolicy())) == 20


def test_host_health_follows_the_configured_breaker_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The operator page once kept its own copy of the default policy: with the dispatchers set to
    # open after 4 calls it still waited for 10. Both now read SAYSO_DISPATCHER_CIRCUIT_*.
    monkeypatch.setenv("SAYSO_DISPATCHER_CIRCUIT_MIN_CALLS", "4")
    monkeypatch.setenv("SAYSO_DISPATCHER_CIRCUIT_WINDOW", "6")
    api = ApiSettings(secret_key="k" * 32)
    dispatcher = DispatcherSettings(secret_key="k" * 32)
    assert api.circuit_policy() == dispatcher.circuit_policy()
    [health] = host_health({"h:80": [BAD] * 4}, api.circuit_policy())
    assert health.open
    [health] = host_health({"h:80": [BAD] * 4 + [OK] * 10}, api.circuit_policy())
    assert (health.attempts, health.failures) == (6, 4)


def _attempts(n: int, status: int | None, kind: str | None) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {"at": now - timedelta(seconds=n - i), "status_code": status, "error_kind": kind} for i in range(n)
    ]


async def test_overview_reads_recorded_attempts_with_the_shared_rule(scratch: Any) -> None:
    """The aggregation on real MongoDB: which attempts reach the breaker's window (SSRF
    refusals never do; timeouts do), and what delivered (2xx only), by sayso_common.attempts."""
    await scratch["agents"].insert_one({"_id": "agt_s", "owner_id": "usr_s"})
    recorded = {
        "ssrf.example:443": _attempts(12, None, "ssrf_refused"),
        "slow.example:443": _attempts(10, None, "timeout"),
        "refusing.example:443": _attempts(10, 400, "http_status"),
        # The breaker's window is the latest ten it counts: the SSRF refusals in between skipped.
        "mixed.example:443": _attempts(10, 503, "http_status") + _attempts(5, None, "ssrf_refused"),
        "fine.example:443": _attempts(3, 200, None),
    }
    await scratch["deliveries"].insert_many(
        [
            {"_id": f"dlv_{host}", "channel_id": "agt_s", "owner_id": "usr_s", "host": host,
             "state": "failed", "attempt_count": len(tried), "attempts": tried, "updated_at": utcnow()}
            for host, tried in recorded.items()
        ]
    )  # fmt: skip
    data = await overview(scratch, "usr_s", CircuitPolicy())
    hosts = {h.host: (h.attempts, h.failures, h.circuit_failures, h.open) for h in data.hosts}
    assert hosts == {
        "slow.example:443": (10, 10, 10, True),
        "mixed.example:443": (10, 10, 10, True),
        "refusing.example:443": (10, 10, 0, False),
        "fine.example:443": (3, 0, 0, False),
    }
    assert data.open_circuits == 2
    assert (data.attempts, data.delivered, data.failed_attempts) == (50, 3, 47)


def _endpoint(endpoint_id: str, **fields: Any) -> EndpointDoc:
    # Only the fields the operator page reads.
    return cast(
        EndpointDoc,
        {"_id": endpoint_id, "channel_id": "agt_s", "url": f"https://{endpoint_id}.example/h", **fields},
    )


@pytest.mark.parametrize(
    ("outcomes", "backlog", "expected"),
    [
        # (pending, failed, attempts, circuit failures, open)
        ([], Backlog(), (0, 0, 0, 0, False)),
        ([BAD] * 10, Backlog(pending=10), (10, 0, 10, 10, True)),
        ([OK] + [BAD] * 15, Backlog(pending=3), (3, 0, 16, 15, False)),  # the latest succeeded
        ([REFUSED] * 20, Backlog(failed=20), (0, 20, 20, 0, False)),  # up and refusing: closed
        ([SSRF] * 30, Backlog(failed=30), (0, 30, 0, 0, False)),  # never reached: not counted
        ([BAD] * 30, Backlog(pending=1, failed=2), (1, 2, 20, 20, True)),  # the breaker's window
    ],
)
def test_endpoint_health_uses_the_breaker_rule(
    outcomes: list[Tried], backlog: Backlog, expected: tuple[int, int, int, int, bool]
) -> None:
    [row] = endpoint_health([_endpoint("ep_a")], {"ep_a": backlog}, {"ep_a": outcomes}, CircuitPolicy())
    assert (row.pending, row.failed, row.attempts, row.circuit_failures, row.open) == expected


def test_endpoint_health_lists_open_then_disabled_then_most_failed() -> None:
    endpoints = [
        _endpoint("ep_fine", description="Fine"),
        _endpoint("ep_off", disabled=True, disabled_reason="410 Gone from the receiver"),
        _endpoint("ep_failing", channel_id=None),
        _endpoint("ep_down"),
    ]
    backlog = {"ep_failing": Backlog(failed=4), "ep_down": Backlog(pending=7)}
    rows = endpoint_health(endpoints, backlog, {"ep_down": [TIMEOUT] * 10}, CircuitPolicy())
    assert [r.id for r in rows] == ["ep_down", "ep_off", "ep_failing", "ep_fine"]
    by_id = {r.id: r for r in rows}
    assert by_id["ep_off"].disabled_reason == "410 Gone from the receiver"
    assert by_id["ep_failing"].channel_id is None
    assert by_id["ep_fine"].description == "Fine"


async def test_overview_counts_each_endpoints_deliveries(scratch: Any) -> None:
    """Pending deliveries count however old they are; given-up ones only inside the window; the
    breaker reads the endpoint's own attempts, not its host's."""
    now = utcnow()
    await scratch["agents"].insert_one({"_id": "agt_s", "owner_id": "usr_s"})
    await scratch["endpoints"].insert_many(
        [
            {"_id": "ep_down", "owner_id": "usr_s", "channel_id": "agt_s", "url": "https://h.example/a",
             "created_at": now},
            {"_id": "ep_same_host", "owner_id": "usr_s", "channel_id": None, "url": "https://h.example/b",
             "created_at": now, "disabled": True, "disabled_reason": "disabled by owner"},
            {"_id": "ep_other_owner", "owner_id": "usr_t", "channel_id": None, "url": "https://h.example/c",
             "created_at": now},
        ]
    )  # fmt: skip
    old = now - timedelta(hours=2)

    def delivery(i: int, endpoint_id: str, state: str, updated: datetime, tried: list[Any]) -> dict[str, Any]:
        return {"_id": f"dlv_{endpoint_id}_{i}", "channel_id": "agt_s", "owner_id": "usr_s",
                "endpoint_id": endpoint_id, "host": "h.example:443", "state": state,
                "attempt_count": len(tried), "attempts": tried, "updated_at": updated}  # fmt: skip

    await scratch["deliveries"].insert_many(
        [delivery(i, "ep_down", "pending", now, _attempts(1, 503, "http_status")) for i in range(10)]
        + [delivery(10 + i, "ep_down", "pending", old, []) for i in range(2)]  # waiting long
        + [delivery(20 + i, "ep_down", "failed", old, []) for i in range(3)]  # gave up before
        + [delivery(30, "ep_same_host", "failed", now, _attempts(1, 200, None))]
        + [delivery(40, "ep_other_owner", "failed", now, [])]
    )
    data = await overview(scratch, "usr_s", CircuitPolicy())
    rows = {e.id: (e.pending, e.failed, e.attempts, e.open, e.disabled) for e in data.endpoints}
    assert rows == {
        "ep_down": (12, 0, 10, True, False),
        "ep_same_host": (0, 1, 1, False, True),
    }


@pytest.mark.parametrize(
    ("oldest", "expected"),
    [
        (None, None),
        (T0 - timedelta(seconds=90), 90.0),
        (T0 + timedelta(seconds=5), 0.0),  # clock skew never gives a negative age
        (datetime(2025, 12, 31, 23, 59, 0), 60.0),  # naive = UTC, as MongoDB returns it
    ],
)
def test_age_seconds(oldest: datetime | None, expected: float | None) -> None:
    assert age_seconds(oldest, T0) == expected


async def _overview(client: Any) -> dict[str, Any]:
    resp = await client.get("/api/v1/stats/overview")
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def _refuse(_: web.Request, __: Received) -> web.StreamResponse:
    return web.Response(status=400)


@pytest.fixture
async def failing() -> AsyncIterator[Receiver]:
    """A receiver on its own host:port (so its own circuit) that refuses everything at /down."""
    rec = await Receiver().start()
    rec.routes["/down"] = _refuse
    yield rec
    await rec.stop()


async def test_overview_counts_real_deliveries(
    stack: RunningStack, owner: Owner, receiver: Receiver, failing: Receiver
) -> None:
    empty = await _overview(owner.human)
    assert (empty["attempts"], empty["openCircuits"], empty["pendingReviews"]["total"]) == (0, 0, 0)
    assert empty["pendingReviews"]["oldestAgeSeconds"] is None
    assert len(empty["series"]) == 30
    assert empty["bucketSeconds"] == 10

    good = await owner.create_agent(webhookUrl=receiver.url("/up"))
    bad = await owner.create_agent(webhookUrl=failing.url("/down"))
    approval = {"type": "approval", "payload": {}}
    for _ in range(2):
        msg = await owner.post_message(good["id"], review=approval)
        assert (await owner.respond(msg["id"], {"selectedOption": "approve"})).status_code == 200
    for _ in range(10):
        msg = await owner.post_message(bad["id"], review=approval)
        assert (await owner.respond(msg["id"], {"selectedOption": "reject"})).status_code == 200
    waiting = [await owner.post_message(good["id"], review=approval) for _ in range(2)]
    await receiver.wait_for("/up", count=2)
    await failing.wait_for("/down", count=10)

    async def settled() -> dict[str, Any] | None:
        data = await _overview(owner.human)
        return data if data["delivered"] == 2 and data["failedDeliveries"] == 10 else None

    data = await eventually(settled, timeout=20, what="2 delivered, 10 failed")
    assert data["failedAttempts"] == 10
    assert data["attempts"] == 12
    assert sum(b["delivered"] for b in data["series"]) == 2
    assert sum(b["failed"] for b in data["series"]) == 10
    assert data["deliveriesPerSecond"] == pytest.approx(2 / 60, abs=0.001)
    # Refused with 400: failed deliveries, but a receiver that is up; its circuit stays closed
    # here as in the dispatcher (tests/dispatcher/test_circuit_agreement.py).
    assert data["openCircuits"] == 0
    assert data["hosts"] == [
        {"host": f"127.0.0.1:{failing.port}", "attempts": 10, "failures": 10, "circuitFailures": 0, "open": False},
        {"host": f"127.0.0.1:{receiver.port}", "attempts": 2, "failures": 0, "circuitFailures": 0, "open": False},
    ]  # fmt: skip
    pending = data["pendingReviews"]
    assert pending["total"] == 2
    assert pending["byChannel"] == {good["id"]: 2}
    assert datetime.fromisoformat(pending["oldestAt"]) == datetime.fromisoformat(waiting[0]["createdAt"])
    assert pending["oldestAgeSeconds"] >= 0

    same = await owner.agent.get("/api/v1/stats/pending")  # an API key works too
    assert same.status_code == 200
    assert same.json()["byChannel"] == {good["id"]: 2}

    # Another owner sees none of it.
    stranger = await stack.new_owner()
    try:
        theirs = await _overview(stranger.human)
        assert (theirs["attempts"], theirs["pendingReviews"]["total"], theirs["hosts"]) == (0, 0, [])
    finally:
        await stranger.aclose()


@pytest.mark.parametrize("window", ["10", "3601", "x"])
async def test_overview_window_is_validated(owner: Owner, window: str) -> None:
    resp = await owner.human.get("/api/v1/stats/overview", params={"window": window})
    assert resp.status_code == 422
    assert resp.json()["error"]["field"] == "window"


async def test_stats_need_credentials(stack: RunningStack) -> None:
    async with stack.client() as anonymous:
        assert (await anonymous.get("/api/v1/stats/overview")).status_code == 401
        assert (await anonymous.get("/api/v1/stats/pending")).status_code == 401


AXIS = """async (peaks) => {
  const { axisTicks } = await import("/static/ops.js");
  return peaks.map((p) => { const a = axisTicks(p); return [a.top, a.ticks.map((t) => t.label)]; });
}"""


@pytest.mark.parametrize(
    ("peak", "top", "labels"),
    [
        (0, 0.1, ["0.00", "0.05", "0.10"]),  # was 0.0, 0.1, 0.1
        (0.03, 0.1, ["0.00", "0.05", "0.10"]),
        (0.1, 0.1, ["0.00", "0.05", "0.10"]),
        (0.17, 0.2, ["0.0", "0.1", "0.2"]),
        (0.3, 0.5, ["0.00", "0.25", "0.50"]),
        (2.2, 2.5, ["0.00", "1.25", "2.50"]),
        (7, 10, ["0", "5", "10"]),
        (33, 50, ["0", "25", "50"]),
        (1234, 2000, ["0", "1000", "2000"]),
    ],
)
async def test_chart_axis_labels_are_distinct(tab: Tab, peak: float, top: float, labels: list[str]) -> None:
    """The operator chart's y-axis: a round top at or above the peak rate, and tick labels with
    enough decimals to tell them apart (static/ops.js, in Chromium)."""
    if tab.page.url == "about:blank":
        await tab.page.goto("/")
    [(got_top, got_labels)] = await tab.page.evaluate(AXIS, [peak])
    assert (got_top, got_labels) == (pytest.approx(top), labels)
    assert len(set(got_labels)) == 3
