"""Policies and the audit log from the SDK (sync and async), ``@require_approval`` (which reports
who decided), the ``sayso policy`` and ``sayso audit`` commands and the MCP tools, against the
real stack."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

import sayso
from sayso_cli import __main__ as cli
from tests.clients.support import answer_next
from tests.clients.test_cli import cli_env, run
from tests.clients.test_mcp import POLICY_TOOLS, call, stdio_server
from tests.support.stack import Owner, RunningStack, eventually

APPROVE_ALL = {
    "name": "everything",
    "match": {},
    "action": "approve",
    "response": {"selectedOption": "approve"},
}
REJECT_PROD = {
    "name": "no prod",
    "match": {"metadata.args.env": "'prod'"},
    "action": "reject",
    "response": {"selectedOption": "reject", "comment": "never on prod"},
}


@pytest.fixture
async def channel(owner: Owner) -> str:
    agent: dict[str, Any] = await owner.create_agent(name="policies")
    return str(agent["id"])


async def test_sdk_manages_policies_and_reads_the_audit(
    stack: RunningStack, owner: Owner, channel: str
) -> None:
    def sync_part() -> tuple[sayso.Policy, sayso.PolicyTest, sayso.Policy]:
        with sayso.Client(stack.url, owner.api_key) as client:
            empty = client.get_policy(channel)
            assert (empty.id, empty.version, empty.rules) == (None, 0, [])
            saved = client.set_policy([REJECT_PROD, APPROVE_ALL], channel)
            dry = client.test_policy(
                channel,
                {"text": "x", "review": {"type": "approval"}, "metadata": {"args": {"env": "'prod'"}}},
            )
            with pytest.raises(sayso.ValidationError) as bad:
                client.set_policy([{"match": {}, "action": "allow"}], channel)
            assert bad.value.field == "rules[0].action"
            return saved, dry, client.get_policy()

    saved, dry, account = await asyncio.to_thread(sync_part)
    assert (saved.version, saved.channel_id, len(saved.rules)) == (1, channel, 2)
    assert (dry.action, dry.rule, dry.rule_name, dry.version) == ("reject", 0, "no prod", 1)
    assert account.scope == "account"

    async with sayso.AsyncClient(stack.url, owner.api_key) as client:
        again = await client.set_policy([APPROVE_ALL], channel)
        assert again.version == 2
        assert (await client.get_policy(channel)).rules == [APPROVE_ALL]
        assert (await client.test_policy(channel, {"review": {"type": "approval"}})).action == "approve"
        message = await client.request_review(channel, sayso.Approval(), "auto?")
        assert message.review is not None
        assert message.review.decided_by is not None

        async def audited() -> list[sayso.AuditEntry] | None:
            found = [e async for e in client.audit(channel=channel, page_size=1)]
            return found if len(found) == 3 else None

        entries = await eventually(audited, what="two policy changes and one decision")
    assert [(e.kind, e.policy_version) for e in entries] == [
        ("auto_decided", 2),
        ("policy_changed", 2),
        ("policy_changed", 1),
    ]
    assert (entries[0].actor.type, entries[0].rule, entries[0].message_id) == ("policy", 0, message.id)

    def export() -> tuple[list[sayso.AuditEntry], str]:
        with sayso.Client(stack.url, owner.api_key) as client:
            listed = list(client.audit(channel=channel, kind="policy_changed"))
            text = b"".join(client.audit_export("csv", channel=channel)).decode()
            return listed, text

    listed, text = await asyncio.to_thread(export)
    assert [e.policy_version for e in listed] == [2, 1]
    assert [row["kind"] for row in csv.DictReader(io.StringIO(text))] == [e.kind for e in entries]


async def test_require_approval_reports_who_decided(stack: RunningStack, owner: Owner, channel: str) -> None:
    async with sayso.AsyncClient(stack.url, owner.api_key) as client:
        await client.set_policy([REJECT_PROD], channel)
        answers: list[sayso.Answer] = []
        ran: list[str] = []

        @sayso.require_approval(channel=channel, client=client, on_answer=answers.append)
        async def deploy(env: str) -> str:
            ran.append(env)
            return env

        with pytest.raises(sayso.Denied) as denied:
            await deploy("prod")  # the policy rejects it at once, no person involved
        by = denied.value.decided_by
        assert by is not None
        assert (by.rule, by.version) == (0, 1)
        assert "by policy" in str(denied.value)
        assert denied.value.comment == "never on prod"
        assert answers[-1].decided_by == by
        # A person answers the next one: decided_by is None.
        call = asyncio.create_task(deploy("staging"))
        await answer_next(owner, channel, {"selectedOption": "approve"})
        assert await asyncio.wait_for(call, 30) == "staging"
        person = answers[-1]
        assert person.decided_by is None
        assert person.review.responded_by == owner.user_id
        assert ran == ["staging"]


async def test_cli_policy_and_audit(stack: RunningStack, owner: Owner, channel: str, tmp_path: Path) -> None:
    async def sayso_cli(*args: str) -> tuple[int, str, str]:
        """The command in this process (a process per call costs seconds here; one real
        process below proves the wiring)."""
        out, err = io.StringIO(), io.StringIO()

        def main() -> int:
            try:
                return cli.run(["--url", stack.url, "--api-key", owner.api_key, *args], out, err)
            except SystemExit as exc:  # argparse's usage errors
                return int(exc.code or 0)

        code = await asyncio.to_thread(main)
        return code, out.getvalue(), err.getvalue()

    env = cli_env(stack, owner, SAYSO_DEFAULT_CHANNEL=channel)
    code, out, err = await run(env, "policy", "list")
    assert (code, err) == (0, ""), err
    assert "no policy" in out
    code, out, err = await sayso_cli(
        "policy", "add", "--channel", channel, "--match", '{"metadata.env": "staging"}', "--action", "approve",
        "--response", '{"selectedOption": "approve"}', "--name", "staging",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = await sayso_cli(
        "policy", "add", "--channel", channel, "--action", "ask", "--risk", "high"
    )
    assert code == 0, err
    code, out, _ = await sayso_cli("policy", "list", "--channel", channel)
    lines = out.splitlines()
    assert "version 2, 2 rule(s)" in lines[0]
    assert lines[1].split()[:3] == ["0", "approve", "staging"]
    assert "high" in lines[2]
    code, out, _ = await sayso_cli(
        "--json", "policy", "test", "--channel", channel, "--metadata", '{"env": "staging"}'
    )
    assert (code, json.loads(out)["action"], json.loads(out)["rule"]) == (0, "approve", 0)
    code, out, _ = await sayso_cli("policy", "test", "--channel", channel, "--text", "prod?")
    assert code == 0
    assert out.startswith("ask: rule 1"), out
    # get prints what set takes: a round trip makes version 3 with the same rules.
    code, out, _ = await sayso_cli("policy", "get", "--channel", channel)
    (tmp_path / "policy.json").write_text(out)
    code, out, err = await sayso_cli(
        "--json", "policy", "set", "--channel", channel, str(tmp_path / "policy.json")
    )
    assert code == 0, err
    assert (json.loads(out)["version"], len(json.loads(out)["rules"])) == (3, 2)
    (tmp_path / "bad.json").write_text('{"rules": [{"match": {}, "action": "allow"}]}')
    code, _, err = await sayso_cli("policy", "set", "--channel", channel, str(tmp_path / "bad.json"))
    assert code == 4
    assert "field rules[0].action" in err
    code, _, err = await sayso_cli("policy", "set", "--channel", channel, str(tmp_path / "missing.json"))
    assert code == 4
    assert "cannot read" in err
    code, out, err = await sayso_cli("--json", "policy", "list", "--account")
    assert (code, json.loads(out)["scope"]) == (0, "account"), err

    await owner.post_message(channel, review={"type": "approval"}, metadata={"env": "staging"})

    async def audited() -> list[str] | None:
        code, out, _ = await sayso_cli("audit", "--channel", channel)
        return out.splitlines() if code == 0 and len(out.splitlines()) == 4 else None

    lines = await eventually(audited, timeout=30, what="three policy changes and a decision")
    assert lines[0].split()[2:3] == ["auto_decided"]
    assert " approve " in lines[0]
    assert "rule 0 v3" in lines[0]
    code, out, _ = await sayso_cli(
        "audit", "--channel", channel, "--format", "jsonl", "--kind", "policy_changed"
    )
    assert [json.loads(line)["policyVersion"] for line in out.splitlines()] == [3, 2, 1]
    code, out, _ = await run(env, "audit", "--channel", channel, "--format", "csv", "--actor", "policy")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["kind"], r["decision"], r["rule"]) for r in rows] == [("auto_decided", "approve", "0")]
    code, out, _ = await sayso_cli("--json", "audit", "--channel", channel, "--limit", "1")
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["auto_decided"]
    code, _, _ = await sayso_cli("audit", "--since", "yesterday")
    assert code == 64  # argparse's usage error (on the real stderr)
    code, out, err = await sayso_cli("audit", "--channel", "agt_nobody")
    assert (code, out, err) == (0, "", "no audit entries match\n")


async def test_mcp_policy_and_audit_tools(stack: RunningStack, owner: Owner, channel: str) -> None:
    env = {"SAYSO_URL": stack.url, "SAYSO_API_KEY": owner.api_key}
    async with stdio_server(env) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        assert set(tools) >= POLICY_TOOLS
        assert "channelId" not in tools["get_policy"].input_schema.get("required", [])
        saved = await call(mcp, "set_policy", {"channelId": channel, "rules": [APPROVE_ALL]})
        assert (saved["version"], saved["rules"]) == (1, [APPROVE_ALL])
        assert (await call(mcp, "get_policy", {"channelId": channel}))["version"] == 1
        assert (await call(mcp, "get_policy", {}))["scope"] == "account"
        dry = await call(mcp, "test_policy", {"channelId": channel, "text": "go?"})
        assert (dry["action"], dry["rule"]) == ("approve", 0)
        bad = await mcp.call_tool(
            "set_policy", {"channelId": channel, "rules": [{"match": {}, "action": "x"}]}
        )
        assert bad.is_error
        await owner.post_message(channel, review={"type": "approval"})

        async def audited() -> dict[str, Any] | None:
            page = await call(mcp, "query_audit", {"channelId": channel, "limit": 1})
            return page if page["data"] and page["data"][0]["kind"] == "auto_decided" else None

        page = await eventually(audited, what="the auto decision in the audit")
        assert page["nextCursor"]
        rest = await call(mcp, "query_audit", {"channelId": channel, "cursor": page["nextCursor"]})
        assert [e["kind"] for e in rest["data"]] == ["policy_changed"]
        by_actor = await call(mcp, "query_audit", {"channelId": channel, "actor": "policy"})
        assert [e["decision"] for e in by_actor["data"]] == ["approve"]
