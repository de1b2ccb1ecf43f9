"""The delivery engine of one dispatcher process.

Events become delivery documents (``accept``, called by the Kafka handler). Documents this
process just created are claimed in the same insert and go straight to the per-host lanes, so a
response reaches its agent without waiting for a poll. Everything else - retries that fall due,
work beyond what fits in memory, leases a crashed replica left behind, manual re-queues - is
claimed by the sweep, which sleeps until the earliest due time it knows of (the sweep, and the
settings it shares with the notifier's, are :mod:`sayso_service.leased_worker`'s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import PyMongoError
from sayso_service.leased_worker import Clock, LeasedWorker
from yarl import URL

from sayso_common import attempts, incidents, otel, tracing
from sayso_common.attempts import ErrorKind, RetryPolicy, Verdict
from sayso_common.clock import as_utc, utcnow
from sayso_common.deliveries import REVIEW_EVENTS, Attempt, Result, new_delivery, record_attempt
from sayso_common.documents import AgentDoc, DeliveryDoc, EndpointDoc, KafkaDestinationDoc
from sayso_common.endpoints import message_id_of
from sayso_common.events import Event
from sayso_common.kafka_destinations import is_kafka_url
from sayso_common.mongo import AGENTS, DELIVERIES, ENDPOINTS, MESSAGES, Database, collection, untyped
from sayso_common.webhook_signature import RESERVED_HEADERS
from sayso_dispatcher import metrics
from sayso_dispatcher.agents import AgentDirectory
from sayso_dispatcher.circuit import Breakers, State
from sayso_dispatcher.endpoints import EndpointDirectory
from sayso_dispatcher.incidents import Incidents
from sayso_dispatcher.lanes import Lanes
from sayso_dispatcher.payload import body_for, format_of, render
from sayso_dispatcher.producers import KafkaDestinations
from sayso_dispatcher.ratelimit import EndpointRates, spread
from sayso_dispatcher.sender import Sender
from sayso_dispatcher.settings import DispatcherSettings
from sayso_dispatcher.signing import signed_headers
from sayso_dispatcher.store import DeliveryStore
from sayso_dispatcher.targets import Target, message_of, needs_callback_headers, target_for

log = logging.getLogger(__name__)

AUTH_SOURCES = ("agent", "message", "test")


def received(event: Event) -> str | None:
    """The trace a delivery of ``event`` continues: the event's own, or with OpenTelemetry on, the
    span that marks its receipt here (a child of the publishing request's)."""
    if not otel.active():
        return event.traceparent
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.message.id": event.id,
    }
    span = otel.start(f"process {event.type}", event.traceparent, otel.Kind.CONSUMER, attributes)
    span.end()
    return otel.traceparent_of(span)


class UnreadableSecretError(RuntimeError):
    """A sealed credential no configured key opens (``SAYSO_SECRET_KEYS`` lost the old key)."""


def lane_key(doc: DeliveryDoc) -> str:
    """Concurrency and circuit breakers are per tenant and host: one tenant's failing or slow
    endpoint can neither open another tenant's circuit nor take its request slots. An explicit
    endpoint has a lane (and circuit) of its own: its failures, slowness or rate limit never
    hold back another endpoint, even one on the same host."""
    endpoint_id = doc.get("endpoint_id")
    if endpoint_id:
        return f"{doc['owner_id']}|{doc['host']}|{endpoint_id}"
    return f"{doc['owner_id']}|{doc['host']}"


def attempt_span(
    doc: DeliveryDoc, method: str, kafka: KafkaDestinationDoc | None
) -> tuple[str, otel.Kind, dict[str, str]]:
    """The name, kind and attributes of an attempt's span: an HTTP request, or a Kafka send."""
    if kafka is not None:
        topic = kafka["topic"]
        return (
            f"send {topic}",
            otel.Kind.PRODUCER,
            {
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": topic,
            },
        )
    return (
        method,
        otel.Kind.CLIENT,
        {"http.request.method": method, "server.address": URL(doc["url"]).host or ""},
    )


