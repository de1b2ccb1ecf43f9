"""What the two leased workers (the dispatcher's deliveries, the notifier's notifications) have in
common: the settings they are both configured by, and the sweep that claims due work from a
leased queue (:mod:`sayso_common.leased`) with a lease, hands it to the service, and sleeps until
the earliest due time it knows of.

A worker takes its collaborators - the queue (``store``) and the clock - in its constructor; each
service's ``Worker.create`` builds the real ones. So the sweep's rules run as a unit over an
in-memory queue and a fake clock (``tests/test_leased_worker.py``), and a real-server test passes
in only the one collaborator it means to change.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, NoReturn, Protocol, TypeVar

from prometheus_client import Counter, Gauge
from pydantic import AliasGenerator, Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from pymongo.asynchronous.collection import AsyncCollection

from sayso_common import attempts, loops
from sayso_common.clock import as_utc, utcnow
from sayso_common.settings import ServiceSettings

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Clock = Callable[[], datetime]
D = TypeVar("D", bound=Any)

# The shortest sleep between two sweeps when work is about to fall due.
MIN_SWEEP_SECONDS = 0.02

# --- settings ------------------------------------------------------------------------------------


def split_list(value: object) -> object:
    """Comma-separated in the environment ("10.0.0.0/8, 127.0.0.0/8"); lists pass through."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# The shapes a service re-declares a field with, to give it its own default.
PositiveSeconds = Annotated[float, Field(gt=0)]
AtLeastOne = Annotated[int, Field(ge=1)]
RetrySchedule = Annotated[list[int], NoDecode]
SessionTimeoutMs = Annotated[int, Field(ge=1000)]


class LeasedWorkerSettings(ServiceSettings):
    """The settings both leased workers have, each read under its service's own name:
    ``lease_seconds`` is ``SAYSO_DISPATCHER_LEASE_SECONDS`` in the dispatcher and
    ``SAYSO_NOTIFIER_LEASE_SECONDS`` in the notifier (:func:`worker_settings` names the prefix).
    Pass them to the constructor by that name too (``dispatcher_lease_seconds=…``): the bare name
    is no setting, so no one variable changes both services."""

    # The prefix applies to the aliases (the prefixed names) as it does to plain field names.
    model_config = SettingsConfigDict(env_prefix_target="all")

    # Kafka consumer group: every replica in one group splits the partitions.
    group_id: str
    session_timeout_ms: SessionTimeoutMs = 10_000
    # How long start-up waits for the consumer to join before serving probes anyway.
    start_timeout_seconds: PositiveSeconds = 30.0
    max_poll_records: AtLeastOne
    # Whole-request timeout of one attempt, and how many run at once per process.
    timeout_seconds: PositiveSeconds = 10.0
    concurrency: AtLeastOne
    # A claimed document belongs to this process for this long; after a crash another replica
    # takes it over once it lapses. Must exceed the request timeout.
    lease_seconds: PositiveSeconds
    # Seconds before each retry, in order, each spread by the jitter either way.
    retry_schedule: RetrySchedule
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    # SSRF guard allow-list (CIDRs). Empty in production; tests and benchmarks add loopback.
    allowed_networks: Annotated[list[Network], NoDecode] = Field(default_factory=list)
    # Longest the sweep sleeps when nothing tells it of earlier work.
    sweep_interval_seconds: PositiveSeconds = 5.0
    # Attempts kept on a document (the oldest are dropped).
    attempts_kept: AtLeastOne

    _lists = field_validator("retry_schedule", "allowed_networks", mode="before")(split_list)

    @field_validator("retry_schedule")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(v < 0 for v in value):
            raise ValueError("retry delays must be zero or more seconds")
        return value

    def request_timeouts(self) -> dict[str, float]:
        """Every timeout one attempt may run for, by setting name: the lease must outlast each."""
        return {self.name_of("timeout_seconds"): self.timeout_seconds}

    @classmethod
    def name_of(cls, field: str) -> str:
        """The name a setting is given by (its environment variable without ``SAYSO_``)."""
        alias = cls.model_fields[field].validation_alias
        return alias if isinstance(alias, str) else field

    @model_validator(mode="after")
    def _lease_outlives_attempt(self) -> LeasedWorkerSettings:
        timeouts = self.request_timeouts()
        if self.lease_seconds <= max(timeouts.values()):
            raise ValueError(f"{self.name_of('lease_seconds')} must exceed {' and '.join(timeouts)}")
        return self


WORKER_SETTINGS = frozenset(LeasedWorkerSettings.model_fields) - frozenset(ServiceSettings.model_fields)


def worker_settings(prefix: str) -> SettingsConfigDict:
    """The ``model_config`` of a service's settings class that reads the shared settings under
    ``prefix``: ``worker_settings("notifier")`` reads ``lease_seconds`` from
    ``SAYSO_NOTIFIER_LEASE_SECONDS``. Every other field keeps its own name."""

    def alias(name: str) -> str:
        return f"{prefix}_{name}" if name in WORKER_SETTINGS else name

    # env_prefix_target again here: a class with another settings base besides this one (the
    # dispatcher's CircuitSettings) takes that base's config last, which has none.
    return SettingsConfigDict(alias_generator=AliasGenerator(validation_alias=alias), env_prefix_target="all")


# --- the worker ----------------------------------------------------------------------------------


