"""HTTP load generators: wrk when installed (C, light on the shared CPU), else an aiohttp loop.
Both are bounded by a duration and run against loopback only."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp


@dataclass
class LoadResult:
    tool: str
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float

    def speed(self) -> dict[str, float]:
        """Throughput and latency, as a report's measure or baseline shows them."""
        return {"rps": round(self.rps), "p50_ms": self.p50_ms, "p99_ms": self.p99_ms}


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def _find(pattern: str, out: str) -> str:
    """The first group of ``pattern`` in wrk's report; a report without it is shown whole."""
    match = re.search(pattern, out, re.M)
    if match is None:
        raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{out}")
    return match.group(1)


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str, body: dict[str, object], headers: dict[str, str], connections: int, seconds: int
) -> LoadResult:
    lua = "wrk.method = 'POST'\nwrk.body = [[" + json.dumps(body) + "]]\n"
    for name, value in {"Content-Type": "application/json", **headers}.items():
        lua += f"wrk.headers['{name}'] = '{value}'\n"
    # Count non-2xx answers: wrk reports them, and an error must not pass as throughput.
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
            capture_output=True, text=True, check=True, timeout=seconds + 30,
        ).stdout  # fmt: skip
    finally:
        Path(script.name).unlink()
    total = int(_find(r"(\d+) requests in ([\d.]+)(\w+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    # wrk pads whole seconds with a trailing space ("99%    1.20s ").
    p50 = _ms(_find(r"^\s+50%\s+(\S+)\s*$", out))
    p99 = _ms(_find(r"^\s+99%\s+(\S+)\s*$", out))
    return LoadResult("wrk", total, errors, float(seconds), rps, p50, p99)


async def run_aiohttp(
    url: str, body: dict[str, object], headers: dict[str, str], connections: int, seconds: int
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    payload = json.dumps(body).encode()
    deadline = time.monotonic() + seconds
    conn = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(
        connector=conn, headers={"Content-Type": "application/json", **headers}
    ) as s:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                started = time.perf_counter()
                async with s.post(url, data=payload) as resp:
                    await resp.read()
                    if resp.status >= 300:
                        errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - started
    latencies.sort()
    return LoadResult(
        "aiohttp",
        len(latencies),
        errors,
        elapsed,
        len(latencies) / elapsed,
        statistics.median(latencies),
        latencies[int(len(latencies) * 0.99) - 1],
    )


async def load(
    url: str, body: dict[str, object], headers: dict[str, str], connections: int = 32, seconds: int = 10
) -> LoadResult:
    if wrk_available():
        return await asyncio.to_thread(run_wrk, url, body, headers, connections, seconds)
    return await run_aiohttp(url, body, headers, connections, seconds)
