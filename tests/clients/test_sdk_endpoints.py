"""Webhook endpoints and the pull feed from the SDK (sync and async) and the ``sayso endpoints``
and ``sayso feed`` commands, against the real stack."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import sayso
from tests.clients.test_cli import cli_env, run
from tests.dispatcher.flows import answer, answered, deliveries
from tests.dispatcher.test_kafka_destinations import create_topic, reading, records
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack, eventually


async def test_sdk_manages_endpoints_and_the_dispatcher_uses_them(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent()
    with sayso.Client(stack.url, owner.api_key) as client:
        made = await asyncio.to_thread(
            client.create_endpoint,
            receiver.url("/sdk"),
            agent["id"],
            filter={"message.metadata.env": "prod"},
            format="standard",
            rate_limit=10,
        )
        assert made.secret is not None
        assert made.secret.startswith("whsec_")
        assert (made.channel_id, made.format, made.rate_limit) == (agent["id"], "standard", 10)
        assert made.filter == {"message.metadata.env": "prod"}
        listed = await asyncio.to_thread(client.list_endpoints, agent["id"])
        assert [e.id for e in listed] == [made.id]
        assert listed[0].secret is None
        changed = await asyncio.to_thread(client.update_endpoint, made.id, agent["id"], rate_limit=None)
        assert changed.rate_limit is None
        rotated = await asyncio.to_thread(client.rotate_endpoint_secret, made.id, agent["id"])
        assert rotated.secret.startswith("whsec_")
        assert rotated.secret != made.secret

    await answered(owner, agent["id"], metadata={"env": "prod"})
    [got] = await receiver.wait_for("/sdk", 1)
    # Signed with both secrets during the rotation's grace period: either verifies.
    for secret in (made.secret, rotated.secret):
        assert sayso.verify_webhook(got.body, got.headers, secret)["type"] == "review.responded"

    async with sayso.AsyncClient(stack.url, owner.api_key) as aio:
        account = await aio.create_endpoint(receiver.url("/account"), event_types=["review:expired"])
        assert account.channel_id is None
        assert [e.id for e in await aio.list_endpoints()] == [account.id]
        assert (await aio.get_endpoint(account.id)).event_types == ["review:expired"]
        assert await aio.delete_endpoint(account.id) is True
        with pytest.raises(sayso.NotFound):
            await aio.get_endpoint(account.id)
        with pytest.raises(sayso.ValidationError) as caught:
            await aio.create_endpoint(receiver.url("/bad"), agent["id"], filter={"$nope": 1})
        assert caught.value.field == "filter.$nope"


async def test_sdk_replays_and_recovers_an_endpoint(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    agent = await owner.create_agent()
    msg = await answered(owner, agent["id"])

    async def stored() -> bool:
        page = (await owner.agent.get("/api/v1/feed", params={"channel": agent["id"]})).json()
        return any(e["type"] == "review:responded" for e in page["data"])

    await eventually(stored, 20.0, "the review's event stored")
    async with sayso.AsyncClient(stack.url, owner.api_key) as client:
        made = await client.create_endpoint(
            receiver.url("/sdk-replay"), agent["id"], event_types=["review:responded"]
        )
        end = datetime.now(UTC) + timedelta(seconds=5)
        replayed = await client.replay_endpoint(made.id, start, end, agent["id"])
        assert (replayed.queued, replayed.skipped, replayed.more) == (1, 0, False)
        [got] = await receiver.wait_for("/sdk-replay", 1)
        assert got.json()["message_id"] == msg["id"]
        again = await client.replay_endpoint(made.id, start, end, agent["id"])
        assert (again.queued, again.skipped) == (0, 1)
        recovered = await client.recover_endpoint(made.id, agent["id"], since=start)
        assert (recovered.requeued, recovered.more) == (0, False)
    with sayso.Client(stack.url, owner.api_key) as sync:
        again = await asyncio.to_thread(sync.replay_endpoint, made.id, start, end, agent["id"])
        assert (again.queued, again.skipped) == (0, 1)


async def test_sdk_iterates_the_pull_feed(stack: RunningStack, owner: Owner) -> None:
    agent = await owner.create_agent()
    msg = await answered(owner, agent["id"])

    async with sayso.AsyncClient(stack.url, owner.api_key) as aio:

        async def drained() -> list[dict[str, Any]] | None:
            events = [e async for e in aio.iter_feed(agent["id"], limit=2)]
            return events if any(e["type"] == "review:responded" for e in events) else None

        events = await eventually(drained, 20.0, "the answer in the feed")
        assert [e["data"]["message"]["id"] for e in events if e["type"] == "review:responded"] == [msg["id"]]
        # From the last cursor on there is nothing new; the sync client reads the same pages.
        assert [e async for e in aio.iter_feed(agent["id"], after=events[-1]["cursor"])] == []
        # A page asked to wait is answered by the next event.
        waiting = asyncio.create_task(aio.feed(agent["id"], after=events[-1]["cursor"], wait_ms=20_000))
        posted = await owner.post_message(agent["id"], text="next")
        page = await waiting
        assert [e["data"]["message"]["id"] for e in page.data] == [posted["id"]]
    with sayso.Client(stack.url, owner.api_key) as client:
        again = await asyncio.to_thread(lambda: list(client.iter_feed(agent["id"])))
    assert [e["id"] for e in again][: len(events)] == [e["id"] for e in events]


async def test_cli_endpoints_add_list_rotate_rm(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    agent = await owner.create_agent()
    env = cli_env(stack, owner, SAYSO_DEFAULT_CHANNEL=agent["id"])
    code, out, err = await run(
        env, "endpoints", "add", receiver.url("/cli"), "--event", "review:responded", "--filter",
        '{"message.metadata.env": "prod"}', "--rate-limit", "3",
    )  # fmt: skip
    assert code == 0, err
    endpoint_id = out.strip()
    assert endpoint_id.startswith("ep_")
    assert "whsec_" in err
    code, out, _ = await run(env, "endpoints", "list")
    assert code == 0
    assert out.startswith(endpoint_id)
    assert "filtered" in out
    assert "3/s" in out
    code, out, _ = await run(env, "--json", "endpoints", "list")
    [listed] = json.loads(out)
    assert (listed["id"], listed["rateLimit"], listed["eventTypes"]) == (endpoint_id, 3, ["review:responded"])
    code, out, _ = await run(env, "endpoints", "rotate", endpoint_id)
    assert code == 0
    assert out.strip().startswith("whsec_")
    code, out, _ = await run(env, "endpoints", "rm", endpoint_id)
    assert code == 0
    code, out, err = await run(env, "endpoints", "list")
    assert (code, out) == (0, "")
    assert "no endpoints yet" in err
    code, _, err = await run(env, "endpoints", "add", "http://10.0.0.1/x")
    assert code == 4
    assert "field url" in err


async def test_sdk_creates_a_kafka_endpoint_and_verifies_its_records(
    stack: RunningStack, owner: Owner
) -> None:
    topic = f"endpoints.sdk-{secrets.token_hex(4)}"
    await create_topic(stack.kafka_bootstrap, topic)
    agent = await owner.create_agent()
    with sayso.Client(stack.url, owner.api_key) as client:
        made = await asyncio.to_thread(
            client.create_endpoint, channel=agent["id"], destination=sayso.kafka_destination(topic)
        )
        with pytest.raises(sayso.ValidationError) as caught:
            await asyncio.to_thread(
                client.create_endpoint,
                channel=agent["id"],
                destination=sayso.kafka_destination(topic, ["kafka.example.com:9092"]),
            )
    assert caught.value.field == "destination.bootstrapServers"
    assert made.url == f"kafka:///{topic}"
    assert made.destination == {"type": "kafka", "topic": topic, "bootstrapServers": None, "security": None}
    assert made.secret is not None
    msg = await answered(owner, agent["id"])
    async with reading(stack.kafka_bootstrap, topic) as consumer:
        [record] = await records(consumer, 1)
    # A Kafka record's headers (name, bytes pairs) as they come.
    body = sayso.verify_webhook(record.value, record.headers, made.secret)
    assert body["message_id"] == msg["id"]
    with pytest.raises(sayso.WebhookVerificationError):
        sayso.verify_webhook(record.value + b" ", record.headers, made.secret)


async def test_cli_adds_a_kafka_endpoint_with_sealed_credentials(stack: RunningStack, owner: Owner) -> None:
    agent = await owner.create_agent()
    env = cli_env(stack, owner, SAYSO_DEFAULT_CHANNEL=agent["id"], KAFKA_PASSWORD="cli-secret-pw")
    sasl = (
        "--kafka-bootstrap", "127.0.0.1:19092", "--kafka-protocol", "SASL_PLAINTEXT",
        "--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-username", "svc",
    )  # fmt: skip
    code, out, err = await run(
        env,
        "endpoints",
        "add",
        "--kafka-topic",
        "team.reviews",
        *sasl,
        "--kafka-password-env",
        "KAFKA_PASSWORD",
    )
    assert code == 0, err
    endpoint_id = out.strip()
    assert endpoint_id.startswith("ep_")
    code, out, _ = await run(env, "endpoints", "list")
    assert out.startswith(f"{endpoint_id}  kafka://127.0.0.1:19092/team.reviews")
    code, out, _ = await run(env, "--json", "endpoints", "list")
    [listed] = json.loads(out)
    assert listed["destination"]["security"] == {
        "protocol": "SASL_PLAINTEXT", "saslMechanism": "SCRAM-SHA-256", "username": "svc", "password": "***",
        "caCert": None,
    }  # fmt: skip
    assert "cli-secret-pw" not in out
    code, _, err = await run(
        env, "endpoints", "add", "--kafka-topic", "t", *sasl, "--kafka-password-env", "UNSET_VAR"
    )
    assert code == 4
    assert "UNSET_VAR is not set" in err
    code, _, err = await run(env, "endpoints", "add", "--kafka-topic", "bad topic")
    assert code == 4
    assert "field destination.topic" in err


async def test_cli_endpoints_recover_and_replay(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    receiver.routes["/cli-down"] = answer(500)
    agent = await owner.create_agent(webhookRetrySchedule=[])  # each delivery fails at once
    env = cli_env(stack, owner, SAYSO_DEFAULT_CHANNEL=agent["id"])
    code, out, err = await run(
        env, "endpoints", "add", receiver.url("/cli-down"), "--event", "review:responded"
    )
    assert code == 0, err
    down = out.strip()
    msg = await answered(owner, agent["id"])
    [first] = await receiver.wait_for("/cli-down", 1)

    async def failed() -> bool:
        return any(d["state"] == "failed" for d in await deliveries(owner, msg["id"]))

    await eventually(failed, 20.0, "the endpoint's delivery failed")
    receiver.routes["/cli-down"] = answer(200)
    code, out, err = await run(env, "endpoints", "recover", down, "--since", "10m")
    assert code == 0, err
    assert out.startswith("requeued 1 failed deliveries since "), out
    [_, again] = await receiver.wait_for("/cli-down", 2)
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    code, out, err = await run(env, "--json", "endpoints", "recover", down, "--since", "10m")
    assert (code, json.loads(out)["requeued"]) == (0, 0), err

    # An endpoint made after the fact gets the range's events it matches, once.
    code, out, err = await run(env, "endpoints", "add", receiver.url("/cli-replay"), "--event", "review:*")
    assert code == 0, err
    later = out.strip()
    code, out, err = await run(env, "endpoints", "replay", later, "--from", "10m")
    assert code == 0, err
    assert out.startswith("queued 1, re-sent 0 failed, skipped 0 already sent"), out
    [replayed] = await receiver.wait_for("/cli-replay", 1)
    assert replayed.json()["message_id"] == msg["id"]
    code, out, err = await run(
        env, "--json", "endpoints", "replay", later, "--from", "10m", "--to", datetime.now(UTC).isoformat()
    )
    assert code == 0, err
    assert {k: v for k, v in json.loads(out).items() if k != "scanned"} == {
        "queued": 0,
        "requeued": 0,
        "skipped": 1,
    }
    code, _, err = await run(env, "endpoints", "replay", later, "--from", "not a time")
    assert code == 64
    assert "--from" in err
    code, _, err = await run(env, "endpoints", "add", receiver.url("/x"), "--event", "nope:*")
    assert code == 4
    assert "field eventTypes[0]" in err


async def test_the_feed_by_type_from_the_sdk_and_the_cli(stack: RunningStack, owner: Owner) -> None:
    agent = await owner.create_agent()
    msg = await answered(owner, agent["id"])
    async with sayso.AsyncClient(stack.url, owner.api_key) as aio:

        async def answers() -> list[dict[str, Any]] | None:
            events = [e async for e in aio.iter_feed(agent["id"], types=["review:*"])]
            return events or None

        events = await eventually(answers, 20.0, "the answer in the feed")
    assert [(e["type"], e["data"]["message"]["id"]) for e in events] == [("review:responded", msg["id"])]
    with sayso.Client(stack.url, owner.api_key) as client:
        page = await asyncio.to_thread(client.feed, agent["id"], types=["message:created"])
        assert [e["type"] for e in page.data] == ["message:created"]
        with pytest.raises(sayso.ValidationError) as caught:
            await asyncio.to_thread(client.feed, agent["id"], types=["review:nope"])
        assert caught.value.field == "types"
    env = cli_env(stack, owner)
    code, out, err = await run(env, "feed", "--channel", agent["id"], "--types", "review:*,agent:status")
    assert code == 0, err
    assert [json.loads(line)["id"] for line in out.splitlines()] == [e["id"] for e in events]
    assert f"sayso feed --after {events[-1]['cursor']}" in err


async def test_cli_adds_an_account_ops_endpoint_for_operator_events(
    stack: RunningStack, owner: Owner, receiver: Receiver
) -> None:
    env = cli_env(stack, owner)
    code, out, err = await run(
        env, "--json", "endpoints", "add", receiver.url("/cli-ops"), "--account",
        "--event", "operator:endpoint_disabled", "--event", "operator:retries_exhausted",
    )  # fmt: skip
    assert code == 0, err
    added = json.loads(out)
    assert added.get("channelId") is None  # account-wide
    assert added["eventTypes"] == ["operator:endpoint_disabled", "operator:retries_exhausted"]
