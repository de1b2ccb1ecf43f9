"""Contract tests of the library internals the services rely on (issue #28 item 5): one module
per library holds every such use (``sayso_common.aiokafka_internals``,
``sayso_service.faststream_internals``, ``sayso_realtime.engineio_internals``), the library is
pinned exactly, and each use has a test here, against the real broker or a real server, that
fails if a new version of the library stops behaving as relied on."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaBroker
from sayso_service.faststream_internals import hold_polls, subscriber_consumers

from sayso_common.aiokafka_internals import cluster_view, partition_leader, refresh_metadata, set_fetch_wait
from sayso_common.kafka import create_producer, ensure_topics
from sayso_common.settings import ServiceSettings
from sayso_common.topics import all_topics
from sayso_devstack.processes import free_port
from sayso_realtime.engineio_internals import (
    abort,
    discard_queued,
    drained,
    engine_socket,
    engine_sockets,
    enqueue,
    event_packet,
    hang_up_after_queued,
    queued,
)
from tests.conftest import Infra


async def _until(predicate: Any, what: str, seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


async def _read_forever(consumer: AIOKafkaConsumer) -> None:
    while True:
        await consumer.getmany(timeout_ms=1000)


# aiokafka ---------------------------------------------------------------------------------------


async def test_cluster_view_names_partitions_and_creates_nothing(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox's broker probe: the protocol's Metadata request, parsed by position."""
    for name, value in infra.service_env(SAYSO_TOPIC_PREFIX="probe.", SAYSO_TOPIC_PARTITIONS="3").items():
        monkeypatch.setenv(name, value)
    settings = ServiceSettings()
    await ensure_topics(settings)
    topic = all_topics("probe.")[0]
    missing = "probe.never-created"
    producer = create_producer(settings)
    await producer.start()
    try:
        view = await cluster_view(producer.client, [topic, missing])
        assert isinstance(view.cluster_id, str)
        assert view.cluster_id
        assert view.partitions == {(topic, p) for p in range(3)}
        again = await cluster_view(producer.client, [missing])
        assert again.partitions == frozenset()  # asking did not create it
        assert again.cluster_id == view.cluster_id
    finally:
        await producer.stop()


async def test_the_leader_of_an_acknowledged_write_answers_for_its_partition(infra: Infra) -> None:
    """What the relay does after every publish: ask the partition's leader (from the producer's
    own metadata) whether the partition it was acknowledged on exists; and readiness reads the
    whole cluster's metadata."""
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await producer.start()
    try:
        await refresh_metadata(producer)
        topic = f"contract-{secrets.token_hex(4)}"
        written = await producer.send_and_wait(topic, b"x")
        leader = partition_leader(producer, written.topic, written.partition)
        assert isinstance(leader, int)
        view = await cluster_view(producer.client, [topic], leader)
        assert (topic, written.partition) in view.partitions
        assert partition_leader(producer, "contract-never-written", 0) is None
    finally:
        await producer.stop()


async def test_the_fetch_wait_set_on_a_running_consumer_is_the_one_its_fetches_ask_for(infra: Infra) -> None:
    """The fetch gate sets the wait of a running consumer's fetches: aiokafka must read it from the
    fetcher's attribute for each request. A fetch of an empty partition is answered only when its
    wait runs out (Tansu), so a long wait set on the running consumer makes an empty poll last."""
    topic = f"contract-{secrets.token_hex(4)}"
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await producer.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        written = await producer.send_and_wait(topic, b"first")
        tp = TopicPartition(topic, written.partition)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        assert (await asyncio.wait_for(consumer.getone(), 30)).value == b"first"
        # Read on, as the services do: a partition is fetched again once its last batch was taken.
        reading = asyncio.create_task(_read_forever(consumer))
        fetcher: Any = getattr(consumer, "_fetcher")  # noqa: B009
        requests: list[int] = []
        build = fetcher._get_actions_per_node

        def recording(*args: Any, **kwargs: Any) -> Any:
            requests.append(fetcher._fetch_max_wait_ms)
            return build(*args, **kwargs)

        fetcher._get_actions_per_node = recording
        set_fetch_wait(consumer, 7)
        await _until(lambda: 7 in requests, "a fetch is built with the wait set")
        # And the request itself carries it (aiokafka builds FetchRequest from that attribute).
        send = consumer._client.send
        waits: list[int] = []

        async def sent(node_id: int, request: Any, **kwargs: Any) -> Any:
            if type(request).__name__ == "FetchRequest":  # built per fetch, encoded at send
                waits.append(request._max_wait_ms)
            return await send(node_id, request, **kwargs)

        consumer._client.send = sent
        set_fetch_wait(consumer, 9)
        await _until(lambda: 9 in waits, "a fetch request asks the broker for the wait set")
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
    finally:
        await consumer.stop()
        await producer.stop()


# FastStream -------------------------------------------------------------------------------------


