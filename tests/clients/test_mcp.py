"""``sayso-mcp`` as an MCP client sees it: started over stdio (and streamable HTTP) by the
``mcp`` client library, against the real stack; the human answers over REST."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from sayso_mcp import config, http_access
from sayso_mcp.tools import caller_key
from tests.clients.support import answer_next
from tests.support.stack import Owner, RunningStack

PLACET_TOOLS = {
    "send_message",
    "send_review_message",
    "wait_for_review",
    "get_pending_reviews",
    "list_channels",
    "create_channel",
    "ping_status",
    "get_messages",
    "get_message",
    "delete_message",
    "get_iteration_chain",
    "list_plugins",
}
# Sayso's own tools beside Placet's: policies and the audit log.
POLICY_TOOLS = {"get_policy", "set_policy", "test_policy", "query_audit"}
SERVER = str(Path(sys.executable).parent / "sayso-mcp")
APPROVAL = {
    "options": [
        {"id": "approve", "label": "Approve", "style": "primary"},
        {"id": "reject", "label": "Reject", "style": "danger"},
    ],
    "allowComment": True,
}


@asynccontextmanager
async def stdio_server(env: dict[str, str]) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=SERVER, args=["--stdio"], env=env)
    async with Client(params, read_timeout_seconds=60) as client:
        yield client


def text_of(result: CallToolResult) -> str:
    [content] = result.content
    assert isinstance(content, TextContent)
    return content.text


async def call(client: Client, tool: str, arguments: dict[str, Any], **options: Any) -> Any:
    result = await client.call_tool(tool, arguments, **options)
    assert not result.is_error, text_of(result)
    return json.loads(text_of(result))


async def test_stdio_tools_and_a_review(stack: RunningStack, owner: Owner) -> None:
    env = {"SAYSO_URL": stack.url, "SAYSO_API_KEY": owner.api_key}
    async with stdio_server(env) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        assert set(tools) >= PLACET_TOOLS
        review_params = tools["send_review_message"].input_schema
        assert set(review_params["required"]) == {"channelId", "reviewType", "reviewPayload"}
        assert "waitInline" in review_params["properties"]

        channel = (await call(mcp, "create_channel", {"name": "mcp-agent", "description": "via MCP"}))["id"]
        assert [c["id"] for c in await call(mcp, "list_channels", {})] == [channel]
        pinged = await call(mcp, "ping_status", {"agentId": channel, "status": "busy", "message": "working"})
        assert (pinged["status"], pinged["statusMessage"]) == ("busy", "working")

        note = await call(
            mcp, "send_message", {"channelId": channel, "text": "## Build\nAll green", "status": "success"}
        )
        assert note["status"] == "success"
        fetched = await call(mcp, "get_message", {"channelId": channel, "messageId": note["id"]})
        assert fetched["deliveryStatus"] == "agent_received"  # the tool acknowledged it

        sent = await call(
            mcp,
            "send_review_message",
            {
                "channelId": channel,
                "text": "Deploy v2.1?",
                "reviewType": "approval",
                "reviewPayload": APPROVAL,
            },
        )
        assert (sent["status"], sent["expiresAt"] is not None) == ("pending", True)
        mid = sent["messageId"]
        assert [m["id"] for m in await call(mcp, "get_pending_reviews", {"channelId": channel})] == [mid]

        # Nobody answers within the call's own timeout: progress while it waits, then "timeout".
        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append((done, total, message))

        arguments = {"channelId": channel, "messageId": mid, "connectionTimeoutMs": 1500}
        timed_out = await call(mcp, "wait_for_review", arguments, progress_callback=on_progress)
        assert (timed_out["status"], timed_out["messageId"]) == ("timeout", mid)
        assert progress
        assert progress[0][2] is not None
        assert progress[0][2].startswith("Waiting for review")

        human = asyncio.create_task(
            answer_next(owner, channel, {"selectedOption": "approve", "comment": "go"})
        )
        done = await call(
            mcp, "wait_for_review", {"channelId": channel, "messageId": mid}, progress_callback=on_progress
        )
        await human
        assert done["status"] == "completed"
        assert done["message"]["review"]["response"] == {"selectedOption": "approve", "comment": "go"}
        assert progress[-1][2] == "Review completed."
        assert await call(mcp, "get_pending_reviews", {"channelId": channel}) == []

        # waitInline, answered during the call; then an iteration of it.
        human = asyncio.create_task(answer_next(owner, channel, {"selectedIds": ["b"]}))
        inline = await call(
            mcp,
            "send_review_message",
            {
                "channelId": channel,
                "text": "Which one?",
                "reviewType": "selection",
                "reviewPayload": {
                    "mode": "single",
                    "items": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}],
                },
                "waitInline": True,
            },
        )
        await human
        assert inline["status"] == "completed"
        assert inline["message"]["review"]["response"] == {"selectedIds": ["b"]}
        v2 = await call(
            mcp,
            "send_review_message",
            {"channelId": channel, "reviewType": "approval", "reviewPayload": {}, "iterationOf": mid},
        )
        chain = await call(mcp, "get_iteration_chain", {"channelId": channel, "messageId": v2["messageId"]})
        assert chain["groupId"] == mid
        assert [m["iteration"] for m in chain["iterations"]] == [1, 2]

        page = await call(mcp, "get_messages", {"channelId": channel, "limit": 2})
        assert len(page["data"]) == 2
        assert page["nextCursor"]
        found = await call(mcp, "get_messages", {"channelId": channel, "search": "BUILD"})
        assert [m["id"] for m in found["data"]] == [note["id"]]

        deleted = await mcp.call_tool("delete_message", {"channelId": channel, "messageId": note["id"]})
        assert text_of(deleted) == '{"deleted":true}'
        plugins = await call(mcp, "list_plugins", {})
        assert all({"name", "displayName", "version"} <= set(p) for p in plugins)

        missing = await mcp.call_tool("get_message", {"channelId": channel, "messageId": "msg_missing"})
        assert missing.is_error
        assert "404" in text_of(missing)
        no_channel = await mcp.call_tool("get_pending_reviews", {})
        assert no_channel.is_error


async def test_edit_args_offered_and_edited_args_reported(stack: RunningStack, owner: Owner) -> None:
    """Edit before approve (#32): send_review_message takes editArgs/editSchema into
    payload.edit; the waits report editedArgs next to the message; bad uses are tool errors."""
    env = {"SAYSO_URL": stack.url, "SAYSO_API_KEY": owner.api_key}
    schema = {"type": "object", "properties": {"amount": {"type": "number", "maximum": 500}}}
    async with stdio_server(env) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        assert {"editArgs", "editSchema"} <= set(tools["send_review_message"].input_schema["properties"])
        channel = (await call(mcp, "create_channel", {"name": "mcp-edit"}))["id"]
        arguments = {
            "channelId": channel,
            "text": "Pay alice?",
            "reviewType": "approval",
            "reviewPayload": {},
            "editArgs": {"amount": 120},
            "editSchema": schema,
        }
        human = asyncio.create_task(
            answer_next(owner, channel, {"selectedOption": "approve", "editedArgs": {"amount": 90}})
        )
        inline = await call(mcp, "send_review_message", {**arguments, "waitInline": True})
        answered = await human
        assert answered["review"]["payload"]["edit"] == {"args": {"amount": 120}, "schema": schema}
        assert inline["status"] == "completed"
        assert inline["editedArgs"] == {"amount": 90}
        again = await call(mcp, "wait_for_review", {"channelId": channel, "messageId": answered["id"]})
        assert again["editedArgs"] == {"amount": 90}

        sent = await call(mcp, "send_review_message", arguments)
        await answer_next(owner, channel, {"selectedOption": "approve"})
        plain = await call(mcp, "wait_for_review", {"channelId": channel, "messageId": sent["messageId"]})
        assert plain["status"] == "completed"
        assert "editedArgs" not in plain  # approved as proposed

        for bad in (
            {**arguments, "reviewType": "text-input"},
            {**arguments, "editArgs": None},
            {**arguments, "editArgs": {"amount": 900}},
        ):
            refused = await mcp.call_tool("send_review_message", bad)
            assert refused.is_error, text_of(refused)


async def test_placet_configuration_and_default_channel(stack: RunningStack, owner: Owner) -> None:
    channel = (await owner.create_agent(name="default"))["id"]
    env = {
        "PLACET_API_URL": stack.url + "/",
        "PLACET_API_KEY": owner.api_key,
        "PLACET_DEFAULT_CHANNEL": channel,
    }
    async with stdio_server(env) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        params = tools["send_message"].input_schema
        assert "channelId" not in params.get("required", [])
        assert channel in params["properties"]["channelId"]["description"]
        sent = await call(mcp, "send_message", {"text": "to the default channel"})
        assert sent["channelId"] == channel
        # Plugin renderers become send_<plugin>_message tools, as on Placet's server.
        plugin_tools = sorted(n for n in tools if n not in PLACET_TOOLS | POLICY_TOOLS)
        assert plugin_tools
        assert all(n.startswith("send_") and n.endswith("_message") for n in plugin_tools)
        pending = await call(mcp, plugin_tools[0], {"pluginData": {"data": {"x": 1}}})
        review = await call(mcp, "get_message", {"messageId": pending["messageId"]})
        assert review["review"]["type"] == "freeform"
        assert review["review"]["payload"]["plugin"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving_http(stack: RunningStack, stderr: Path, *args: str, **env: str) -> Iterator[str]:
    """``sayso-mcp --http`` with ``env`` over a clean environment; its stderr in ``stderr``."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SAYSO_", "PLACET_"))}
    full_env |= {"SAYSO_URL": stack.url, "MCP_PORT": str(port), **env}
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [SERVER, "--http", *args], env=full_env, stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        deadline = time.monotonic() + 60  # start-up imports take 10+ s on a loaded 2-core host
        while time.monotonic() < deadline:
            assert proc.poll() is None, stderr.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json() == {"status": "ok"}:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("sayso-mcp --http did not come up")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def http_server(stack: RunningStack, tmp_path: Path) -> Iterator[str]:
    """``sayso-mcp --http`` without a configured key: each MCP session brings its own, in
    ``x-api-key``, as with Placet's HTTP server."""
    with serving_http(stack, tmp_path / "mcp.err") as url:
        yield url


