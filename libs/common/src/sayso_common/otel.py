"""OpenTelemetry export of traces and metrics, off by default.

On with ``SAYSO_OTEL=true`` (a service setting; ``OTEL_SDK_DISABLED=true`` turns it off again), then
configured by the standard variables the SDK reads itself: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the
per-signal ``…_TRACES_ENDPOINT`` / ``…_METRICS_ENDPOINT``), ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_SERVICE_NAME`` (default ``sayso-<service>``), ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (``otlp``, the default, ``console`` or
``none``), ``OTEL_METRIC_EXPORT_INTERVAL``, ``OTEL_BSP_*``. The protocol is OTLP over HTTP/protobuf.

The spans continue the W3C ``traceparent`` the services already carry (``sayso_common.tracing``):
the API request (FastAPI's own server span), the outbox relay's publish, the dispatcher's receipt
of the event, its webhook attempt and the HTTP request inside it, whose ``traceparent`` header
names that span. With export off nothing here calls OpenTelemetry: :func:`active` is a module
flag, and every call site keeps its plain ``tracing`` path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags

from sayso_common import tracing

# The SDK is imported only when export is turned on: its import alone takes about a second of a
# service's start-up here (the API package, opentelemetry-api, is FastAPI's and already loaded).
if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter

_tracer: trace.Tracer | None = None
_meter: metrics.Meter | None = None
_attempts: metrics.Counter | None = None
_UNSET = object()

Kind = SpanKind


def active() -> bool:
    return _tracer is not None


def disabled_by_environment() -> bool:
    return os.getenv("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _exporter_choice(signal: str) -> str:
    return (os.getenv(f"OTEL_{signal}_EXPORTER") or "otlp").split(",")[0].strip().lower()


def _span_exporter() -> SpanExporter | None:
    choice = _exporter_choice("TRACES")
    if choice == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if choice == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    return None


def _metric_reader() -> MetricReader | None:
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

    choice = _exporter_choice("METRICS")
    if choice == "console":
        return PeriodicExportingMetricReader(ConsoleMetricExporter())
    if choice == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return PeriodicExportingMetricReader(OTLPMetricExporter())
    return None


def configure(
    service: str,
    enabled: bool,
    *,
    span_processor: SpanProcessor | None = None,
    metric_reader: MetricReader | object | None = _UNSET,
) -> Callable[[], None]:
    """Install the global tracer and meter providers when export is on; returns what flushes and
    stops them (call it on the way out). Tests pass their own processor/reader (in-memory)."""
    global _tracer, _meter
    if not enabled or disabled_by_environment():
        return lambda: None
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.getenv("OTEL_SERVICE_NAME") or f"sayso-{service}"})
    tracer_provider = TracerProvider(resource=resource)
    processor = span_processor
    if processor is None and (exporter := _span_exporter()) is not None:
        processor = BatchSpanProcessor(exporter)
    if processor is not None:
        tracer_provider.add_span_processor(processor)
    reader = _metric_reader() if metric_reader is _UNSET else metric_reader
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[reader] if isinstance(reader, MetricReader) else []
    )
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    _tracer = tracer_provider.get_tracer("sayso")
    _meter = meter_provider.get_meter("sayso")
    global _attempts
    _attempts = _meter.create_counter(
        "sayso.webhook.attempts", unit="{attempt}", description="Webhook attempts by outcome"
    )

    def shutdown() -> None:
        global _tracer, _meter, _attempts
        _tracer = _meter = _attempts = None
        tracer_provider.shutdown()
        meter_provider.shutdown()

    return shutdown


def meter() -> metrics.Meter | None:
    return _meter


def attempt_outcome(verdict: str, status_code: int | None) -> None:
    """Marks the current webhook attempt span with its outcome (an event when it was delivered)
    and counts it."""
    span = trace.get_current_span()
    span.set_attribute("sayso.attempt.verdict", verdict)
    if status_code is not None:
        span.set_attribute("http.response.status_code", status_code)
    if verdict == "delivered":
        span.add_event("webhook delivered")
    else:
        span.set_status(trace.StatusCode.ERROR, verdict)
    if _attempts is not None:
        _attempts.add(1, {"sayso.attempt.verdict": verdict})


def traceparent_of(span: Span) -> str | None:
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def _parent_context(parent: str | None) -> otel_context.Context | None:
    """The context whose current span is ``parent`` (a ``traceparent``), None to start a trace."""
    valid = tracing.parse(parent)
    if valid is None:
        return None
    _, trace_id, span_id, flags = valid.split("-")
    remote = SpanContext(
        int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(int(flags, 16))
    )
    return trace.set_span_in_context(NonRecordingSpan(remote))


def start(name: str, parent: str | None, kind: SpanKind, attributes: Mapping[str, Any] | None = None) -> Span:
    """A span in ``parent``'s trace, not made current (for work that ends elsewhere); export must be
    on (see :func:`active`). End it with ``span.end()``."""
    assert _tracer is not None, "start spans only while otel.active()"
    return _tracer.start_span(name, context=_parent_context(parent), kind=kind, attributes=attributes)


@contextlib.contextmanager
def current(
    name: str, parent: str | None, kind: SpanKind, attributes: Mapping[str, Any] | None = None
) -> Iterator[Span]:
    """A span in ``parent``'s trace, current inside the block (OpenTelemetry's context and
    ``tracing.CURRENT``, which log lines and new events read); export must be on."""
    span = start(name, parent, kind, attributes)
    token = tracing.CURRENT.set(traceparent_of(span))
    try:
        with trace.use_span(span, end_on_exit=True):
            yield span
    finally:
        tracing.CURRENT.reset(token)


def processing(event_type: str, event_id: str, parent: str | None) -> contextlib.AbstractContextManager[Span]:
    """The span of a consumer handling one event (the notifier's planning, the realtime fan-out),
    in the trace of the request that caused it; export must be on."""
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.message.id": event_id,
    }
    return current(f"process {event_type}", parent, SpanKind.CONSUMER, attributes)


def current_traceparent() -> str | None:
    """The ``traceparent`` of OpenTelemetry's current span (FastAPI's request span), if any."""
    return traceparent_of(trace.get_current_span()) if _tracer is not None else None
