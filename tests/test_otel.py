"""OpenTelemetry export (sayso_common.otel): off by default; on, one answered review is one trace
from the API request through the outbox relay's publish and the dispatcher's receipt to the
webhook attempt and its HTTP request, whose traceparent the receiver gets, with the notifier's and
the realtime gateway's handling of the same event in it. The stack's services
export to a real OTLP/HTTP receiver here (protobuf decoded with opentelemetry-proto)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sayso_common import otel, tracing
from tests.conftest import Infra
from tests.support.private import PrivateStack, private_stack
from tests.support.receiver import Receiver
from tests.support.stack import Owner, eventually

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
PARENT = f"00-{TRACE}-{CALLER_SPAN}-01"


@pytest.fixture
def in_memory() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    stop = otel.configure("unit", True, span_processor=SimpleSpanProcessor(spans), metric_reader=reader)
    try:
        yield spans, reader
    finally:
        stop()


def test_off_by_default_and_when_the_sdk_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not otel.active()
    otel.configure("unit", False)()
    assert not otel.active()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    stop = otel.configure("unit", True)
    assert not otel.active()
    stop()


def test_a_span_continues_the_carried_trace(
    in_memory: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    spans, reader = in_memory
    with otel.current("webhook attempt", PARENT, SpanKind.INTERNAL) as attempt:
        assert tracing.current() == otel.traceparent_of(attempt)  # log lines and events see it
        with otel.current("POST", tracing.current(), SpanKind.CLIENT) as request:
            otel.attempt_outcome("delivered", 204)
        otel.attempt_outcome("delivered", 204)
    assert tracing.current() is None
    finished = {s.name: s for s in spans.get_finished_spans()}
    outer, inner = finished["webhook attempt"], finished["POST"]
    assert f"{outer.context.trace_id:032x}" == TRACE
    assert outer.parent is not None
    assert f"{outer.parent.span_id:016x}" == CALLER_SPAN
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id
    assert inner.kind is SpanKind.CLIENT
    assert [e.name for e in outer.events] == ["webhook delivered"]
    assert otel.traceparent_of(request) == f"00-{TRACE}-{inner.context.span_id:016x}-01"
    data = reader.get_metrics_data()
    assert data is not None
    names = [m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    assert "sayso.webhook.attempts" in names


@dataclass
class Collector:
    """An OTLP/HTTP receiver: what the services export, decoded."""

    spans: list[dict[str, Any]] = field(default_factory=list)
    metrics: set[tuple[str, str]] = field(default_factory=set)  # (service, metric name)
    runner: web.AppRunner | None = None
    port: int = 0

    async def traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            service = _service(resource_spans.resource.attributes)
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    self.spans.append(
                        {
                            "service": service,
                            "name": s.name,
                            "kind": s.kind,
                            "trace": s.trace_id.hex(),
                            "id": s.span_id.hex(),
                            "parent": s.parent_span_id.hex(),
                            "events": [e.name for e in s.events],
                            "attributes": {a.key: a.value for a in s.attributes},
                        }
                    )
        return web.Response(content_type="application/x-protobuf", body=b"")

    async def metric(self, request: web.Request) -> web.Response:
        export = ExportMetricsServiceRequest.FromString(await request.read())
        for resource_metrics in export.resource_metrics:
            service = _service(resource_metrics.resource.attributes)
            for scope in resource_metrics.scope_metrics:
                self.metrics |= {(service, m.name) for m in scope.metrics}
        return web.Response(content_type="application/x-protobuf", body=b"")

    async def start(self) -> Collector:
        app = web.Application()
        app.router.add_post("/v1/traces", self.traces)
        app.router.add_post("/v1/metrics", self.metric)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def _service(attributes: Any) -> str:
    return next((a.value.string_value for a in attributes if a.key == "service.name"), "")


@pytest.fixture(scope="module")
async def collector() -> AsyncIterator[Collector]:
    started = await Collector().start()
    yield started
    await started.stop()


@pytest.fixture(scope="module")
def traced(infra: Infra, collector: Collector) -> Iterator[PrivateStack]:
    with private_stack(
        PrivateStack,
        infra,
        "otel",
        {"dispatcher": "dispatcher", "notifier": "notifier", "realtime": "realtime"},
        ready=("dispatcher", "notifier", "realtime"),
        SAYSO_OTEL="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.port}",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_METRIC_EXPORT_INTERVAL="500",
    ) as stack:
        yield stack


async def test_one_review_is_one_trace_from_request_to_webhook(
    traced: PrivateStack, collector: Collector, receiver: Receiver
) -> None:
    async with await traced.stack.new_owner() as owner:
        await _answer(owner, receiver)
    (hook,) = await receiver.wait_for("/otel")
    sent = tracing.parse(hook.headers["traceparent"])
    assert sent is not None
    assert tracing.trace_id(sent) == TRACE

    def span(service: str, name: str, parent: str | None = None) -> dict[str, Any] | None:
        return next(
            (
                s
                for s in collector.spans
                if s["trace"] == TRACE and s["service"] == service and s["name"].startswith(name)
                and (parent is None or s["parent"] == parent)
            ),
            None,
        )  # fmt: skip

    async def found(service: str, name: str, parent: str | None = None) -> dict[str, Any]:
        async def look() -> dict[str, Any] | None:
            return span(service, name, parent)

        return await eventually(look, what=f"the {service} span {name!r} under {parent}")

    # The API's server span for the answer continues the caller's trace.
    request = await found("sayso-api", "POST", CALLER_SPAN)
    assert request["kind"] == 2  # SPAN_KIND_SERVER
    publish = await found(
        "sayso-api", f"publish {traced.env['SAYSO_TOPIC_PREFIX']}review.responded", request["id"]
    )
    assert publish["kind"] == 4  # SPAN_KIND_PRODUCER
    receipt = await found("sayso-dispatcher", "process review.responded", request["id"])
    assert receipt["kind"] == 5  # SPAN_KIND_CONSUMER
    attempt = await found("sayso-dispatcher", "webhook attempt", receipt["id"])
    assert "webhook delivered" in attempt["events"]
    client = await found("sayso-dispatcher", "POST", attempt["id"])
    assert client["kind"] == 3  # SPAN_KIND_CLIENT
    assert sent.split("-")[2] == client["id"]  # the receiver's parent is the HTTP client span
    # The other consumers of the same event join the same trace.
    for service in ("sayso-notifier", "sayso-realtime"):
        assert (await found(service, "process review.responded", request["id"]))["kind"] == 5

    async def exported() -> bool | None:
        wanted = {
            ("sayso-dispatcher", "sayso.webhook.attempts"),
            ("sayso-api", "http.server.request.duration"),
        }
        return wanted <= collector.metrics or None

    await eventually(exported, what="the dispatcher's and the API's metrics at the collector")


async def _answer(owner: Owner, receiver: Receiver) -> None:
    agent = await owner.create_agent(webhookUrl=receiver.url("/otel"))
    msg = await owner.post_message(agent["id"], review={"type": "approval", "payload": {}})
    answered = await owner.human.post(
        f"/api/v1/reviews/{msg['id']}/respond",
        json={"response": {"selectedOption": "approve"}},
        headers={"traceparent": PARENT},
    )
    assert answered.status_code == 200
    await asyncio.sleep(0)