@asynccontextmanager
async def http_session(url: str, **headers: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), read_timeout_seconds=30) as mcp,
    ):
        yield mcp


async def test_streamable_http(http_server: str, owner: Owner) -> None:
    agent = await owner.create_agent(name="over-http")
    async with (
        httpx2.AsyncClient(headers={"x-api-key": owner.api_key}, timeout=30) as http,
        Client(streamable_http_client(http_server, http_client=http), read_timeout_seconds=30) as mcp,
    ):
        assert {t.name for t in (await mcp.list_tools()).tools} >= PLACET_TOOLS
        assert agent["id"] in [c["id"] for c in await call(mcp, "list_channels", {})]
    async with (
        httpx2.AsyncClient(timeout=30) as anonymous,
        Client(streamable_http_client(http_server, http_client=anonymous), read_timeout_seconds=30) as mcp,
    ):
        refused = await mcp.call_tool("list_channels", {})
        assert refused.is_error
        assert "x-api-key" in text_of(refused)


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


def initialize(url: str, **headers: str) -> httpx.Response:
    """The first request of an MCP session, as a browser on another site would send it."""
    return httpx.post(
        url,
        json=INITIALIZE,
        headers={"Accept": "application/json, text/event-stream", **headers},
        timeout=30,
    )


async def test_http_never_lends_the_configured_key(stack: RunningStack, owner: Owner, tmp_path: Path) -> None:
    """A configured key serves the plugin list at start; a caller without a key of its own is
    refused, and a caller with one sees its own channels, not the configured key's."""
    mine = await owner.create_agent(name="configured-owner")
    other = await stack.new_owner()
    try:
        theirs = await other.create_agent(name="caller-owner")
        with serving_http(stack, tmp_path / "mcp.err", SAYSO_API_KEY=owner.api_key) as url:
            async with http_session(url) as anonymous:
                refused = await anonymous.call_tool("list_channels", {})
                assert refused.is_error
                assert "x-api-key" in text_of(refused)
            async with http_session(url, **{"x-api-key": other.api_key}) as caller:
                seen = [c["id"] for c in await call(caller, "list_channels", {})]
                assert theirs["id"] in seen
                assert mine["id"] not in seen
        assert "WARNING" not in (tmp_path / "mcp.err").read_text()
    finally:
        await other.aclose()


