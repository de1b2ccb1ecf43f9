"""OpenAI Agents SDK: tools marked ``needs_approval`` (a bool or a callable) are decided in Sayso.

>>> approvals = AgentApprovals(client, channel)      # a sayso.AsyncClient and an agent's id
>>> result = await approvals.run(agent, "Deploy v2.1", key="conversation-42")
>>> result.final_output, approvals.decisions

Each interruption (``RunResult.interruptions``) is posted as an approval review — the tool's name
in ``metadata.tool``, its arguments in ``metadata.args`` — and the run state is approved or
rejected from the answer (``RunState.approve``/``reject``, the reviewer's comment as the rejection
message) before the run continues with ``Runner.run(agent, state)``.

Durable: keep ``result.to_state().to_string()`` wherever your run state lives. After a restart,
``state = await RunState.from_string(agent, saved)`` and ``await approvals.decide(state)`` finds the
same reviews (each is posted once per ``key`` and tool call id: asking again answers with the review
already posted), waits for their answers (or reads them, ``wait=False``) and approves or rejects
the state; then ``Runner.run(agent, state)``. ``decide`` also takes the review ids from a webhook:
it reads whatever is answered.

The Agents SDK approves a call as the model made it: an answer that edited the arguments
(edit before approve) cannot change them there, so such an answer rejects the call with a message
giving the model the reviewer's arguments to call it again with (``edited_args_message``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any

from agents import Agent, Runner, RunResult
from agents.items import ToolApprovalItem
from agents.run_state import RunState

from sayso.aio import AsyncClient
from sayso.integrations._decisions import (
    APPROVING,
    Decision,
    action_review,
    await_decision,
    client_id,
    current_decision,
    jsonable,
    post_action,
)
from sayso.models import Message


def edited_args_message(tool: str, args: dict[str, Any]) -> str:
    return (
        f"The reviewer approved `{tool}` only with these arguments; call it again with exactly them: "
        + json.dumps(args, sort_keys=True)
    )


def call_args(item: ToolApprovalItem) -> Any:
    raw = item.arguments
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


class AgentApprovals:
    """Sayso decides the ``needs_approval`` tool calls of Agents SDK runs, in one channel.

    ``approve`` names the options that approve (default: ``approve`` and Sayso's other approving
    ids); ``offer_edit`` offers each call's arguments for editing before approval (needs a server
    with edit before approve). ``decisions`` collects every decision applied, in order.
    """

    def __init__(
        self,
        client: AsyncClient,
        channel: str,
        *,
        webhook_url: str | None = None,
        expires_in_seconds: int | None = None,
        approve: Collection[str] = APPROVING,
        offer_edit: bool = False,
        text: Callable[[ToolApprovalItem], str] | None = None,
    ) -> None:
        self.client = client
        self.channel = channel
        self.webhook_url = webhook_url
        self.expires_in_seconds = expires_in_seconds
        self.approve = approve
        self.offer_edit = offer_edit
        self.text = text
        self.decisions: list[Decision] = []

    async def ask(
        self, state: RunState[Any] | RunResult, *, key: str = ""
    ) -> list[tuple[ToolApprovalItem, Message]]:
        """Post a review for each interruption (once per ``key`` and call id)."""
        items = state.interruptions if isinstance(state, RunResult) else state.get_interruptions()
        return [(item, await self._post(item, key)) for item in items]

    async def _post(self, item: ToolApprovalItem, key: str) -> Message:
        tool = item.qualified_name or item.name or "tool"
        args = call_args(item)
        text = (
            self.text(item)
            if self.text
            else f"Run `{tool}`?\n\n```json\n{json.dumps(jsonable(args), indent=2, sort_keys=True)}\n```"
        )
        edit = args if self.offer_edit and isinstance(args, dict) else None
        review = action_review(edit_args=edit, expires_in_seconds=self.expires_in_seconds)
        metadata = {
            "tool": tool,
            "args": jsonable(args),
            "openaiAgents": {"callId": item.call_id, "key": key},
        }
        return await post_action(
            self.client,
            self.channel,
            text=text,
            review=review,
            metadata=metadata,
            key=client_id("openai-agents", self.channel, key, str(item.call_id), tool),
            webhook_url=self.webhook_url,
        )

    def apply(self, state: RunState[Any], item: ToolApprovalItem, decision: Decision) -> None:
        """Approve or reject ``item`` on ``state`` from ``decision``."""
        tool = item.qualified_name or item.name or "tool"
        if decision.approved and decision.edited_args is not None and decision.edited_args != call_args(item):
            state.reject(item, rejection_message=edited_args_message(tool, decision.edited_args))
        elif decision.approved:
            state.approve(item)
        else:
            why = decision.comment or ("nobody answered in time" if decision.expired else None)
            state.reject(
                item, rejection_message=f"The reviewer rejected `{tool}`" + (f": {why}" if why else ".")
            )
        self.decisions.append(decision)

    async def decide(self, state: RunState[Any], *, key: str = "", wait: bool = True) -> bool:
        """Post (or find again) the reviews of the state's interruptions and apply their answers.
        With ``wait=False`` only answered ones are applied. True when every interruption has
        been decided (the state is ready for ``Runner.run(agent, state)``)."""
        decided = True
        for item, message in await self.ask(state, key=key):
            if wait:
                decision = await await_decision(self.client, message.id, self.channel, self.approve)
            else:
                found = await current_decision(self.client, message.id, self.channel, self.approve)
                if found is None:
                    decided = False
                    continue
                decision = found
            self.apply(state, item, decision)
        return decided

    async def run(self, agent: Agent[Any], input: Any, *, key: str = "", **runner: Any) -> RunResult:
        """``Runner.run`` to the end, each interruption decided in Sayso (long-poll). ``input``
        may be a ``RunState`` (a restored run). ``runner`` goes to every ``Runner.run``."""
        result = await Runner.run(agent, input, **runner)
        while result.interruptions:
            state = result.to_state()
            await self.decide(state, key=key)
            result = await Runner.run(agent, state, **runner)
        return result
