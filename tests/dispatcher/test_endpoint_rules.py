"""Table tests for the endpoint rules: which endpoints an event goes to, the Standard Webhooks
body, how a rate limit spreads held-back deliveries, per-endpoint lanes, and the SSRF check a
save makes; and, on a scratch database of the real MongoDB, the delivery index that replaced
(event, URL) and the shared per-second counter."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from sayso_api.endpoints import vet_url
from sayso_common.documents import DeliveryDoc, EndpointDoc
from sayso_common.endpoints import (
    compile_endpoint_filter,
    filter_document,
    filter_json,
    stored_filter,
    wanted,
)
from sayso_common.errors import DomainError
from sayso_common.events import AgentStatusChanged, AgentStatusData, MessageData, ReviewResponded
from sayso_common.mongo import DELIVERY_TARGET_INDEX, ensure_indexes
from sayso_common.views import MessageView, ReviewView
from sayso_common.webhook_bodies import body_for
from sayso_dispatcher.ratelimit import EndpointRates, spread
from sayso_dispatcher.worker import lane_key

NOW = datetime(2026, 4, 1, 14, 32, tzinfo=UTC)

EVENT = ReviewResponded(
    channel_id="agt_1",
    owner_id="usr_1",
    occurred_at=NOW,
    data=MessageData(
        message=MessageView(
            id="msg_1",
            channel_id="agt_1",
            text="Deploy web?",
            created_at=NOW,
            metadata={"env": "prod", "amount": 120},
            review=ReviewView(
                type="approval", status="completed", response={"selectedOption": "ok"}, responded_at=NOW
            ),
        )
    ),
)


def _endpoint(**fields: Any) -> EndpointDoc:
    return cast(
        EndpointDoc, {"_id": "ep_1", "owner_id": "usr_1", "channel_id": None, "url": "https://e/", **fields}
    )


@pytest.mark.parametrize(
    ("fields", "spec", "expected"),
    [
        ({}, None, True),  # default types: responded and expired
        ({"event_types": ["review:expired"]}, None, False),
        ({"event_types": ["message:created", "review:responded"]}, None, True),
        ({"disabled": True}, None, False),
        ({"disabled": True}, {"message.metadata.env": "prod"}, False),
        ({}, {"message.metadata.env": "prod"}, True),
        ({}, {"message.metadata.env": "staging"}, False),
        ({}, {"message.metadata.amount": {"$gte": 100}, "event": "review:responded"}, True),
        ({}, {"message.review.response.selectedOption": {"$in": ["no"]}}, False),
        ({}, {"channelId": "agt_1", "message.senderType": "agent"}, True),
        ({}, {"message.reviewType": {"$exists": True}}, False),  # the view's keys, as the API shows them
        ({}, {"message.text": {"$regex": "^deploy", "$options": "i"}}, True),
        ({}, {"$not": {"message.metadata.env": "prod"}}, False),
    ],
)
def test_which_endpoints_an_event_goes_to(
    fields: dict[str, Any], spec: dict[str, Any] | None, expected: bool
) -> None:
    compiled = compile_endpoint_filter(spec)
    assert (
        wanted(_endpoint(**fields), "review:responded", compiled, lambda: filter_document(EVENT)) is expected
    )


def test_the_filter_document_is_built_only_when_a_filter_needs_it() -> None:
    built: list[int] = []

    def document() -> dict[str, Any] | None:
        built.append(1)
        return filter_document(EVENT)

    assert wanted(_endpoint(), "review:responded", None, document)
    assert built == []
    assert wanted(
        _endpoint(), "review:responded", compile_endpoint_filter({"event": "review:responded"}), document
    )
    assert built == [1]


def test_a_status_event_is_filtered_over_its_agent_object() -> None:
    status = AgentStatusChanged(
        channel_id="agt_1",
        owner_id="usr_1",
        data=AgentStatusData(agent_id="agt_1", status="busy", last_activity_at=NOW),
    )
    assert filter_document(status) == {
        "event": "agent:status",
        "channelId": "agt_1",
        "agent": {
            "id": "agt_1",
            "status": "busy",
            "statusMessage": None,
            "lastActiveAt": "2026-04-01T14:32:00.000Z",
        },
    }
    assert wanted(
        _endpoint(event_types=["agent:*"]),
        "agent:status",
        compile_endpoint_filter({"agent.status": "busy"}),
        lambda: filter_document(status),
    )
    assert not wanted(_endpoint(), "agent:status", None, lambda: filter_document(status))


@pytest.mark.parametrize(
    "spec", [None, {}, {"a.b": 1}, {"$or": [{"x\u0000y": {"$gt": 1}}]}, {"k": [1, "two", None, {"$x": True}]}]
)
def test_a_filter_is_stored_as_json_text_and_read_back_unchanged(spec: dict[str, Any] | None) -> None:
    stored = filter_json(spec)
    doc = _endpoint(filter_json=stored)
    assert stored_filter(doc) == spec


def test_the_standard_body_wraps_placets() -> None:
    body = body_for(EVENT, "standard")
    assert body == {
        "type": "review.responded",
        "timestamp": "2026-04-01T14:32:00.000Z",
        "data": body_for(EVENT),
    }


@pytest.mark.parametrize(
    ("count", "limit", "start", "expected"),
    [
        (0, 5, 10.0, []),
        (1, 1, 10.0, [10.0]),
        (3, 1, 10.0, [10.0, 11.0, 12.0]),
        (4, 2, 10.0, [10.0, 10.5, 11.0, 11.5]),
        (5, 4, 7.0, [7.0, 7.25, 7.5, 7.75, 8.0]),
        (2, 1000, 1.0, [1.0, 1.001]),
    ],
)
def test_held_back_deliveries_are_spread_at_the_limit(
    count: int, limit: int, start: float, expected: list[float]
) -> None:
    assert spread(count, limit, start) == pytest.approx(expected)


def test_each_endpoint_has_a_lane_and_circuit_of_its_own() -> None:
    implicit = cast(DeliveryDoc, {"owner_id": "usr_1", "host": "h:443"})
    one = cast(DeliveryDoc, {**implicit, "endpoint_id": "ep_1"})
    two = cast(DeliveryDoc, {**implicit, "endpoint_id": "ep_2"})
    assert len({lane_key(implicit), lane_key(one), lane_key(two)}) == 3
    assert lane_key(implicit) == "usr_1|h:443"


LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.mark.parametrize(
    ("url", "allowed", "refused"),
    [
        ("http://localhost:9/hook", [], True),  # a name that resolves to loopback
        ("http://localhost:9/hook", LOOPBACK, False),
        ("http://127.0.0.1:9/", [], True),
        ("http://127.0.0.1:9/", LOOPBACK, False),
        ("http://2130706433/", [], True),  # 127.0.0.1 spelt as one number
        ("http://10.0.0.7/", LOOPBACK, True),
        ("http://[::ffff:10.0.0.7]/", [], True),
        ("http://[fd00::1]/", [], True),
        ("http://nothing.invalid/", [], False),  # unresolvable: left to the send-time guard
        ("https://93.184.215.14/", [], False),
    ],
)
async def test_a_saved_url_passes_the_ssrf_rules(
    url: str, allowed: list[ipaddress.IPv4Network], refused: bool
) -> None:
    if not refused:
        await vet_url(url, list(allowed))
        return
    with pytest.raises(DomainError) as caught:
        await vet_url(url, list(allowed))
    assert (caught.value.code.status, caught.value.code, caught.value.field) == (422, "url_refused", "url")


async def test_the_old_delivery_index_is_replaced_by_one_per_target(scratch: AsyncDatabase[Any]) -> None:
    coll = scratch["deliveries"]
    await coll.create_index([("event_id", 1), ("url", 1)], unique=True)  # what older versions made
    await ensure_indexes(scratch)
    await ensure_indexes(scratch)  # idempotent, the old one already gone
    names = set(await coll.index_information())
    assert "event_id_1_url_1" not in names
    assert DELIVERY_TARGET_INDEX in names
    # The agent's URL and two endpoints sharing it: one delivery each, never two to one target.
    for _id, endpoint in (("d1", None), ("d2", "ep_1"), ("d3", "ep_2")):
        await coll.insert_one(
            {"_id": _id, "event_id": "evt_1", "url": "https://same/", "endpoint_id": endpoint}
        )
    for _id, endpoint in (("d4", None), ("d5", "ep_1")):
        with pytest.raises(DuplicateKeyError):
            await coll.insert_one(
                {"_id": _id, "event_id": "evt_1", "url": "https://same/", "endpoint_id": endpoint}
            )


async def test_the_rate_counter_admits_the_limit_per_second_across_counters(
    scratch: AsyncDatabase[Any],
) -> None:
    now = [100.2]
    # Two counters on one database stand for two dispatcher replicas sharing the budget.
    first, second = (EndpointRates(cast(Any, scratch), clock=lambda: now[0]) for _ in range(2))
    verdicts = [await first.admit("ep_1", 3), await second.admit("ep_1", 3), await first.admit("ep_1", 3)]
    assert verdicts == [None, None, None]
    assert await second.admit("ep_1", 3) == 101.0
    assert await first.admit("ep_1", 3) == 101.0
    assert await first.admit("ep_2", 3) is None  # another endpoint has its own budget
    now[0] = 101.01
    assert await first.admit("ep_1", 3) is None  # a new second, a new budget
    stored = await scratch["rate_limits"].find_one({"_id": "endpoint:ep_1:100"})
    assert stored is not None
    # Each replica counted until it learnt the second was full; then it stops asking.
    assert stored["n"] == 5
    assert "expire_at" in stored  # removed by the TTL index on rate_limits
    assert await second.admit("ep_1", 3) is None
