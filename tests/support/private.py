"""A stack of its own, for tests that kill, restart or reconfigure services: an API and the given
services on their own database, topic prefix and consumer groups (so the session stack's
processes take no part), on the session's MongoDB and broker, logged in as its own admin."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from sayso_devstack.processes import Proc, free_port, spawn_service, start_service, wait_healthy, wait_ready
from tests.conftest import Infra
from tests.support.stack import RunningStack

ADMIN = ("admin@private.local", "private-admin-password")


@dataclass
class PrivateStack:
    stack: RunningStack
    infra: Infra
    env: dict[str, str]
    db_name: str
    # The processes besides the API, by name; a test that kills one and starts another in its
    # place replaces the entry (see start), and every process started is stopped at the end.
    procs: dict[str, Proc]

    @property
    def api_url(self) -> str:
        return self.stack.api_url

    def start(self, service: str, name: str) -> Proc:
        proc = start_service(service, self.infra.log_dir, self.env, name=name)
        wait_ready(proc, timeout=60)
        self.procs[name] = proc
        return proc

    def db(self, client: Any) -> Any:
        return client[self.db_name]


P = TypeVar("P", bound=PrivateStack)


@contextlib.contextmanager
def beside(stack: RunningStack, infra: Infra, service: str, name: str, **env: str) -> Iterator[Proc]:
    """One more process of ``service`` beside the session's stack (its database and topics), with
    ``env`` over the stack's settings: ready inside the block, stopped after it."""
    proc = start_service(service, infra.log_dir, {**stack.env, **env}, name=name)
    try:
        wait_ready(proc)
        yield proc
    finally:
        proc.stop()


@contextlib.contextmanager
def private_stack(
    cls: type[P],
    infra: Infra,
    label: str,
    services: Mapping[str, str],
    ready: tuple[str, ...],
    extra: Mapping[str, Any] | None = None,
    **env: str,
) -> Iterator[P]:
    """``services``: process name -> service, started beside the API; the ``ready`` ones are waited
    for until their dependencies answer too. ``env`` is added to the services' environment (a
    value may name ``{api}`` for the API's origin); ``extra``, the fields a subclass adds."""
    tag = secrets.token_hex(3)
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    db_name = f"{label}_{tag}"
    full_env = infra.service_env(
        SAYSO_MONGO_DB=db_name,
        SAYSO_TOPIC_PREFIX=f"{label}{tag}.",
        SAYSO_DISPATCHER_GROUP_ID=f"dispatcher-{tag}",
        SAYSO_NOTIFIER_GROUP_ID=f"notifier-{tag}",
        SAYSO_BOOTSTRAP_ADMIN_EMAIL=ADMIN[0],
        SAYSO_BOOTSTRAP_ADMIN_PASSWORD=ADMIN[1],
        **{name: value.format(api=api_url) for name, value in env.items()},
    )
    api = spawn_service("api", infra.log_dir, full_env, port=api_port, name=f"api-{tag}")
    procs = {
        name: spawn_service(service, infra.log_dir, full_env, name=name) for name, service in services.items()
    }
    private: P | None = None
    try:
        for proc in [api, *procs.values()]:
            wait_healthy(proc)
        for name in ready:
            wait_ready(procs[name], timeout=60)
        login = httpx.post(f"{api_url}/api/v1/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
        login.raise_for_status()
        stack = RunningStack(
            url=api_url,
            api_url=api_url,
            mongo_url=infra.mongo_url,
            kafka_bootstrap=infra.kafka_bootstrap,
            env=full_env,
            procs={"api": api, **procs},
            admin_token=login.json()["token"],
        )
        private = cls(stack, infra, full_env, db_name, dict(procs), **(extra or {}))
        yield private
    finally:
        started = list(private.procs.values()) if private else []
        for proc in [api, *procs.values(), *(p for p in started if p not in procs.values())]:
            proc.stop()