async def test_a_started_batch_subscriber_shows_its_consumer_and_polls_through_getmany(infra: Infra) -> None:
    """The services' consumer groups: FastStream keeps each started subscriber's aiokafka consumer
    as ``consumer`` (the fetch gate and the lag gauge read it), and its batch subscriber polls with
    that consumer's ``getmany`` looked up at each poll, with ``batch_timeout_ms`` as the timeout
    (hold_polls replaces it on the running consumer)."""
    topic = f"contract-{secrets.token_hex(4)}"
    broker = KafkaBroker(infra.kafka_bootstrap)
    got: list[bytes] = []

    @broker.subscriber(
        topic, batch=True, batch_timeout_ms=50, group_id=f"g-{topic}", auto_offset_reset="earliest"
    )
    async def on_batch(batch: list[bytes]) -> None:
        got.extend(batch)

    assert subscriber_consumers(broker) == []
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await producer.start()
    await producer.send_and_wait(topic, b"before")
    await broker.start()
    try:
        consumers = subscriber_consumers(broker)
        assert len(consumers) == 1
        consumer = consumers[0]
        assert consumer.subscription() == {topic}
        await _until(lambda: got == [b"before"], "the subscriber reads")
        timeouts: list[int] = []
        held = consumer.getmany

        async def spy(
            *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
        ) -> Any:
            timeouts.append(timeout_ms)
            return await held(*partitions, timeout_ms=timeout_ms, max_records=max_records)

        consumer.getmany = spy
        await _until(lambda: 50 in timeouts, "FastStream polls through getmany with its batch timeout")
        hold_polls(consumer, 400)  # wraps the spy: the next polls pass it the held timeout
        timeouts.clear()
        await _until(lambda: 400 in timeouts, "a held poll asks for the longer timeout")
        await producer.send_and_wait(topic, b"after")
        await _until(lambda: got == [b"before", b"after"], "the held subscriber reads on")
    finally:
        await broker.stop()
        await producer.stop()
    assert subscriber_consumers(broker) == []


# python-socketio / python-engineio --------------------------------------------------------------

NS = "/ws"


@contextlib.asynccontextmanager
async def _socket_server() -> AsyncIterator[tuple[socketio.AsyncServer, str, list[str]]]:
    server = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)
    connected: list[str] = []

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        connected.append(sid)

    server.on("connect", connect, namespace=NS)
    port = free_port()
    app = socketio.ASGIApp(server)
    web = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(web.serve())
    await _until(lambda: web.started, "the Socket.IO server listens")
    try:
        yield server, f"http://127.0.0.1:{port}", connected
    finally:
        web.should_exit = True
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_packet_put_on_a_socket_s_queue_reaches_its_client_and_a_none_hangs_up(
    transport: str,
) -> None:
    """The realtime fan-out encodes an event once and puts it on each client's Engine.IO send
    queue; a socket that fell behind has its queue emptied and is hung up after what is queued."""
    async with _socket_server() as (server, url, connected):
        client = socketio.AsyncClient(reconnection=False)
        received: list[Any] = []
        client.on("hello", lambda data: received.append(data), namespace=NS)
        await client.connect(url, namespaces=[NS], transports=[transport])
        try:
            await _until(lambda: connected, "the client connects")
            eio_sid = server.manager.eio_sid_from_sid(connected[0], NS)
            sock = engine_socket(server, eio_sid)
            assert sock is not None
            assert engine_sockets(server)[eio_sid] is sock
            assert engine_socket(server, None) is None
            packet = event_packet(server, NS, ["hello", {"n": 1}])
            enqueue(sock, packet)
            await _until(lambda: received == [{"n": 1}], "the queued packet arrives")
            await drained(sock, 10)
            assert queued(sock) == 0
            # Behind: what waits is dropped, then the hang-up goes out after what remains.
            for n in range(3):
                enqueue(sock, event_packet(server, NS, ["hello", {"n": 10 + n}]))
            discard_queued(sock)
            assert queued(sock) == 0
            enqueue(sock, event_packet(server, NS, ["hello", {"n": 2}]))
            hang_up_after_queued(sock)
            await drained(sock, 10)
            await abort(sock)
            assert engine_socket(server, eio_sid) is None
            await _until(lambda: not client.connected, "the client is cut off")
            assert received[0] == {"n": 1}
            assert received == [{"n": 1}, {"n": 2}], "a dropped packet was sent, or the last one was not"
        finally:
            await client.disconnect()


# uvicorn (sayso_service.uvicorn_internals): served without the package's __init__ (no click).
_UVICORN_APP = """
import json, sys
from sayso_service import uvicorn_internals

FAIL = sys.argv[2] == "fail"

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                kind = "failed" if FAIL else "complete"
                await send({"type": f"lifespan.startup.{kind}", "message": "refused on purpose"})
            elif message["type"] == "lifespan.shutdown":
                print("shutdown ran", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = json.dumps({"click": "click" in sys.modules, "main": "uvicorn.main" in sys.modules}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})

uvicorn_internals.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, lifespan="on")
"""


def _serve(port: int, mode: str) -> Any:
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-c", _UVICORN_APP, str(port), mode], stdout=subprocess.PIPE, text=True
    )


async def test_uvicorn_serves_without_its_command_line_and_stops_on_a_signal() -> None:
    import signal

    import httpx

    port = free_port()
    proc = _serve(port, "ok")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    answer = await client.get("/")
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the server never answered")
        assert answer.json() == {"click": False, "main": False}
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        # uvicorn re-raises the signal once it has shut down, as uvicorn.run does.
        assert proc.returncode in (0, -signal.SIGTERM)
        assert "shutdown ran" in out, "the lifespan's shutdown did not run on SIGTERM"
    finally:
        proc.kill()
        proc.wait()


def test_uvicorn_exits_with_its_start_up_failure_code_when_the_lifespan_fails() -> None:
    from uvicorn.config import STARTUP_FAILURE

    proc = _serve(free_port(), "fail")
    proc.communicate(timeout=60)
    assert proc.returncode == STARTUP_FAILURE


def test_uvicorn_s_package_init_holds_only_what_the_adapter_replaces() -> None:
    """What ``uvicorn/__init__.py`` exports, and that the lifespan modules need only ``Config``
    from it: a new name there may be something the server expects to find."""
    import importlib
    import inspect

    assert sorted(uvicorn.__all__) == ["Config", "Server", "main", "run"]
    for name in ("uvicorn.lifespan.on", "uvicorn.lifespan.off"):
        assert "from uvicorn import Config\n" in inspect.getsource(importlib.import_module(name))