async def test_http_shares_the_configured_key_only_when_asked(
    stack: RunningStack, owner: Owner, tmp_path: Path
) -> None:
    agent = await owner.create_agent(name="shared-key")
    err = tmp_path / "mcp.err"
    with serving_http(stack, err, "--share-configured-key", SAYSO_API_KEY=owner.api_key) as url:
        async with http_session(url) as anonymous:
            assert agent["id"] in [c["id"] for c in await call(anonymous, "list_channels", {})]
    warning = err.read_text()
    assert "WARNING: SAYSO_MCP_SHARE_CONFIGURED_KEY is on" in warning
    assert owner.api_key not in warning


def test_http_on_every_interface_checks_host_and_origin(stack: RunningStack, tmp_path: Path) -> None:
    """Bound to 0.0.0.0 the mcp library turns its DNS-rebinding check off; ours stays on."""
    err = tmp_path / "mcp.err"
    with serving_http(stack, err, "--host", "0.0.0.0", SAYSO_MCP_ALLOWED_HOSTS="mcp.internal") as url:
        port = url.split(":")[2].split("/")[0]
        evil = initialize(url, Host="evil.example", Origin="http://evil.example")
        assert evil.status_code == 421, evil.text
        assert initialize(url, Origin="http://evil.example").status_code == 403
        assert initialize(url, Host=f"evil.example:{port}").status_code == 421
        assert initialize(url).status_code == 200
        assert initialize(url, Origin=f"http://localhost:{port}").status_code == 200
        assert (
            initialize(url, Host=f"mcp.internal:{port}", Origin=f"https://mcp.internal:{port}").status_code
            == 200
        )
    assert "reachable from other machines" in err.read_text()
    assert "mcp.internal" in err.read_text()