class EndpointGoneError(RuntimeError):
    """The delivery's endpoint was deleted or disabled after the delivery was made."""


_OUTCOME_LABEL = {"webhook_delivered": "delivered", "webhook_failed": "failed"}
# What each verdict does to the delivery (410 fails it; the default URL is disabled besides).
RESULTS: dict[Verdict, Result] = {
    Verdict.DELIVERED: "delivered",
    Verdict.RETRY: "retry",
    Verdict.FAIL: "failed",
    Verdict.GONE: "failed",
}


def leases_to_renew(held: dict[str, tuple[str, datetime]], now: datetime, period: float) -> dict[str, str]:
    """The held deliveries (id -> claim) whose lease could lapse before the renewal pass after
    the next one, ``period`` seconds apart: what is left of their lease when that pass comes is
    never less than one period."""
    horizon = now + timedelta(seconds=2 * period)
    return {_id: claim for _id, (claim, until) in held.items() if until <= horizon}


class Worker(LeasedWorker[DeliveryDoc]):
    """Takes every collaborator it uses; :meth:`create` builds the real ones, and a test passes
    in those it means to change (a store that fails, breakers it trips, a rate clock)."""

    noun = "delivery"

    def __init__(
        self,
        settings: DispatcherSettings,
        db: Database,
        instance: str,
        *,
        store: DeliveryStore,
        agents: AgentDirectory,
        endpoints: EndpointDirectory,
        sender: Sender,
        kafka: KafkaDestinations,
        breakers: Breakers,
        rates: EndpointRates,
        incidents: Incidents,
        clock: Clock = utcnow,
    ) -> None:
        super().__init__(
            settings,
            store,
            instance,
            clock=clock,
            retry=RetryPolicy(
                jitter=settings.retry_jitter, retry_after_max=settings.dispatcher_retry_after_max_seconds
            ),
            due_gauge=metrics.DUE,
            leases_lost=metrics.LEASES_LOST,
        )
        self._settings = settings
        self._db = db
        self.store: DeliveryStore = store
        self._agents = agents
        self.endpoints = endpoints
        # Endpoints whose destination is a Kafka topic; producers are made on first use.
        self.kafka = kafka
        self._rates = rates
        self._sender = sender
        self._breakers = breakers
        self._lanes: Lanes[DeliveryDoc] = Lanes(
            self._attempt,
            settings.dispatcher_per_host_concurrency,
            settings.concurrency,
            settings.tenant_concurrency(),
        )
        # delivery id -> (claim token, lease end), for everything this process holds.
        self._held: dict[str, tuple[str, datetime]] = {}
        self.incidents = incidents
        # Deliveries refused because their endpoint was disabled or deleted (not the receiver's
        # failure: no retries_exhausted), with the endpoint as it was read.
        self._refused: dict[str, EndpointDoc | None] = {}
        # Lanes whose long-open circuit this process already told (until the circuit closes).
        self._circuits_told: set[str] = set()
        metrics.HELD.set_function(lambda: len(self._held))
        metrics.OPEN_CIRCUITS.set_function(self._breakers.open_count)

    @classmethod
    def create(
        cls,
        settings: DispatcherSettings,
        db: Database,
        agents: AgentDirectory,
        sender: Sender,
        instance: str,
        *,
        store: DeliveryStore | None = None,
        endpoints: EndpointDirectory | None = None,
        kafka: KafkaDestinations | None = None,
        breakers: Breakers | None = None,
        rates: EndpointRates | None = None,
        incidents: Incidents | None = None,
        clock: Clock = utcnow,
    ) -> Worker:
        """The worker with the real collaborators, but for those given."""
        return cls(
            settings,
            db,
            instance,
            store=store if store is not None else DeliveryStore(db, instance, settings.lease_seconds),
            agents=agents,
            endpoints=endpoints if endpoints is not None else EndpointDirectory(db, agents.open),
            sender=sender,
            kafka=kafka if kafka is not None else KafkaDestinations(settings, agents.open, instance),
            breakers=breakers if breakers is not None else Breakers(settings.circuit_policy()),
            rates=rates if rates is not None else EndpointRates(db),
            incidents=incidents if incidents is not None else Incidents(db),
            clock=clock,
        )

    # --- events -> deliveries ---------------------------------------------------------------

    async def accept(self, events: Sequence[Event]) -> int:
        """Create the deliveries ``events`` call for; returns how many were new."""
        wanted = [e for e in events if body_for(e) is not None]
        if not wanted:
            return 0
        agents = await self._agents.get_many({e.channel_id for e in wanted})
        endpoints = await self.endpoints.for_channels({e.channel_id: e.owner_id for e in wanted})
        callback_headers = await self._callback_headers(
            [e for e in wanted if needs_callback_headers(e, agents.get(e.channel_id))]
        )
        now = self.clock()
        room = self._settings.dispatcher_max_held - len(self._held)
        claim = self.store.new_claim()
        docs: list[DeliveryDoc] = []
        for event in wanted:
            agent = agents.get(event.channel_id)
            message = message_of(event)
            message_id = message_id_of(event)
            target = target_for(event, agent, callback_headers.get(message_id or ""))
            body = body_for(event, format_of(message, agent))
            common: dict[str, Any] = {
                "event_id": event.id,
                "event_type": event.type,
                "channel_id": event.channel_id,
                "owner_id": event.owner_id,
                "message_id": message_id,
                "schedule": self._schedule(agent),
                "now": now,
                "event_at": event.occurred_at,
                "traceparent": received(event),
            }
            # The implicit endpoint first (the message's, the agent's or the callback's URL, as
            # ever), then one delivery per explicit endpoint that wants the event.
            chosen: list[tuple[Target, dict[str, Any]]] = []
            if target is not None and body is not None:
                chosen.append((target, body))
            for endpoint in self.endpoints.matching(endpoints.get(event.channel_id, ()), event):
                own = body_for(event, endpoint.get("format") or "placet")
                if own is not None:
                    to = Target(
                        endpoint["url"],
                        "endpoint",
                        headers_enc=endpoint.get("headers_enc"),
                        endpoint_id=endpoint["_id"],
                    )
                    chosen.append((to, own))
            for to, content in chosen:
                # Claimed at insert while there is room in memory; beyond that it waits in MongoDB.
                mine = len(docs) < room
                doc = new_delivery(
                    **common,
                    url=to.url,
                    source=to.source,
                    method=to.method,
                    headers_enc=to.headers_enc,
                    endpoint_id=to.endpoint_id,
                    body=render(content),
                    due_at=self.store.lease_end(now) if mine else now,
                    claim=claim if mine else None,
                )
                docs.append(doc)
        return len(await self.store.insert_durable(docs, self._take_inserted))

    def _take_inserted(self, inserted: list[DeliveryDoc]) -> None:
        """New deliveries as soon as their insert is applied: those claimed at insert go to the
        lanes; the others wait in MongoDB for a sweep (LeasedWorker.start takes what it claims)."""
        for doc in inserted:
            if doc["claim"]:
                self._submit(doc)
            else:
                self.wake()

    def schedule_of(self, doc: DeliveryDoc) -> list[int]:
        """The delivery's retry delays. The API makes deliveries too (a replay) without knowing
        this setting: those carry None, this dispatcher's schedule."""
        schedule = doc.get("schedule", [])
        return self._settings.retry_schedule if schedule is None else schedule

    def _schedule(self, agent: AgentDoc | None) -> list[int]:
        own = agent.get("retry_schedule") if agent else None
        return attempts.schedule_for(own, self._settings.retry_schedule)

    async def _callback_headers(self, events: list[Event]) -> dict[str, str]:
        ids = [m.id for m in map(message_of, events) if m is not None]
        if not ids:
            return {}
        docs = (
            await collection(self._db, MESSAGES)
            .find({"_id": {"$in": ids}}, {"review.callback.headers_enc": 1})
            .to_list()
        )
        out: dict[str, str] = {}
        for doc in docs:
            callback = doc["review"].get("callback") if "review" in doc else None
            sealed = callback.get("headers_enc") if callback else None
            if sealed:
                out[doc["_id"]] = sealed
        return out

    # --- attempts ---------------------------------------------------------------------------

    def room(self) -> int:
        """What a sweep may claim: a batch, as far as the deliveries held in memory allow."""
        room = self._settings.dispatcher_max_held - len(self._held)
        return min(room, self._settings.dispatcher_claim_batch)

    def start(self, doc: DeliveryDoc) -> None:
        self._submit(doc)

    def full_wait(self, interval: float) -> float:
        # A finished attempt does not wake the sweep: look again soon.
        return min(interval, 0.2)

    def _submit(self, doc: DeliveryDoc) -> None:
        claim = doc.get("claim")
        assert claim is not None, "only claimed deliveries are submitted"
        self._held[doc["_id"]] = (claim, as_utc(doc["next_attempt_at"]))
        self._lanes.submit(lane_key(doc), doc, doc["owner_id"])

    async def _attempt(self, doc: DeliveryDoc) -> None:
        """Runs inside the host's lane slot: only the HTTP request. Recording the outcome (a
        MongoDB round trip) happens after the slot is freed, so the next request to this host
        does not wait for it."""
        recording = False
        # Log lines about this attempt carry the trace of the request that caused its event.
        token = tracing.CURRENT.set(doc.get("traceparent"))
        try:
            if otel.active():
                attributes = {"sayso.delivery.id": doc["_id"], "sayso.event.id": doc["event_id"]}
                with otel.current("webhook attempt", doc.get("traceparent"), otel.Kind.INTERNAL, attributes):
                    recording = await self._request(doc)
            else:
                recording = await self._request(doc)
        finally:
            tracing.CURRENT.reset(token)
            if not recording:
                self._held.pop(doc["_id"], None)

    async def _request(self, doc: DeliveryDoc) -> bool:
        key = lane_key(doc)
        if doc.get("endpoint_id") and await self._rate_limited(doc, key):
            return False
        circuit = self._breakers[key]
        if not circuit.allow():
            # The endpoint keeps failing: give its queued work back, due when a probe may go.
            later = self.clock() + timedelta(seconds=max(1.0, circuit.retry_in()))
            parked = [doc, *self._lanes.take_queued(key)]
            await self.store.release(parked, later)
            for d in parked:
                self._held.pop(d["_id"], None)
            self.wake_at(later)
            await self._circuit_alert(doc, key, circuit.open_for())
            return False
        # From here on the circuit may have granted its one probe: every path records an outcome.
        try:
            attempt = await self._send(doc)
        except Exception as exc:
            log.exception("preparing an attempt failed", extra={"delivery": doc["_id"]})
            attempt = Attempt(
                at=self.clock(), duration_ms=0.0, status_code=None, error_kind=ErrorKind.INTERNAL,
                error=f"{type(exc).__name__}: {exc}"[:500], body=None, by=self._sender.instance_name,
            )  # fmt: skip
        decision = attempts.verdict(attempt.status_code, attempt.error_kind)
        if otel.active():
            otel.attempt_outcome(decision.value, attempt.status_code)
        before = circuit.state
        circuit.record(attempts.circuit_result(attempt.status_code, attempt.error_kind))
        # Only the changes an operator acts on (not every failed probe of a host still down).
        if before is State.CLOSED and circuit.state is State.OPEN:
            log.warning("circuit opened", extra={"lane": key})
        elif before is State.HALF_OPEN and circuit.state is State.CLOSED:
            log.info("circuit closed", extra={"lane": key})
            self._circuits_told.discard(key)
        delay = None
        if decision is Verdict.RETRY:
            delay = self.retry_delay(
                self.schedule_of(doc), doc.get("round_attempts", 0) + 1, attempt.retry_after
            )
        self.spawn(self._record(doc, attempt, decision, delay))
        return True

    async def _rate_limited(self, doc: DeliveryDoc, key: str) -> bool:
        """Whether the endpoint's rate limit held ``doc`` back; if so, it and the lane's queued
        deliveries went back to MongoDB, spread over the coming seconds at the limit."""
        endpoint = await self.endpoints.get(doc.get("endpoint_id") or "")
        limit = endpoint.get("rate_limit") if endpoint else None
        if not endpoint or not limit:
            return False
        later = await self._rates.admit(endpoint["_id"], limit)
        if later is None:
            return False
        parked = [doc, *self._lanes.take_queued(key)]
        times = [datetime.fromtimestamp(t, UTC) for t in spread(len(parked), limit, later)]
        await self.store.release_each(list(zip(parked, times, strict=True)))
        for d in parked:
            self._held.pop(d["_id"], None)
        metrics.RATE_LIMITED.inc(len(parked))
        self.wake_at(times[0])
        return True

    async def _send(self, doc: DeliveryDoc) -> Attempt:
        endpoint_id = doc.get("endpoint_id")
        if endpoint_id:
            return await self._send_to_endpoint(doc, endpoint_id)
        agent = await self._agents.get(doc["channel_id"])
        now = self.clock()
        # As Placet: the agent's Basic auth goes to its own URLs (its default, a message's
        # override, the test), never to a legacy callback; custom headers may override it.
        auth: dict[str, str] = {}
        if doc.get("source") in AUTH_SOURCES:
            try:
                auth = self._agents.basic_auth(agent)
            except (ValueError, TypeError):
                # Sending without them would earn a certain 401 that fails for good; this is a
                # retried internal error that names the cause. ``from None``: whatever the
                # decoder said about the plaintext stays out of the logs and the attempt.
                raise UnreadableSecretError("the agent's stored webhookAuth cannot be opened") from None
        return await self._send_with(doc, auth, self._agents.secrets(agent, now))

    async def _send_to_endpoint(self, doc: DeliveryDoc, endpoint_id: str) -> Attempt:
        """An explicit endpoint's delivery: its own secrets and Basic auth, read at send time (a
        rotation or a changed auth applies to retries still pending)."""
        endpoint = await self.endpoints.get(endpoint_id)
        if endpoint is None or endpoint.get("disabled"):
            why = (
                "deleted"
                if endpoint is None
                else f"disabled ({endpoint.get('disabled_reason') or 'by owner'})"
            )
            self._refused[doc["_id"]] = endpoint
            return self._refused_attempt(f"the endpoint was {why}")
        secrets = self.endpoints.secrets(endpoint, self.clock())
        if is_kafka_url(doc["url"]):
            kafka = endpoint.get("kafka")
            if not kafka:
                return self._refused_attempt("the endpoint is no longer a Kafka destination")
            return await self._send_with(doc, {}, secrets, kafka)
        try:
            auth = self.endpoints.basic_auth(endpoint)
        except (ValueError, TypeError):
            raise UnreadableSecretError("the endpoint's stored auth cannot be opened") from None
        return await self._send_with(doc, auth, secrets)

    def _refused_attempt(self, why: str) -> Attempt:
        # Not attempted, and not worth retrying: an invalid request fails at once.
        return Attempt(
            at=self.clock(), duration_ms=0.0, status_code=None, error_kind=ErrorKind.INVALID_REQUEST,
            error=why, body=None, by=self._sender.instance_name,
        )  # fmt: skip

    async def _send_with(
        self,
        doc: DeliveryDoc,
        auth: dict[str, str],
        secrets: list[str],
        kafka: KafkaDestinationDoc | None = None,
    ) -> Attempt:
        try:
            stored = self._agents.headers(doc.get("headers_enc"))
        except (ValueError, TypeError):
            log.error(
                "stored webhook headers unreadable; sending without them", extra={"delivery": doc["_id"]}
            )
            stored = {}
        # Framing and signature headers never pass, even from documents older than the check.
        custom = {k: v for k, v in stored.items() if k.lower() not in RESERVED_HEADERS}
        if any(k.lower() == "authorization" for k in custom):
            auth = {}  # whatever its case, the custom one wins: never two Authorization headers
        extra = {**auth, **custom}
        method = doc.get("method", "POST")
        if otel.active():
            name, kind, attributes = attempt_span(doc, method, kafka)
            with otel.current(name, tracing.CURRENT.get(), kind, attributes) as span:
                if (own := otel.traceparent_of(span)) is not None:
                    extra["traceparent"] = own  # the receiver's parent is this request
                attempt = await self._post(doc, secrets, extra, kafka)
                if attempt.status_code is not None:
                    span.set_attribute("http.response.status_code", attempt.status_code)
                return attempt
        if doc.get("traceparent"):
            # The receiver's span is a child of the request that caused the event.
            extra["traceparent"] = tracing.child(doc["traceparent"])
        return await self._post(doc, secrets, extra, kafka)

    async def _post(
        self, doc: DeliveryDoc, secrets: list[str], extra: dict[str, str], kafka: KafkaDestinationDoc | None
    ) -> Attempt:
        body = doc["body"].encode()
        headers = signed_headers(doc["event_id"], int(time.time()), body, secrets, extra)
        if kafka is not None:
            # Keyed by channel: one channel's events land on one partition, in order.
            return await self.kafka.produce(kafka, doc["channel_id"].encode(), body, headers)
        return await self._sender.post(doc["url"], doc.get("method", "POST"), body, headers)

    async def _record(
        self, doc: DeliveryDoc, attempt: Attempt, decision: Verdict, delay: float | None
    ) -> None:
        try:
            await self._record_once(doc, attempt, decision, delay)
        except Exception:
            # Not recorded: the claim lapses and the delivery is attempted again (at least once).
            log.exception("recording an attempt failed", extra={"delivery": doc["_id"]})
        finally:
            self._held.pop(doc["_id"], None)

    async def _record_once(
        self, doc: DeliveryDoc, attempt: Attempt, decision: Verdict, delay: float | None
    ) -> None:
        finished = self.clock()
        outcome = record_attempt(
            doc, attempt, RESULTS[decision], delay, finished, self._settings.attempts_kept
        )
        self._observe(doc, attempt.status_code, attempt.error_kind, attempt.duration_ms, finished)
        refused = doc["_id"] in self._refused
        endpoint = self._refused.pop(doc["_id"], None)
        # Before the outcome is visible: whoever sees the delivery failed sees the URL disabled,
        # and a crash in between repeats the attempt, which tells the incident (once) again.
        if decision is Verdict.GONE and doc.get("source") == "agent":
            await self._disable_default_url(doc, finished)
        elif decision is Verdict.GONE and doc.get("endpoint_id"):
            await self._disable_endpoint(doc, finished, incidents.gone_reason(finished))
        elif refused:
            await self._still_disabled(doc, endpoint, finished)
        elif outcome.state == "failed":
            await self._failed_for_good(doc, attempt, finished)
        elif self.incidents.any_open(self._subjects(doc)):
            await self._recovered(doc, attempt, outcome.state == "delivered", finished)
        if not await self.store.record(doc, outcome.update, attempt.at, attempt.by):
            self.claim_lost(doc["_id"])
            return
        if outcome.state != "pending":
            label = "gone" if decision is Verdict.GONE else _OUTCOME_LABEL[outcome.status]
            metrics.DELIVERIES.labels("refused" if attempt.error_kind == ErrorKind.SSRF else label).inc()
            message_id = doc.get("message_id")
            # The message's delivery status is its agent's webhook's (Placet's field), not an endpoint's.
            if doc["event_type"] in REVIEW_EVENTS and message_id and not doc.get("endpoint_id"):
                await self.store.mirror_status(message_id, outcome.status, finished)
        if outcome.next_attempt_at is not None:
            self.wake_at(outcome.next_attempt_at)

    def _observe(
        self, doc: DeliveryDoc, status: int | None, kind: str | None, duration_ms: float, at: datetime
    ) -> None:
        metrics.ATTEMPTS.labels(attempts.StatusClass.of(status) if status else (kind or "acknowledged")).inc()
        metrics.ATTEMPT_SECONDS.observe(duration_ms / 1000)
        if doc.get("attempt_count", 0) == 0 and isinstance(doc.get("event_at"), datetime):
            metrics.EVENT_TO_WEBHOOK_SECONDS.observe(max(0.0, (at - as_utc(doc["event_at"])).total_seconds()))

    async def _disable_default_url(self, doc: DeliveryDoc, now: datetime) -> None:
        # Only if the URL is still the one that answered 410: an owner may have changed it since.
        # Only once: the first disabling's time names the incident every later 410 finds.
        agents = collection(self._db, AGENTS)
        await agents.update_one(
            {"_id": doc["channel_id"], "webhook_url": doc["url"], "webhook_enabled": {"$ne": False}},
            {
                "$set": {
                    "webhook_enabled": False,
                    "webhook_disabled_reason": incidents.gone_reason(now),
                    "webhook_disabled_at": now,
                    "updated_at": now,
                }
            },
        )
        self._agents.forget(doc["channel_id"])
        log.info("default webhook URL disabled after 410", extra={"agent": doc["channel_id"]})
        agent = await agents.find_one(
            {"_id": doc["channel_id"], "webhook_url": doc["url"], "webhook_enabled": False},
            {"webhook_disabled_at": 1, "webhook_disabled_reason": 1},
        )
        since = agent.get("webhook_disabled_at") if agent else None
        if since is not None and incidents.raises_incidents(doc):
            reason = agent.get("webhook_disabled_reason") if agent else None
            await self.incidents.disabled(
                incidents.Target.of(doc), since, reason or incidents.gone_reason(since), now, doc
            )

    async def _disable_endpoint(self, doc: DeliveryDoc, now: datetime, reason: str) -> None:
        # Only if the URL is still the one that failed: an owner may have changed it since. Only
        # once: the first disabling's time names the incident every later refusal finds.
        update: dict[str, Any] = {
            "disabled": True,
            "disabled_reason": reason,
            "auto_disabled_at": now,
            "updated_at": now,
        }
        endpoints = collection(self._db, ENDPOINTS)
        await endpoints.update_one(
            {"_id": doc.get("endpoint_id"), "url": doc["url"], "disabled": {"$ne": True}}, {"$set": update}
        )
        self.endpoints.clear()
        log.info("endpoint disabled: %s", reason, extra={"endpoint": doc.get("endpoint_id")})
        await self._still_disabled(doc, await endpoints.find_one({"_id": doc.get("endpoint_id")}), now)

    async def _still_disabled(self, doc: DeliveryDoc, endpoint: EndpointDoc | None, now: datetime) -> None:
        """A delivery found its endpoint disabled: if the dispatcher did that, make sure that
        disabling was told (a replica that died between disabling and telling left it to us)."""
        since = endpoint.get("auto_disabled_at") if endpoint else None
        if endpoint is None or since is None or not endpoint.get("disabled") or endpoint["url"] != doc["url"]:
            return
        if incidents.raises_incidents(doc):
            reason = endpoint.get("disabled_reason") or "disabled by the dispatcher"
            await self.incidents.disabled(incidents.Target.of(doc), since, reason, now, doc)

    async def _recovered(self, doc: DeliveryDoc, attempt: Attempt, delivered: bool, now: datetime) -> None:
        """End what an attempt shows is over: a delivery that succeeded ends the target's
        incidents; an answer from the host through a closed circuit ends its circuit's."""
        if delivered:
            await self.incidents.end(
                self._subjects(doc), incidents.ENDED_BY_SUCCESS, "a delivery succeeded", now
            )
            return
        key = lane_key(doc)
        up = attempts.circuit_result(attempt.status_code, attempt.error_kind)
        if up and self._breakers[key].state is State.CLOSED:
            await self.incidents.end([key], (incidents.CIRCUIT_OPEN,), "the circuit closed", now)

    def _subjects(self, doc: DeliveryDoc) -> list[str]:
        """What incidents about ``doc``'s target are keyed on: the target, and its lane's circuit."""
        return [incidents.Target.of(doc).subject, lane_key(doc)]

    async def _failed_for_good(self, doc: DeliveryDoc, attempt: Attempt, now: datetime) -> None:
        """Tell the target's retries_exhausted incident; disable an endpoint whose deliveries keep
        failing (``dispatcher_disable_after_failures`` in a row)."""
        if not incidents.raises_incidents(doc):
            return
        target = incidents.Target.of(doc)
        tries = doc.get("attempt_count", 0) + 1
        why = attempt.error or (f"HTTP {attempt.status_code}" if attempt.status_code else "no answer")
        reason = f"delivery {doc['_id']} failed for good after {tries} attempt(s): {why}"
        failures = await self.incidents.failed_for_good(target, doc, reason, now)
        limit = self._settings.dispatcher_disable_after_failures
        if doc.get("endpoint_id") and limit and failures >= limit:
            await self._disable_endpoint(doc, now, incidents.threshold_reason(failures))
            await self.incidents.restart_count(target.subject, now)

    async def _circuit_alert(self, doc: DeliveryDoc, key: str, open_for: float) -> None:
        """Tell a circuit that has been open longer than ``dispatcher_circuit_alert_seconds`` (once
        per incident: other replicas' circuits and this one's later refusals find it open)."""
        alert = self._settings.dispatcher_circuit_alert_seconds
        if not alert or open_for < alert or key in self._circuits_told or not incidents.raises_incidents(doc):
            return
        self._circuits_told.add(key)
        now = self.clock()
        since = now - timedelta(seconds=open_for)
        reason = f"the circuit breaker has refused requests to {doc['host']} for {round(open_for)} s"
        try:
            await self.incidents.open(
                incidents.CIRCUIT_OPEN, incidents.Target.of(doc), reason, since, now, doc, subject=key
            )
        except PyMongoError:
            self._circuits_told.discard(key)  # told at the next refusal
            log.warning("recording a circuit incident failed", exc_info=True)

    # --- leases, re-queues, shutdown (the sweep is LeasedWorker's) -----------------------------

    async def renew_loop(self) -> None:
        """Keep the leases of held deliveries alive; a process that stops renewing (crashed,
        frozen) loses them to the next sweep of any replica."""
        period = self._settings.lease_seconds / 3
        while True:
            await asyncio.sleep(period)
            try:
                await self.renew_once(self.clock(), period)
            except PyMongoError:
                log.warning("lease renewal failed", exc_info=True)

    async def renew_once(self, now: datetime, period: float) -> int:
        """Extend the leases that could lapse before the pass after this one; returns how many.
        Most deliveries are sent within a second of their claim and are never renewed: renewing
        everything held on every pass cost up to one more write per delivery under load."""
        due = leases_to_renew(self._held, now, period)
        if not due:
            return 0
        await self.store.renew(due, now)
        until = self.store.lease_end(now)
        for _id, claim in due.items():
            held = self._held.get(_id)
            if held is not None and held[0] == claim:
                self._held[_id] = (claim, until)
        return len(due)

    async def watch_requeues(self) -> None:
        """Wake the sweep when the API re-queues work (manual retry, recover, test sends)."""
        pipeline: list[dict[str, Any]] = [
            {
                "$match": {
                    "$or": [
                        {"operationType": "insert", "fullDocument.requeued_at": {"$exists": True}},
                        {"updateDescription.updatedFields.requeued_at": {"$exists": True}},
                    ]
                }
            },
            {"$project": {"_id": 1}},
        ]
        await self.wake_on_changes(untyped(self._db, DELIVERIES), pipeline)

    async def close(self, grace: float = 5.0) -> None:
        unstarted = await self._lanes.close(grace)
        await super().close(grace)  # outcomes being recorded
        with contextlib.suppress(PyMongoError):
            # Hand back what never started so another replica takes it now, not after the lease.
            await self.store.release(unstarted, self.clock())
