"""One soak run: the replica stack from the devstack (the code ``make run`` uses), real receivers,
owners with agents and humans, live clients; then traffic and chaos side by side, a drain, and the
verdicts from what the clients saw and what the stores hold."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import threading
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from bench.soak import evidence, invariants
from bench.soak.actors import RETRY_SCHEDULE, TABS, Channel, Endpoint, Owner, Traffic
from bench.soak.chaos import Chaos, ChaosPlan
from bench.soak.journal import Clock, Journal, LiveLog
from bench.soak.live import SocketClient, SseClient
from bench.soak.receivers import BEHAVIOURS, Behaviour, Receiver
from bench.soak.report import Outcome, counts, series
from sayso_devstack.processes import free_port
from sayso_devstack.stack import Stack, parse_replicas

log = logging.getLogger("sayso.soak")

# Settings the soak gives every service on top of the stack's own.
SOAK_ENV = {
    # The receivers listen on loopback: allowed explicitly, the SSRF guard stays on.
    "SAYSO_DISPATCHER_ALLOWED_NETWORKS": "127.0.0.0/8",
    # Reconciliation delivers outcomes whose event a restarted broker lost. Its defaults (every
    # 60 s, for reviews closed 60 s ago) would hold the drain for two minutes after that restart.
    "SAYSO_DISPATCHER_RECONCILE_INTERVAL_SECONDS": "5",
    "SAYSO_DISPATCHER_RECONCILE_GRACE_SECONDS": "10",
    # Less to write on a shared 2-core machine; warnings and errors still land in the logs.
    "SAYSO_LOG_LEVEL": "WARNING",
}
# Per owner, the receivers behind its three channels: every behaviour, and a healthy one each.
CHANNEL_BEHAVIOURS: tuple[tuple[Behaviour, ...], ...] = (("ok", "fail", "stall"), ("throttle", "gone", "ok"))
GONE_AT = 0.5  # the 410 receiver turns Gone halfway through the traffic
# Per owner, explicit endpoints beside the channels' own URLs (issue #31), each with a filter on
# the review type: an account-wide one for approvals and forms with a rate limit, on a healthy
# receiver; one of the first channel for answered approvals, selections and text inputs, on a
# receiver that fails a third of its requests (retries). Their receivers are hosts of their own.
ENDPOINT_RATE_LIMIT = 2
ENDPOINTS: tuple[tuple[str, int | None, tuple[str, ...], frozenset[str], int | None, Behaviour], ...] = (
    (
        "all",
        None,
        ("review:responded", "review:expired"),
        frozenset({"approval", "form"}),
        ENDPOINT_RATE_LIMIT,
        "ok",
    ),
    ("c0", 0, ("review:responded",), frozenset({"approval", "selection", "text-input"}), None, "fail"),
)


@dataclass(frozen=True)
class Settings:
    seconds: float = 180.0  # of traffic; the drain comes after
    rate: float = 4.0  # reviews per second
    replicas: str = "api=2 realtime=2 dispatcher=2 expirer=2"
    kill_every: float = 5.0
    broker_down: float = 2.0
    mongo_down: float = 10.0
    drain_cap: float = 120.0  # the longest the drain may take before the verdicts are read
    catch_up: float = 15.0  # how long live clients get, after the drain, to have every event
    owners: int = 2
    seed: int = 16
    # How long past its timeout a long-poll may be held; None: not judged, only that each was
    # answered (the in-`make test` variant: a time limit is a speed, and that test shares its host).
    poll_slack: float | None = invariants.POLL_SLACK


async def soak(settings: Settings, state_dir: Path) -> Outcome:
    stack = Stack(
        state_dir=state_dir,
        edge_port=free_port(),
        replicas=parse_replicas(settings.replicas),
        extra_env=SOAK_ENV,
    )
    try:
        creds = await asyncio.to_thread(stack.start)
    except BaseException:
        await asyncio.to_thread(stack.stop)
        raise
    stop = threading.Event()
    supervisor = threading.Thread(
        target=stack.supervise, args=(stop,), name="devstack-supervisor", daemon=True
    )
    supervisor.start()
    journal = Journal()
    try:
        return await _run(settings, stack, creds, supervisor, journal)
    finally:
        # Everything observed, beside the stack's logs, for whoever investigates a failed check.
        record = {
            k: v for k, v in asdict(journal).items() if k not in ("clock", "receipts", "endpoint_receipts")
        }
        (state_dir / "journal.json").write_text(json.dumps(record, default=str))
        stop.set()
        supervisor.join()
        await asyncio.to_thread(stack.stop)


async def _run(
    settings: Settings, stack: Stack, creds: dict[str, str], supervisor: threading.Thread, journal: Journal
) -> Outcome:
    rng = random.Random(settings.seed)
    receivers = {b: Receiver(b, journal, seed=rng.randrange(1 << 30)) for b in BEHAVIOURS}
    endpoint_receivers = {
        b: Receiver(b, journal, seed=rng.randrange(1 << 30), endpoint=True)
        for b in dict.fromkeys(e[5] for e in ENDPOINTS)
    }
    for receiver in (*receivers.values(), *endpoint_receivers.values()):
        await receiver.start()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack.service_env["SAYSO_MONGO_URL"], tz_aware=True, serverSelectionTimeoutMS=5000
    )
    bootstrap = stack.service_env["SAYSO_KAFKA_BOOTSTRAP"]
    owners: list[Owner] = []
    live_stop = asyncio.Event()
    live_tasks: list[asyncio.Task[None]] = []
    sse_http: list[httpx.AsyncClient] = []
    try:
        admin = {"email": creds["SAYSO_ADMIN_EMAIL"], "password": creds["SAYSO_ADMIN_PASSWORD"]}
        owners = [
            await _owner(i, stack.url, admin, receivers, endpoint_receivers) for i in range(settings.owners)
        ]
        owner_ids = [o.user_id for o in owners]
        channel_ids = [c.id for o in owners for c in o.channels]
        clients = _live_clients(journal, stack.url, owners, sse_http)
        live_tasks = [asyncio.create_task(c.run(live_stop)) for c in clients]
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in clients)), 60)
        baseline = await _baseline(mongo, owner_ids)

        journal.clock = Clock()  # time 0: traffic starts
        live_tasks.append(asyncio.create_task(journal.watch_loop_lag(live_stop)))
        receivers["gone"].gone_after = GONE_AT * settings.seconds
        traffic = Traffic(journal, owners, settings.rate, rng)
        plan = ChaosPlan(
            kill_every=settings.kill_every, broker_down=settings.broker_down, mongo_down=settings.mongo_down
        )
        log.info("traffic and chaos for %.0fs", settings.seconds)
        agents = asyncio.create_task(traffic.run(settings.seconds))
        deadline = settings.seconds + settings.drain_cap
        try:
            await Chaos(stack, journal, plan, rng).run(settings.seconds)
            await asyncio.wait_for(asyncio.shield(agents), max(1.0, deadline - journal.clock.now()))
        except TimeoutError:
            traffic.failures.append("agents were still waiting for outcomes when the drain ran out")
        finally:
            if not agents.done():
                await traffic.cancel()
                agents.cancel()
                await asyncio.gather(agents, return_exceptions=True)
        log.info("traffic done at %.0fs; draining", journal.clock.now())
        await _settle(mongo, bootstrap, channel_ids, journal.clock, deadline)
        drain = journal.clock.now() - settings.seconds
        found = await _caught_up(journal, mongo, owner_ids, channel_ids, baseline, settings.catch_up)
        found.lag = await evidence.consumer_lag(bootstrap)
        journal.restarts = list(stack.restarts)
        checks = [
            invariants.one_outcome(journal, found),
            invariants.first_answer_wins(journal, found),
            invariants.webhooks(journal, found, {c.key: c for o in owners for c in o.channels}),
            invariants.endpoints(
                journal,
                found,
                [e for o in owners for e in o.endpoints],
                {c.id: o.index for o in owners for c in o.channels},
            ),
            invariants.long_polls(journal, settings.poll_slack),
            invariants.live_clients(journal, found, baseline, owner_ids),
            invariants.server_errors(journal),
            invariants.drained(found, drain),
            invariants.chaos(journal, supervisor.is_alive()),
            invariants.clients_kept_going(traffic.failures),
        ]
        return Outcome(
            stamp=datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
            settings=asdict(settings),
            traffic_seconds=settings.seconds,
            drain_seconds=drain,
            checks=checks,
            windows=[asdict(w) for w in journal.windows],
            counts=counts(journal),
            series=series(journal, journal.clock.now()),
        )
    finally:
        live_stop.set()
        await asyncio.gather(*live_tasks, return_exceptions=True)
        for client in sse_http:
            await client.aclose()
        for owner in owners:
            await owner.close()
        for receiver in (*receivers.values(), *endpoint_receivers.values()):
            await receiver.stop()
        await mongo.close()


async def _owner(
    index: int,
    url: str,
    admin: dict[str, str],
    receivers: dict[Behaviour, Receiver],
    endpoint_receivers: dict[Behaviour, Receiver],
) -> Owner:
    """A user created by the admin, logged in as the inbox does, with an API key for its agents
    and three channels, each delivering to one receiver, and the explicit ``ENDPOINTS``."""
    email, password = f"soak-{index}-{secrets.token_hex(4)}@soak.local", secrets.token_urlsafe(16)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        admin_token = (await http.post("/api/v1/auth/login", json=admin)).raise_for_status().json()["token"]
        await http.post(
            "/api/v1/users",
            json={"email": email, "password": password},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        login = (
            await http.post("/api/v1/auth/login", json={"email": email, "password": password})
        ).raise_for_status()
        token, user_id = login.json()["token"], login.json()["user"]["id"]
        human = {"Authorization": f"Bearer {token}"}
        key = (
            await http.post("/api/v1/api-keys", json={"label": "soak agents"}, headers=human)
        ).raise_for_status()
    api_key = key.json()["key"]
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
    owner = Owner(
        index,
        user_id,
        api_key,
        token,
        httpx.AsyncClient(base_url=url, headers={"x-api-key": api_key}, limits=limits),
        [httpx.AsyncClient(base_url=url, headers=human, limits=limits) for _ in range(TABS)],
    )
    for k, behaviour in enumerate(CHANNEL_BEHAVIOURS[index % len(CHANNEL_BEHAVIOURS)]):
        channel_key = f"o{index}c{k}"
        agent = await owner.agent.post(
            "/api/v1/agents",
            json={
                "name": f"soak {channel_key} ({behaviour} receiver)",
                "webhookUrl": receivers[behaviour].url(channel_key),
                "webhookRetrySchedule": RETRY_SCHEDULE,
            },
        )
        body = agent.raise_for_status().json()
        owner.channels.append(Channel(body["id"], channel_key, index, behaviour, body["webhookSecret"]))
    for suffix, on, event_types, review_types, rate_limit, behaviour in ENDPOINTS:
        ep_key = f"o{index}-ep-{suffix}"
        channel_id = None if on is None else owner.channels[on].id
        endpoint = Endpoint("", ep_key, index, channel_id, event_types, review_types, rate_limit, "")
        path = f"/api/v1/agents/{channel_id}/endpoints" if channel_id else "/api/v1/endpoints"
        made = await owner.agent.post(
            path, json={"url": endpoint_receivers[behaviour].url(ep_key), **endpoint.body()}
        )
        body = made.raise_for_status().json()
        owner.endpoints.append(replace(endpoint, id=body["id"], secret=body["secret"]))
    return owner


def _live_clients(
    journal: Journal, url: str, owners: list[Owner], sse_http: list[httpx.AsyncClient]
) -> list[SocketClient | SseClient]:
    """Per owner: a socket on all its channels (API key) and one on two of them (JWT); an SSE
    stream of all of them (API key) and one of a single channel (JWT)."""
    clients: list[SocketClient | SseClient] = []
    for owner in owners:
        ids = [c.id for c in owner.channels]
        logs = [
            LiveLog(f"owner{owner.index}-socket-all", "socket", owner.index, None),
            LiveLog(f"owner{owner.index}-socket-two", "socket", owner.index, ids[:2]),
            LiveLog(f"owner{owner.index}-sse-all", "sse", owner.index, None),
            LiveLog(f"owner{owner.index}-sse-one", "sse", owner.index, ids[2:3]),
        ]
        journal.live += logs
        clients.append(SocketClient(journal, logs[0], url, {"apiKey": owner.api_key}))
        clients.append(SocketClient(journal, logs[1], url, {"token": owner.token}))
        for live, headers in (
            (logs[2], {"x-api-key": owner.api_key}),
            (logs[3], {"Authorization": f"Bearer {owner.token}"}),
        ):
            http = httpx.AsyncClient(base_url=url, headers=headers)
            sse_http.append(http)
            clients.append(SseClient(journal, live, http))
    return clients


async def _baseline(mongo: AsyncMongoClient[dict[str, Any]], owner_ids: list[str]) -> set[str]:
    """The events stored before traffic starts, once nothing is left to publish: the live clients
    are not expected to have these."""
    for _ in range(100):
        if not any((await evidence.outbox_left(mongo)).values()):
            break
        await asyncio.sleep(0.2)
    return await evidence.event_ids(mongo, owner_ids)


async def _settle(
    mongo: AsyncMongoClient[dict[str, Any]],
    bootstrap: str,
    channels: list[str],
    clock: Clock,
    deadline: float,
) -> None:
    """Until no review or delivery of the soak is pending, every outbox is empty and the
    dispatcher group has committed everything, or the drain runs out."""
    while clock.now() < deadline:
        work = await evidence.open_work(mongo, channels)
        if not any(work.values()) and not any((await evidence.consumer_lag(bootstrap)).values()):
            return
        log.info("drain: %s", ", ".join(f"{k} {v}" for k, v in work.items() if v) or "consumer lag")
        await asyncio.sleep(1.0)


async def _caught_up(
    journal: Journal,
    mongo: AsyncMongoClient[dict[str, Any]],
    owner_ids: list[str],
    channels: list[str],
    baseline: set[str],
    patience: float,
) -> evidence.Evidence:
    """The stores' evidence, once every live client has every event of its channels (or after
    ``patience``: the live-client check then names what is missing)."""
    until = journal.clock.now() + patience
    while True:
        found = await evidence.gather(mongo, owner_ids, channels)
        if invariants.live_clients(journal, found, baseline, owner_ids).ok or journal.clock.now() > until:
            return found
        await asyncio.sleep(0.5)
