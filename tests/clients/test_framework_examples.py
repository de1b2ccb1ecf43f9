"""The agent-framework examples (examples/langgraph, examples/openai_agents, examples/pydantic_ai)
run as written, each step its own process, against the test stack; a human answers over REST.
Between the pause and the answer every example's process has ended: the run goes on in a new
one, from what the first kept (a SQLite checkpoint, a serialised RunState, DeferredToolRequests)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from sayso_devstack.processes import free_port
from tests.clients.support import pending_review
from tests.support.stack import Owner, RunningStack

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Each step is a new Python process importing its framework: on a loaded two-core machine one
# import of the Agents SDK took a minute (load average 18).
STEP_SECONDS = 240
pytestmark = pytest.mark.timeout(4 * STEP_SECONDS)


class Example:
    def __init__(self, stack: RunningStack, owner: Owner, channel: str, cwd: Path, **env: str) -> None:
        self.env = {
            **os.environ,
            "SAYSO_URL": stack.url,
            "SAYSO_API_KEY": owner.api_key,
            "SAYSO_CHANNEL": channel,
            **env,
        }
        self.cwd = cwd

    async def start(self, script: str, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / script),
            *args,
            cwd=self.cwd,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def run(self, script: str, *args: str, timeout: float = STEP_SECONDS) -> str:
        proc = await self.start(script, *args)
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode == 0, err.decode()
        return out.decode()


async def new_channel(owner: Owner, **body: str) -> dict[str, str]:
    return await owner.create_agent(name="framework-example", **body)


async def answer(owner: Owner, channel: str, response: dict[str, object]) -> str:
    review = await pending_review(owner, channel, timeout=STEP_SECONDS)
    answered = await owner.respond(review["id"], response)
    assert answered.status_code == 200, answered.text
    return str(review["id"])


async def test_langgraph_resumes_in_a_new_process_by_long_poll(
    stack: RunningStack, owner: Owner, tmp_path: Path
) -> None:
    channel = (await new_channel(owner))["id"]
    example = Example(stack, owner, channel, tmp_path)
    printed = await example.run("langgraph/deploy_graph.py", "--thread", "t1", "start", "v2.1")
    review = await answer(
        owner, channel, {"selectedOption": "respond", "comment": "wait for the freeze to end"}
    )
    assert f"review {review} pending" in printed
    printed = await example.run("langgraph/deploy_graph.py", "--thread", "t1", "resume")
    assert "outcome: not deployed; the reviewer said: wait for the freeze to end" in printed
    assert "decided by a person" in printed


async def test_langgraph_resumes_from_the_signed_webhook(
    stack: RunningStack, owner: Owner, tmp_path: Path
) -> None:
    port = free_port()
    hook = f"http://127.0.0.1:{port}/hook"
    created = await new_channel(owner)
    example = Example(stack, owner, created["id"], tmp_path, WHSEC=created["webhookSecret"], HOOK_URL=hook)
    receiver = await example.start("langgraph/deploy_graph.py", "serve", str(port), "--once")
    try:
        assert receiver.stdout is not None
        assert (await asyncio.wait_for(receiver.stdout.readline(), STEP_SECONDS)).startswith(b"listening")
        await example.run("langgraph/deploy_graph.py", "start", "v3.0")
        await answer(owner, created["id"], {"selectedOption": "accept"})
        out, err = await asyncio.wait_for(receiver.communicate(), STEP_SECONDS)
        assert receiver.returncode == 0, err.decode()
        assert "outcome: deployed v3.0 to production" in out.decode()
    finally:
        if receiver.returncode is None:
            receiver.kill()
            await receiver.wait()


async def test_openai_agents_resumes_from_the_saved_run_state(
    stack: RunningStack, owner: Owner, tmp_path: Path
) -> None:
    channel = (await new_channel(owner))["id"]
    example = Example(stack, owner, channel, tmp_path)
    printed = await example.run("openai_agents/deploy_agent.py", "run", "2.1", "--no-wait")
    assert (tmp_path / "deploy_agent.state.json").exists()
    review = await answer(owner, channel, {"selectedOption": "approve"})
    assert f"review {review}" in printed
    printed = await example.run("openai_agents/deploy_agent.py", "resume")
    assert "outcome: tool said: deployed 2.1 to production" in printed
    assert not (tmp_path / "deploy_agent.state.json").exists()


async def test_openai_agents_waits_inline(stack: RunningStack, owner: Owner, tmp_path: Path) -> None:
    channel = (await new_channel(owner))["id"]
    example = Example(stack, owner, channel, tmp_path)
    running = asyncio.create_task(example.run("openai_agents/deploy_agent.py", "run", "4.2"))
    await answer(owner, channel, {"selectedOption": "reject", "comment": "not now"})
    assert "outcome: tool said: The reviewer rejected `deploy`: not now" in await running


async def test_pydantic_ai_inline_and_across_processes(
    stack: RunningStack, owner: Owner, tmp_path: Path
) -> None:
    channel = (await new_channel(owner))["id"]
    example = Example(stack, owner, channel, tmp_path)
    running = asyncio.create_task(example.run("pydantic_ai/deploy_agent.py", "inline", "5.0"))
    await answer(owner, channel, {"selectedOption": "reject", "comment": "freeze"})
    assert "outcome: tool said: The reviewer rejected `deploy`: freeze" in await running

    printed = await example.run("pydantic_ai/deploy_agent.py", "start", "5.1")
    review = await answer(owner, channel, {"selectedOption": "approve"})
    assert f"review {review}" in printed
    printed = await example.run("pydantic_ai/deploy_agent.py", "finish")
    assert "outcome: tool said: deployed 5.1 to production" in printed
    assert f"decided by {owner.user_id}" in printed
