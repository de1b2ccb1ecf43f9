"""The leased worker both the dispatcher and the notifier run (sayso_service.leased_worker), as a
unit: its sweep over an in-memory queue and a fake clock, and the settings group both services
read under their own names. No server starts here; tests/dispatcher and tests/notifier run the
real workers on real MongoDB."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge
from sayso_service.leased_worker import (
    MIN_SWEEP_SECONDS,
    WORKER_SETTINGS,
    LeasedWorker,
    LeasedWorkerSettings,
    sweep_delay,
)

from sayso_common.settings import env_names
from sayso_dispatcher.settings import DispatcherSettings
from sayso_notifier.settings import NotifierSettings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = "k" * 40


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class MemoryQueue:
    """A leased queue in a dict, with sayso_common.leased's rules: pending documents are due at
    ``next_attempt_at``; a claim moves that to the lease's end, so a lapsed lease is due again."""

    clock: Clock
    lease: float = 30.0
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    claims: int = 0

    def add(self, _id: str, due_in: float) -> None:
        self.docs[_id] = {"_id": _id, "state": "pending", "next_attempt_at": T0 + timedelta(seconds=due_in)}

    async def claim_due(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        due = sorted(
            (d for d in self.docs.values() if d["state"] == "pending" and d["next_attempt_at"] <= now),
            key=lambda d: d["next_attempt_at"],
        )[:limit]
        self.claims += 1
        for doc in due:
            doc["claim"] = f"c{self.claims}"
            doc["next_attempt_at"] = now + timedelta(seconds=self.lease)
        return [dict(d) for d in due]

    async def next_due(self) -> datetime | None:
        return min(
            (d["next_attempt_at"] for d in self.docs.values() if d["state"] == "pending"), default=None
        )

    async def count_due(self, now: datetime) -> int:
        return sum(1 for d in self.docs.values() if d["state"] == "pending" and d["next_attempt_at"] <= now)


class Sweeper(LeasedWorker[dict[str, Any]]):
    """A worker with ``slots`` places: what it claims it holds until the test finishes it."""

    noun = "item"

    def __init__(self, settings: LeasedWorkerSettings, queue: MemoryQueue, slots: int, **kw: Any) -> None:
        super().__init__(settings, queue, "test", clock=queue.clock, **kw)
        self.slots = slots
        self.held: list[str] = []

    def room(self) -> int:
        return self.slots - len(self.held)

    def start(self, doc: dict[str, Any]) -> None:
        self.held.append(doc["_id"])


def settings(**values: Any) -> NotifierSettings:
    return NotifierSettings(secret_key=KEY, notifier_sweep_interval_seconds=5.0, **values)


def sweeper(slots: int = 3) -> tuple[Sweeper, MemoryQueue, Clock]:
    clock = Clock()
    queue = MemoryQueue(clock)
    return Sweeper(settings(), queue, slots), queue, clock


# --- the sweep -------------------------------------------------------------------------------------


async def test_claims_what_is_due_oldest_first_up_to_its_room() -> None:
    worker, queue, _ = sweeper(slots=2)
    for _id, due_in in (("late", -1), ("early", -3), ("future", 60), ("middle", -2)):
        queue.add(_id, due_in)
    # A full batch: there may be more, so the next sweep comes at once.
    assert await worker.sweep_once() == 0.0
    assert worker.held == ["early", "middle"]
    worker.held.clear()
    # One left that is due: room was not filled, so it sleeps until "future" (capped at 5 s).
    assert await worker.sweep_once() == 5.0
    assert worker.held == ["late"]


async def test_sleeps_until_the_earliest_due_time_it_knows_of() -> None:
    worker, queue, clock = sweeper()
    assert await worker.sweep_once() == 5.0  # nothing at all: the interval
    queue.add("soon", 1.5)
    assert await worker.sweep_once() == pytest.approx(1.5)
    # A retry this process scheduled itself (wake_at) counts as well as the queue's own times.
    worker.wake_at(T0 + timedelta(seconds=0.5))
    assert await worker.sweep_once() == pytest.approx(0.5)
    # Never a busy loop, even for work already due that it could not claim.
    clock.advance(0.499)
    assert await worker.sweep_once() == MIN_SWEEP_SECONDS
    # Once that time has passed it is forgotten: the queue's own time is what is left.
    clock.advance(0.001)
    assert await worker.sweep_once() == pytest.approx(1.0)
    clock.advance(1.0)
    assert await worker.sweep_once() == 5.0
    assert worker.held == ["soon"]


async def test_a_full_worker_claims_nothing_and_waits_as_the_service_says() -> None:
    worker, queue, _ = sweeper(slots=1)
    queue.add("a", -1)
    queue.add("b", -1)
    assert await worker.sweep_once() == 0.0
    assert await worker.sweep_once() == 5.0  # full: LeasedWorker.full_wait's default, the interval
    assert worker.held == ["a"]
    assert queue.docs["b"].get("claim") is None


async def test_a_lapsed_lease_is_claimed_again_by_another_worker() -> None:
    clock = Clock()
    queue = MemoryQueue(clock, lease=30.0)
    first, second = Sweeper(settings(), queue, 5), Sweeper(settings(), queue, 5)
    queue.add("job", 0)
    await first.sweep_once()
    assert await second.sweep_once() == 5.0
    assert second.held == []
    clock.advance(30)  # the first worker died holding it
    await second.sweep_once()
    assert second.held == ["job"]


async def test_wake_and_wake_at_end_the_sleep() -> None:
    worker, _, _ = sweeper()
    loop = asyncio.create_task(worker.sweep_loop())
    try:
        await asyncio.sleep(0.05)
        assert not worker._wake.is_set()  # asleep for the interval
        worker.wake_at(T0 + timedelta(hours=1))
        assert worker._wake.is_set()
        await asyncio.sleep(0.05)
        worker.wake_at(T0 + timedelta(hours=2))  # later than one it knows: no need to look again
        assert not worker._wake.is_set()
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


def test_sweep_delay() -> None:
    assert sweep_delay(5.0, [], T0) == 5.0
    assert sweep_delay(5.0, [None, None], T0) == 5.0
    assert sweep_delay(5.0, [T0 + timedelta(seconds=9)], T0) == 5.0
    assert sweep_delay(5.0, [T0 + timedelta(seconds=9), T0 + timedelta(seconds=2)], T0) == 2.0
    assert sweep_delay(5.0, [T0 - timedelta(seconds=9)], T0) == MIN_SWEEP_SECONDS
    # Naive times from MongoDB are UTC.
    assert sweep_delay(5.0, [datetime(2026, 1, 1, 0, 0, 3)], T0) == 3.0


# --- attempts, claims, shutdown ----------------------------------------------------------------------


def test_retry_delay_follows_the_schedule_and_caps_retry_after() -> None:
    clock = Clock()
    worker = Sweeper(settings(notifier_retry_jitter=0.0), MemoryQueue(clock), 1, rng=random.Random(1))
    assert worker.retry_delay([10, 20], 1, None) == 10.0
    assert worker.retry_delay([10, 20], 2, 30.0) == 30.0  # a longer Retry-After is honoured
    assert worker.retry_delay([10, 20], 2, 10**6) == 3600.0  # within the cap
    assert worker.retry_delay([10, 20], 3, None) is None  # the schedule is spent
    jittery = Sweeper(settings(notifier_retry_jitter=0.2), MemoryQueue(clock), 1, rng=random.Random(1))
    delays = {jittery.retry_delay([100], 1, None) for _ in range(20)}
    assert len(delays) > 1
    assert all(d is not None and 80.0 <= d <= 120.0 for d in delays)


async def test_a_lost_claim_is_counted_and_the_due_gauge_reads_the_queue() -> None:
    registry = CollectorRegistry()
    lost = Counter("lost", "lost claims", registry=registry)
    due = Gauge("due", "due items", registry=registry)
    clock = Clock()
    queue = MemoryQueue(clock)
    worker = Sweeper(settings(), queue, 1, leases_lost=lost, due_gauge=due)
    worker.claim_lost("x")
    worker.claim_lost("y")
    assert registry.get_sample_value("lost_total") == 2.0
    queue.add("a", -1)
    queue.add("b", 10)

    task = asyncio.create_task(worker.gauge_loop(period=60))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert registry.get_sample_value("due") == 1.0


async def test_spawned_work_wakes_the_sweep_and_close_waits_for_it() -> None:
    worker, _, _ = sweeper()
    release = asyncio.Event()
    finished: list[str] = []

    async def send(name: str) -> None:
        await release.wait()
        finished.append(name)

    worker.spawn(send("woken"), then_wake=True)
    worker.spawn(send("quiet"))
    assert worker.in_flight == 2
    await asyncio.sleep(0)
    assert not worker._wake.is_set()
    release.set()
    await worker.close(grace=1.0)
    assert sorted(finished) == ["quiet", "woken"]
    assert worker.in_flight == 0
    assert worker._wake.is_set()  # the end of "woken" freed room


async def test_close_gives_up_after_its_grace() -> None:
    worker, _, _ = sweeper()
    never = asyncio.Event()

    async def hang() -> None:
        await never.wait()

    worker.spawn(hang())
    await worker.close(grace=0.05)
    assert worker.in_flight == 1  # cut off: its lease lapses and another replica takes it
    for task in list(worker._tasks):
        task.cancel()
    await asyncio.gather(*worker._tasks, return_exceptions=True)


# --- one settings group, each service's names ----------------------------------------------------------

SERVICES = {"dispatcher": DispatcherSettings, "notifier": NotifierSettings}
# A value of each shared setting that is no service's default, as the environment gives it, and as read.
VALUES: dict[str, tuple[str, object]] = {
    "group_id": ("grp-x", "grp-x"),
    "session_timeout_ms": ("7000", 7000),
    "start_timeout_seconds": ("12.5", 12.5),
    "max_poll_records": ("77", 77),
    "timeout_seconds": ("3", 3.0),
    "concurrency": ("9", 9),
    "lease_seconds": ("45", 45.0),
    "retry_schedule": ("1, 2,3", [1, 2, 3]),
    "retry_jitter": ("0.1", 0.1),
    "sweep_interval_seconds": ("2.5", 2.5),
    "attempts_kept": ("4", 4),
}


def test_every_shared_setting_has_a_case() -> None:
    assert set(VALUES) | {"allowed_networks"} == WORKER_SETTINGS


@pytest.mark.parametrize("service", sorted(SERVICES))
@pytest.mark.parametrize("name", sorted(VALUES))
def test_a_shared_setting_is_read_under_its_service_name_only(
    monkeypatch: pytest.MonkeyPatch, service: str, name: str
) -> None:
    raw, parsed = VALUES[name]
    cls = SERVICES[service]
    other = "notifier" if service == "dispatcher" else "dispatcher"
    monkeypatch.setenv("SAYSO_SECRET_KEY", KEY)
    # The bare name and the other service's are not this service's setting.
    monkeypatch.setenv(f"SAYSO_{name.upper()}", raw)
    monkeypatch.setenv(f"SAYSO_{other.upper()}_{name.upper()}", raw)
    default = getattr(cls(), name)
    assert default != parsed
    monkeypatch.setenv(f"SAYSO_{service.upper()}_{name.upper()}", raw)
    assert getattr(cls(), name) == parsed
    # The constructor takes the same name; the bare one is no setting.
    monkeypatch.delenv(f"SAYSO_{service.upper()}_{name.upper()}")
    raw_value: Any = raw
    assert getattr(cls(**{f"{service}_{name}": raw_value}), name) == parsed
    assert getattr(cls(**{name: raw_value}), name) == default


def test_allowed_networks_are_read_under_each_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAYSO_SECRET_KEY", KEY)
    monkeypatch.setenv("SAYSO_DISPATCHER_ALLOWED_NETWORKS", "10.0.0.0/8, 127.0.0.0/8")
    monkeypatch.setenv("SAYSO_NOTIFIER_ALLOWED_NETWORKS", "192.168.0.0/16")
    assert [str(n) for n in DispatcherSettings().allowed_networks] == ["10.0.0.0/8", "127.0.0.0/8"]
    assert [str(n) for n in NotifierSettings().allowed_networks] == ["192.168.0.0/16"]


@pytest.mark.parametrize(
    ("cls", "values", "message"),
    [
        (
            DispatcherSettings,
            {"dispatcher_lease_seconds": 10, "dispatcher_timeout_seconds": 10},
            "dispatcher_lease_seconds must exceed dispatcher_timeout_seconds",
        ),
        (
            NotifierSettings,
            {"notifier_lease_seconds": 20},  # SMTP's 30 s default
            "notifier_lease_seconds must exceed notifier_timeout_seconds and smtp_timeout_seconds",
        ),
        (DispatcherSettings, {"dispatcher_retry_schedule": "5,-1"}, "dispatcher_retry_schedule"),
        (NotifierSettings, {"notifier_concurrency": 0}, "notifier_concurrency"),
        (NotifierSettings, {"notifier_retry_jitter": 1}, "notifier_retry_jitter"),
    ],
)
def test_bad_shared_settings_name_the_service_setting(
    cls: type[LeasedWorkerSettings], values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cls(secret_key=KEY, **values)


def test_env_names_name_each_service_variable() -> None:
    """What docsgen documents and the Kubernetes tests check manifests against."""
    from sayso_expirer.settings import ExpirerSettings

    dispatcher, notifier = env_names(DispatcherSettings), env_names(NotifierSettings)
    for name in WORKER_SETTINGS:
        assert dispatcher[name] == f"SAYSO_DISPATCHER_{name.upper()}"
        assert notifier[name] == f"SAYSO_NOTIFIER_{name.upper()}"
    assert dispatcher["dispatcher_claim_batch"] == "SAYSO_DISPATCHER_CLAIM_BATCH"
    assert dispatcher["mongo_url"] == notifier["mongo_url"] == "SAYSO_MONGO_URL"
    # A class without prefixed aliases: its alias is the whole name.
    assert env_names(ExpirerSettings)["expirer_batch"] == "SAYSO_EXPIRER_BATCH"
