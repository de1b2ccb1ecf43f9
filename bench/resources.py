"""What a scenario cost: mongod's own operation and document counters (``serverStatus``) and the
CPU time of every process of the stack, read before and after the window a scenario measures.

Op counters count statements (an ``update_many`` is one update however many documents it
changes; each document of an ``insert_many`` is one insert), so the documents mongod actually
wrote (``metrics.document``) are reported beside them: a change that only folded statements
together shows up as fewer ops but the same documents.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import MongoClient

from sayso_devstack.processes import Proc, mongo_url

OPS = ("insert", "update", "delete", "query", "getmore", "command")
DOCS = ("inserted", "updated", "deleted")
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc (no psutil in the workspace)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name, which is in parentheses and may itself hold spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass(frozen=True)
class Snapshot:
    ops: dict[str, int]
    docs: dict[str, int]
    cpu: dict[str, float]


@dataclass
class Usage:
    """Counter deltas over one or more windows (``+`` adds windows, e.g. interleaved rounds)."""

    seconds: float = 0.0
    ops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPS, 0))
    docs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DOCS, 0))
    cpu_s: dict[str, float] = field(default_factory=dict)

    def __add__(self, other: Usage) -> Usage:
        names = {*self.cpu_s, *other.cpu_s}
        return Usage(
            self.seconds + other.seconds,
            {k: self.ops[k] + other.ops[k] for k in OPS},
            {k: self.docs[k] + other.docs[k] for k in DOCS},
            {n: round(self.cpu_s.get(n, 0.0) + other.cpu_s.get(n, 0.0), 2) for n in names},
        )

    @property
    def write_ops(self) -> int:
        return self.ops["insert"] + self.ops["update"] + self.ops["delete"]

    @property
    def docs_written(self) -> int:
        return sum(self.docs.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "window_s": round(self.seconds, 2),
            "mongod_ops": self.ops,
            "mongod_docs": self.docs,
            "cpu_s": self.cpu_s,
        }


class Meter:
    """Reads the counters of one stack: mongod's, and the CPU of mongod, the broker (every
    event's path) and ``procs`` (read at each snapshot; a service started inside a window is
    counted from its start, imports included)."""

    def __init__(self, mongo: Proc, broker: Proc, procs: list[Proc]) -> None:
        self._mongo = mongo
        self._broker = broker
        self._procs = procs
        self._client: MongoClient[dict[str, object]] = MongoClient(
            mongo_url(mongo.port), serverSelectionTimeoutMS=10_000
        )

    def snapshot(self) -> tuple[float, Snapshot]:
        status = self._client.admin.command("serverStatus")
        cpu = {p.name: cpu_seconds(p.popen.pid) for p in [self._mongo, self._broker, *self._procs] if p.alive}
        cpu["bench"] = cpu_seconds(os.getpid())
        snap = Snapshot(
            {k: int(status["opcounters"][k]) for k in OPS},
            {k: int(status["metrics"]["document"][k]) for k in DOCS},
            cpu,
        )
        return time.monotonic(), snap

    def since(self, start: tuple[float, Snapshot]) -> Usage:
        began, before = start
        _, after = self.snapshot()
        return Usage(
            time.monotonic() - began,
            {k: after.ops[k] - before.ops[k] for k in OPS},
            {k: after.docs[k] - before.docs[k] for k in DOCS},
            {n: round(v - before.cpu.get(n, 0.0), 2) for n, v in after.cpu.items()},
        )

    def close(self) -> None:
        self._client.close()
