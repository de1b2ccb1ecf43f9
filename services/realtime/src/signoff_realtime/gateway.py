"""What the running gateway holds, built once in the lifespan and shared by routes and sockets."""

from __future__ import annotations

from dataclasses import dataclass

from signoff_common.principals import Authenticator
from signoff_common.runtime import Runtime
from signoff_realtime.fanout import Fanout
from signoff_realtime.feed import EventFeed
from signoff_realtime.quotas import ConnectionQuota
from signoff_realtime.revocation import CredentialWatch
from signoff_realtime.settings import RealtimeSettings
from signoff_realtime.shared_channels import SharedChannels
from signoff_realtime.waiters import Waiters


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
