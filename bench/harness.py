"""What every scenario shares: the local stack on free ports, an owner with a key and a JWT,
and the result record each scenario returns."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.resources import Meter
from sayso_devstack.processes import (
    Proc,
    mongo_url,
    spawn_service,
    start_mongod,
    start_tansu,
    stop_all,
    wait_healthy,
)

ADMIN = {"email": "bench@sayso.local", "password": "bench-password-1234"}


@dataclass
class Result:
    name: str
    measure: dict[str, Any]
    baseline: dict[str, Any] | None
    ratio: float | None
    target: str
    met: bool | None
    notes: list[str] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)
    # mongod op/document counts and CPU seconds per process over the window the scenario
    # measured (``Usage.as_dict``); the whole scenario when it names no window of its own.
    resources: dict[str, Any] = field(default_factory=dict)
    # Why the comparison with the baseline cannot be trusted (bench.verdict), if it cannot: the
    # report then says "unreliable" whatever ``met`` says.
    unreliable: str | None = None
    # What a scenario keeps beyond the table's cells (bench.saturation: its steps and queue
    # readings): written to the run's JSON; a ``table`` (header row, then rows) is also rendered.
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchStack:
    root: Path
    mongo: Proc
    kafka: Proc
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    procs: list[Proc] = field(default_factory=list)
    meter: Meter = field(init=False)

    def __post_init__(self) -> None:
        # The meter reads ``procs`` as it grows: services started later are counted too.
        self.meter = Meter(self.mongo, self.kafka, self.procs)

    @classmethod
    def start(cls) -> BenchStack:
        root = Path(tempfile.mkdtemp(prefix="sayso-bench-"))
        mongo = start_mongod(root / "mongo", root / "logs")
        kafka = start_tansu(root / "logs")
        return cls(root, mongo, kafka)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "SAYSO_MONGO_URL": mongo_url(self.mongo.port),
            "SAYSO_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.kafka.port}",
            "SAYSO_SECRET_KEY": self.secret,
            "SAYSO_BOOTSTRAP_ADMIN_EMAIL": ADMIN["email"],
            "SAYSO_BOOTSTRAP_ADMIN_PASSWORD": ADMIN["password"],
            "SAYSO_DISPATCHER_ALLOWED_NETWORKS": "127.0.0.0/8",
            "SAYSO_LOG_LEVEL": "WARNING",
            **extra,
        }

    def service(self, name: str, *, instance: str | None = None, **extra: str) -> Proc:
        proc = wait_healthy(spawn_service(name, self.logs, self.env(**extra), name=instance))
        self.procs.append(proc)
        return proc

    def services(self, *names: str) -> list[Proc]:
        """Start several services side by side (``<name>-bench``) and wait until each is healthy:
        quicker than one after the other, their imports overlapping."""
        procs = [spawn_service(name, self.logs, self.env(), name=f"{name}-bench") for name in names]
        self.procs.extend(procs)  # stopped with the stack even if one never comes up
        for proc in procs:
            wait_healthy(proc)
        return procs

    def process(self, name: str, module: str, port: int, **extra: str) -> Proc:
        from sayso_devstack.processes import _spawn, healthy, wait_until

        env = {**self.env(**extra), "SAYSO_HTTP_PORT": str(port), "SAYSO_INSTANCE": name}
        proc = _spawn(name, [sys.executable, "-m", module], self.logs, port, env)
        wait_until(lambda: healthy(port, "/docs"), 60, f"waiting for {name}", proc)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        """Stop every process and delete the scenario's database and logs (hundreds of MB each;
        ``SAYSO_BENCH_KEEP=1`` keeps them to read the services' logs)."""
        self.meter.close()
        # Side by side: each service's graceful shutdown (consumer group leave, drain) overlaps.
        stop_all(reversed(self.procs))
        self.kafka.stop()
        self.mongo.stop()
        if os.environ.get("SAYSO_BENCH_KEEP") != "1":
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            print(f"[bench] kept {self.root}", file=sys.stderr, flush=True)


@dataclass
class Account:
    api_key: str
    token: str

    @classmethod
    def create(cls, api_base: str) -> Account:
        with httpx.Client(base_url=api_base, timeout=30) as client:
            token = client.post("/api/v1/auth/login", json=ADMIN).raise_for_status().json()["token"]
            key = client.post(
                "/api/v1/api-keys", json={"label": "bench"}, headers={"Authorization": f"Bearer {token}"}
            )
            return cls(api_key=key.raise_for_status().json()["key"], token=token)

    def agent(self, api_base: str, **body: Any) -> str:
        with httpx.Client(base_url=api_base, timeout=30, headers={"x-api-key": self.api_key}) as client:
            resp = client.post("/api/v1/agents", json={"name": "bench", **body}).raise_for_status()
            agent_id: str = resp.json()["id"]
            return agent_id
