"""A second realtime replica for the realtime tests: a waiter or stream on it must hear of what
happens through the edge, which routes to the first one. It sends SSE heartbeats quickly so the
heartbeat test need not wait the default 15 s."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sayso_devstack.processes import Proc
from tests.conftest import Infra
from tests.support.private import beside
from tests.support.stack import RunningStack


@pytest.fixture(scope="session")
def second_realtime(infra: Infra, stack: RunningStack) -> Iterator[Proc]:
    with beside(stack, infra, "realtime", "realtime-2", SAYSO_SSE_HEARTBEAT_SECONDS="0.5") as proc:
        yield proc