def test_http_on_loopback_checks_host_too(http_server: str) -> None:
    assert initialize(http_server, Host="evil.example").status_code == 421
    assert initialize(http_server).status_code == 200


@pytest.mark.parametrize(
    ("transport", "share", "headers", "expected"),
    [
        ("stdio", False, None, "hp_configured"),
        ("http", False, None, None),
        ("http", False, {}, None),
        ("http", False, {"x-api-key": ""}, None),
        ("http", False, {"x-api-key": "hp_caller"}, "hp_caller"),
        ("http", True, {}, "hp_configured"),
        ("http", True, {"x-api-key": "hp_caller"}, "hp_caller"),
    ],
)
def test_caller_key(
    transport: config.Transport, share: bool, headers: dict[str, str] | None, expected: str | None
) -> None:
    settings = config.Settings(
        api_url="http://s", api_key="hp_configured", transport=transport, share_configured_key=share
    )
    assert caller_key(settings, headers) == expected


@pytest.mark.parametrize(
    ("host", "extra", "allowed", "refused"),
    [
        ("127.0.0.1", (), {"127.0.0.1:*", "localhost:*", "[::1]:*"}, {"evil.example", "evil.example:*"}),
        ("0.0.0.0", (), {"127.0.0.1:*", "localhost"}, {"0.0.0.0", "0.0.0.0:*"}),
        ("::", ("mcp.internal",), {"mcp.internal", "mcp.internal:*"}, {"::", "[::]:*"}),
        ("192.0.2.7", ("mcp.internal:3002",), {"192.0.2.7:*", "mcp.internal:3002"}, {"mcp.internal:*"}),
        ("2001:db8::1", (), {"[2001:db8::1]", "[2001:db8::1]:*"}, set()),
    ],
)  # fmt: skip
def test_allowed_hosts(host: str, extra: tuple[str, ...], allowed: set[str], refused: set[str]) -> None:
    settings = config.Settings(api_url="http://s", host=host, transport="http", allowed_hosts=extra)
    security = http_access.transport_security(settings)
    assert security.enable_dns_rebinding_protection
    assert allowed <= set(security.allowed_hosts)
    assert not refused & set(security.allowed_hosts)
    assert "http://evil.example" not in security.allowed_origins
    assert {f"http://{h}" for h in allowed} <= set(security.allowed_origins)


