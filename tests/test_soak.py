"""``make soak`` in short, inside ``make test``: 60 s of traffic on the replica stack (api, realtime,
dispatcher and expirer, two of each) while a replica is SIGKILLed every few seconds, the broker
restarts and MongoDB goes away for 10 s; then every invariant of ``bench/soak/invariants.py``.
Asserts the invariants, never a speed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import report
from bench.soak.run import Settings, soak
from sayso_devstack.stack import parse_replicas

pytestmark = pytest.mark.slow


async def test_every_guarantee_holds_while_replicas_die(tmp_path: Path) -> None:
    # Every invariant but the long-poll's time bound, a speed: this test shares its host (with
    # other jobs, here); it checks that every poll was answered. `make soak` judges the bound.
    settings = Settings(seconds=60, poll_slack=None)
    outcome = await soak(settings, tmp_path / "stack")
    report.write(outcome, tmp_path)
    failed = [c.name for c in outcome.checks if not c.ok]
    assert not failed, f"{report.markdown(outcome)}\nlogs: {tmp_path / 'stack' / 'logs'}"
    # The run was what it claims: every service lost a replica, the broker and MongoDB went away,
    # live clients had to resume, and there was real traffic through it all.
    replicated = parse_replicas(settings.replicas)
    assert all(outcome.counts.get(f"{service} kills", 0) >= 1 for service in replicated), outcome.counts
    assert outcome.counts["outages"] == 2
    assert outcome.counts["live reconnections"] >= 1, outcome.counts
    assert outcome.counts["reviews"] >= 100
