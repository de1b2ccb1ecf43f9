"""The realtime process: one ASGI app. Socket.IO (namespace ``/ws`` under ``/socket.io/``) wraps
the long-poll endpoint (plain ASGI, see :mod:`sayso_realtime.wait_endpoint`), which wraps a
FastAPI app with the SSE and probe routes. The lifespan opens MongoDB, binds the
sockets to it and positions the Kafka feed before the first request is served; it also runs the
credential watch that closes sockets and streams whose credential was revoked or expired."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import socketio
from fastapi import FastAPI, Request
from sayso_service.cors import Cors
from sayso_service.errors import install_error_handlers
from sayso_service.probes import Check, probe_routes
from starlette.types import ASGIApp, Receive, Scope, Send

from sayso_common.credentials import ApiKeyResolver
from sayso_common.fetch_gate import run_gate
from sayso_common.principals import Authenticator
from sayso_common.runtime import Runtime
from sayso_common.scoped_tokens import ScopedTokenResolver
from sayso_realtime.fanout import Fanout
from sayso_realtime.feed import EventFeed
from sayso_realtime.gateway import Gateway
from sayso_realtime.history import RecentEvents, stored_after
from sayso_realtime.metrics import WAITERS
from sayso_realtime.quotas import Quotas
from sayso_realtime.revocation import CredentialWatch
from sayso_realtime.routes import router
from sayso_realtime.settings import RealtimeSettings
from sayso_realtime.shared_channels import SharedChannels
from sayso_realtime.sockets import Sockets
from sayso_realtime.wait_endpoint import WaitEndpoint, review_id_of
from sayso_realtime.waiters import Waiters

log = logging.getLogger(__name__)


def create_app(settings: RealtimeSettings) -> ASGIApp:
    waiters = Waiters()
    fanout = Fanout(waiters, RecentEvents(settings.recent_events))
    quotas = Quotas.of(settings)
    sockets = Sockets(settings, fanout, quotas.sockets)
    long_poll = WaitEndpoint(settings, waiters, quotas.polls)
    WAITERS.set_function(lambda: len(waiters))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.open(settings)
        keys = ApiKeyResolver(runtime.db)
        tokens = ScopedTokenResolver(runtime.db)
        auth = Authenticator(keys, settings.jwt_signing_keys(), tokens)
        watch = CredentialWatch(runtime.db, keys, settings.realtime_revalidate_seconds, tokens=tokens)
        # Membership is re-read on the same period as credentials: both end what a connection
        # may still receive.
        shared = SharedChannels(runtime.db, settings.realtime_revalidate_seconds)
        feed = EventFeed(
            settings,
            fanout.publish,
            lambda last_id: stored_after(runtime.db, last_id, settings.resume_limit),
        )
        app.state.gateway = Gateway(
            settings, runtime, auth, waiters, fanout, feed, watch, shared, quotas.streams
        )
        sockets.bind(runtime.db, auth, watch, shared)
        long_poll.bind(runtime.db, auth)
        feed_task = asyncio.create_task(feed.run(), name="kafka-feed")
        watch_task = asyncio.create_task(watch.run(), name="credential-watch")
        shared_task = asyncio.create_task(shared.run(), name="shared-channels")
        gate_task = asyncio.create_task(run_gate(runtime.db, feed.consumers, settings), name="fetch-gate")
        try:
            await asyncio.wait_for(feed.ready.wait(), settings.feed_start_timeout_seconds)
        except TimeoutError:
            # Serve anyway (long-poll still answers from MongoDB); /readyz says Kafka is missing.
            log.warning("Kafka feed not positioned at start-up; continuing without it")
        try:
            yield
        finally:
            for task in (gate_task, shared_task, watch_task, feed_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await sockets.close()
            await runtime.close()

    api = FastAPI(
        title="Sayso realtime",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry=settings.fastapi_telemetry(),  # type: ignore[arg-type]
    )
    install_error_handlers(api)
    api.include_router(router)

    def checks(request: Request) -> dict[str, Check]:
        gateway: Gateway = request.app.state.gateway
        return {"mongodb": gateway.runtime.check_mongo, "kafka": gateway.feed.check}

    api.router.routes.extend(probe_routes(checks))

    async def http(scope: Scope, receive: Receive, send: Send) -> None:
        review_id = review_id_of(scope["path"]) if scope["type"] == "http" else None
        if review_id is None:
            await api(scope, receive, send)
        else:
            await long_poll(scope, receive, send, review_id)

    # SSE and long-poll get the CORS headers here; Engine.IO applies the same rule to Socket.IO.
    app: ASGIApp = socketio.ASGIApp(
        sockets.server, other_asgi_app=Cors(http, settings.cors_origins), socketio_path="socket.io"
    )
    return app
