"""A real SMTP server on a loopback port (aiosmtpd) that keeps every mail it accepted, and can
hold one mid-transfer (the notifier crash test kills the sender while it waits)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from sayso_devstack.processes import free_port


@dataclass
class Mail:
    to: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, kind: str) -> str:
        body = self.message.get_body(preferencelist=(kind,))
        assert body is not None, f"no {kind} part"
        return str(body.get_content())

    def links(self) -> list[str]:
        return re.findall(r"https?://\S+/a/[A-Za-z0-9_.-]+", self.part("plain"))


@dataclass
class Mailbox:
    port: int = 0
    mails: list[Mail] = field(default_factory=list)
    # A recipient whose next mail is held in DATA until ``release`` is set.
    hold_for: str | None = None
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    _controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> Mailbox:
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._controller is not None:
            self._controller.stop()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        to = [str(r).lower() for r in envelope.rcpt_tos]
        if self.hold_for is not None and self.hold_for in to:
            self.hold_for = None
            self.holding.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
            return "451 held and dropped by the test"
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.mails.append(Mail(to, parsed))
        return "250 OK"

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.mails if address.lower() in m.to]
