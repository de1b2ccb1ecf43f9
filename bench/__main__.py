"""``make bench``: start the local stack on free ports, run the scenarios, write results.

uv run python -m bench                 # every scenario, into bench/results/local/ (git ignores it)
uv run python -m bench ingest expiry   # some of them
uv run python -m bench feed endpoints-fanout endpoints-ratelimit isolation-endpoints   # issue #31
uv run python -m bench idle            # the whole make-run stack at rest: CPU and memory per process
uv run python -m bench saturation      # the sustained end-to-end rate (bench.saturation: its settings)
uv run python -m bench loaded          # runs saturation first: loaded offers half its sustained rate
uv run python -m bench loaded --rate 300   # ... or half of a sustained rate given (reviews/s)
uv run python -m bench --commit        # into the committed bench/results/ (or SAYSO_BENCH_COMMIT=1)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bench import (
    delivery,
    endpoints,
    expiry,
    idle,
    ingest,
    loaded,
    policies,
    realtime,
    report,
    saturation,
    storm,
)
from bench.harness import BenchStack, Result
from bench.verdict import results_dir

SCENARIOS: dict[str, Callable[[BenchStack], Awaitable[Result]]] = {
    "ingest": ingest.run,
    "ingest-policies": policies.run,
    "auto-webhook": policies.auto_webhook,
    "delivery": delivery.throughput,
    "latency": delivery.latency,
    "isolation": delivery.isolation,
    "isolation-tenants": delivery.tenant_isolation,
    "isolation-endpoints": endpoints.isolation,
    "endpoints-fanout": endpoints.fanout,
    "endpoints-ratelimit": endpoints.rate_limit,
    "feed": endpoints.feed,
    "expiry": expiry.run,
    "storm": storm.run,
    "saturation": saturation.run,
    "loaded": loaded.run,  # given the sustained rate of the saturation before it (``sustained_rate``)
    "longpoll": realtime.longpoll,
    "fanout": realtime.fanout,
}
# Scenarios that start the stack they measure themselves: idle runs the whole make-run stack.
STANDALONE: dict[str, Callable[[], Awaitable[Result]]] = {"idle": idle.run}


def parse(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("scenarios", nargs="*")
    parser.add_argument("--commit", action="store_true", help="write the committed bench/results/")
    parser.add_argument(
        "--rate",
        type=float,
        help="the sustained rate (reviews/s) loaded offers half of, instead of saturation's",
    )
    parsed = parser.parse_args(args)
    if parsed.rate is not None and parsed.rate <= 0:
        parser.error(f"--rate must be more than 0, not {parsed.rate:g}")
    return parsed


def scenario_order(names: list[str], rate: float | None) -> list[str]:
    """The scenarios to run, in order: ``loaded`` without ``--rate`` needs ``saturation`` before it."""
    names = names or [*SCENARIOS, *STANDALONE]
    if "loaded" in names and rate is None and "saturation" not in names[: names.index("loaded")]:
        names = [n for n in names if n != "saturation"]
        names.insert(names.index("loaded"), "saturation")
    return names


def sustained_rate(results: list[Result], rate: float | None) -> tuple[float, str]:
    """The rate ``loaded`` offers half of: ``--rate``, else the saturation result of this run."""
    if rate is not None:
        return rate, "given with --rate"
    found = next((r for r in reversed(results) if r.name == "Saturation"), None)
    sustained = found.measure.get("sustained_per_s") if found else None
    if not sustained:
        raise RuntimeError("no sustained rate: the saturation scenario found none (or give --rate)")
    return float(sustained), "the saturation scenario of this run"


async def main(args: list[str]) -> int:
    options = parse(args)
    commit = options.commit
    names = options.scenarios
    folder = results_dir(True if commit else None)
    unknown = [n for n in names if n not in SCENARIOS and n not in STANDALONE]
    if unknown:
        print(
            f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join([*SCENARIOS, *STANDALONE])}",
            file=sys.stderr,
        )
        return 2
    results: list[Result] = []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in scenario_order(names, options.rate):
        print(f"[bench] {name} …", flush=True)
        started = time.monotonic()
        if name in STANDALONE:
            results.append(await _standalone(name))
            print(f"[bench] {name} done in {time.monotonic() - started:.0f}s", flush=True)
            path = report.write(results, stamp, folder)
            continue
        stack = BenchStack.start()
        try:
            window = stack.meter.snapshot()
            if name == "loaded":
                result = await loaded.run(stack, *sustained_rate(results, options.rate))
            else:
                result = await SCENARIOS[name](stack)
            if not result.resources:
                result.resources = stack.meter.since(window).as_dict()
            results.append(result)
        except Exception as exc:
            # One scenario that cannot finish (a service too starved to start on a shared host)
            # must not throw away the others' results: it is reported as not met, with why.
            print(f"[bench] {name} failed: {exc!r}", file=sys.stderr, flush=True)
            results.append(Result(name, {}, None, None, "finish", False, [f"failed: {exc!r}"[:500]]))
        finally:
            stack.stop()
        print(f"[bench] {name} done in {time.monotonic() - started:.0f}s", flush=True)
        # Written after every scenario, so a run cut short keeps what it measured.
        path = report.write(results, stamp, folder)
    print(path.read_text())
    print(f"[bench] results in {path.parent}/{stamp}.*")
    if folder != results_dir(True):
        print("[bench] a local run (git ignores it): --commit or SAYSO_BENCH_COMMIT=1 writes bench/results/")
    return 0


async def _standalone(name: str) -> Result:
    try:
        return await STANDALONE[name]()
    except Exception as exc:
        print(f"[bench] {name} failed: {exc!r}", file=sys.stderr, flush=True)
        return Result(name, {}, None, None, "finish", False, [f"failed: {exc!r}"[:500]])


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
