"""A private stack for the notifier tests: an API, a notifier and an expirer on their own database, topic
prefix and consumer group (so the session stack's notifier takes no part), sending e-mail to a
real SMTP server (aiosmtpd) and Slack messages to a local receiver, with short leases, timeouts
and retries so crash and retry paths finish in seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import Infra
from tests.notifier.mailbox import Mailbox
from tests.support.private import PrivateStack, private_stack
from tests.support.receiver import Receiver
from tests.support.stack import Owner

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@dataclass
class Notify(PrivateStack):
    mailbox: Mailbox


@pytest.fixture(scope="package")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox().start()
    yield box
    box.stop()


@pytest.fixture(scope="package")
def notify(infra: Infra, mailbox: Mailbox) -> Iterator[Notify]:
    with private_stack(
        Notify,
        infra,
        "notify",
        # Expiry is one of the events the notifier acts on (cancels, updates Slack).
        {"notifier": "notifier", "expirer": "expirer"},
        ready=("notifier",),
        extra={"mailbox": mailbox},
        SAYSO_PUBLIC_URL="{api}",
        SAYSO_SMTP_URL=mailbox.url,
        SAYSO_SMTP_FROM="Sayso <sayso@notifier.test>",
        SAYSO_SLACK_SIGNING_SECRET=SLACK_SECRET,
        SAYSO_NOTIFIER_LEASE_SECONDS="4",
        SAYSO_NOTIFIER_TIMEOUT_SECONDS="2",
        SAYSO_SMTP_TIMEOUT_SECONDS="3",
        SAYSO_NOTIFIER_RETRY_SCHEDULE="1,1,1",
        SAYSO_NOTIFIER_SWEEP_INTERVAL_SECONDS="1",
        SAYSO_NOTIFIER_SESSION_TIMEOUT_MS="6000",
    ) as stack:
        yield stack


@pytest.fixture
async def person(notify: Notify) -> AsyncIterator[Owner]:
    async with await notify.stack.new_owner() as created:
        yield created


@pytest.fixture
async def slack() -> AsyncIterator[Receiver]:
    rec = await Receiver().start()
    yield rec
    await rec.stop()
