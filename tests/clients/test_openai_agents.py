"""The OpenAI Agents SDK through Sayso (sayso.integrations.openai_agents): a real Agent with a
``needs_approval`` tool, driven by a scripted model (no network, no LLM), pauses on a Sayso review;
a human answers over REST and the run goes on approved or rejected — also from a run state
serialised to a string and restored into a new agent and client."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agents import Agent, ModelSettings, Runner, RunState, Usage, function_tool, set_tracing_disabled
from agents.items import ModelResponse, TResponseInputItem
from agents.models.interface import Model
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

import sayso
from sayso.integrations.openai_agents import AgentApprovals
from tests.clients.support import answer_next, pending_review
from tests.support.stack import Owner, RunningStack


class ScriptedModel(Model):
    """Calls ``deploy`` once with ``args``, then answers with what the tool returned (or the
    rejection the run handed back)."""

    def __init__(self, args: dict[str, Any]) -> None:
        self.args = args
        self.call_id = f"call_{uuid.uuid4().hex}"

    async def get_response(
        self, system_instructions: Any, input: str | list[TResponseInputItem], *args: Any, **kwargs: Any
    ) -> ModelResponse:
        items: list[dict[str, Any]] = [dict(i) for i in input] if isinstance(input, list) else []
        outputs = [i for i in items if i.get("type") == "function_call_output"]
        if outputs:
            said = ResponseOutputText(
                text=f"tool said: {outputs[-1]['output']}", type="output_text", annotations=[]
            )
            message = ResponseOutputMessage(
                id="msg_1", content=[said], role="assistant", status="completed", type="message"
            )
            return ModelResponse(output=[message], usage=Usage(), response_id=None)
        call = ResponseFunctionToolCall(
            id="fc_1",
            call_id=self.call_id,
            name="deploy",
            arguments=json.dumps(self.args),
            type="function_call",
            status="completed",
        )
        return ModelResponse(output=[call], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


deployed: list[tuple[str, int]] = []


@function_tool(needs_approval=True)
def deploy(version: str, replicas: int) -> str:
    """Deploy a version."""
    deployed.append((version, replicas))
    return f"deployed {version} x{replicas}"


def make_agent(model: ScriptedModel) -> Agent[Any]:
    return Agent(
        name="deployer", instructions="Deploy.", model=model, tools=[deploy], model_settings=ModelSettings()
    )


@pytest.fixture(autouse=True)
def no_tracing() -> None:
    set_tracing_disabled(True)  # the SDK would export traces to OpenAI


@pytest.fixture
async def channel(stack: RunningStack, owner: Owner) -> str:
    return str((await owner.create_agent(name="agents-sdk-bot"))["id"])


@pytest.fixture
async def client(stack: RunningStack, owner: Owner) -> AsyncIterator[sayso.AsyncClient]:
    async with sayso.AsyncClient(stack.url, owner.api_key) as made:
        yield made


async def test_approve_and_reject_decide_the_tool_call(
    owner: Owner, channel: str, client: sayso.AsyncClient
) -> None:
    deployed.clear()
    approvals = AgentApprovals(client, channel)
    running = asyncio.create_task(
        approvals.run(make_agent(ScriptedModel({"version": "2.1", "replicas": 3})), "go")
    )
    answered = await answer_next(owner, channel, {"selectedOption": "approve"})
    result = await asyncio.wait_for(running, 30)
    assert result.final_output == "tool said: deployed 2.1 x3"
    assert deployed == [("2.1", 3)]
    assert answered["metadata"]["tool"] == "deploy"
    assert answered["metadata"]["args"] == {"version": "2.1", "replicas": 3}
    assert approvals.decisions[0].decided_by is None

    running = asyncio.create_task(
        approvals.run(make_agent(ScriptedModel({"version": "6.6", "replicas": 66})), "go")
    )
    await answer_next(owner, channel, {"selectedOption": "reject", "comment": "too many replicas"})
    result = await asyncio.wait_for(running, 30)
    assert result.final_output == "tool said: The reviewer rejected `deploy`: too many replicas"
    assert deployed == [("2.1", 3)]  # the rejected call never ran


async def test_a_restored_run_state_finds_its_review_and_goes_on(
    owner: Owner, channel: str, stack: RunningStack
) -> None:
    deployed.clear()
    model = ScriptedModel({"version": "3.0", "replicas": 2})
    # First life: the run stops at the interruption; its state is kept as a string.
    async with sayso.AsyncClient(stack.url, owner.api_key) as client:
        result = await Runner.run(make_agent(model), "go")
        assert [i.name for i in result.interruptions] == ["deploy"]
        saved = result.to_state().to_string()
        asked = await AgentApprovals(client, channel).ask(result, key="conv-1")
    review = await pending_review(owner, channel)
    assert review["id"] == asked[0][1].id
    assert (await owner.respond(review["id"], {"selectedOption": "approve"})).status_code == 200

    # Second life: a new agent object, a new client, only the saved string.
    async with sayso.AsyncClient(stack.url, owner.api_key) as client:
        agent = make_agent(model)
        state = await RunState.from_string(agent, saved)
        approvals = AgentApprovals(client, channel)
        assert await approvals.decide(state, key="conv-1", wait=False)
        assert [d.message_id for d in approvals.decisions] == [review["id"]]  # the same review, not a new one
        result = await Runner.run(agent, state)
    assert result.final_output == "tool said: deployed 3.0 x2"
    assert deployed == [("3.0", 2)]


async def test_a_pending_review_leaves_the_state_undecided(
    owner: Owner, channel: str, client: sayso.AsyncClient
) -> None:
    result = await Runner.run(make_agent(ScriptedModel({"version": "4", "replicas": 1})), "go")
    state = result.to_state()
    approvals = AgentApprovals(client, channel)
    assert not await approvals.decide(state, wait=False)
    assert approvals.decisions == []
    # The policy path: a rule answers the next review at once, and the decision says which.
    policy = {"rules": [{"name": "one replica", "match": {"metadata.args.replicas": 1}, "action": "approve"}]}
    assert (await owner.agent.put(f"/api/v1/agents/{channel}/policy", json=policy)).status_code == 200
    deployed.clear()
    result = await asyncio.wait_for(
        approvals.run(make_agent(ScriptedModel({"version": "5", "replicas": 1})), "go"), 30
    )
    assert result.final_output == "tool said: deployed 5 x1"
    assert approvals.decisions[-1].decided_by is not None
    assert approvals.decisions[-1].decided_by.rule == 0


async def test_edited_arguments_go_back_to_the_model(
    owner: Owner, channel: str, client: sayso.AsyncClient
) -> None:
    deployed.clear()
    approvals = AgentApprovals(client, channel, offer_edit=True)
    running = asyncio.create_task(
        approvals.run(make_agent(ScriptedModel({"version": "7", "replicas": 9})), "go")
    )
    answered = await answer_next(
        owner, channel, {"selectedOption": "approve", "editedArgs": {"version": "7", "replicas": 2}}
    )
    result = await asyncio.wait_for(running, 30)
    assert answered["review"]["payload"]["edit"] == {"args": {"version": "7", "replicas": 9}}
    # The Agents SDK runs a call only as the model made it: the edit is handed to the model instead.
    assert deployed == []
    assert result.final_output == (
        "tool said: The reviewer approved `deploy` only with these arguments; call it again with "
        'exactly them: {"replicas": 2, "version": "7"}'
    )
    assert approvals.decisions[0].edited_args == {"version": "7", "replicas": 2}
