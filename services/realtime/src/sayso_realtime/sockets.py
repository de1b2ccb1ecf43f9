"""Socket.IO on namespace ``/ws``: authenticated at connect, one room per owner or channel.

A client authenticates in the handshake ``auth``: ``{"token": <user JWT, API key or scoped
token>}``, ``{"apiKey": <key>}`` or ``{"ticket": <stream ticket>}`` (a ticket also works as the
``ticket`` query parameter, an ``Authorization`` / ``x-api-key`` header as well). A ticket is
used up by the connect and narrows the socket to its channels (see :mod:`sayso_realtime.tickets`).
Optional
``channels`` narrows it to some of its channels (default: all of them, including channels
created later, through the owner's room). A user's socket also joins the room of each channel
shared with them, and joins or leaves those rooms as members are added and removed (see
:mod:`sayso_realtime.shared_channels`). Optional ``lastEventId`` replays what it missed.

Joining: the connect handler subscribes the socket to live events *before* reading what it
missed, sends the missed events, then the live ones that queued up meanwhile, and only then joins
its rooms — in one step with no await, so each event arrives once and in order.

A socket whose credential stops holding (a revoked API key, an expired token, a removed user; see
:mod:`sayso_realtime.revocation`) receives ``auth:revoked`` (``{"code": "credentials_revoked",
"message": …}``), then is disconnected from ``/ws`` and its Engine.IO connection closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import engineio
import socketio
from pymongo.errors import PyMongoError
from sayso_service.cors import origin_checker

from sayso_common.errors import ErrorCode
from sayso_common.events import Event, shown_to
from sayso_common.membership import Reach, reach_of
from sayso_common.mongo import Database
from sayso_common.principals import Authenticator, BadCredentialsError, Principal, credential_from_headers
from sayso_realtime import tickets
from sayso_realtime.channels import UnknownChannelError, owned
from sayso_realtime.engineio_internals import (
    abort,
    discard_queued,
    drained,
    engine_socket,
    engine_sockets,
    enqueue,
    event_packet,
    hang_up_after_queued,
    queued,
)
from sayso_realtime.fanout import Fanout, Subscription
from sayso_realtime.history import events_since, valid_event_id
from sayso_realtime.metrics import DROPPED_SOCKETS, REPLAYED, SOCKETS
from sayso_realtime.payloads import event_name, payload
from sayso_realtime.quotas import ConnectionQuota, Place, TooManyConnectionsError
from sayso_realtime.revocation import CODE, CredentialWatch, Watched
from sayso_realtime.settings import RealtimeSettings
from sayso_realtime.shared_channels import SharedChannels, Tracked

log = logging.getLogger(__name__)

NAMESPACE = "/ws"
# How long a resumed socket is shielded from live copies of events it was replayed from history
# (an event can be stored before this process consumed it; it then arrives live as well).
REPLAY_SHIELD_SECONDS = 60.0
# The event a socket gets before it is closed for a credential that no longer holds.
REVOKED_EVENT = "auth:revoked"
# A revoked socket's client hangs up by itself once told (both the Python and the JS client
# do); one still connected this long after is cut off, its transport closed by the server.
HANG_UP_GRACE_SECONDS = 5.0
# How long that forced close may wait for its queued packets to go out.
CLOSE_TIMEOUT_SECONDS = 10.0


def owner_room(owner_id: str) -> str:
    return f"owner:{owner_id}"


def channel_room(channel_id: str) -> str:
    return f"channel:{channel_id}"


def _query_ticket(query: str) -> str | None:
    return next((v for k, v in parse_qsl(query) if k == "ticket"), None)


def _refused(code: ErrorCode, message: str) -> socketio.exceptions.ConnectionRefusedError:
    return socketio.exceptions.ConnectionRefusedError(message, {"code": code.value})


@dataclass
class _Socket:
    principal: Principal
    channels: frozenset[str] | None
    reach: Reach
    joiner: asyncio.Task[None] | None = field(default=None, repr=False)
    watched: Watched | None = field(default=None, repr=False)
    tracked: Tracked | None = field(default=None, repr=False)
    # Its live-event queue until it joins its rooms (see _join).
    sub: Subscription | None = field(default=None, repr=False)
    joined: bool = False
    # The message for the client once its credential was found revoked; the socket is closing.
    revoked: str | None = None
    # Its place in its owner's socket quota, given back when it is forgotten.
    place: Place | None = field(default=None, repr=False)

    def rooms(self) -> list[str]:
        if self.channels is not None:
            return [channel_room(c) for c in self.channels]
        return [owner_room(self.principal.owner_id), *(channel_room(c) for c in sorted(self.reach.shared))]


class Sockets:
    def __init__(self, settings: RealtimeSettings, fanout: Fanout, quota: ConnectionQuota) -> None:
        self._settings = settings
        self._fanout = fanout
        self._quota = quota
        self._db: Database | None = None
        self._auth: Authenticator | None = None
        self._watch: CredentialWatch | None = None
        self._shared: SharedChannels | None = None
        self._sockets: dict[str, _Socket] = {}
        self._closing: set[asyncio.Task[None]] = set()
        # sid -> (until, ids replayed from history and not yet seen live)
        self._replayed: dict[str, tuple[float, set[str]]] = {}
        # Sockets being cut off (see _drop), until their disconnect handler runs.
        self._cut: set[str] = set()
        self.server = socketio.AsyncServer(
            async_mode="asgi",
            cors_allowed_origins=origin_checker(settings.cors_origins),
            logger=False,
            engineio_logger=False,
        )
        self.server.on("connect", self._connect, namespace=NAMESPACE)
        self.server.on("disconnect", self._disconnect, namespace=NAMESPACE)
        SOCKETS.set_function(lambda: len(self._sockets))
        fanout.attach_sockets(self.emit)

    def bind(self, db: Database, auth: Authenticator, watch: CredentialWatch, shared: SharedChannels) -> None:
        """Called by the lifespan once MongoDB is open; no connection is accepted before."""
        self._db = db
        self._auth = auth
        self._watch = watch
        self._shared = shared

    async def emit(self, event: Event) -> None:
        """One event to its owner's and channel's rooms. The packet is encoded once and put on
        each client's Engine.IO send queue directly: ``AsyncServer.emit`` would create and await
        one task per client, which was most of the fan-out time with a thousand clients on a
        channel. Each socket's own writer task still does the sending, in queue order."""
        if not self._sockets:
            return
        skip = set(self._already_replayed(event.id))
        # Encoded once per kind of reader: the channel's owner, and its members (see payloads.py).
        packets: dict[bool, engineio.packet.Packet] = {}
        rooms = [owner_room(event.owner_id), channel_room(event.channel_id)]
        open_sockets = engine_sockets(self.server)
        limit = self._settings.socket_queue_size
        for sid, eio_sid in self.server.manager.get_participants(NAMESPACE, rooms):
            socket = open_sockets.get(eio_sid)
            if sid in skip or socket is None or socket.closed or sid in self._cut:
                continue
            if queued(socket) >= limit:
                self._drop(sid)
                continue
            sock = self._sockets.get(sid)
            if sock is None:
                continue  # being forgotten: whom it reads for is no longer known
            reader = sock.principal.reader_id
            if not shown_to(event, reader):
                continue
            owner = reader == event.owner_id
            if owner not in packets:
                packets[owner] = event_packet(
                    self.server, NAMESPACE, [event_name(event), payload(event, reader)]
                )
            enqueue(socket, packets[owner])

    def _drop(self, sid: str, *, flush: bool = False) -> None:
        """Cuts a socket off without a goodbye. Socket.IO clients (the JS and the Python one) take
        a server's disconnect as final but reconnect by themselves after a lost transport, and a
        reconnecting client resumes from the last event it got. A socket that fell behind loses
        what was queued for it (it reads that again from history, and its memory is freed now);
        with ``flush``, what is queued goes out first (a replay just sent: the client must get
        it, or it would resume from the same place again)."""
        socket = engine_socket(self.server, self.server.manager.eio_sid_from_sid(sid, NAMESPACE))
        if socket is None or sid in self._cut:
            return
        self._cut.add(sid)  # nothing more is queued for it (see emit) until it is gone
        if not flush:
            DROPPED_SOCKETS.inc()
            log.info("socket fell behind; dropped", extra={"sid": sid, "queued": queued(socket)})
            discard_queued(socket)
        hang_up_after_queued(socket)

        async def close() -> None:
            # A polling client fetches the queue itself: wait until it has (bounded), then mark
            # the session closed so its next request is refused. No CLOSE packet: it is final.
            await drained(socket, CLOSE_TIMEOUT_SECONDS)
            await abort(socket)

        self._closing_task(close(), f"ws-drop-{sid}")

    def _already_replayed(self, event_id: str) -> list[str]:
        skip: list[str] = []
        if not self._replayed:
            return skip
        now = time.monotonic()
        for sid, (until, ids) in list(self._replayed.items()):
            if until < now:
                del self._replayed[sid]
            elif event_id in ids:
                ids.discard(event_id)
                skip.append(sid)
        return skip

    async def close(self) -> None:
        for sock in list(self._sockets.values()):
            if sock.joiner:
                sock.joiner.cancel()
        for task in list(self._closing):
            task.cancel()

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        if self._db is None or self._auth is None or self._watch is None or self._shared is None:
            raise _refused(ErrorCode.UNAVAILABLE, "starting up; try again")
        auth = auth if isinstance(auth, dict) else {}
        try:
            principal = await self._principal(auth, environ)
            reach = await reach_of(self._db, principal)
            wanted = auth.get("channels")
            channels = principal.channels
            if wanted is not None:
                if not isinstance(wanted, list) or not wanted:
                    raise UnknownChannelError("channels must be a non-empty list of channel ids")
                channels = await owned(self._db, reach, wanted)
        except (BadCredentialsError, tickets.BadTicketError) as exc:
            raise _refused(ErrorCode.UNAUTHORIZED, str(exc)) from None
        except UnknownChannelError as exc:
            raise _refused(ErrorCode.NOT_FOUND, str(exc)) from None
        except PyMongoError:
            raise _refused(ErrorCode.UNAVAILABLE, "storage unavailable; try again") from None
        try:
            place = self._quota.take(principal.owner_id)
        except TooManyConnectionsError as exc:
            raise _refused(ErrorCode.TOO_MANY_CONNECTIONS, str(exc)) from None
        last = auth.get("lastEventId")
        sub = self._fanout.subscribe(
            principal.owner_id, channels, self._settings.sse_queue_size, reach.shared
        )
        sock = _Socket(principal, channels, reach, sub=sub, place=place)
        self._sockets[sid] = sock
        sock.watched = self._watch.watch(principal, lambda message: self._revoke(sid, message))
        sock.tracked = self._shared.track(principal, reach.shared, lambda shared: self._reshare(sid, shared))
        sock.joiner = asyncio.create_task(
            self._join(sid, sock, sub, last if valid_event_id(last) else None), name=f"ws-join-{sid}"
        )

    async def _principal(self, auth: dict[str, Any], environ: dict[str, Any]) -> Principal:
        assert self._auth is not None
        assert self._db is not None
        assert self._watch is not None
        ticket = auth.get("ticket") or _query_ticket(environ.get("QUERY_STRING", ""))
        if isinstance(ticket, str) and ticket:
            principal = await tickets.redeem(self._db, ticket)
            if not await self._watch.holds(principal):
                raise BadCredentialsError("the credential that minted this ticket no longer holds")
            return principal
        credential = auth.get("token") or auth.get("apiKey")
        if not isinstance(credential, str) or not credential:
            credential = credential_from_headers(
                environ.get("HTTP_AUTHORIZATION"), environ.get("HTTP_X_API_KEY")
            )
        return await self._auth.principal(credential)

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        sock = self._forget(sid)
        self._replayed.pop(sid, None)
        self._cut.discard(sid)
        if sock and sock.joiner and not sock.joiner.done():
            sock.joiner.cancel()

    def _forget(self, sid: str) -> _Socket | None:
        sock = self._sockets.pop(sid, None)
        if sock is not None and sock.watched is not None:
            sock.watched.release()
        if sock is not None and sock.tracked is not None:
            sock.tracked.release()
        if sock is not None and sock.place is not None:
            sock.place.release()
        return sock

    def _reshare(self, sid: str, shared: frozenset[str]) -> None:
        """The channels shared with this socket's user changed (see shared_channels.py). Rooms
        are entered and left synchronously, between two events."""
        sock = self._sockets.get(sid)
        if sock is None:
            return
        taken = sock.reach.shared - shared
        before = set(sock.rooms())
        sock.reach = Reach(sock.reach.owner_id, shared, sock.reach.only)
        if sock.channels is not None:
            # A socket narrowed to some channels loses the taken ones and gains nothing.
            sock.channels = sock.channels - taken
        if sock.sub is not None:
            self._fanout.reshare(sock.sub, shared)
        if not sock.joined:
            return  # the joiner enters sock.rooms() as they are then
        after = set(sock.rooms())
        for room in before - after:
            self.server.manager.basic_leave_room(sid, NAMESPACE, room)
        for room in after - before:
            self.server.manager.basic_enter_room(sid, NAMESPACE, room)

    def _revoke(self, sid: str, message: str) -> None:
        """The credential watch found this socket's credential no longer holds. Closes it now
        if the connection is acknowledged; otherwise its joiner does, once it is."""
        sock = self._sockets.get(sid)
        if sock is None or sock.revoked is not None:
            return
        sock.revoked = message
        if self.server.manager.is_connected(sid, NAMESPACE):
            self._close_later(sid, message)

    def _close_later(self, sid: str, message: str) -> None:
        self._closing_task(self._close_revoked(sid, message), f"ws-revoke-{sid}")

    def _closing_task(self, close: Coroutine[Any, Any, None], name: str) -> None:
        """Runs a socket's closing in the background, kept until done (and cancelled by close)."""
        task = asyncio.create_task(close, name=name)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_revoked(self, sid: str, message: str) -> None:
        eio_sid = self.server.manager.eio_sid_from_sid(sid, NAMESPACE)
        try:
            await self.server.emit(
                REVOKED_EVENT, {"code": CODE, "message": message}, to=sid, namespace=NAMESPACE
            )
            # Leaves its rooms at once: nothing more is queued for it from here on.
            await self.server.disconnect(sid, namespace=NAMESPACE)
        except Exception:
            log.warning("closing a revoked socket failed", exc_info=True, extra={"sid": sid})
        if eio_sid is None:
            return
        # Closing the transport at once would race the client's own hang-up (a polling client's
        # goodbye then meets a closed session); a client that stays is cut off after a while.
        await asyncio.sleep(HANG_UP_GRACE_SECONDS)
        if eio_sid in engine_sockets(self.server):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.eio.disconnect(eio_sid), CLOSE_TIMEOUT_SECONDS)

    async def _join(self, sid: str, sock: _Socket, sub: Subscription, last_event_id: str | None) -> None:
        try:
            if not await self._until_connected(sid):
                self._forget(sid)
                return
            if sock.revoked is not None:
                # Found revoked before its connection was acknowledged (see _revoke).
                self._close_later(sid, sock.revoked)
                return
            sent: set[str] = set()
            truncated = False
            if last_event_id is not None and self._db is not None:
                replay = await events_since(
                    self._db,
                    self._fanout.recent,
                    sock.reach,
                    last_event_id,
                    sock.channels,
                    timedelta(seconds=self._settings.resume_window_seconds),
                    self._settings.resume_limit,
                )
                for event in replay.events:
                    await self._send(sid, event)
                    sent.add(event.id)
                REPLAYED.labels("socket").inc(len(replay.events))
                truncated = not replay.complete
            # After a cut replay, live events would move the client's cursor past what it has not
            # read yet: it gets none and comes back for the rest (below).
            while not truncated and (pending := [e for e in sub.drain() if e.id not in sent]):
                for event in pending:
                    await self._send(sid, event)
            if sock.revoked is not None:
                return  # being closed (see _revoke): it must not join its rooms
            if not self.server.manager.is_connected(sid, NAMESPACE):
                return
            if sub.overflowed.is_set() or truncated:
                # Fell behind while catching up, or has more to read than one replay sends: cut it
                # off; it reconnects by itself with the last event id it got and reads on.
                self._drop(sid, flush=True)
                return
            # No await from the last drain to here (see Fanout.publish): the manager's plain
            # room entry is synchronous, so no event can slip between queue and rooms.
            for room in sock.rooms():
                self.server.manager.basic_enter_room(sid, NAMESPACE, room)
            sock.joined = True
            if sent:
                self._replayed[sid] = (time.monotonic() + REPLAY_SHIELD_SECONDS, sent)
        except Exception:
            log.warning("socket join failed; disconnecting it", exc_info=True, extra={"sid": sid})
            with contextlib.suppress(Exception):
                await self.server.disconnect(sid, namespace=NAMESPACE)
        finally:
            sock.sub = None
            self._fanout.unsubscribe(sub)

    async def _until_connected(self, sid: str) -> bool:
        """The connect handler returns before the server acknowledges the connection; anything
        sent to the client must come after that acknowledgement, which follows within a few
        loop iterations."""
        for attempt in range(400):
            if self.server.manager.is_connected(sid, NAMESPACE):
                return True
            if sid not in self._sockets:
                return False
            await asyncio.sleep(0 if attempt < 20 else 0.005)
        return False

    async def _send(self, sid: str, event: Event) -> None:
        sock = self._sockets.get(sid)
        if sock is None or not shown_to(event, sock.principal.reader_id):
            return  # gone (nothing to send it), or not its to see
        data = payload(event, sock.principal.reader_id)
        await self.server.emit(event_name(event), data, to=sid, namespace=NAMESPACE)
