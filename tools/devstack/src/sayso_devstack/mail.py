"""E-mail that ``make run`` catches instead of sending: an SMTP server on loopback that keeps each
message in a folder, so a newcomer gets real e-mails with working answer links without a mail
server (what Mailpit or MailHog do for other stacks).

Each message is kept twice, both readable only by their owner (an answer link answers as its
recipient): ``<stamp>-<n>.eml`` as received, and ``<stamp>-<n>.txt`` with its headers and the
decoded plain-text part, which is where the answer links are (``grep`` finds them)."""

from __future__ import annotations

import email
import email.policy
import itertools
import logging
import os
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from sayso_devstack.processes import free_port

log = logging.getLogger("sayso.devstack.mail")

# A message larger than this is refused (552), not kept: the notifier's e-mails are a few KiB.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


def plain_text(raw: bytes) -> str:
    """The message's headers a reader needs and its plain-text body, decoded (quoted-printable and
    base64 undone); the HTML part when there is no plain one."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)  # the default policy's class
    part = message.get_body(preferencelist=("plain", "html"))
    # Lines end as they do in a file here, not as on the wire (a link must not end in "\r").
    body = part.get_content().replace("\r\n", "\n") if part is not None else ""
    head = "".join(f"{name}: {message.get(name, '')}\n" for name in ("From", "To", "Date", "Subject"))
    return f"{head}\n{body}"


class Folder:
    """Writes what the catcher receives; the aiosmtpd handler (``handle_DATA`` is its hook)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or b""
        if len(raw) > MAX_MESSAGE_BYTES:
            return "552 message too large for the local mail folder"
        self.path.mkdir(parents=True, exist_ok=True)
        self.path.chmod(0o700)
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{next(self._numbers):04d}"
        try:
            text = plain_text(raw)
        except (ValueError, LookupError) as exc:  # a message the parser cannot read is still kept
            text = f"(could not read this message: {exc})\n"
        for suffix, data in ((".eml", raw), (".txt", text.encode())):
            fd = os.open(self.path / f"{stem}{suffix}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        log.info("e-mail to %s kept as %s", ", ".join(envelope.rcpt_tos), self.path / f"{stem}.txt")
        return "250 kept"


class MailCatcher:
    """The SMTP server on 127.0.0.1 (a free port unless one is given), its messages in ``folder``."""

    def __init__(self, folder: Path, port: int = 0) -> None:
        self.folder = folder
        self._controller = Controller(
            Folder(folder),
            hostname="127.0.0.1",
            port=port or free_port(),
            data_size_limit=MAX_MESSAGE_BYTES,
            # Our own notifier sends UTF-8 headers; say it is welcome.
            enable_SMTPUTF8=True,
        )

    @property
    def url(self) -> str:
        """What the notifier's ``SAYSO_SMTP_URL`` is set to (no credentials: loopback only)."""
        return f"smtp://127.0.0.1:{self._controller.port}"

    def start(self) -> MailCatcher:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailCatcher:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
