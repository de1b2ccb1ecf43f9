"""Saturation (issue #30): the sustained end-to-end rate of the whole pipeline, post -> MongoDB ->
outbox -> broker -> realtime + dispatcher + notifier -> webhook, and what it costs per review.

An open-loop generator (``bench.loaded.Background``) offers reviews at a rate held for one step,
one in five answered by a person so webhooks flow to a healthy receiver. Once a second a probe
reads every queue between a post and its webhook:

* ``outbox``: documents holding events the relay has not published (``sayso_common.outbox``);
* ``lag <group>``: records of the dispatcher's and the notifier's topics past each group's
  committed offsets, read from the broker;
* ``lag realtime``: records published since the probe started minus the events realtime read
  (it has no group: ``sayso_realtime_events_consumed_total``);
* ``pending deliveries``: deliveries not yet sent (``state: pending``);
* ``webhooks owed``: answers whose webhook the receiver has not had yet.

A step is *sustained* when the posts kept up with the offered rate, none failed, and no queue grew
over its window (:func:`grows`). The rate ramps from ``start`` by ``step`` until a step is not
sustained, then bisects between the best sustained and the first unsustained rate ``refine``
times, letting the queues drain before each of those steps. The sustained rate is the highest
rate sustained; the CPU per review per process is read over that step's window, the load
generator's (the benchmark process, receiver included) apart. The process that saturates first
is the busiest against its ceiling in the first unsustained step: one core for a Python service
(one event loop), every core for mongod and the broker.

Settings (environment; a short run: ``START=40 STEP=40 WINDOW=10 WARMUP=2 STEPS=6 REFINE=1``):
``SAYSO_BENCH_SATURATION_START`` (reviews/s, 50), ``_STEP`` (50), ``_WARMUP`` (s before each
window, 3), ``_WINDOW`` (s measured, 20), ``_STEPS`` (most ramp steps, 12), ``_REFINE``
(bisections, 2), ``_DRAIN`` (most s to wait for the queues to empty, 60).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from bench.harness import BenchStack, Result
from bench.loaded import ANSWER_EVERY, Background, Pipeline
from bench.resources import Usage
from bench.soak.evidence import DATABASE, DISPATCHER_TOPICS
from sayso_common import outbox
from sayso_common.clock import utcnow
from sayso_common.mongo import DELIVERIES
from sayso_common.topics import all_topics, topic_for
from sayso_devstack.processes import mongo_url

ENV = "SAYSO_BENCH_SATURATION_"
# The services' default group ids, which the bench stack keeps; both read the same topics.
GROUPS = {"dispatcher": "sayso-dispatcher", "notifier": "sayso-notifier"}
GROUP_TOPICS = tuple(topic_for(t) for t in DISPATCHER_TOPICS)
# A queue grows when the median of its window's last third exceeds its first third's by more
# than this many items, or this fraction of the reviews offered in the window if more: a queue
# that grows by 3 % of the offered rate is caught (the thirds' middles are 2/3 of the window
# apart), the ups and downs of batches (tens of records at a few hundred a second) are not.
GROWTH_FLOOR = 20.0
GROWTH_FRACTION = 0.02
# Posts that must have been made (answered 201) for a step to keep up with its offered rate; a
# few may be missing at a low rate (those still in flight when the window closed).
KEEP_UP = 0.97
KEEP_UP_SLACK = 5
# The queues count as drained below this many items each.
DRAINED = 5.0
SAMPLE_SECONDS = 1.0
# Processes whose ceiling is every core (multi-threaded); every other one has one core.
MULTI_THREADED = ("mongod", "tansu")
GENERATOR = "bench"  # bench.resources.Meter's name for the benchmark process
# The service that drains each queue: the queue that grows names the stage that fell behind.
DRAINED_BY = {
    "outbox": "api",  # the outbox relay runs in the API process
    "lag dispatcher": "dispatcher",
    "lag notifier": "notifier",
    "lag realtime": "realtime",
    "pending deliveries": "dispatcher",
    "webhooks owed": "dispatcher",
}
# Past this fraction of every core busy (whoever uses them), the machine itself is what gave out.
MACHINE_BUSY = 0.9


@dataclass(frozen=True)
class Plan:
    start: float = 50.0
    step: float = 50.0
    warmup: float = 3.0
    window: float = 20.0
    steps: int = 12
    refine: int = 2
    drain: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Plan:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = ENV + f.name.upper()
            if name not in env:
                continue
            try:
                value = int(env[name]) if f.type == "int" else float(env[name])
            except ValueError:
                kind = "a whole number" if f.type == "int" else "a number"
                raise ValueError(f"{name}={env[name]!r} is not {kind}") from None
            if value < 0 or (value == 0 and f.name in ("start", "step", "window", "steps")):
                raise ValueError(f"{name}={env[name]!r} must be more than 0")
            values[f.name] = value
        return cls(**values)


def thirds(levels: Sequence[float]) -> tuple[float, float]:
    """The medians of the first and the last third of a window's readings (three at least): a
    median, so one reading caught in a hiccup (a pause, a burst of the machine's other load)
    does not make a queue grow."""
    third = len(levels) // 3
    return statistics.median(levels[:third]), statistics.median(levels[-third:])


def grows(levels: Sequence[float], allowance: float) -> bool:
    """Whether a queue sampled at even intervals grew over the window: its last third's median
    exceeds its first third's by more than ``allowance`` items (three samples at least)."""
    if len(levels) < 3:
        return False
    first, last = thirds(levels)
    return last - first > allowance


def allowance(rate: float, window: float) -> float:
    return max(GROWTH_FLOOR, GROWTH_FRACTION * rate * window)


@dataclass
class Step:
    """One offered rate held over one window: what was done and what every queue did."""

    rate: float
    seconds: float
    posted: int
    skipped: int
    errors: int
    answered: int
    webhooks: int
    queues: dict[str, list[float]]
    cores: dict[str, float] = field(default_factory=dict)  # CPU seconds per second, per process
    cpu_s: dict[str, float] = field(default_factory=dict)
    machine_cores: float = 0.0  # the machine's busy cores, whoever used them (/proc/stat)
    other_cores: float = 0.0  # of those, the ones outside the stack and the benchmark
    why_not: list[str] = field(default_factory=list)

    @property
    def sustained(self) -> bool:
        return not self.why_not


def judge(step: Step) -> list[str]:
    """Why ``step`` was not sustained; empty when it was."""
    why = []
    offered = step.rate * step.seconds
    if step.posted < min(KEEP_UP * offered, offered - KEEP_UP_SLACK):
        why.append(f"posts fell behind ({step.posted} of {offered:.0f} offered, {step.skipped} skipped)")
    if step.errors:
        why.append(f"{step.errors} posts failed")
    limit = allowance(step.rate, step.seconds)
    for name, levels in step.queues.items():
        if grows(levels, limit):
            first, last = thirds(levels)
            why.append(f"{name} grew (median {first:.0f} -> {last:.0f})")
    return why


class RateSearch:
    """Which rate to offer next: ``start``, then up by ``step`` while each is sustained (at most
    ``steps`` of them), then ``refine`` bisections between the best sustained rate (0 if none) and
    the lowest unsustained one."""

    def __init__(self, start: float, step: float, steps: int, refine: int) -> None:
        self.start, self.step, self.steps, self.refine = start, step, steps, refine
        self.sustained: list[float] = []
        self.unsustained: list[float] = []
        self.refining = False  # the ramp has met a rate it could not sustain
        self.stopped: str | None = None  # why the search ended early, if it did
        self._refined = 0

    @property
    def best(self) -> float | None:
        return max(self.sustained, default=None)

    @property
    def ceiling(self) -> float | None:
        """The lowest rate not sustained, if one was tried."""
        return min(self.unsustained, default=None)

    def next_rate(self) -> float | None:
        if not self.refining:
            tried = len(self.sustained)
            return self.start + self.step * tried if tried < self.steps else None
        floor, ceiling = self.best or 0.0, self.ceiling
        if self._refined >= self.refine or ceiling is None:
            return None
        middle = float(round((floor + ceiling) / 2))
        return middle if floor < middle < ceiling else None

    def record(self, rate: float, sustained: bool) -> None:
        (self.sustained if sustained else self.unsustained).append(rate)
        if self.refining:
            self._refined += 1
        elif not sustained:
            self.refining = True


def saturated_first(cores: Mapping[str, float], cpus: int) -> tuple[str, float] | None:
    """The process nearest its ceiling (one core, or ``cpus`` for a multi-threaded one) and that
    fraction; the load generator is not a candidate."""
    loads = {
        name: used / (cpus if name.startswith(MULTI_THREADED) else 1.0)
        for name, used in cores.items()
        if name != GENERATOR
    }
    if not loads:
        return None
    name = max(loads, key=loads.__getitem__)
    return name, loads[name]


def gave_out(step: Step) -> tuple[str, str] | None:
    """The service that fell behind in ``step`` and how: the one draining the queue that grew the
    most, else the API when the posts fell behind; None for a sustained step."""
    limit = allowance(step.rate, step.seconds)
    rises = {
        name: thirds(levels)[1] - thirds(levels)[0]
        for name, levels in step.queues.items()
        if grows(levels, limit)
    }
    if rises:
        queue = max(rises, key=rises.__getitem__)
        return DRAINED_BY.get(queue, queue), f"{queue} grew the most"
    if step.why_not:
        return "api", "the posts fell behind"
    return None


def bottleneck(step: Step, cpus: int) -> str | None:
    """What gave out in ``step``: the service whose queue grew (with its CPU), and the machine's
    CPU when nearly every core was busy, other processes included."""
    top = saturated_first(step.cores, cpus)
    busiest = f"{top[0]} ({top[1]:.0%} of its ceiling)" if top else "none"
    stage = gave_out(step)
    if stage is None:
        said = f"nothing fell behind; busiest process {busiest}"
    else:
        service, how = stage
        used = next((v for k, v in step.cores.items() if k.split("-")[0] == service), None)
        cpu = f"; it used {used:.2f} cores" if used is not None else ""
        said = f"{service} ({how}{cpu}); busiest process {busiest}"
    if step.machine_cores >= MACHINE_BUSY * cpus:
        said += (
            f"; the machine's CPU was full ({step.machine_cores:.2f} of {cpus} cores busy, "
            f"{step.other_cores:.2f} of them other processes)"
        )
    return said


def busy_ticks() -> tuple[int, int]:
    """The machine's busy and total jiffies so far (/proc/stat's first line)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


class QueueProbe:
    """Reads every queue between a post and its webhook (see the module's docstring)."""

    def __init__(self, stack: BenchStack, realtime_url: str, owed: Callable[[], int]) -> None:
        self._bootstrap = f"127.0.0.1:{stack.kafka.port}"
        self._mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url(stack.mongo.port))
        self._realtime = realtime_url
        self._owed = owed
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        self._http = aiohttp.ClientSession()
        self._partitions: list[TopicPartition] = []
        self._realtime_base = 0

    async def start(self) -> QueueProbe:
        await self._consumer.start()
        await self._admin.start()
        await self._consumer.topics()
        self._partitions = [
            TopicPartition(topic, p)
            for topic in all_topics()
            for p in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        ends = await self._consumer.end_offsets(self._partitions)
        # Realtime starts at the end of every partition; what it has read since is counted.
        self._realtime_base = sum(ends.values()) - await self._realtime_consumed()
        return self

    async def _realtime_consumed(self) -> int:
        async with self._http.get(f"{self._realtime}/metrics") as resp:
            text = await resp.text()
        return int(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("sayso_realtime_events_consumed_total{")
            )
        )

    async def read(self) -> dict[str, float]:
        db = self._mongo[DATABASE]
        backlog = await outbox.backlog(db, utcnow())
        pending = await db[DELIVERIES].count_documents({"state": "pending"}, hint="due_deliveries")
        ends = await self._consumer.end_offsets(self._partitions)
        levels: dict[str, float] = {"outbox": backlog.documents}
        for service, group in GROUPS.items():
            ours = [tp for tp in self._partitions if tp.topic in GROUP_TOPICS]
            committed = await self._admin.list_consumer_group_offsets(group, partitions=ours)
            levels[f"lag {service}"] = sum(
                max(0, ends[tp] - max(0, committed[tp].offset if tp in committed else 0)) for tp in ours
            )
        levels["lag realtime"] = sum(ends.values()) - self._realtime_base - await self._realtime_consumed()
        levels["pending deliveries"] = pending
        levels["webhooks owed"] = self._owed()
        return levels

    async def close(self) -> None:
        await self._http.close()
        await self._admin.close()
        await self._consumer.stop()
        await self._mongo.close()


class Ramp:
    """Holds offered rates on a pipeline and measures each as a :class:`Step`."""

    def __init__(self, pipeline: Pipeline, plan: Plan) -> None:
        self.pipeline = pipeline
        self.plan = plan
        self.background = Background(pipeline.api_url, pipeline.channel, 0.0)
        self.probe: QueueProbe | None = None
        self.timeline: list[tuple[float, dict[str, float]]] = []  # every probe reading, whole run
        self._began = time.monotonic()
        self._warm_hooks = 0  # webhooks of the warm-up, owed to nobody

    def owed(self) -> int:
        return self.background.answered - (len(self.pipeline.sink.arrived) - self._warm_hooks)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Ramp]:
        self._warm_hooks = len(self.pipeline.sink.arrived)
        self.probe = await QueueProbe(self.pipeline.stack, self.pipeline.realtime_url, self.owed).start()
        async with self.pipeline.agent() as agent, self.pipeline.human() as human:
            loader = asyncio.create_task(self.background.run(agent, human))
            try:
                yield self
            finally:
                loader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loader
                await self.background.stop()
                await self.probe.close()

    async def _read(self) -> dict[str, float]:
        assert self.probe is not None
        levels = await self.probe.read()
        self.timeline.append((round(time.monotonic() - self._began, 2), levels))
        return levels

    async def hold(self, rate: float) -> tuple[Step, Usage]:
        bg, meter = self.background, self.pipeline.stack.meter
        bg.set_rate(rate)
        await asyncio.sleep(self.plan.warmup)
        window, busy_before = meter.snapshot(), busy_ticks()
        before = (bg.posted, bg.late, bg.errors, bg.answered, len(self.pipeline.sink.arrived))
        queues: dict[str, list[float]] = {}
        began = time.monotonic()
        tick = began
        while tick - began < self.plan.window:
            for name, level in (await self._read()).items():
                queues.setdefault(name, []).append(level)
            tick += SAMPLE_SECONDS
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
        usage: Usage = meter.since(window)
        busy_after = busy_ticks()
        after = (bg.posted, bg.late, bg.errors, bg.answered, len(self.pipeline.sink.arrived))
        posted, skipped, errors, answered, webhooks = (b - a for a, b in zip(before, after, strict=True))
        cores = {name: round(cpu / usage.seconds, 3) for name, cpu in usage.cpu_s.items()}
        machine = (busy_after[0] - busy_before[0]) / (busy_after[1] - busy_before[1]) * (os.cpu_count() or 1)
        step = Step(
            rate, round(usage.seconds, 2), posted, skipped, errors, answered, webhooks, queues,
            cores, usage.cpu_s, round(machine, 2), round(max(0.0, machine - sum(cores.values())), 2),
        )  # fmt: skip
        step.why_not = judge(step)
        return step, usage

    async def drain(self) -> bool:
        """Offer nothing until every queue is below DRAINED (at most ``plan.drain`` s)."""
        self.background.set_rate(0.0)
        deadline = time.monotonic() + self.plan.drain
        while time.monotonic() < deadline:
            if all(level < DRAINED for level in (await self._read()).values()):
                return True
            await asyncio.sleep(SAMPLE_SECONDS)
        return False


