"""The MCP tools: Placet's MCP server's names, parameters and JSON answers, over Sayso's SDK.

A prompt written for Placet's server ("call send_review_message, then wait_for_review with the
messageId") works unchanged. Parameter names are the wire's camelCase on purpose.
"""

# No `from __future__ import annotations` here: the MCP server reads each tool's signature to
# build its input schema, and the channelId annotation is chosen per server (required, or
# optional when a default channel is configured), so annotations must be real objects.
# ruff: noqa: N803

import contextlib
import json
import math
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

import sayso
from sayso import calls
from sayso_mcp.config import KEY_PREFIXES, Settings

T = TypeVar("T")
POLL_CAP_MS = calls.POLL_CAP_MS
WAIT_HINT = "Call wait_for_review with this messageId to poll for the human response."
TIMEOUT_HINT = (
    "Review is still pending. Call wait_for_review again with the same messageId to continue waiting."
)
MAX_CLIENTS = 64

ReviewType = Literal["approval", "selection", "form", "text-input", "freeform"]
MessageStatus = Literal["info", "success", "warning", "error"]
AgentStatus = Literal["active", "busy", "error", "offline"]

REVIEW_DESCRIPTION = """Send a message that asks the human for a review, and get their answer.

Review types and their reviewPayload:
- approval: { options: [{ id, label, style? }], allowComment?: boolean } — styles primary, danger, secondary, ghost. Answer: { selectedOption, comment?, editedArgs? }
- selection: { mode: "single" | "multi", items: [{ id, label, description? }] }. Answer: { selectedIds: [...] }
- form: { fields: [{ name, type, label, required?, placeholder?, options?, defaultValue?, min?, max?, step?, unit? }], submitLabel? } — types text, number, email, url, textarea, select, checkbox, date, time, datetime, range, password. Answer: an object keyed by field name
- text-input: { placeholder?, prefill?, markdown?: boolean, minLength?, maxLength? }. Answer: { text }
- freeform: { plugin: "plugin-name", ...pluginData }. Answer: any JSON object

To let the human change the action's arguments before approving (approval reviews only), pass editArgs (a JSON object) and optionally editSchema (a JSON Schema the edited arguments must satisfy). A completed result then carries editedArgs when the human approved with changes; without it, the arguments stand as proposed.

Without waitInline it returns at once with status "pending" and the messageId: call wait_for_review with it. With waitInline it waits for the answer (up to the server's connection timeout) and returns { status: "completed" | "expired", message }, or status "timeout" (call wait_for_review again)."""