@pytest.mark.parametrize(
    ("host", "share", "expected"),
    [
        ("127.0.0.1", False, []),
        ("localhost", False, []),
        ("::1", False, []),
        ("0.0.0.0", False, ["reachable from other machines"]),
        ("192.0.2.7", False, ["reachable from other machines"]),
        ("127.0.0.1", True, ["SHARE_CONFIGURED_KEY is on"]),
        ("0.0.0.0", True, ["reachable from other machines", "SHARE_CONFIGURED_KEY is on"]),
    ],
)
def test_start_warnings(host: str, share: bool, expected: list[str]) -> None:
    settings = config.Settings(
        api_url="http://s", api_key="hp_secret", host=host, transport="http", share_configured_key=share
    )
    warnings = http_access.start_warnings(settings)
    assert len(warnings) == len(expected)
    assert all(part in line for part, line in zip(expected, warnings, strict=True))
    assert not any("hp_secret" in line for line in warnings)


@pytest.mark.parametrize(
    ("env", "transport", "expected"),
    [
        ({"SAYSO_URL": "http://s/", "SAYSO_API_KEY": "hp_a"}, None, {"api_url": "http://s", "transport": "stdio"}),
        ({"PLACET_API_URL": "http://p:3001/", "PLACET_API_KEY": "hp_b", "PLACET_DEFAULT_CHANNEL": "ch-1",
          "MCP_PORT": "4000", "MCP_PATH": "/custom", "MCP_CONNECTION_TIMEOUT_MS": "60000"}, None,
         {"api_url": "http://p:3001", "api_key": "hp_b", "default_channel": "ch-1", "port": 4000, "path": "/custom",
          "connection_timeout_ms": 60000}),
        ({"SAYSO_URL": "http://s", "PLACET_API_URL": "http://p", "SAYSO_API_KEY": "hp_s", "PLACET_API_KEY": "hp_p"},
         None, {"api_url": "http://s", "api_key": "hp_s"}),
        ({"SAYSO_URL": "http://s", "MCP_TRANSPORT": "http"}, None, {"transport": "http", "api_key": None}),
        ({"SAYSO_URL": "http://s", "SAYSO_API_KEY": ""}, "http", {"api_key": None}),
        ({"SAYSO_URL": "http://s", "SAYSO_API_KEY": "hp_a"}, "http",
         {"share_configured_key": False, "allowed_hosts": ()}),
        ({"SAYSO_URL": "http://s", "SAYSO_API_KEY": "hp_a", "SAYSO_MCP_SHARE_CONFIGURED_KEY": "TRUE",
          "SAYSO_MCP_ALLOWED_HOSTS": " MCP.internal , 10.0.0.5:3002,"}, "http",
         {"share_configured_key": True, "allowed_hosts": ("mcp.internal", "10.0.0.5:3002")}),
    ],
    ids=["sayso", "placet", "sayso-wins", "http-without-key", "empty-key-unset", "not-shared",
         "shared-and-hosts"],
)  # fmt: skip
def test_config(env: dict[str, str], transport: config.Transport | None, expected: dict[str, Any]) -> None:
    settings = config.load(env, transport)
    assert {k: getattr(settings, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("env", "transport", "message"),
    [
        ({}, None, "PLACET_API_URL"),
        ({"SAYSO_URL": "http://s", "SAYSO_API_KEY": "bad-key"}, None, "hp_"),
        ({"SAYSO_URL": "http://s"}, "stdio", "required for stdio"),
        ({"SAYSO_URL": "http://s", "SAYSO_API_KEY": "hp_x", "MCP_PORT": "x"}, None, "integer"),
        (
            {"SAYSO_URL": "http://s", "SAYSO_API_KEY": "hp_x", "MCP_TRANSPORT": "ws"},
            None,
            "stdio or http",
        ),
        (
            {"SAYSO_URL": "http://s", "SAYSO_MCP_SHARE_CONFIGURED_KEY": "1"},
            "http",
            "needs SAYSO_API_KEY",
        ),
        ({"SAYSO_URL": "http://s", "SAYSO_MCP_SHARE_CONFIGURED_KEY": "maybe"}, "http", "true or false"),
        ({"SAYSO_URL": "http://s", "SAYSO_MCP_ALLOWED_HOSTS": "http://x"}, "http", "not a host"),
        ({"SAYSO_URL": "http://s", "SAYSO_MCP_ALLOWED_HOSTS": "a b"}, "http", "not a host"),
    ],
)
def test_config_errors(env: dict[str, str], transport: config.Transport | None, message: str) -> None:
    with pytest.raises(config.ConfigError, match=message):
        config.load(env, transport)
