"""A notifier killed with SIGKILL in the middle of sending an e-mail loses nothing: its lease on
the notification lapses and another notifier sends it. Delivery is at least once (a mail server
that had accepted the first copy would see two, with the same Message-ID)."""

from __future__ import annotations

import asyncio

import pytest

from tests.notifier.conftest import Notify
from tests.notifier.test_email import APPROVAL, mail_for
from tests.notifier.test_schedule import log_of
from tests.support.stack import Owner, eventually

pytestmark = pytest.mark.slow


async def test_a_notifier_killed_mid_send_loses_nothing(notify: Notify, person: Owner) -> None:
    notify.mailbox.release.clear()
    notify.mailbox.holding.clear()
    notify.mailbox.hold_for = person.email.lower()
    agent = await person.create_agent(name="crash")
    msg = await person.post_message(agent["id"], text="Survive a crash?", review=APPROVAL)

    async def mid_send() -> bool:
        return notify.mailbox.holding.is_set()

    # The SMTP server holds the mail in DATA: the notifier is inside its send right now.
    await eventually(mid_send, 20, "the notifier to be mid-send")
    name = next(n for n in notify.procs if n.startswith("notifier"))
    victim = notify.procs[name]
    victim.kill()
    assert not victim.alive
    notify.procs.pop(name)
    replacement = await asyncio.to_thread(notify.start, "notifier", "notifier-replacement")
    try:
        (mail,) = await mail_for(notify, person.email, timeout=40)
        assert mail.subject.startswith("[Sayso] Review requested: Survive a crash?")
        assert mail.message["Message-ID"].endswith("@sayso>")

        async def recorded() -> dict[str, object] | None:
            entries = await log_of(person, msg["id"])
            return entries[0] if entries and entries[0]["state"] == "sent" else None

        entry = await eventually(recorded, 10, "the notification recorded as sent")
        # Only the replacement recorded an attempt: the killed one never got to.
        assert entry["attemptCount"] == 1
        assert entry["attempts"][0]["by"].startswith("notifier-replacement")  # type: ignore[index]
    finally:
        notify.mailbox.release.set()
    assert replacement.alive
