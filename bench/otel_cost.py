"""What OpenTelemetry export costs per review, off and on (README, Observability).

    uv run --frozen python -m bench.otel_cost

Off: every call site asks ``otel.active()`` and takes its plain path; timed here as the checks one
review passes (about ten: the request, two publishes, the dispatcher's receipt, attempt and
request, the notifier, the realtime fan-out).
On: the spans one review makes in all services together (the API's server span, two publishes, the
dispatcher's receipt, attempt and client span, the notifier's and one realtime replica's consumer
span), exported by the SDK's batch processor over OTLP/HTTP to a sink in another process; CPU time
of this process (its export thread included) divided by the reviews. FastAPI's own request hooks
(spans and metrics) come on top on the API: profiled at about 2 % of its CPU per request.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import timeit

from sayso_common import otel, tracing

CHECKS_PER_REVIEW = 10
REVIEWS = 5_000
SINK = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def one_review() -> None:
    parent = tracing.new()
    with otel.current("POST /api/v1/reviews/{id}/respond", parent, otel.Kind.SERVER) as request:
        caused = otel.traceparent_of(request)
    for topic in ("review.responded", "delivery.status"):
        otel.start(
            f"publish {topic}", caused, otel.Kind.PRODUCER, {"messaging.destination.name": topic}
        ).end()
    receipt = otel.start("process review.responded", caused, otel.Kind.CONSUMER)
    receipt.end()
    with otel.current("webhook attempt", otel.traceparent_of(receipt), otel.Kind.INTERNAL):
        with otel.current("POST", tracing.current(), otel.Kind.CLIENT, {"http.request.method": "POST"}):
            pass
        otel.attempt_outcome("delivered", 200)
    for _ in ("notifier", "realtime"):
        with otel.processing("review.responded", "evt_x", caused):
            pass


def main() -> None:
    per_check = min(timeit.repeat(otel.active, number=1_000_000, repeat=5)) / 1_000_000
    print(f"off: otel.active() {per_check * 1e9:.0f} ns; x{CHECKS_PER_REVIEW} per review = "
          f"{per_check * CHECKS_PER_REVIEW * 1e6:.2f} µs")  # fmt: skip
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        port = sink.stdout.readline().strip()
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
        stop = otel.configure("bench", True)
        for _ in range(200):  # warm-up
            one_review()
        started = time.process_time()
        for _ in range(REVIEWS):
            one_review()
        stop()  # flushes: the export of every span is counted
        cpu = time.process_time() - started
    finally:
        sink.terminate()
        sink.wait()
    print(f"on: {cpu / REVIEWS * 1e6:.0f} µs CPU per review (9 spans, exported), {REVIEWS} reviews")


if __name__ == "__main__":
    main()