def dump(value: Any) -> Any:
    """The API's JSON for an SDK model (only the fields the server sent)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if isinstance(value, list):
        return [dump(v) for v in value]
    return value


def as_text(value: Any, *, compact: bool = False) -> str:
    data = dump(value)
    if compact:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return json.dumps(data, indent=2, ensure_ascii=False)


async def api(call: Awaitable[T]) -> T:
    """Await an SDK call; its errors become tool errors the model can read (a plain exception
    would reach the model as an opaque "Error executing tool")."""
    try:
        return await call
    except sayso.ApiError as exc:
        where = f" (field {exc.field})" if exc.field else ""
        raise ToolError(f"Sayso API error {exc.status} {exc.code}: {exc.message}{where}") from exc
    except sayso.SaysoError as exc:
        raise ToolError(f"Sayso API unreachable: {exc}") from exc


def caller_key(settings: Settings, headers: Mapping[str, str] | None) -> str | None:
    """The key a tool call runs with: over stdio the configured key; over HTTP the caller's own
    ``x-api-key`` (as Placet's server takes it), the configured key only when the operator
    shares it on purpose; ``None`` for a caller that must bring one."""
    if settings.transport == "stdio":
        return settings.api_key
    key = (headers or {}).get("x-api-key") or None
    if key is None and settings.share_configured_key:
        return settings.api_key
    return key


class Clients:
    """An SDK client per API key (see :func:`caller_key`)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._by_key: OrderedDict[str, sayso.AsyncClient] = OrderedDict()

    async def get(self, ctx: Context | None) -> sayso.AsyncClient:
        """``ctx`` None: the server's own call at start (the plugin list), with the configured key."""
        key = self._settings.api_key if ctx is None else caller_key(self._settings, ctx.headers)
        if not key or not key.startswith(KEY_PREFIXES):
            raise ToolError("x-api-key header required: hp_<your-api-key>")
        client = self._by_key.get(key)
        if client is None:
            client = sayso.AsyncClient(self._settings.api_url, key)
            self._by_key[key] = client
            while len(self._by_key) > MAX_CLIENTS:
                _, oldest = self._by_key.popitem(last=False)
                await oldest.aclose()
        self._by_key.move_to_end(key)
        return client

    async def aclose(self) -> None:
        for client in self._by_key.values():
            await client.aclose()
        self._by_key.clear()


def log(text: str) -> None:
    print(f"[sayso-mcp] {text}", file=sys.stderr, flush=True)


async def wait_loop(
    client: sayso.AsyncClient,
    message_id: str,
    channel: str,
    connection_timeout_ms: int,
    ctx: Context,
    expires_at: str | None,
) -> dict[str, Any]:
    """Long-poll 30 s at a time until the review ends or ``connection_timeout_ms`` runs out,
    reporting progress after each poll that ran out."""
    started = time.monotonic()
    deadline = started + connection_timeout_ms / 1000
    total = math.ceil(connection_timeout_ms / POLL_CAP_MS)
    polls = 0
    while True:
        poll_ms = min(POLL_CAP_MS, int((deadline - time.monotonic()) * 1000))
        if poll_ms <= 0:
            break
        result = await api(client.wait_once(message_id, channel, poll_ms))
        if result.done:
            # Progress must only grow: the final step is one past the polls reported so far.
            await ctx.report_progress(polls + 1, polls + 1, f"Review {result.status}.")
            return finished(result.status, dump(result.message))
        polls += 1
        note = f"elapsed: {int(time.monotonic() - started)}s" + (
            f", expires: {expires_at}" if expires_at else ""
        )
        await ctx.report_progress(polls, max(total, polls), f"Waiting for review… ({note})")
    return {"status": "timeout", "messageId": message_id, "hint": TIMEOUT_HINT}


def finished(status: str, message: dict[str, Any]) -> dict[str, Any]:
    """A review's end as the wait tools answer it: ``editedArgs`` next to the message when the
    human approved an editable action with changed arguments (absent otherwise, as in Placet)."""
    out: dict[str, Any] = {"status": status, "message": message}
    response = (message.get("review") or {}).get("response")
    if isinstance(response, dict) and isinstance(response.get("editedArgs"), dict):
        out["editedArgs"] = response["editedArgs"]
    return out


def with_edit(
    review_type: str, payload: dict[str, Any], args: dict[str, Any] | None, schema: dict[str, Any] | None
) -> dict[str, Any]:
    """``reviewPayload`` with ``edit`` from the editArgs/editSchema parameters (when given)."""
    if args is None and schema is None:
        return payload
    if review_type != "approval":
        raise ToolError("editArgs is for approval reviews only")
    if args is None:
        raise ToolError("editSchema needs editArgs (the arguments to offer for editing)")
    edit: dict[str, Any] = {"args": args}
    if schema is not None:
        edit["schema"] = schema
    return {**payload, "edit": edit}


async def acknowledge(client: sayso.AsyncClient, message_id: str, channel: str) -> None:
    # As Placet's tools: the agent has seen its own message; a failed ack changes nothing.
    with contextlib.suppress(sayso.SaysoError):
        await client.ack(message_id, channel)


# Python sees every channelId as optional; the schema the MCP client sees is set per server at
# registration (channel_param): required, unless a default channel is configured.
ChannelId = Annotated[str | None, Field(description="Channel (agent) ID.")]
MessageId = Annotated[str, Field(description="Message ID.")]
# The policy tools' channel: optional whatever the default channel (none: the account's policy).
OptChannel = Annotated[
    str | None, Field(description="Channel (agent) ID; omit it for your account's policy.")
]


def channel_param(default: str | None) -> Any:
    """The ``channelId`` parameter: optional with a default channel configured, else required."""
    if default:
        return Annotated[
            str | None,
            Field(default=None, description=f'Channel (agent) ID. Defaults to "{default}" if omitted.'),
        ]
    return Annotated[str, Field(description="Channel (agent) ID (required).")]


def build_server(settings: Settings, clients: Clients) -> MCPServer:
    server = MCPServer(
        "sayso-mcp",
        version=sayso.__version__,
        instructions="Ask a human for approval, choices, form input or text, and wait for the answer.",
        log_level="WARNING",
    )
    default = settings.default_channel

    def channel_of(value: str | None) -> str:
        chosen = value or default
        if not chosen:
            raise ToolError("channelId is required (no SAYSO_DEFAULT_CHANNEL set)")
        return chosen

    def tool(name: str, description: str) -> Callable[[Callable[..., Awaitable[str]]], None]:
        def register(fn: Callable[..., Awaitable[str]]) -> None:
            add_tool(server, fn, name, description, default)

        return register

    @tool(
        "send_message",
        "Send an informational message to the human (markdown). It needs no answer and is marked as "
        "received at once. status colours it: info (blue), success (green), warning (yellow), error (red). "
        "Use send_review_message when you need input. iterationOf makes it a revision of an earlier "
        "message whose review is completed or expired.",
    )
    async def send_message(
        *,
        channelId: ChannelId,
        text: Annotated[str | None, Field(description="Message text (markdown).")] = None,
        status: Annotated[MessageStatus | None, Field(description="Status colour.")] = None,
        metadata: Annotated[
            dict[str, Any] | None, Field(description="Not shown to the human; available through the API.")
        ] = None,
        iterationOf: Annotated[str | None, Field(description="ID of the message this one revises.")] = None,
        ctx: Context,
    ) -> str:
        client, channel = await clients.get(ctx), channel_of(channelId)
        message = await api(
            client.send_message(
                channel, text, status=status, metadata=metadata, iteration_of=iterationOf or None
            )
        )
        await acknowledge(client, message.id, channel)
        return as_text(message)

    @tool("get_messages", "List the channel's messages, newest first, with a cursor for the next page.")
    async def get_messages(
        *,
        channelId: ChannelId,
        limit: Annotated[
            int | None, Field(ge=1, le=100, description="Page size (default 50, max 100).")
        ] = None,
        cursor: Annotated[str | None, Field(description="nextCursor of the previous page.")] = None,
        search: Annotated[str | None, Field(description="Only messages whose text contains this.")] = None,
        ctx: Context,
    ) -> str:
        client = await clients.get(ctx)
        page = await api(
            client.list_messages(channel_of(channelId), limit=limit, cursor=cursor, search=search)
        )
        return as_text(page)

    @tool("get_message", "Get one message, with its review and the human's answer if any.")
    async def get_message(*, messageId: MessageId, channelId: ChannelId, ctx: Context) -> str:
        client = await clients.get(ctx)
        return as_text(await api(client.get_message(messageId, channel_of(channelId))))

    @tool("delete_message", "Delete a message.")
    async def delete_message(*, messageId: MessageId, channelId: ChannelId, ctx: Context) -> str:
        client = await clients.get(ctx)
        deleted = await api(client.delete_message(messageId, channel_of(channelId)))
        return as_text({"deleted": deleted}, compact=True)

    @tool(
        "get_iteration_chain",
        "Get every revision of a message (its iteration chain), ordered by iteration number.",
    )
    async def get_iteration_chain(
        *,
        messageId: Annotated[str, Field(description="ID of any message in the iteration chain.")],
        channelId: ChannelId,
        ctx: Context,
    ) -> str:
        client = await clients.get(ctx)
        return as_text(await api(client.iterations(messageId, channel_of(channelId))))

    @tool("send_review_message", REVIEW_DESCRIPTION)
    async def send_review_message(
        *,
        channelId: ChannelId,
        reviewType: Annotated[ReviewType, Field(description="The kind of review.")],
        reviewPayload: Annotated[
            dict[str, Any], Field(description="The review's payload (see the description).")
        ],
        text: Annotated[
            str | None, Field(description="Message text (markdown) shown above the review.")
        ] = None,
        expiresInSeconds: Annotated[
            int | None, Field(gt=0, description="Review deadline in seconds (default: 24h, max: 36h).")
        ] = None,
        webhookUrl: Annotated[
            str | None, Field(description="URL that receives the answer as a webhook.")
        ] = None,
        waitInline: Annotated[
            bool, Field(description="Wait for the answer in this call instead of returning at once.")
        ] = False,
        iterationOf: Annotated[str | None, Field(description="ID of the message this one revises.")] = None,
        editArgs: Annotated[
            dict[str, Any] | None,
            Field(
                description="Approval only: the action's arguments, which the human may edit before approving."
            ),
        ] = None,
        editSchema: Annotated[
            dict[str, Any] | None,
            Field(description="JSON Schema (draft 2020-12) the edited arguments must satisfy."),
        ] = None,
        ctx: Context,
    ) -> str:
        client, channel = await clients.get(ctx), channel_of(channelId)
        payload = with_edit(reviewType, reviewPayload, editArgs, editSchema)
        message = await api(
            client.request_review(
                channel,
                calls.raw_review(reviewType, payload),
                text,
                expires_in=expiresInSeconds or None,
                webhook_url=webhookUrl or None,
                iteration_of=iterationOf or None,
            )
        )
        await acknowledge(client, message.id, channel)
        expires_at = dump(message).get("review", {}).get("expiresAt")
        if not waitInline:
            return as_text(
                {"status": "pending", "messageId": message.id, "expiresAt": expires_at, "hint": WAIT_HINT}
            )
        result = await wait_loop(client, message.id, channel, settings.connection_timeout_ms, ctx, expires_at)
        return as_text(result)

    @tool(
        "wait_for_review",
        "Wait for the human's answer to a review sent with send_review_message. Returns "
        '{ status: "completed" | "expired", message } (the answer is message.review.response), or '
        'status "timeout" when the connection timeout ran out first: call it again to keep waiting. '
        "Sends progress notifications while it waits.",
    )
    async def wait_for_review(
        *,
        messageId: Annotated[str, Field(description="messageId returned by send_review_message.")],
        channelId: ChannelId,
        connectionTimeoutMs: Annotated[
            int | None,
            Field(gt=0, description="Longest this call waits, in ms (default: the server's, 5 min)."),
        ] = None,
        ctx: Context,
    ) -> str:
        client, channel = await clients.get(ctx), channel_of(channelId)
        current = await api(client.get_review(messageId, channel))
        if current.review is not None and current.review.status in ("completed", "expired"):
            return as_text(finished(current.review.status, dump(current)))
        expires_at = dump(current).get("review", {}).get("expiresAt")
        limit = connectionTimeoutMs or settings.connection_timeout_ms
        return as_text(await wait_loop(client, messageId, channel, limit, ctx, expires_at))

    @tool("get_pending_reviews", "List the channel's reviews still waiting for the human, newest first.")
    async def get_pending_reviews(*, channelId: ChannelId, ctx: Context) -> str:
        client = await clients.get(ctx)
        return as_text(await api(client.pending_reviews(channel_of(channelId))))

    @tool("list_channels", "List your channels (agents). A channel's id is the channelId of the other tools.")
    async def list_channels(ctx: Context) -> str:
        client = await clients.get(ctx)
        return as_text(await api(client.list_agents()))

    @tool("create_channel", "Create a channel (an agent) that messages and reviews are sent to.")
    async def create_channel(
        *,
        name: Annotated[str, Field(min_length=1, description="Display name for the channel/agent.")],
        description: Annotated[str | None, Field(description="What the agent does.")] = None,
        webhookUrl: Annotated[
            str | None, Field(description="Default URL that receives answers as webhooks.")
        ] = None,
        ctx: Context,
    ) -> str:
        client = await clients.get(ctx)
        agent = await api(client.create_agent(name, description=description, webhook_url=webhookUrl))
        return as_text(agent)

    @tool("ping_status", "Report the agent's status, shown to the human next to the channel.")
    async def ping_status(
        *,
        agentId: Annotated[str, Field(description="The agent (channel) ID.")],
        status: Annotated[AgentStatus, Field(description="active, busy, error or offline.")],
        message: Annotated[str | None, Field(max_length=500, description="What the agent is doing.")] = None,
        ctx: Context,
    ) -> str:
        client = await clients.get(ctx)
        return as_text(await api(client.ping(agentId, status, message)))

    @tool("list_plugins", "List the plugins that render freeform reviews (their names go in payload.plugin).")
    async def list_plugins(ctx: Context) -> str:
        client = await clients.get(ctx)
        return as_text(await api(client.list_plugins()))

    # Policies and the audit log: a channel's or the account's, so channelId stays optional
    # whatever the default channel (registered without channel_param).
    def own_tool(name: str, description: str) -> Callable[[Callable[..., Awaitable[str]]], None]:
        def register(fn: Callable[..., Awaitable[str]]) -> None:
            server.add_tool(fn, name=name, description=description, structured_output=False)

        return register

    @own_tool(
        "get_policy",
        "Read a channel's policy (or, without channelId, your account's): ordered rules that answer "
        "reviews before a person, first match wins, the channel's before the account's. Owners only.",
    )
    async def get_policy(*, channelId: OptChannel = None, ctx: Context) -> str:
        client = await clients.get(ctx)
        return as_text(await api(client.get_policy(channelId or None)))

    @own_tool(
        "set_policy",
        "Replace a channel's (or, without channelId, your account's) policy rules as a whole; a new "
        "version. Each rule: {name?, match: a filter over {channel, text, review: {type, payload}, "
        "metadata} with $eq $ne $in $nin $gt $gte $lt $lte $exists $regex $and $or $not (e.g. "
        '{"metadata.env": "staging"}), action: approve | reject | ask, response? (what approve or '
        "reject records), risk? (low | medium | high | critical)}. A bad rule is refused naming it.",
    )
    async def set_policy(
        *,
        rules: Annotated[list[dict[str, Any]], Field(description="The whole ordered list of rules.")],
        channelId: OptChannel = None,
        ctx: Context,
    ) -> str:
        client = await clients.get(ctx)
        return as_text(await api(client.set_policy(rules, channelId or None)))

    @own_tool(
        "test_policy",
        "Dry run: which rule a message would match in a channel and what would happen (approve, "
        "reject, or ask a person). Nothing is stored or sent.",
    )
    async def test_policy(
        *,
        channelId: Annotated[str, Field(description="Channel (agent) ID.")],
        reviewType: Annotated[ReviewType, Field(description="The kind of review.")] = "approval",
        reviewPayload: Annotated[dict[str, Any] | None, Field(description="The review's payload.")] = None,
        text: Annotated[str | None, Field(description="Message text.")] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Message metadata.")] = None,
        ctx: Context,
    ) -> str:
        client = await clients.get(ctx)
        message: dict[str, Any] = {"review": {"type": reviewType, "payload": reviewPayload or {}}}
        message |= {k: v for k, v in (("text", text), ("metadata", metadata)) if v is not None}
        return as_text(await api(client.test_policy(channelId, message)))

    @own_tool(
        "query_audit",
        "Read the audit log, newest first: every decision (answered by a person, auto_decided by a "
        "policy rule, each quorum vote, expired or expired_default) and every policy_changed, with "
        "who decided (actor), the rule and the policy version. Returns {data, nextCursor}: pass "
        "nextCursor as cursor for the next page.",
    )
    async def query_audit(
        *,
        channelId: Annotated[str | None, Field(description="Only this channel.")] = None,
        since: Annotated[str | None, Field(description="ISO 8601: entries at or after.")] = None,
        until: Annotated[str | None, Field(description="ISO 8601: entries before.")] = None,
        actor: Annotated[
            str | None, Field(description="A user, policy or API key id, or policy | system | agent.")
        ] = None,
        decision: Annotated[str | None, Field(description="The recorded option or outcome.")] = None,
        kind: Annotated[str | None, Field(description="answered, auto_decided, voted, expired …")] = None,
        limit: Annotated[int | None, Field(ge=1, le=500, description="Page size (default 50).")] = None,
        cursor: Annotated[str | None, Field(description="nextCursor of the previous page.")] = None,
        ctx: Context,
    ) -> str:
        client = await clients.get(ctx)
        filters = {
            k: v
            for k, v in (
                ("from", since),
                ("to", until),
                ("channelId", channelId),
                ("actor", actor),
                ("decision", decision),
                ("kind", kind),
            )
            if v
        }
        return as_text(await api(client.run(calls.audit_page(filters, cursor, limit))))

    return server


def add_tool(
    server: MCPServer, fn: Callable[..., Awaitable[str]], name: str, description: str, default: str | None
) -> None:
    if "channelId" in fn.__annotations__:
        fn.__annotations__["channelId"] = channel_param(default)
    server.add_tool(fn, name=name, description=description, structured_output=False)


def plugin_tool_name(plugin: str) -> str:
    return "send_" + plugin.replace("-", "_") + "_message"


def add_plugin_tools(
    server: MCPServer, settings: Settings, clients: Clients, manifests: list[Any]
) -> list[str]:
    """A ``send_<plugin>_message`` tool for each plugin manifest with an ``inputSchema``, as
    Placet's server registers them; returns the names added."""
    added: list[str] = []
    default = settings.default_channel
    for manifest in manifests:
        if not isinstance(manifest, dict) or not manifest.get("inputSchema") or not manifest.get("name"):
            continue
        plugin = str(manifest["name"])
        schema = json.dumps(manifest["inputSchema"])

        def make(plugin: str, schema: str) -> Callable[..., Awaitable[str]]:
            async def send_plugin_message(
                *,
                pluginData: Annotated[dict[str, Any], Field(description=f"Plugin data matching: {schema}")],
                channelId: ChannelId,
                text: Annotated[str | None, Field(description="Message text (markdown).")] = None,
                expiresInSeconds: Annotated[
                    int | None, Field(gt=0, description="Review deadline in seconds.")
                ] = None,
                ctx: Context,
            ) -> str:
                channel = channelId or default
                if not channel:
                    raise ToolError("channelId is required (no SAYSO_DEFAULT_CHANNEL set)")
                client = await clients.get(ctx)
                review = calls.raw_review("freeform", {"plugin": plugin, **pluginData})
                message = await api(client.request_review(channel, review, text, expires_in=expiresInSeconds))
                await acknowledge(client, message.id, channel)
                expires_at = dump(message).get("review", {}).get("expiresAt")
                return as_text(
                    {"status": "pending", "messageId": message.id, "expiresAt": expires_at, "hint": WAIT_HINT}
                )

            return send_plugin_message

        title = manifest.get("displayName") or plugin
        about = manifest.get("description") or ""
        name = plugin_tool_name(plugin)
        description = f"Send a {title} review (freeform, plugin {plugin}). {about}".strip()
        add_tool(server, make(plugin, schema), name, description, default)
        added.append(name)
    return added