async def search(
    ramp: Ramp, say: Callable[[str], None] = print
) -> tuple[RateSearch, list[Step], dict[float, Usage]]:
    plan = ramp.plan
    rates = RateSearch(plan.start, plan.step, plan.steps, plan.refine)
    steps: list[Step] = []
    usages: dict[float, Usage] = {}
    while (rate := rates.next_rate()) is not None:
        if rates.refining and not await ramp.drain():
            rates.stopped = f"the queues did not drain in {plan.drain:.0f} s: the search stopped there"
            say(f"[saturation] {rates.stopped}")
            break
        step, usages[rate] = await ramp.hold(rate)
        rates.record(rate, step.sustained)
        steps.append(step)
        say(f"[saturation] {rate:.0f}/s: " + ("sustained" if step.sustained else "; ".join(step.why_not)))
    return rates, steps, usages


def per_review_ms(step: Step) -> dict[str, float]:
    return (
        {name: round(cpu * 1000 / step.posted, 3) for name, cpu in step.cpu_s.items()} if step.posted else {}
    )


TABLE_HEADER = ("offered /s", "posts /s", "webhooks /s", "sustained", "stack cores", "busiest (of its ceiling)",
                "machine busy (others)", "why not")  # fmt: skip


def _table(steps: list[Step], cpus: int) -> list[list[str]]:
    rows = [list(TABLE_HEADER)]
    for s in steps:
        top = saturated_first(s.cores, cpus)
        rows.append([
            f"{s.rate:.0f}", f"{s.posted / s.seconds:.0f}", f"{s.webhooks / s.seconds:.0f}",
            "yes" if s.sustained else "no", f"{sum(v for k, v in s.cores.items() if k != GENERATOR):.2f}",
            f"{top[0]} {top[1]:.0%}" if top else "—",
            f"{s.machine_cores:.2f} ({s.other_cores:.2f}) cores", "; ".join(s.why_not) or "—",
        ])  # fmt: skip
    return rows


