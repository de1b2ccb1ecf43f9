"""Stream tickets: how a browser opens the stream with native ``EventSource``, which cannot send
a header.

A caller with an API key, a user session or a scoped token mints a ticket
(``POST /api/v1/events/tickets``) for its channels or some of them, and hands it to the page,
which opens ``GET /api/v1/events?ticket=…`` (or a socket with ``{"ticket": …}``) within
:data:`TICKET_SECONDS`. A ticket opens one connection: it is deleted as it is used (one atomic
``find_one_and_delete``, so two racing uses cannot both win), and a reconnect needs a new one.
Only its SHA-256 is stored; the edge's log filter takes every query value out of what it logs.

The connection a ticket opens is its minting credential's, narrowed to the ticket's channels: it
is registered with the credential watch under that credential, so revoking the API key or token
(or the session running out, or the user being removed) ends it as it ends any other stream, and
a user's shared channels it names stay subject to membership (``shared_channels``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sayso_common.clock import utcnow
from sayso_common.credentials import hash_secret
from sayso_common.documents import StreamTicketDoc
from sayso_common.mongo import STREAM_TICKETS, Database, collection
from sayso_common.principals import Principal

TICKET_PREFIX = "tk_"
# How long a ticket may wait to be used: long enough for a page to receive it and open the
# stream, short enough that one seen in a log or a history entry is useless.
TICKET_SECONDS = 60


class BadTicketError(Exception):
    """Unknown, already used or expired (not told apart); the message is safe to show."""


@dataclass(frozen=True)
class Ticket:
    ticket: str
    expires_at: datetime


def is_ticket(value: str) -> bool:
    return value.startswith(TICKET_PREFIX) and len(value) <= 100


async def mint(db: Database, who: Principal, channels: frozenset[str] | None) -> Ticket:
    """A ticket for ``who``'s connection narrowed to ``channels`` (None: all it may read, and for
    a scoped caller that is its own channels)."""
    ticket = TICKET_PREFIX + secrets.token_urlsafe(32)
    expires_at = utcnow() + timedelta(seconds=TICKET_SECONDS)
    scope = channels if channels is not None else who.channels
    doc: StreamTicketDoc = {
        "_id": hash_secret(ticket),
        "owner_id": who.owner_id,
        "kind": who.kind,
        "credential_id": who.credential_id,
        "key_id": who.key_id,
        "credential_expires_at": who.expires_at,
        "channel_ids": sorted(scope) if scope is not None else None,
        "answer": who.may_answer,
        "expire_at": expires_at,
    }
    await collection(db, STREAM_TICKETS).insert_one(doc)
    return Ticket(ticket, expires_at)


async def redeem(db: Database, ticket: str) -> Principal:
    """The principal a ticket was minted for, narrowed to its channels; the ticket is gone after
    this. Raises :class:`BadTicketError`. (The TTL index removes expired tickets only
    eventually, so the expiry is checked here.)"""
    if not is_ticket(ticket):
        raise BadTicketError("invalid, used or expired ticket")
    doc = await collection(db, STREAM_TICKETS).find_one_and_delete(
        {"_id": hash_secret(ticket), "expire_at": {"$gt": utcnow()}}
    )
    if doc is None or doc["kind"] not in ("api_key", "user", "scoped"):
        raise BadTicketError("invalid, used or expired ticket")
    channels = doc["channel_ids"]
    return Principal(
        doc["owner_id"],
        doc["kind"],
        doc["credential_id"],
        doc["key_id"],
        doc["credential_expires_at"],
        channels=frozenset(channels) if channels is not None else None,
        may_answer=doc["answer"],
    )
