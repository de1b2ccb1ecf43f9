"""One of the long-poll benchmark's client processes: holds one parked long-poll per review id
read from stdin, each on its own keep-alive connection, and parks it again whenever it is
answered (a poll that timed out must not leave the count).

Plain asyncio protocols, not an HTTP client library: the figure under test is the server's
memory per waiter, and tens of thousands of client sessions in one process would need more CPU
and memory than the server they measure. A process holds at most what its descriptor limit
allows; the benchmark starts as many as it needs.

    SAYSO_BENCH_API_KEY=... python -m bench.parked_polls PORT CHANNEL [SOURCE_ADDRESS] < ids

Prints ``ready <n>`` once every poll was sent, then runs until stdin closes.
"""

from __future__ import annotations

import asyncio
import os
import sys

TIMEOUT_MS = 30_000
CONNECT_AT_ONCE = 100
CONNECT_ATTEMPTS = 5


class Poll(asyncio.Protocol):
    def __init__(self, request: bytes) -> None:
        self._request = request
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head, sep, body = self._buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(body) >= length:
            # Answered (timed out, or the review changed): park again on the same connection.
            self._buffer = body[length:]
            if self._transport is not None:
                self._transport.write(self._request)


async def main(port: int, channel: str, source: str) -> int:
    key = os.environ["SAYSO_BENCH_API_KEY"]
    ids = [i.strip() for i in sys.stdin.readline().split(",") if i.strip()]
    loop = asyncio.get_running_loop()
    transports: list[asyncio.BaseTransport] = []
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def park(review_id: str) -> None:
        request = (
            f"GET /api/v1/reviews/{review_id}/wait?channel={channel}&timeout={TIMEOUT_MS} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nx-api-key: {key}\r\n\r\n"
        ).encode()
        async with gate:
            for attempt in range(CONNECT_ATTEMPTS):
                try:
                    transport, _ = await loop.create_connection(
                        lambda: Poll(request), "127.0.0.1", port, local_addr=(source, 0)
                    )
                    break
                except OSError:
                    # A server busy accepting overflows its listen backlog and drops the SYNs
                    # (ETIMEDOUT after the kernel's retries): try again, a bounded number of times.
                    if attempt == CONNECT_ATTEMPTS - 1:
                        raise
                    await asyncio.sleep(0.5)
        transports.append(transport)

    await asyncio.gather(*(park(i) for i in ids))
    print(f"ready {len(transports)}", flush=True)
    # Hold until the benchmark closes stdin (or ends this process).
    await loop.run_in_executor(None, sys.stdin.read)
    for transport in transports:
        transport.close()
    return 0


if __name__ == "__main__":
    source = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    sys.exit(asyncio.run(main(int(sys.argv[1]), sys.argv[2], source)))
