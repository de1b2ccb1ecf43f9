"""``make bench``: start the local stack on free ports, run the scenarios, write results.

uv run python -m bench                 # every scenario
uv run python -m bench ingest expiry   # some of them
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bench import delivery, expiry, ingest, realtime, report
from bench.harness import BenchStack, Result

SCENARIOS: dict[str, Callable[[BenchStack], Awaitable[Result]]] = {
    "ingest": ingest.run,
    "delivery": delivery.throughput,
    "latency": delivery.latency,
    "isolation": delivery.isolation,
    "expiry": expiry.run,
    "longpoll": realtime.longpoll,
    "fanout": realtime.fanout,
}


async def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(
            f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}", file=sys.stderr
        )
        return 2
    results: list[Result] = []
    for name in names or list(SCENARIOS):
        print(f"[bench] {name} …", flush=True)
        started = time.monotonic()
        stack = BenchStack.start()
        try:
            results.append(await SCENARIOS[name](stack))
        finally:
            stack.stop()
        print(f"[bench] {name} done in {time.monotonic() - started:.0f}s", flush=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = report.write(results, stamp)
    print(path.read_text())
    print(f"[bench] results in {path.parent}/{stamp}.*")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
