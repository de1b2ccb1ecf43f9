"""What the running gateway holds, built once in the lifespan and shared by routes and sockets."""

from __future__ import annotations

from dataclasses import dataclass

from sayso_common.principals import Authenticator
from sayso_common.runtime import Runtime
from sayso_realtime.fanout import Fanout
from sayso_realtime.feed import EventFeed
from sayso_realtime.quotas import ConnectionQuota
from sayso_realtime.revocation import CredentialWatch
from sayso_realtime.settings import RealtimeSettings
from sayso_realtime.shared_channels import SharedChannels
from sayso_realtime.waiters import Waiters


@dataclass
class Gateway:
    settings: RealtimeSettings
    runtime: Runtime
    auth: Authenticator
    waiters: Waiters
    fanout: Fanout
    feed: EventFeed
    watch: CredentialWatch
    shared: SharedChannels
    # SSE streams open per owner (long-polls and sockets keep their own counts)
    streams: ConnectionQuota
