"""A private stack for the notifier tests: an API, a notifier and an expirer on their own database, topic
prefix and consumer group (so the session stack's notifier takes no part), sending e-mail to a
real SMTP server (aiosmtpd) and Slack messages to a local receiver, with short leases, timeouts
and retries so crash and retry paths finish in seconds."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from signoff_devstack.processes import Proc, free_port, spawn_service, start_service, wait_healthy, wait_ready
from tests.conftest import Infra
from tests.notifier.mailbox import Mailbox
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack

ADMIN = ("admin@notifier.local", "notifier-admin-password")
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@dataclass
class Notify:
    stack: RunningStack
    infra: Infra
    env: dict[str, str]
    db_name: str
    mailbox: Mailbox
    notifiers: dict[str, Proc]

    @property
    def api_url(self) -> str:
        return self.stack.api_url

    def start_notifier(self, name: str) -> Proc:
        proc = start_service("notifier", self.infra.log_dir, self.env, name=name)
        wait_ready(proc, timeout=60)
        self.notifiers[name] = proc
        return proc

    def db(self, client: Any) -> Any:
        return client[self.db_name]


@pytest.fixture(scope="package")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox().start()
    yield box
    box.stop()


@pytest.fixture(scope="package")
def notify(infra: Infra, mailbox: Mailbox) -> Iterator[Notify]:
    tag = secrets.token_hex(3)
    api_port = free_port()
    db_name = f"notify_{tag}"
    env = infra.service_env(
        SIGNOFF_MONGO_DB=db_name,
        SIGNOFF_TOPIC_PREFIX=f"n{tag}.",
        SIGNOFF_NOTIFIER_GROUP_ID=f"notifier-{tag}",
        SIGNOFF_BOOTSTRAP_ADMIN_EMAIL=ADMIN[0],
        SIGNOFF_BOOTSTRAP_ADMIN_PASSWORD=ADMIN[1],
        SIGNOFF_PUBLIC_URL=f"http://127.0.0.1:{api_port}",
        SIGNOFF_SMTP_URL=mailbox.url,
        SIGNOFF_SMTP_FROM="Signoff <signoff@notifier.test>",
        SIGNOFF_SLACK_SIGNING_SECRET=SLACK_SECRET,
        SIGNOFF_NOTIFIER_LEASE_SECONDS="4",
        SIGNOFF_NOTIFIER_TIMEOUT_SECONDS="2",
        SIGNOFF_SMTP_TIMEOUT_SECONDS="3",
        SIGNOFF_NOTIFIER_RETRY_SCHEDULE="1,1,1",
        SIGNOFF_NOTIFIER_SWEEP_INTERVAL_SECONDS="1",
        SIGNOFF_NOTIFIER_SESSION_TIMEOUT_MS="6000",
    )
    procs = {
        "api": spawn_service("api", infra.log_dir, env, port=api_port, name=f"api-{tag}"),
        "notifier": spawn_service("notifier", infra.log_dir, env, name=f"notifier-{tag}"),
        # Expiry is one of the events the notifier acts on (cancels, updates Slack).
        "expirer": spawn_service("expirer", infra.log_dir, env, name=f"expirer-{tag}"),
    }
    notify: Notify | None = None
    try:
        for proc in procs.values():
            wait_healthy(proc)
        wait_ready(procs["notifier"], timeout=60)
        api_url = f"http://127.0.0.1:{api_port}"
        login = httpx.post(f"{api_url}/api/v1/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
        login.raise_for_status()
        stack = RunningStack(
            url=api_url,
            api_url=api_url,
            mongo_url=infra.mongo_url,
            kafka_bootstrap=infra.kafka_bootstrap,
            env=env,
            procs=procs,
            admin_token=login.json()["token"],
        )
        notify = Notify(stack, infra, env, db_name, mailbox, {"notifier": procs["notifier"]})
        yield notify
    finally:
        # Includes notifiers a test started in place of a killed one.
        extra = [p for p in notify.notifiers.values() if p not in procs.values()] if notify else []
        for proc in [*procs.values(), *extra]:
            proc.stop()


@pytest.fixture
async def person(notify: Notify) -> AsyncIterator[Owner]:
    created = await notify.stack.new_owner()
    yield created
    await created.agent.aclose()
    await created.human.aclose()


@pytest.fixture
async def slack() -> AsyncIterator[Receiver]:
    rec = await Receiver().start()
    yield rec
    await rec.stop()