def result(rates: RateSearch, steps: list[Step], usages: dict[float, Usage], plan: Plan) -> Result:
    cpus = os.cpu_count() or 1
    by_rate = {s.rate: s for s in steps}
    best = rates.best
    ceiling = rates.ceiling
    at = by_rate.get(best) if best is not None else None
    first_fail = next((s for s in steps if not s.sustained), None)
    # The first unsustained step shows what gave out; with none, the last one.
    telling = first_fail or (steps[-1] if steps else None)
    what_gave_out = bottleneck(telling, cpus) if telling else None
    per_review = per_review_ms(at) if at else {}
    stack_ms = round(sum(v for k, v in per_review.items() if k != GENERATOR), 3)
    measure: dict[str, Any] = {
        "sustained_per_s": best,
        "first_unsustained_per_s": ceiling,
        "cpu_ms_per_review": stack_ms if at else None,
        "generator_cpu_ms_per_review": per_review.get(GENERATOR),
        "saturates_first": what_gave_out,
        "steps": len(steps),
    }
    notes = [
        f"open-loop reviews, one in {ANSWER_EVERY} answered (webhook to a healthy receiver); each step "
        f"{plan.warmup:.0f} s to settle then {plan.window:.0f} s measured, queues read every "
        f"{SAMPLE_SECONDS:.0f} s; ramp from {plan.start:.0f}/s by {plan.step:.0f}/s (at most {plan.steps} "
        f"steps), then {plan.refine} bisection(s). Sustained: >= {KEEP_UP:.0%} of the offered posts made, "
        f"none failed, no queue grew (last third's median over the first third's by more than "
        f"max({GROWTH_FLOOR:.0f}, {GROWTH_FRACTION:.0%} of the reviews offered)).",
    ]
    if at:
        notes.append(
            f"CPU per review at {best:.0f}/s (ms): "
            + ", ".join(f"{k} {v:.2f}" for k, v in per_review.items() if k != GENERATOR)
            + f"; all but the generator {stack_ms:.2f}; the generator (benchmark process, receiver "
            f"included) {per_review.get(GENERATOR, 0):.2f}."
        )
    else:
        notes.append("no offered rate was sustained: start lower (SAYSO_BENCH_SATURATION_START).")
    if rates.stopped:
        notes.append(rates.stopped + ".")
    if ceiling is None and steps:
        notes.append(f"every step was sustained: {best:.0f}/s is a lower bound (raise _STEPS or _STEP).")
    if telling:
        notes.append(
            f"saturates first ({'first unsustained' if first_fail else 'last'} step): {what_gave_out}; a "
            f"process's ceiling is one core for a Python service, {cpus} for mongod and the broker."
        )
    return Result(
        name="Saturation",
        measure=measure,
        baseline=None,
        ratio=None,
        target="reported: the highest offered rate with no growing queue",
        met=None if at else False,
        notes=notes,
        series={
            "offered /s": [s.rate for s in steps],
            "posts /s": [round(s.posted / s.seconds, 1) for s in steps],
            f"webhooks x{ANSWER_EVERY} /s": [round(s.webhooks * ANSWER_EVERY / s.seconds, 1) for s in steps],
        },
        resources=usages[best].as_dict() if best is not None else {},
        detail={
            "plan": asdict(plan),
            "table": _table(steps, cpus),
            "steps": [asdict(s) for s in steps],
            "cpu_ms_per_review": per_review,
        },
    )


async def run(stack: BenchStack, plan: Plan | None = None) -> Result:
    plan = plan or Plan.from_env()
    pipeline = await Pipeline.start(stack)
    try:
        ramp = Ramp(pipeline, plan)
        async with ramp.running():
            rates, steps, usages = await search(ramp)
        out = result(rates, steps, usages, plan)
        out.detail["timeline"] = ramp.timeline
        return out
    finally:
        await pipeline.stop()
