"""Session fixtures: real mongod (replica set), real Tansu broker, the five services and the
Caddy edge, started with the same launcher code ``make run`` uses."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from sayso_devstack.processes import (
    Proc,
    mongo_url,
    spawn_service,
    start_caddy,
    start_mongod,
    start_tansu,
    wait_healthy,
)
from tests.support.inprocess import InProcessApi, running_api
from tests.support.receiver import Receiver
from tests.support.scratch import CommandLog, scratch_db
from tests.support.stack import Owner, RunningStack

# The files that take longest, handed to the xdist workers first: the rest fill in around them
# instead of one worker finishing a long file alone at the end (make test keeps collection order).
SLOW_FIRST = (
    "tests/test_soak.py",
    "tests/api/test_schemathesis.py",
    "tests/test_devstack_cli.py",
    "tests/test_devstack_replicas.py",
    "tests/test_relay_handover.py",
    "tests/api/test_key_rotation.py",
    "tests/test_lifecycle.py",
    "tests/clients/test_framework_examples.py",
    "tests/test_bench_endpoints.py",
    "tests/clients/test_cli.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return SLOW_FIRST.index(path) if path in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order within each file and among the rest is kept


ADMIN_EMAIL = "admin@tests.local"
ADMIN_PASSWORD = "admin-password-for-tests"


@dataclass
class Infra:
    mongo: Proc
    kafka: Proc
    log_dir: Path

    @property
    def mongo_url(self) -> str:
        return mongo_url(self.mongo.port)

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka.port}"

    def service_env(self, **extra: str) -> dict[str, str]:
        return {
            "SAYSO_MONGO_URL": self.mongo_url,
            "SAYSO_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "SAYSO_SECRET_KEY": "test-secret-key-" + "x" * 32,
            "SAYSO_LOG_LEVEL": "INFO",
            # Tests deliver webhooks to receivers on loopback: allowed explicitly, guard stays on.
            "SAYSO_DISPATCHER_ALLOWED_NETWORKS": "127.0.0.0/8",
            "SAYSO_NOTIFIER_ALLOWED_NETWORKS": "127.0.0.0/8",
            # Kafka endpoints on a second local broker (tests/dispatcher/test_kafka_destinations.py).
            "SAYSO_DISPATCHER_KAFKA_ALLOWED_HOSTS": "127.0.0.1",
            # Tansu holds each fetch for this wait; at the default 10 ms an idle stack's three
            # consumers kept it at 19 % of a core and the whole stack at 30 % (14 % at 50 ms),
            # with a stack per xdist worker on two cores. Events wait ~25 ms longer per hop.
            "SAYSO_KAFKA_FETCH_MAX_WAIT_MS": "50",
            # Passwords hashed at the settings' floors (OWASP's minimum for Argon2id) instead of the
            # default 64 MiB and 3 passes: every owner a test makes costs a hash and a login's
            # verification, 0.23 s of CPU each at the default on the loaded machine, 0.033 s here.
            # The default is what `make run` and tests/test_devstack_cli.py use.
            "SAYSO_PASSWORD_HASH_MEMORY_KIB": "19456",
            "SAYSO_PASSWORD_HASH_TIME_COST": "2",
            "SAYSO_PASSWORD_HASH_PARALLELISM": "1",
            **extra,
        }


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    base = tmp_path_factory.mktemp("infra")
    logs = base / "logs"
    mongo = start_mongod(base / "mongo", logs)
    kafka = start_tansu(logs)
    yield Infra(mongo, kafka, logs)
    kafka.stop()
    mongo.stop()


# Settings of the stack's services beyond where MongoDB and Kafka are; the API app that runs in the
# test process (``api`` below) gets them too, so both answer alike.
STACK_SETTINGS = {
    "SAYSO_BOOTSTRAP_ADMIN_EMAIL": ADMIN_EMAIL,
    "SAYSO_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
    # Login throttling is tested with its own e-mails and forwarded addresses.
    "SAYSO_LOGIN_MAX_FAILURES": "5",
    # Every test client is 127.0.0.1: the per-address limit is tested on its own API process.
    "SAYSO_LOGIN_MAX_FAILURES_PER_ADDRESS": "100000",
    # Realtime re-checks open connections' credentials every second (default 5 s): the
    # revocation tests then span several rounds quickly.
    "SAYSO_REALTIME_REVALIDATE_SECONDS": "1",
}


@pytest.fixture(scope="session")
def stack(infra: Infra) -> Iterator[RunningStack]:
    env = infra.service_env(**STACK_SETTINGS)
    procs = {
        name: spawn_service(name, infra.log_dir, env)
        for name in ("api", "realtime", "dispatcher", "expirer", "notifier")
    }
    try:
        for proc in procs.values():
            wait_healthy(proc)
        from sayso_devstack.processes import free_port

        edge_port = free_port()
        procs["caddy"] = start_caddy(infra.log_dir, edge_port, procs["api"].port, procs["realtime"].port)
        url = f"http://127.0.0.1:{edge_port}"
        login = httpx.post(
            f"{url}/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        login.raise_for_status()
        yield RunningStack(
            url=url,
            api_url=f"http://127.0.0.1:{procs['api'].port}",
            mongo_url=infra.mongo_url,
            kafka_bootstrap=infra.kafka_bootstrap,
            env=env,
            procs=procs,
            admin_token=login.json()["token"],
        )
    finally:
        for proc in reversed(list(procs.values())):
            proc.stop()


@pytest.fixture(scope="session")
async def api(infra: Infra) -> AsyncIterator[InProcessApi]:
    async with running_api(infra.service_env(**STACK_SETTINGS)) as running:
        yield running


@pytest.fixture(scope="module")
async def api_owner(api: InProcessApi) -> AsyncIterator[Owner]:
    """An owner on the API in this process, one per module: the tests of what the API accepts
    and refuses isolate themselves by creating their own agents, and a user costs more (Argon2
    hashing, a login, a key) than most of them."""
    async with await api.new_owner() as created:
        yield created


@pytest.fixture
def command_log() -> CommandLog:
    return CommandLog()


@pytest.fixture
async def scratch(infra: Infra, command_log: CommandLog) -> AsyncIterator[AsyncDatabase[Any]]:
    """A database of its own on the session's MongoDB, its client's commands in ``command_log``."""
    async with scratch_db(infra.mongo_url, command_log, "scratch") as db:
        yield db


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = await Receiver().start()
    yield rec
    await rec.stop()


@pytest.fixture
async def owner(stack: RunningStack) -> AsyncIterator[object]:
    async with await stack.new_owner() as created:
        yield created


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"