class LeasedStore(Protocol[D]):
    """What the sweep needs of a leased queue (:class:`sayso_common.leased.LeasedQueue`)."""

    async def claim_due(self, now: datetime, limit: int) -> list[D]: ...

    async def next_due(self) -> datetime | None: ...

    async def count_due(self, now: datetime) -> int: ...


def sweep_delay(interval: float, hints: Sequence[datetime | None], now: datetime) -> float:
    """Seconds until the next sweep: until the earliest of ``hints`` (times work falls due), at
    least :data:`MIN_SWEEP_SECONDS` and at most ``interval``."""
    soonest = min((as_utc(h) for h in hints if h is not None), default=None)
    if soonest is None:
        return interval
    return min(interval, max(MIN_SWEEP_SECONDS, (soonest - now).total_seconds()))


class LeasedWorker(ABC, Generic[D]):
    """The sweep of a leased queue. A service says how much it may claim now (:meth:`room`), what
    to do with a claimed document (:meth:`start`), and how long to wait when it is full
    (:meth:`full_wait`); the base claims, sleeps until the earliest due time it knows of (the
    queue's, or one :meth:`wake_at` was told of), and wakes early when told to."""

    # The word for one document in logs and loop names: "delivery", "notification".
    noun: ClassVar[str]

    def __init__(
        self,
        settings: LeasedWorkerSettings,
        store: LeasedStore[D],
        instance: str,
        *,
        clock: Clock = utcnow,
        retry: attempts.RetryPolicy | None = None,
        rng: random.Random | None = None,
        due_gauge: Gauge | None = None,
        leases_lost: Counter | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.instance = instance
        self.clock = clock
        self._retry = retry or attempts.RetryPolicy(jitter=settings.retry_jitter)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self._due_gauge = due_gauge
        self._leases_lost = leases_lost
        self._wake = asyncio.Event()
        self._wake_at: datetime | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # --- what a service decides ------------------------------------------------------------------

    @abstractmethod
    def room(self) -> int:
        """How many documents this process may claim now."""

    @abstractmethod
    def start(self, doc: D) -> None:
        """Take a document this sweep just claimed (its lease runs from now)."""

    def full_wait(self, interval: float) -> float:
        """How long the sweep sleeps while there is no room (a service whose finished work wakes
        the sweep can wait the whole interval)."""
        return interval

    # --- the sweep -------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def wake_at(self, when: datetime) -> None:
        """Sweep no later than ``when`` (a retry falls due then)."""
        if self._wake_at is None or when < self._wake_at:
            self._wake_at = when
            self._wake.set()

    async def sweep_once(self) -> float:
        """Claim what is due and fits; return how long the sweep may sleep."""
        now = self.clock()
        room = self.room()
        if self._wake_at is not None and self._wake_at <= now:
            self._wake_at = None
        claimed = await self.store.claim_due(now, room)
        for doc in claimed:
            self.start(doc)
        interval = self.settings.sweep_interval_seconds
        if claimed and len(claimed) == room:
            return 0.0  # there may be more
        if room <= 0:
            return self.full_wait(interval)
        return sweep_delay(interval, [await self.store.next_due(), self._wake_at], self.clock())

    async def sweep_loop(self) -> NoReturn:
        await loops.sweep(f"{self.noun} sweep", self.sweep_once, self._wake)

    async def gauge_loop(self, period: float = 5.0) -> NoReturn:
        async def count() -> None:
            if self._due_gauge is not None:
                self._due_gauge.set(await self.store.count_due(self.clock()))

        await loops.every(f"due-{self.noun} gauge", period, count)

    async def wake_on_changes(
        self, source: AsyncCollection[Any], pipeline: Sequence[Mapping[str, Any]]
    ) -> NoReturn:
        """Wake the sweep at every change ``pipeline`` lets through (work another process added
        or re-queued), and whenever the stream (re)opens: what changed meanwhile is unknown."""
        await loops.watch(
            source, pipeline, lambda _: self.wake(), what=f"{self.noun} change stream", on_open=self.wake
        )

    # --- attempts ----------------------------------------------------------------------------------

    def retry_delay(
        self, schedule: Sequence[float], attempts_made: int, retry_after: float | None
    ) -> float | None:
        """Seconds until the next attempt after ``attempts_made`` failed ones (None: the schedule
        is spent), jittered, honouring a receiver's Retry-After within the policy's cap."""
        return attempts.next_delay(schedule, attempts_made, retry_after, self._retry, self._rng)

    def claim_lost(self, doc_id: str) -> None:
        """An outcome found its claim gone: another replica took the document over after this
        one's lease lapsed, and that replica's outcome stands."""
        if self._leases_lost is not None:
            self._leases_lost.inc()
        log.warning("claim lost before the outcome was recorded", extra={self.noun: doc_id})

    def spawn(self, work: Coroutine[Any, Any, None], *, then_wake: bool = False) -> None:
        """Run ``work`` beside the sweep; :meth:`close` waits for it. ``then_wake``: its end frees
        room, so the sweep runs again."""
        task = asyncio.create_task(work)
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            if then_wake:
                self.wake()

        task.add_done_callback(done)

    @property
    def in_flight(self) -> int:
        """Work started with :meth:`spawn` that has not finished."""
        return len(self._tasks)

    async def close(self, grace: float) -> None:
        """Let work in flight finish, for up to ``grace`` seconds; what is cut off is claimed again
        once its lease lapses."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
