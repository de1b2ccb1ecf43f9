"""The notifier process: a Starlette app (probes and metrics) whose lifespan owns everything
else - MongoDB, the SMTP and Slack senders, the notification worker and its loops, and the
FastStream consumer group."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from sayso_service.probes import Check, probe_routes
from starlette.applications import Starlette
from starlette.requests import Request

from sayso_common.fetch_gate import run_gate
from sayso_common.runtime import Runtime
from sayso_common.secretbox import SecretBox
from sayso_notifier.consumer import consumer
from sayso_notifier.senders import Mailer, Slack
from sayso_notifier.settings import NotifierSettings
from sayso_notifier.worker import Worker

log = logging.getLogger(__name__)


def create_app(settings: NotifierSettings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await Runtime.open(settings)
        instance = f"{settings.instance or 'notifier'}-{runtime.instance_id}"
        slack = Slack(settings)
        worker = Worker.create(
            settings, runtime.db, SecretBox(settings.box_keys()), Mailer(settings), slack, instance
        )
        group = consumer(settings, worker)
        app.state.runtime, app.state.group = runtime, group
        background = {
            "sweep": worker.sweep_loop(),
            "inserts": worker.watch_inserts(),
            "gauges": worker.gauge_loop(),
            "fetch-gate": run_gate(runtime.db, group.consumers, settings),
        }
        try:
            async with group.running(background, drain=lambda: worker.close(grace=5.0)):
                yield
        finally:
            await slack.close()
            await runtime.close()

    def checks(request: Request) -> dict[str, Check]:
        state = request.app.state
        return {"mongodb": state.runtime.check_mongo, "kafka": state.group.check_kafka}

    return Starlette(routes=probe_routes(checks), lifespan=lifespan)
