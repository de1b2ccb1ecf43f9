"""The dispatcher process: a Starlette app (probes and metrics) whose lifespan owns everything
else - MongoDB, the aiohttp session, the delivery worker and its loops, the outbox relay for
``delivery.status`` and the operator events, and the FastStream consumer group."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from sayso_service.probes import Check, probe_routes
from starlette.applications import Starlette
from starlette.requests import Request

from sayso_common import loops, retention
from sayso_common.fetch_gate import run_gate
from sayso_common.kafka import create_producer, ensure_topics
from sayso_common.lease import Lease
from sayso_common.mongo import DELIVERIES, INCIDENTS
from sayso_common.outbox import OutboxRelay
from sayso_common.runtime import Runtime
from sayso_common.secretbox import SecretBox
from sayso_dispatcher.agents import AgentDirectory
from sayso_dispatcher.consumer import consumer
from sayso_dispatcher.reconcile import Reconciler
from sayso_dispatcher.sender import Sender
from sayso_dispatcher.settings import DispatcherSettings
from sayso_dispatcher.worker import Worker

log = logging.getLogger(__name__)


def create_app(settings: DispatcherSettings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await Runtime.open(settings)
        instance = f"{settings.instance or 'dispatcher'}-{runtime.instance_id}"
        agents = AgentDirectory(runtime.db, SecretBox(settings.box_keys()))
        sender = Sender(settings, instance)
        worker = Worker.create(settings, runtime.db, agents, sender, instance)
        group = consumer(settings, worker)
        app.state.runtime, app.state.group = runtime, group
        relay = OutboxRelay(
            runtime.db,
            lambda: create_producer(settings),
            # Incidents carry the operator events (sayso_common.incidents).
            [DELIVERIES, INCIDENTS],
            topic_prefix=settings.topic_prefix,
            lease=Lease(
                runtime.db,
                "outbox-relay:dispatcher",
                runtime.instance_id,
                settings.dispatcher_relay_lease_seconds,
            ),
            prepare=lambda: ensure_topics(settings),
            retention=retention.retention(settings.retention_days),
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

        background = {
            "relay": relay.run(),
            "sweep": worker.sweep_loop(),
            "renew": worker.renew_loop(),
            "requeues": worker.watch_requeues(),
            "agents": agents.watch(),
            "endpoints": worker.endpoints.watch(),
            "endpoint-types": worker.endpoints.follow_types(),
            "incidents": worker.incidents.watch(),
            "gauges": worker.gauge_loop(),
            "kafka-producers": loops.every("idle Kafka producers", 30.0, worker.kafka.close_idle),
            "reconcile": loops.every("reconciliation", interval, reconcile, wait_first=True),
            "fetch-gate": run_gate(runtime.db, group.consumers, settings),
        }
        try:
            # Deliveries already in MongoDB go out even before the group joins; /readyz names Kafka.
            async with group.running(background, drain=lambda: worker.close(grace=5.0)):
                yield
        finally:
            await worker.kafka.close()
            await sender.close()
            await runtime.close()

    def checks(request: Request) -> dict[str, Check]:
        state = request.app.state
        return {"mongodb": state.runtime.check_mongo, "kafka": state.group.check_kafka}

    return Starlette(routes=probe_routes(checks), lifespan=lifespan)
