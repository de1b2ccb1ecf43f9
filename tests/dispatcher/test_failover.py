"""A dispatcher replica SIGKILLed: its partitions go to the survivor, which delivers the events
published on them after the kill (issue #30 item 5). On a private stack of two dispatchers in a
consumer group of its own, created with the shipped session timeout. How fast is the bench's
question (``python -m bench.failover``, the soak's failover table), not this test's."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sayso_common.settings import ServiceSettings
from sayso_dispatcher.consumer import TOPICS
from tests.conftest import Infra
from tests.dispatcher.flows import answered, settled
from tests.support.private import PrivateStack, private_stack
from tests.support.receiver import Receiver
from tests.support.stack import Owner, eventually

pytestmark = pytest.mark.slow

# Every partition of every topic the dispatchers' group reads.
PARTITIONS = len(TOPICS) * ServiceSettings.model_fields["topic_partitions"].default


@pytest.fixture(scope="module")
def private(infra: Infra) -> Iterator[PrivateStack]:
    with private_stack(
        PrivateStack,
        infra,
        "failover",
        {"dispatcher-a": "dispatcher", "dispatcher-b": "dispatcher"},
        ready=("dispatcher-a", "dispatcher-b"),
    ) as stack:
        yield stack


@pytest.fixture
async def powner(private: PrivateStack) -> AsyncIterator[Owner]:
    async with await private.stack.new_owner() as created:
        yield created


async def _group_metric(private: PrivateStack, proc: str, name: str) -> float | None:
    """The dispatcher group's sample ``name`` on process ``proc``; None while it has none."""
    port = private.procs[proc].port
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("group") == "dispatcher":
                return float(sample.value)
    return None


async def test_survivor_takes_the_killed_replicas_partitions_and_delivers_their_events(
    private: PrivateStack, powner: Owner, receiver: Receiver
) -> None:
    held = "sayso_consumer_partitions_assigned"
    assignments = "sayso_consumer_assignments_total"

    async def split() -> bool:
        a = await _group_metric(private, "dispatcher-a", held)
        b = await _group_metric(private, "dispatcher-b", held)
        return bool(a and b and a + b == PARTITIONS)

    await eventually(split, timeout=60, what="both replicas hold partitions")
    before = await _group_metric(private, "dispatcher-a", assignments)
    assert before is not None
    assert before >= 1

    # Agents whose channels land on every partition (the record key is the channel id).
    agents = [await powner.create_agent(webhookUrl=receiver.url("/failover")) for _ in range(24)]
    private.procs["dispatcher-b"].kill()  # SIGKILL: it never leaves the group; its session lapses
    # Published while the dead replica still owns half the partitions.
    messages = [(await answered(powner, agent["id"]))["id"] for agent in agents]

    async def all_taken() -> bool:
        return bool(await _group_metric(private, "dispatcher-a", held) == PARTITIONS)

    await eventually(all_taken, timeout=90, what="the survivor holds every partition")
    after = await _group_metric(private, "dispatcher-a", assignments)
    assert after is not None
    assert after > before  # a rebalance handed it the dead one's share
    for mid in messages:
        delivery = await settled(powner, mid, "delivered", timeout=90)
        assert {a["by"].rsplit("-", 1)[0] for a in delivery["attempts"]} == {"dispatcher-a"}
    arrived = Counter(r.headers["webhook-id"] for r in receiver.at("/failover"))
    assert len(arrived) == len(messages)
    assert max(arrived.values()) == 1
