"""The soak report's failover table (issue #30 item 5) on a hand-made run: the windows after a
dispatcher kill, the healthy receivers' p50 in each, outages left out."""

from __future__ import annotations

from typing import Any

from bench.soak.report import Outcome, failover


def _outcome(p50: list[float | None], windows: list[dict[str, Any]]) -> Outcome:
    t: list[float | None] = [i * 5.0 for i in range(len(p50))]
    return Outcome(
        stamp="x",
        settings={},
        traffic_seconds=60,
        drain_seconds=0,
        checks=[],
        windows=windows,
        counts={},
        series={"t": t, "answer -> healthy webhook p50 ms": p50},
    )


def test_the_windows_after_a_dispatcher_kill_show_the_healthy_p50_against_the_target() -> None:
    kill = {"kind": "kill", "service": "dispatcher", "start": 12.0, "end": None}
    other_kill = {"kind": "kill", "service": "api", "start": 40.0, "end": None}
    outage = {"kind": "mongo", "start": 21.0, "end": 24.0}
    p50: list[float | None] = [30.0, 30.0, 9000.0, 800.0, 40.0, 40.0, 40.0, 40.0, 40.0, 40.0]
    lines = failover(_outcome(p50, [kill, other_kill, outage]))
    rows = [line for line in lines if line.startswith("| ") and "s |" in line]
    # 10-15 s holds the kill, 15-20 s follows it, 20-25 s is an outage, 25-30 s is 13 s after it.
    assert rows == [
        "| 10-15 s | -2.0 s | 9,000 ms | **no** |",
        "| 15-20 s | +3.0 s | 800 ms | yes |",
        "| 25-30 s | +13.0 s | 40 ms | yes |",
    ]


def test_a_run_without_a_dispatcher_kill_has_no_failover_table() -> None:
    assert (
        failover(_outcome([30.0, 30.0], [{"kind": "kill", "service": "api", "start": 1.0, "end": None}]))
        == []
    )
