"""How long a consumer group takes to hand a SIGKILLed member's partitions to the survivors
(issue #30 item 5), on the local broker (Tansu) with aiokafka, with nothing of Sayso in the way.

Each member is a process of its own (``python -m bench.failover member``) configured as the
dispatcher's consumer is (``sayso_service.consumers``: the session timeout, the heartbeat derived
from it, a short fetch wait, commits after each batch). A producer writes a timestamped record to
every partition every 100 ms; one member is SIGKILLed; every member logs when it got each record
and every change of its assignment. Per session timeout the report gives:

- detected: the kill until the survivors are told of the rebalance (their partitions revoked);
- taken over: the kill until a survivor first reads one of the dead member's partitions;
- survivors stalled: the longest a survivor's own partitions went unread around the rebalance
  (the eager protocol revokes every partition, not only the dead member's);
- p50 / max of produce -> consume for the records produced in the 5 s after the kill;
- false rebalances: assignment changes while no member died, over a quiet phase in which every
  member's event loop is blocked for ``--busy-ms`` every ``--busy-every`` seconds (a loop late
  under load starves aiokafka's heartbeat, which runs on it).

uv run --frozen python -m bench.failover                       # 10000 3000 2000 ms, 2 members
uv run --frozen python -m bench.failover --session-ms 3000 --members 3 --busy-ms 1200
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sayso_service.consumers import heartbeat_interval_ms

from bench.verdict import results_dir
from sayso_devstack.processes import Proc, start_tansu

TOPIC = "failover"
PARTITIONS = 6
PRODUCE_EVERY = 0.1
AFTER_KILL = 5.0  # the window whose records' latency is reported


class Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    """Logs when the member is told of a rebalance (its partitions revoked)."""

    def __init__(self, log: Any) -> None:
        self._log = log

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._log.write(
            json.dumps({"t": time.time(), "revoked": sorted(tp.partition for tp in revoked)}) + "\n"
        )

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass


async def member(bootstrap: str, session_ms: int, out: Path, busy_ms: int, busy_every: float) -> None:
    log = out.open("a", buffering=1)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id="failover",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=heartbeat_interval_ms(session_ms),
        enable_auto_commit=False,
        auto_offset_reset="latest",
        fetch_max_wait_ms=10,
    )
    consumer.subscribe([TOPIC], listener=Revocations(log))
    await consumer.start()
    last: list[int] | None = None
    next_busy = time.monotonic() + busy_every
    with log:
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            now = time.time()
            assigned = sorted(tp.partition for tp in consumer.assignment())
            if assigned != last:
                log.write(json.dumps({"t": now, "assigned": assigned}) + "\n")
                last = assigned
            for tp, records in batches.items():
                for r in records:
                    log.write(json.dumps({"t": now, "p": tp.partition, "at": float(r.value or b"0")}) + "\n")
            if batches:
                await consumer.commit()
            if busy_ms and time.monotonic() >= next_busy:
                time.sleep(busy_ms / 1000)  # noqa: ASYNC251 - the point: a loop that runs late
                next_busy = time.monotonic() + busy_every


@dataclass
class Run:
    session_ms: int
    members: int
    busy_ms: int
    leader_killed: bool
    detected: float | None
    taken_over: float | None
    stalled: float | None
    p50_ms: float | None
    max_ms: float | None
    false_rebalances: int
    quiet_seconds: float


def _spawn_member(
    bootstrap: str, session_ms: int, out: Path, busy_ms: int, busy_every: float
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "bench.failover", "member", bootstrap, str(session_ms), str(out)]
    argv += [str(busy_ms), str(busy_every)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def one(
    session_ms: int, members: int, busy_ms: int, busy_every: float, quiet: float, state: Path, victim: int
) -> Run:
    """One run; ``victim`` is the index of the member killed (0 joined first: the group's leader)."""
    tansu: Proc = start_tansu(state, name=f"tansu-{session_ms}")
    bootstrap = f"127.0.0.1:{tansu.port}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        logs = [state / f"m{session_ms}-{i}.jsonl" for i in range(members)]
        for path in logs:
            procs.append(_spawn_member(bootstrap, session_ms, path, busy_ms, busy_every))
        settle = 3.0 * session_ms / 1000 + 8.0  # every member joined and the group formed

        async def produce_until(deadline: float) -> None:
            while time.time() < deadline:
                for p in range(PARTITIONS):
                    await producer.send(TOPIC, str(time.time()).encode(), partition=p)
                await asyncio.sleep(PRODUCE_EVERY)

        await produce_until(time.time() + settle)
        quiet_from = time.time()
        await produce_until(quiet_from + quiet)
        kill_at = time.time()
        procs[victim].send_signal(signal.SIGKILL)
        await produce_until(kill_at + 3.0 * session_ms / 1000 + 12.0)
        await producer.stop()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        tansu.popen.kill()
        tansu.popen.wait()
    return _analyse(
        session_ms,
        members,
        busy_ms,
        [logs[victim], *logs[:victim], *logs[victim + 1 :]],
        quiet_from,
        kill_at,
        victim,
    )


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _analyse(
    session_ms: int,
    members: int,
    busy_ms: int,
    logs: list[Path],
    quiet_from: float,
    kill_at: float,
    victim: int,
) -> Run:
    """``logs``: the killed member's first."""
    dead = _read(logs[0])
    dead_parts: list[int] = next(
        (e["assigned"] for e in reversed(dead) if "assigned" in e and e["t"] < kill_at), []
    )
    detected: float | None = None
    taken: float | None = None
    stalled = 0.0
    latencies: list[float] = []
    false_rebalances = 0
    for path in logs[1:]:
        entries = _read(path)
        changes = [e for e in entries if "assigned" in e]
        false_rebalances += sum(1 for e in entries if "revoked" in e and quiet_from <= e["t"] < kill_at)
        own: list[int] = next((e["assigned"] for e in reversed(changes) if e["t"] < kill_at), [])
        after = [e for e in entries if "revoked" in e and e["t"] >= kill_at]
        if after and (detected is None or after[0]["t"] - kill_at < detected):
            detected = after[0]["t"] - kill_at
        reads = [e for e in entries if "p" in e]
        for e in reads:
            if e["t"] >= kill_at and e["p"] in dead_parts and (taken is None or e["t"] - kill_at < taken):
                taken = e["t"] - kill_at
            if kill_at <= e["at"] < kill_at + AFTER_KILL:
                latencies.append(e["t"] - e["at"])
        own_reads = sorted(e["t"] for e in reads if e["p"] in own and e["t"] >= kill_at - 1.0)
        gaps = [b - a for a, b in itertools.pairwise(own_reads)]
        stalled = max([stalled, *gaps])
    # Records of the dead member's partitions produced after the kill and read by nobody yet
    # are left out of the latency: the run ends long after any takeover, so none are.
    latencies.sort()
    return Run(
        session_ms=session_ms,
        members=members,
        busy_ms=busy_ms,
        leader_killed=victim == 0,
        detected=detected,
        taken_over=taken,
        stalled=stalled or None,
        p50_ms=statistics.median(latencies) * 1000 if latencies else None,
        max_ms=latencies[-1] * 1000 if latencies else None,
        false_rebalances=false_rebalances,
        quiet_seconds=kill_at - quiet_from,
    )


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def markdown(runs: list[Run], busy_every: float) -> str:
    lines = [
        f"Consumer-group failover on Tansu with aiokafka ({PARTITIONS} partitions, a record per partition "
        f"every {PRODUCE_EVERY * 1000:.0f} ms, one member SIGKILLed). Heartbeat = "
        "sayso_service.consumers.heartbeat_interval_ms(session). Loops blocked for the given time every "
        f"{busy_every:.0f} s during the quiet phase (false rebalances) and after.",
        "",
        "| session | heartbeat | members | killed | loop blocked | detected | taken over | survivors stalled "
        f"| p50 / max of records in the {AFTER_KILL:.0f} s after the kill | false rebalances (quiet) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r.session_ms:,} ms | {heartbeat_interval_ms(r.session_ms):,} ms | {r.members} | "
            f"{'the leader' if r.leader_killed else 'a follower'} | "
            f"{r.busy_ms:,} ms | {_s(r.detected)} | {_s(r.taken_over)} | {_s(r.stalled)} | "
            f"{_ms(r.p50_ms)} / {_ms(r.max_ms)} | {r.false_rebalances} in {r.quiet_seconds:.0f} s |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "member":
        bootstrap, session, out, busy_ms, busy_every = sys.argv[2:7]
        asyncio.run(member(bootstrap, int(session), Path(out), int(busy_ms), float(busy_every)))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__.split("\n\n")[0])
    parser.add_argument("--session-ms", type=int, nargs="+", default=[10_000, 3_000, 2_000])
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--busy-ms", type=int, default=0, help="block each member's loop this long ...")
    parser.add_argument("--busy-every", type=float, default=3.0, help="... every this many seconds")
    parser.add_argument("--quiet", type=float, default=30.0, help="seconds with no kill (false rebalances)")
    parser.add_argument(
        "--kill",
        choices=("leader", "follower"),
        default="leader",
        help="the first member to join (the group's leader) or the last",
    )
    parser.add_argument("--out", type=Path, default=results_dir())
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="sayso-failover-") as tmp:
        for session_ms in args.session_ms:
            victim = 0 if args.kill == "leader" else args.members - 1
            run = one(session_ms, args.members, args.busy_ms, args.busy_every, args.quiet, Path(tmp), victim)
            runs.append(asyncio.run(run))
            print(markdown(runs[-1:], args.busy_every).splitlines()[-1], flush=True)
    text = markdown(runs, args.busy_every)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (args.out / f"failover-{stamp}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
