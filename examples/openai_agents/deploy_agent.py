"""An OpenAI Agents SDK agent whose ``deploy`` tool needs approval, decided in Sayso.

    python deploy_agent.py run 2.1                  # runs; waits (long-poll) at the approval; finishes
    python deploy_agent.py run 2.1 --no-wait        # runs to the approval, keeps the run state, exits
    python deploy_agent.py resume                   # later, any process: waits for the answer, finishes

The model here is scripted (it calls ``deploy`` once, then reports what the tool said) so the
example runs without an OpenAI key; give the Agent a real model (``model="gpt-5"``) for a real
run. Environment: SAYSO_URL and SAYSO_API_KEY (``.sayso/local.env`` after ``make run``) and
SAYSO_CHANNEL (an agent's id). Run it with
``uv run --group frameworks python examples/openai_agents/deploy_agent.py …`` in the checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

from agents import Agent, Runner, RunState, Usage, function_tool, set_tracing_disabled
from agents.items import ModelResponse, TResponseInputItem
from agents.models.interface import Model
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

import sayso
from sayso.integrations.openai_agents import AgentApprovals


class ScriptedModel(Model):
    """Stands in for an LLM: asks to deploy the version in the prompt, then reports."""

    async def get_response(
        self, system_instructions: Any, input: str | list[TResponseInputItem], *args: Any, **kwargs: Any
    ) -> ModelResponse:
        items: list[dict[str, Any]] = [dict(i) for i in input] if isinstance(input, list) else []
        outputs = [i for i in items if i.get("type") == "function_call_output"]
        if outputs:
            said = ResponseOutputText(
                text=f"tool said: {outputs[-1]['output']}", type="output_text", annotations=[]
            )
            reply = ResponseOutputMessage(
                id="msg_1", content=[said], role="assistant", status="completed", type="message"
            )
            return ModelResponse(output=[reply], usage=Usage(), response_id=None)
        prompt = input if isinstance(input, str) else str(items[0].get("content", ""))
        call = ResponseFunctionToolCall(
            id="fc_1",
            call_id=f"call_{uuid.uuid4().hex}",
            name="deploy",
            arguments=json.dumps({"version": prompt.split()[-1], "env": "production"}),
            type="function_call",
            status="completed",
        )
        return ModelResponse(output=[call], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


@function_tool(needs_approval=True)
def deploy(version: str, env: str) -> str:
    """Deploy a version to an environment."""
    return f"deployed {version} to {env}"


AGENT = Agent(
    name="deployer", instructions="Deploy what you are asked to.", model=ScriptedModel(), tools=[deploy]
)


async def work(command: str, version: str, wait: bool, key: str, kept: str | None) -> str | None:
    """Runs or resumes; returns the run state to keep when the run stopped at an approval."""
    async with sayso.AsyncClient() as client:
        approvals = AgentApprovals(client, os.environ["SAYSO_CHANNEL"])
        if command == "run" and not wait:
            result = await Runner.run(AGENT, f"Deploy {version}")
            if result.interruptions:
                for _, review in await approvals.ask(result, key=key):
                    print("review", review.id, flush=True)
                return result.to_state().to_string()
        elif command == "run":
            result = await approvals.run(AGENT, f"Deploy {version}", key=key)
        else:
            assert kept is not None
            state = await RunState.from_string(AGENT, kept)
            await approvals.decide(state, key=key)
            result = await Runner.run(AGENT, state)
        for decision in approvals.decisions:
            print("decided by", f"policy {decision.decided_by.policy}" if decision.decided_by else "a person")
        print("outcome:", result.final_output, flush=True)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--state", default="deploy_agent.state.json", help="where a paused run is kept")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run")
    run.add_argument("version")
    run.add_argument("--no-wait", action="store_true")
    commands.add_parser("resume")
    args = parser.parse_args()
    set_tracing_disabled(True)  # no traces sent to OpenAI from this example
    saved = Path(args.state)
    kept = saved.read_text() if args.command == "resume" else None
    version = getattr(args, "version", "")
    paused = asyncio.run(work(args.command, version, not getattr(args, "no_wait", False), saved.name, kept))
    if paused is not None:
        saved.write_text(paused)
    elif kept is not None:
        saved.unlink()


if __name__ == "__main__":
    main()
