"""The dispatcher process: a Starlette app (probes and metrics) whose lifespan owns everything
else - MongoDB, the aiohttp session, the delivery worker and its loops, the outbox relay for
``delivery.status``, and the FastStream consumer group."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from faststream.kafka import KafkaBroker
from signoff_service.probes import Check, probe_routes
from starlette.applications import Starlette
from starlette.requests import Request

from signoff_common import loops
from signoff_common.kafka import consumer_lag, create_producer, ensure_topics
from signoff_common.lease import Lease
from signoff_common.mongo import DELIVERIES
from signoff_common.outbox import OutboxRelay
from signoff_common.runtime import Runtime
from signoff_common.secretbox import SecretBox
from signoff_dispatcher import metrics
from signoff_dispatcher.agents import AgentDirectory
from signoff_dispatcher.consumer import build_broker
from signoff_dispatcher.reconcile import Reconciler
from signoff_dispatcher.sender import Sender
from signoff_dispatcher.settings import DispatcherSettings
from signoff_dispatcher.worker import Worker

log = logging.getLogger(__name__)


class KafkaUnavailableError(RuntimeError):
    pass


@dataclass
class Dispatcher:
    runtime: Runtime
    broker: KafkaBroker
    worker: Worker
    consuming: asyncio.Event = field(default_factory=asyncio.Event)

    async def check_kafka(self) -> None:
        if not self.consuming.is_set() or not await self.broker.ping(timeout=2.0):
            raise KafkaUnavailableError("not consuming")


async def _consume(settings: DispatcherSettings, dispatcher: Dispatcher) -> None:
    """Join the consumer group once Kafka answers; until then the service runs without it
    (deliveries already in MongoDB keep going out) and /readyz says so."""
    while True:
        try:
            await ensure_topics(settings)
            await dispatcher.broker.start()
            dispatcher.consuming.set()
            log.info("consumer group joined", extra={"group": settings.dispatcher_group_id})
            return
        except Exception:
            log.warning("cannot start the Kafka consumer; retrying", exc_info=True)
            with contextlib.suppress(Exception):
                await dispatcher.broker.stop()
            await asyncio.sleep(2.0)


def create_app(settings: DispatcherSettings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await Runtime.open(settings)
        instance = f"{settings.instance or 'dispatcher'}-{runtime.instance_id}"
        agents = AgentDirectory(runtime.db, SecretBox(settings.box_keys()))
        sender = Sender(settings, instance)
        worker = Worker(settings, runtime.db, agents, sender, instance)
        broker = build_broker(settings, worker)
        dispatcher = Dispatcher(runtime, broker, worker)
        app.state.dispatcher = dispatcher
        relay = OutboxRelay(
            runtime.db,
            lambda: create_producer(settings),
            [DELIVERIES],
            topic_prefix=settings.topic_prefix,
            lease=Lease(
                runtime.db,
                "outbox-relay:dispatcher",
                runtime.instance_id,
                settings.dispatcher_relay_lease_seconds,
            ),
            prepare=lambda: ensure_topics(settings),
        )
        reconciler = Reconciler(
            runtime.db,
            worker,
            grace=settings.dispatcher_reconcile_grace_seconds,
            window=settings.dispatcher_reconcile_window_seconds,
            batch=settings.dispatcher_reconcile_batch,
        )
        interval = settings.dispatcher_reconcile_interval_seconds
        # One reconciler at a time across replicas; a dead holder is replaced after the TTL.
        reconcile_lease = Lease(
            runtime.db, "reconcile:dispatcher", runtime.instance_id, max(10.0, interval * 3)
        )

        async def reconcile() -> None:
            if await reconcile_lease.hold():
                await reconciler.run_once()

        async def lag() -> None:
            for topic, value in (await consumer_lag(broker.subscribers)).items():
                metrics.CONSUMER_LAG.labels(topic).set(value)

        background = {
            "relay": relay.run(),
            "sweep": worker.sweep_loop(),
            "renew": worker.renew_loop(),
            "requeues": worker.watch_requeues(),
            "agents": agents.watch(),
            "gauges": worker.gauge_loop(),
            "reconcile": loops.every("reconciliation", interval, reconcile, wait_first=True),
            "lag": loops.every("consumer lag", 5.0, lag, wait_first=True),
            "consume": _consume(settings, dispatcher),
        }
        tasks = [asyncio.create_task(coro, name=name) for name, coro in background.items()]
        try:
            await asyncio.wait_for(dispatcher.consuming.wait(), settings.dispatcher_start_timeout_seconds)
        except TimeoutError:
            # Serve anyway: deliveries already in MongoDB still go out; /readyz names Kafka.
            log.warning("Kafka consumer not started at start-up; continuing without it")
        try:
            yield
        finally:
            # Stop taking new events first (FastStream commits what was handled), then let
            # in-flight requests finish and hand the rest back.
            with contextlib.suppress(Exception):
                await broker.stop()
            await worker.close(grace=5.0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await sender.close()
            await runtime.close()

    def checks(request: Request) -> dict[str, Check]:
        dispatcher: Dispatcher = request.app.state.dispatcher
        return {"mongodb": dispatcher.runtime.check_mongo, "kafka": dispatcher.check_kafka}

    return Starlette(routes=probe_routes(checks), lifespan=lifespan)
