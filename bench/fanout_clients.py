"""One of the fan-out benchmark's client processes: N python-socketio clients on one channel.

Prints ``ready`` once every client is connected, then one line ``<message id> <time>`` per
``review:responded`` message as soon as all N clients have it, where time is the last client's
arrival on the system-wide monotonic clock (comparable across processes). Exits after
``--messages`` messages or ``--timeout`` seconds.

    SAYSO_BENCH_API_KEY=... python -m bench.fanout_clients URL CHANNEL --clients 250 --messages 15

The API key comes from the environment, not the command line (where any user could read it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import socketio


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


async def main(args: argparse.Namespace) -> int:
    arrivals: dict[str, list[float]] = {}
    finished: asyncio.Queue[str] = asyncio.Queue()
    clients: list[socketio.AsyncClient] = []

    async def connect() -> None:
        sio = socketio.AsyncClient(reconnection=False)

        @sio.on("review:responded", namespace="/ws")  # type: ignore[untyped-decorator]
        async def on_responded(message: dict[str, Any]) -> None:
            got = arrivals.setdefault(message["id"], [])
            got.append(now())
            if len(got) == args.clients:
                finished.put_nowait(message["id"])

        await sio.connect(args.url, namespaces=["/ws"], transports=["websocket"],
                          auth={"apiKey": os.environ["SAYSO_BENCH_API_KEY"], "channels": [args.channel]}, wait_timeout=30)  # fmt: skip
        clients.append(sio)

    sem = asyncio.Semaphore(50)

    async def guarded() -> None:
        async with sem:
            await connect()

    try:
        await asyncio.gather(*(guarded() for _ in range(args.clients)))
        print("ready", flush=True)
        deadline = time.monotonic() + args.timeout
        for _ in range(args.messages):
            message_id = await asyncio.wait_for(finished.get(), max(0.1, deadline - time.monotonic()))
            print(message_id, max(arrivals[message_id]), flush=True)
    except TimeoutError:
        print("timeout: " + ", ".join(f"{k}={len(v)}" for k, v in arrivals.items()), file=sys.stderr)
        return 1
    finally:
        await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("channel")
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=300)
    sys.exit(asyncio.run(main(parser.parse_args())))
