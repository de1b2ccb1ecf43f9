"""SSRF through DNS: a small DNS server on loopback answers names with private, mixed and
metadata addresses, and the dispatcher is pointed at it (``SAYSO_DISPATCHER_DNS_SERVERS``).
A name answering with 127.0.0.1 (the only address allow-listed here) is delivered, which proves
the lookups really go to this server; every other name is refused at once, without a retry.

The spelling tricks (IDN, Unicode digits and dots that normalise into an IP literal, odd ports)
aim at 127.0.0.2: refused like any loopback address, and harmless should the guard ever miss."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import struct
from collections.abc import AsyncIterator
from typing import cast

import httpx
import pytest

from sayso_devstack.processes import Proc, free_port, spawn_service, wait_healthy, wait_ready
from tests.conftest import Infra
from tests.support.receiver import Receiver
from tests.support.stack import admin_headers

pytestmark = pytest.mark.slow

ADMIN = {"email": "dns@tests.local", "password": "dns-password-12345"}
RECORDS: dict[str, list[str]] = {
    "ok.test": ["127.0.0.1"],
    "private.test": ["10.0.0.5"],
    "mixed.test": ["93.184.216.34", "10.0.0.5"],
    "metadata.test": ["169.254.169.254"],
    "cgnat.test": ["100.64.0.9"],
    "mapped.test": ["::ffff:10.0.0.5"],
    "loop2.test": ["127.0.0.2"],
    # "prívate.test" as it goes on the wire (IDNA): the guard must check what is really looked up.
    "xn--prvate-4va.test": ["10.0.0.5"],
}


class DnsServer(asyncio.DatagramProtocol):
    """Answers A and AAAA questions from RECORDS; anything else gets an empty answer."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        end, labels = 12, []
        while data[end]:
            labels.append(data[end + 1 : end + 1 + data[end]].decode())
            end += data[end] + 1
        qtype = struct.unpack(">H", data[end + 1 : end + 3])[0]
        question = data[12 : end + 5]
        answers = b""
        count = 0
        for value in RECORDS.get(".".join(labels).lower(), []):
            ip = ipaddress.ip_address(value)
            if (qtype, ip.version) in ((1, 4), (28, 6)):
                answers += b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 30, len(ip.packed)) + ip.packed
                count += 1
        header = data[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, count, 0, 0)
        self.transport.sendto(header + question + answers, addr)


@pytest.fixture
async def dns() -> AsyncIterator[int]:
    port = free_port()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        DnsServer, local_addr=("127.0.0.1", port), family=socket.AF_INET
    )
    yield port
    transport.close()


@pytest.fixture
async def private(infra: Infra, dns: int) -> AsyncIterator[tuple[Proc, Proc]]:
    tag = secrets.token_hex(3)
    env = infra.service_env(
        SAYSO_MONGO_DB=f"dns_{tag}",
        SAYSO_TOPIC_PREFIX=f"dns{tag}.",
        SAYSO_DISPATCHER_GROUP_ID=f"dns{tag}",
        SAYSO_DISPATCHER_DNS_SERVERS=f"127.0.0.1:{dns}",
        SAYSO_DISPATCHER_ALLOWED_NETWORKS="127.0.0.1/32",
        SAYSO_BOOTSTRAP_ADMIN_EMAIL=ADMIN["email"],
        SAYSO_BOOTSTRAP_ADMIN_PASSWORD=ADMIN["password"],
    )
    api = spawn_service("api", infra.log_dir, env, name="api-dns")
    dispatcher = spawn_service("dispatcher", infra.log_dir, env, name="dispatcher-dns")
    wait_healthy(api)
    wait_healthy(dispatcher)
    wait_ready(dispatcher, timeout=60)  # its consumer group has joined the new topics
    yield api, dispatcher
    api.stop()
    dispatcher.stop()


async def test_names_resolving_to_internal_addresses_are_refused(
    private: tuple[Proc, Proc], receiver: Receiver
) -> None:
    api, _ = private
    port = receiver.port
    cases = {
        "ok": (f"http://ok.test:{port}/ok", None),
        "private": (f"http://private.test:{port}/x", "private"),
        "mixed": (f"http://mixed.test:{port}/x", "private"),
        "metadata": (f"http://metadata.test:{port}/x", "link"),
        "cgnat": (f"http://cgnat.test:{port}/x", "100.64"),
        "mapped": (f"http://mapped.test:{port}/x", ""),
        "userinfo": (f"http://ok.test:{port}@private.test:{port}/x", "private"),
        "loopback name": (f"http://loop2.test:{port}/x", "loopback"),
        "idn": (f"http://pr\u00edvate.test:{port}/x", "private"),
        "ideographic dots": (f"http://127\u30020\u30020\u30022:{port}/x", "loopback"),
        "enclosed digits": (f"http://\u2460\u2461\u2466.0.0.2:{port}/x", "loopback"),
        "fullwidth digits": (f"http://\uff11\uff12\uff17.0.0.2:{port}/x", "loopback"),
        "hex spelling": (f"http://0x7f.0.0.2:{port}/x", "loopback"),
        "port spelling": (f"http://127.0.0.2:00{port}/x", "loopback"),
        "trailing dot": (f"http://127.0.0.2.:{port}/x", "loopback"),
    }
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}", timeout=30) as client:
        human, agent_h = await admin_headers(client, ADMIN)
        agent = (
            await client.post(
                "/api/v1/agents", json={"name": "dns", "webhookRetrySchedule": [1]}, headers=agent_h
            )
        ).json()
        sent: dict[str, str] = {}
        for name, (url, _) in cases.items():
            body = {
                "channelId": agent["id"],
                "text": name,
                "webhookUrl": url,
                "review": {"type": "approval", "payload": {}},
            }
            msg = (await client.post("/api/v1/messages", json=body, headers=agent_h)).json()
            resp = await client.post(
                f"/api/v1/reviews/{msg['id']}/respond",
                json={"response": {"selectedOption": "approve"}},
                headers=human,
            )
            assert resp.status_code == 200
            sent[name] = msg["id"]
        await receiver.wait_for("/ok", timeout=30)
        for name, (_, reason) in cases.items():
            for _ in range(200):
                found = (
                    await client.get(f"/api/v1/messages/{sent[name]}/deliveries", headers=agent_h)
                ).json()["data"]
                if found and found[0]["state"] != "pending":
                    break
                await asyncio.sleep(0.1)
            delivery = found[0]
            if reason is None:
                assert delivery["state"] == "delivered", delivery
                continue
            assert delivery["state"] == "failed", (name, delivery)
            assert delivery["attemptCount"] == 1, (name, delivery)  # refused at once, never retried
            attempt = delivery["attempts"][0]
            assert attempt["errorKind"] == "ssrf_refused", (name, attempt)
            assert reason in (attempt["error"] or ""), (name, attempt)
    assert [r.path for r in receiver.requests] == ["/ok"]  # nothing reached anything else
