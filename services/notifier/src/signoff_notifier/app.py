"""The notifier process: a Starlette app (probes and metrics) whose lifespan owns everything
else - MongoDB, the SMTP and Slack senders, the notification worker and its loops, and the
FastStream consumer group."""

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
from signoff_common.kafka import consumer_lag, ensure_topics
from signoff_common.runtime import Runtime
from signoff_common.secretbox import SecretBox
from signoff_notifier import metrics
from signoff_notifier.consumer import build_broker
from signoff_notifier.senders import Mailer, Slack
from signoff_notifier.settings import NotifierSettings
from signoff_notifier.worker import Worker

log = logging.getLogger(__name__)


class KafkaUnavailableError(RuntimeError):
    pass


@dataclass
class Notifier:
    runtime: Runtime
    broker: KafkaBroker
    consuming: asyncio.Event = field(default_factory=asyncio.Event)

    async def check_kafka(self) -> None:
        if not self.consuming.is_set() or not await self.broker.ping(timeout=2.0):
            raise KafkaUnavailableError("not consuming")


async def _consume(settings: NotifierSettings, notifier: Notifier) -> None:
    """Join the consumer group once Kafka answers; until then scheduled reminders and retries
    already in MongoDB keep going out, and /readyz says Kafka is missing."""
    while True:
        try:
            await ensure_topics(settings)
            await notifier.broker.start()
            notifier.consuming.set()
            log.info("consumer group joined", extra={"group": settings.notifier_group_id})
            return
        except Exception:
            log.warning("cannot start the Kafka consumer; retrying", exc_info=True)
            with contextlib.suppress(Exception):
                await notifier.broker.stop()
            await asyncio.sleep(2.0)


def create_app(settings: NotifierSettings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await Runtime.open(settings)
        instance = f"{settings.instance or 'notifier'}-{runtime.instance_id}"
        slack = Slack(settings)
        worker = Worker(
            settings, runtime.db, SecretBox(settings.box_keys()), Mailer(settings), slack, instance
        )
        broker = build_broker(settings, worker)
        notifier = Notifier(runtime, broker)
        app.state.notifier = notifier

        async def lag() -> None:
            for topic, value in (await consumer_lag(broker.subscribers)).items():
                metrics.CONSUMER_LAG.labels(topic).set(value)

        background = {
            "sweep": worker.sweep_loop(),
            "inserts": worker.watch_inserts(),
            "gauges": worker.gauge_loop(),
            "lag": loops.every("consumer lag", 5.0, lag, wait_first=True),
            "consume": _consume(settings, notifier),
        }
        tasks = [asyncio.create_task(coro, name=name) for name, coro in background.items()]
        try:
            await asyncio.wait_for(notifier.consuming.wait(), settings.notifier_start_timeout_seconds)
        except TimeoutError:
            log.warning("Kafka consumer not started at start-up; continuing without it")
        try:
            yield
        finally:
            # Stop taking events (FastStream commits what was handled), then let sends finish.
            with contextlib.suppress(Exception):
                await broker.stop()
            await worker.close(grace=5.0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await slack.close()
            await runtime.close()

    def checks(request: Request) -> dict[str, Check]:
        notifier: Notifier = request.app.state.notifier
        return {"mongodb": notifier.runtime.check_mongo, "kafka": notifier.check_kafka}

    return Starlette(routes=probe_routes(checks), lifespan=lifespan)
