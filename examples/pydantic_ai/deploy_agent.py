"""A Pydantic AI agent whose ``deploy`` tool requires approval, decided in Sayso.

    python deploy_agent.py inline 2.1         # the run waits inside itself (HandleDeferredToolCalls)
    python deploy_agent.py start 2.1          # the run ends with DeferredToolRequests, kept as JSON
    python deploy_agent.py finish             # later, any process: the answers → DeferredToolResults

The model here is Pydantic AI's FunctionModel, scripted to call ``deploy`` once and report, so the
example needs no LLM; give the Agent a real model (``"openai:gpt-5"``) for a real run.
Environment: SAYSO_URL and SAYSO_API_KEY (``.sayso/local.env`` after ``make run``) and
SAYSO_CHANNEL (an agent's id). Run it with
``uv run --group frameworks python examples/pydantic_ai/deploy_agent.py …`` in the checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import DeferredToolRequests

import sayso
from sayso.integrations.pydantic_ai import PydanticAIApprovals

REQUESTS = TypeAdapter(DeferredToolRequests)


def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Stands in for an LLM: asks to deploy the version in the prompt, then reports."""
    last = messages[-1]
    parts = last.parts if isinstance(last, ModelRequest) else []
    returned = [p for p in parts if isinstance(p, ToolReturnPart)]
    if returned:
        return ModelResponse(parts=[TextPart(f"tool said: {returned[-1].content}")])
    prompt = next(
        str(p.content)
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, UserPromptPart)
    )
    return ModelResponse(parts=[ToolCallPart("deploy", {"version": prompt.split()[-1], "env": "production"})])


def make_agent(approvals: PydanticAIApprovals | None) -> Agent[None, Any]:
    agent: Agent[None, Any] = Agent(
        FunctionModel(script),
        output_type=[str, DeferredToolRequests],
        capabilities=[approvals.capability()] if approvals else [],
    )

    @agent.tool_plain(requires_approval=True)
    def deploy(version: str, env: str) -> str:
        return f"deployed {version} to {env}"

    return agent


async def work(command: str, version: str, key: str, kept: dict[str, Any] | None) -> dict[str, Any] | None:
    """Runs or finishes; returns what to keep when the run ended waiting for approvals."""
    async with sayso.AsyncClient() as client:
        approvals = PydanticAIApprovals(client, os.environ["SAYSO_CHANNEL"])
        if command == "inline":
            result = await make_agent(approvals).run(f"Deploy {version}")
        elif command == "start":
            result = await make_agent(None).run(f"Deploy {version}")
            if isinstance(result.output, DeferredToolRequests):
                for review in (await approvals.ask(result.output, key=key)).values():
                    print("review", review.id, flush=True)
                return {
                    "history": json.loads(result.all_messages_json()),
                    "requests": json.loads(REQUESTS.dump_json(result.output)),
                }
        else:
            assert kept is not None
            requests = REQUESTS.validate_python(kept["requests"])
            results = await approvals.results(requests, key=key)
            history = ModelMessagesTypeAdapter.validate_python(kept["history"])
            result = await make_agent(None).run(message_history=history, deferred_tool_results=results)
            for call_id, who in (results.answered_by if results else {}).items():
                print("decided by", who, "for", call_id)
        print("outcome:", result.output, flush=True)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--state", default="deploy_agent.pending.json", help="where a paused run is kept")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("inline", "start"):
        commands.add_parser(name).add_argument("version")
    commands.add_parser("finish")
    args = parser.parse_args()
    saved = Path(args.state)
    kept = json.loads(saved.read_text()) if args.command == "finish" else None
    paused = asyncio.run(work(args.command, getattr(args, "version", ""), saved.name, kept))
    if paused is not None:
        saved.write_text(json.dumps(paused))
    elif kept is not None:
        saved.unlink()


if __name__ == "__main__":
    main()
