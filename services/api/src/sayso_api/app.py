"""The API process: settings -> MongoDB -> caches -> outbox relay -> routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from sayso_service.cors import Cors
from sayso_service.errors import install_error_handlers
from sayso_service.probes import Check, probe_routes

from sayso_api import apidocs, auth, remembered, web
from sayso_api import feed as feed_store
from sayso_api import files as files_store
from sayso_api import policies as policy_store
from sayso_api.apidocs import asyncapi as asyncapi_docs
from sayso_api.context import ApiContext, ChannelCache
from sayso_api.jsonguard import JsonGuard
from sayso_api.limits import BodyLimit
from sayso_api.routes import (
    agents,
    answers,
    audit_log,
    endpoints,
    expunge,
    feed,
    files,
    inbound,
    integrations,
    keys,
    members,
    messages,
    notifications,
    plugins,
    policies,
    reviews,
    stats,
    tokens,
    triggers,
    webhooks,
)
from sayso_api.routes import auth as auth_routes
from sayso_api.settings import ApiSettings
from sayso_api.telemetry import RequestMetrics
from sayso_common import audit, outbox, retention
from sayso_common.clock import utcnow
from sayso_common.credentials import ApiKeyResolver
from sayso_common.kafka import check_producer, create_producer, ensure_topics
from sayso_common.lease import Lease
from sayso_common.mongo import AGENTS, LEFT_EVENTS, MESSAGES, REMEMBERED
from sayso_common.outbox import OutboxRelay
from sayso_common.principals import Authenticator
from sayso_common.runtime import Runtime
from sayso_common.scoped_tokens import ScopedTokenResolver
from sayso_common.secretbox import SecretBox

log = logging.getLogger(__name__)


OPENAPI_TAGS = [
    {"name": "messages", "description": "Post messages and reviews; read them back (Placet Agent API v1)."},
    {"name": "reviews", "description": "Pending reviews, the human inbox, and responses."},
    {"name": "agents", "description": "Agents are channels: webhook settings, status pings."},
    {"name": "accounts", "description": "Login, users."},
    {"name": "api keys", "description": "Agent API keys, shown once and stored hashed."},
    {"name": "inbound webhooks", "description": "Token URLs and signed triggers that post into channels."},
    {"name": "files", "description": "Uploads through signed URLs, stored in MongoDB GridFS; downloads."},
    {"name": "plugins", "description": "The freeform review renderers the inbox ships."},
    {
        "name": "notifications",
        "description": "E-mail and Slack: preferences, the notification log, Slack's callbacks.",
    },
    {
        "name": "policies",
        "description": "Rules that answer reviews before a person: per channel, per account.",
    },
    {"name": "audit", "description": "Every decision and policy change: query, export."},
]


PUBLIC_PATHS = (
    "/api/v1/auth/login",
    "/api/webhooks/execute/{token}",
    "/api/triggers/{trigger_id}",
    # Signed URLs: the signature in the path is the credential.
    "/api/v1/files/upload/{token}",
    "/api/v1/files/signed/{token}",
    # Signed by Slack with the app's signing secret.
    "/api/integrations/slack/actions",
)


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
            },
        }
    },
}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _document_schema(app: FastAPI) -> None:
    """Describe what FastAPI cannot infer: credentials (read in one dependency, see deps.py) and
    the one error shape every 4xx/5xx uses (instead of FastAPI's default 422 body)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "apiKey": {
                "type": "apiKey",
                "in": "header",
                "name": "x-api-key",
                "description": "Agent API key (hp_…; keys issued as sk_… keep working)",
            },
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "User JWT from /api/v1/auth/login, or an API key",
            },
        }
        components = schema["components"].setdefault("schemas", {})
        components["Error"] = ERROR_SCHEMA
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        for path, ops in schema.get("paths", {}).items():
            for op in ops.values():
                op["security"] = [] if path in PUBLIC_PATHS else [{"apiKey": []}, {"bearer": []}]
                responses = op.setdefault("responses", {})
                for code in [c for c in responses if c.startswith("4") or c.startswith("5")]:
                    responses[code] = _error_response(responses[code].get("description") or "Error")
                responses["4XX"] = _error_response("Client error: the code and message say what is wrong")
                responses["503"] = _error_response("MongoDB unreachable; retry after Retry-After seconds")
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: ApiSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.open(settings)
        keys = ApiKeyResolver(runtime.db, ttl=settings.auth_cache_seconds)
        scoped = ScopedTokenResolver(runtime.db, ttl=settings.auth_cache_seconds)
        jwt_keys = settings.jwt_signing_keys()
        ctx = ApiContext(
            settings=settings,
            runtime=runtime,
            keys=keys,
            auth=Authenticator(keys, jwt_keys, scoped),
            jwt_keys=jwt_keys,
            tokens=scoped,
            passwords=auth.Passwords(settings),
            channels=ChannelCache(runtime.db, ttl=settings.auth_cache_seconds),
            box=SecretBox(settings.box_keys()),
        )
        if settings.bootstrap_admin_email and settings.bootstrap_admin_password:
            await auth.ensure_admin(
                runtime.db,
                ctx.passwords,
                settings.bootstrap_admin_email,
                settings.bootstrap_admin_password.get_secret_value(),
            )
        # Data migrations are not run here: `sayso-api migrate` runs them once per deploy.
        await audit.ensure_retention(runtime.db, settings.audit_retention_days)
        await retention.ensure(runtime.db, settings.retention_days, settings.review_max_ttl_seconds)
        relay = OutboxRelay(
            runtime.db,
            lambda: create_producer(settings),
            # A deleted channel's messages hand their unpublished events to LEFT_EVENTS.
            # Remembered approvals carry their approval.remembered / approval.revoked events.
            [MESSAGES, AGENTS, LEFT_EVENTS, REMEMBERED],
            topic_prefix=settings.topic_prefix,
            lease=Lease(runtime.db, "outbox-relay:api", runtime.instance_id, settings.relay_lease_seconds),
            # Topics are created by the relay, not at start-up, so the API starts and answers
            # even while Kafka is down.
            prepare=lambda: ensure_topics(settings),
            retention=retention.retention(settings.retention_days),
        )
        ctx.relay = relay
        app.state.ctx = ctx
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        sweeper = asyncio.create_task(files_store.run_sweeper(runtime.db, settings), name="file-sweeper")
        policy_changes = asyncio.create_task(
            policy_store.book(runtime.db).follow_changes(), name="policy-changes"
        )
        remembered_changes = asyncio.create_task(
            remembered.book(runtime.db).follow_changes(), name="remembered-changes"
        )
        ctx.feed_waiters = feed_store.FeedWaiters(runtime.db)
        feed_changes = asyncio.create_task(ctx.feed_waiters.follow(), name="feed-changes")
        try:
            yield
        finally:
            for task in (feed_changes, remembered_changes, policy_changes, sweeper, relay_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runtime.close()

    app = FastAPI(
        title="Sayso API",
        version="0.1.0",
        description="Human sign-off for AI agents. Compatible with Placet's Agent API v1.",
        lifespan=lifespan,
        openapi_tags=OPENAPI_TAGS,
        telemetry=settings.fastapi_telemetry(),  # type: ignore[arg-type]
        docs_url=None,  # served by apidocs, from this origin
        redoc_url=None,
    )
    install_error_handlers(app)
    for router in (
        messages.router,
        expunge.router,
        reviews.router,
        agents.router,
        members.router,
        webhooks.router,
        endpoints.router,
        feed.router,
        inbound.router,
        triggers.router,
        auth_routes.router,
        keys.router,
        tokens.router,
        stats.router,
        files.router,
        plugins.router,
        notifications.router,
        policies.router,
        audit_log.router,
        integrations.router,
        answers.router,
        web.router,
    ):
        app.include_router(router)
    app.mount("/static", web.assets(), name="static")
    app.include_router(apidocs.router)
    app.include_router(asyncapi_docs.router)
    app.mount("/docs/assets", apidocs.assets(), name="docs-assets")

    def checks(request: Request) -> dict[str, Check]:
        ctx: ApiContext = request.app.state.ctx
        relay = ctx.relay
        assert relay is not None, "the lifespan sets the relay before serving"

        async def kafka() -> None:
            await check_producer(relay.producer)

        return {"mongodb": ctx.runtime.check_mongo, "kafka": kafka}

    async def detail(request: Request) -> dict[str, Any]:
        ctx: ApiContext = request.app.state.ctx
        waiting = await outbox.backlog(ctx.runtime.db, utcnow())
        return {"outbox": waiting.as_json()}

    for route in probe_routes(checks, detail):
        app.router.routes.append(route)

    _document_schema(app)
    app.add_middleware(RequestMetrics)
    # Inside BodyLimit: the guard buffers only bodies that already passed the size cap.
    app.add_middleware(JsonGuard, skip=files.streams_own_body)
    # File uploads stream their body under SAYSO_MAX_UPLOAD_BYTES instead (routes/files.py).
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, exempt=files.streams_own_body)
    # Outermost: a preflight is answered before any other check, and every answer (a 413 too)
    # carries the CORS headers a script on an allowed origin needs to read it.
    app.add_middleware(Cors, allowed=settings.cors_origins)
    return app
