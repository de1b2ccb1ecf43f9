"""A second realtime replica for the realtime tests: a waiter or stream on it must hear of what
happens through the edge, which routes to the first one. It sends SSE heartbeats quickly so the
heartbeat test need not wait the default 15 s."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from signoff_devstack.processes import Proc, start_service, wait_ready
from tests.conftest import Infra
from tests.support.stack import RunningStack


@pytest.fixture(scope="session")
def second_realtime(infra: Infra, stack: RunningStack) -> Iterator[Proc]:
    env = {**stack.env, "SIGNOFF_SSE_HEARTBEAT_SECONDS": "0.5"}
    proc = start_service("realtime", infra.log_dir, env, name="realtime-2")
    try:
        wait_ready(proc)
        yield proc
    finally:
        proc.stop()
