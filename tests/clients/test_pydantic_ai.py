"""Pydantic AI through Sayso (sayso.integrations.pydantic_ai): a real Agent with a
``requires_approval`` tool, driven by Pydantic AI's FunctionModel (no network, no LLM), is decided
in Sayso — inline by the HandleDeferredToolCalls capability, and across runs from
DeferredToolRequests kept as JSON and answered while no process waits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import TypeAdapter
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import DeferredToolRequests

import sayso
from sayso.integrations.pydantic_ai import PydanticAIApprovals
from tests.clients.support import answer_next, pending_review
from tests.support.stack import Owner, RunningStack

REQUESTS = TypeAdapter(DeferredToolRequests)


def scripted(args: dict[str, Any]) -> FunctionModel:
    """Calls ``deploy`` with ``args`` once, then says what the tool returned."""
    call_id = f"call_{uuid.uuid4().hex}"

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        returned = (
            [p for p in last.parts if isinstance(p, ToolReturnPart)] if isinstance(last, ModelRequest) else []
        )
        if returned:
            return ModelResponse(parts=[TextPart(f"tool said: {returned[-1].content}")])
        return ModelResponse(parts=[ToolCallPart("deploy", args, tool_call_id=call_id)])

    return FunctionModel(respond)


def make_agent(model: FunctionModel, approvals: PydanticAIApprovals | None = None) -> Agent[None, Any]:
    agent: Agent[None, Any] = Agent(
        model,
        output_type=[str, DeferredToolRequests],
        capabilities=[approvals.capability()] if approvals else [],
    )

    @agent.tool(requires_approval=True)
    def deploy(ctx: RunContext[None], version: str, replicas: int) -> str:
        review = (ctx.tool_call_metadata or {}).get("sayso", {}).get("reviewId")
        return f"deployed {version} x{replicas} (review {review})"

    return agent


@pytest.fixture
async def channel(stack: RunningStack, owner: Owner) -> str:
    return str((await owner.create_agent(name="pydantic-ai-bot"))["id"])


@pytest.fixture
async def client(stack: RunningStack, owner: Owner) -> AsyncIterator[sayso.AsyncClient]:
    async with sayso.AsyncClient(stack.url, owner.api_key) as made:
        yield made


async def test_inline_the_run_waits_for_the_answer(
    owner: Owner, channel: str, client: sayso.AsyncClient
) -> None:
    approvals = PydanticAIApprovals(client, channel)
    agent = make_agent(scripted({"version": "2.1", "replicas": 3}), approvals)
    running = asyncio.create_task(agent.run("deploy"))
    answered = await answer_next(owner, channel, {"selectedOption": "approve"})
    result = await asyncio.wait_for(running, 30)
    assert result.output == f"tool said: deployed 2.1 x3 (review {answered['id']})"
    assert answered["metadata"]["tool"] == "deploy"
    assert answered["metadata"]["args"] == {"version": "2.1", "replicas": 3}

    agent = make_agent(scripted({"version": "6.6", "replicas": 66}), approvals)
    running = asyncio.create_task(agent.run("deploy"))
    await answer_next(owner, channel, {"selectedOption": "reject", "comment": "too many"})
    result = await asyncio.wait_for(running, 30)
    assert result.output == "tool said: The reviewer rejected `deploy`: too many"


async def test_across_runs_from_only_the_saved_json(owner: Owner, channel: str, stack: RunningStack) -> None:
    model = scripted({"version": "3.0", "replicas": 2})
    # First life: the run ends with DeferredToolRequests; the reviews are posted; both kept as JSON.
    async with sayso.AsyncClient(stack.url, owner.api_key) as client:
        first = await make_agent(model).run("deploy")
        assert isinstance(first.output, DeferredToolRequests)
        asked = await PydanticAIApprovals(client, channel).ask(first.output, key="conv-1")
        saved_history, saved_requests = first.all_messages_json(), REQUESTS.dump_json(first.output)
    review = await pending_review(owner, channel)
    assert [m.id for m in asked.values()] == [review["id"]]

    async with sayso.AsyncClient(stack.url, owner.api_key) as client:
        approvals = PydanticAIApprovals(client, channel)
        requests = REQUESTS.validate_json(saved_requests)
        assert await approvals.results(requests, key="conv-1", wait=False) is None  # not answered yet
        assert (await owner.respond(review["id"], {"selectedOption": "approve"})).status_code == 200
        results = await approvals.results(requests, key="conv-1", wait=False)
        assert results is not None
        call_id = requests.approvals[0].tool_call_id
        assert results.answered_by[call_id] == owner.user_id
        second = await make_agent(model).run(
            message_history=ModelMessagesTypeAdapter.validate_json(saved_history),
            deferred_tool_results=results,
        )
    assert second.output == f"tool said: deployed 3.0 x2 (review {review['id']})"


async def test_a_policy_decides_and_is_named(owner: Owner, channel: str, client: sayso.AsyncClient) -> None:
    policy = {"rules": [{"name": "never 99", "match": {"metadata.args.replicas": 99}, "action": "reject"}]}
    assert (await owner.agent.put(f"/api/v1/agents/{channel}/policy", json=policy)).status_code == 200
    first = await make_agent(scripted({"version": "9", "replicas": 99})).run("deploy")
    assert isinstance(first.output, DeferredToolRequests)
    results = await asyncio.wait_for(PydanticAIApprovals(client, channel).results(first.output), 30)
    assert results is not None
    call_id = first.output.approvals[0].tool_call_id
    assert results.answered_by[call_id].startswith("policy:pol_")
    assert results.metadata[call_id]["sayso"]["decidedBy"]["rule"] == 0


async def test_edited_arguments_run_the_tool(owner: Owner, channel: str, client: sayso.AsyncClient) -> None:
    approvals = PydanticAIApprovals(client, channel, offer_edit=True)
    agent = make_agent(scripted({"version": "7", "replicas": 9}), approvals)
    running = asyncio.create_task(agent.run("deploy"))
    answered = await answer_next(
        owner, channel, {"selectedOption": "approve", "editedArgs": {"version": "7", "replicas": 2}}
    )
    result = await asyncio.wait_for(running, 30)
    assert answered["review"]["payload"]["edit"] == {"args": {"version": "7", "replicas": 9}}
    assert result.output == f"tool said: deployed 7 x2 (review {answered['id']})"
