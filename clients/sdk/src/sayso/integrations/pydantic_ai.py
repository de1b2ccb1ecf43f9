"""Pydantic AI: tools with ``requires_approval=True`` are decided in Sayso, inline or across runs.

Inline, as a capability (Pydantic AI's ``HandleDeferredToolCalls``): the run posts the reviews,
waits for the answers and goes on with the approved calls executed and the denied ones reported
to the model:

>>> approvals = PydanticAIApprovals(client, channel)    # a sayso.AsyncClient and an agent's id
>>> agent = Agent(model, capabilities=[approvals.capability()])

Across runs (the process may stop in between): a run without the capability ends with
``DeferredToolRequests`` output; keep it and the run's messages (``result.all_messages_json()``),
then build the next run's ``DeferredToolResults`` from the answers:

>>> results = await approvals.results(requests, key="conversation-42")            # waits
>>> results = await approvals.results(requests, key="conversation-42", wait=False)  # None until all answered
>>> await agent.run(message_history=history, deferred_tool_results=results)

Each call is posted once per ``key`` and tool call id (asking again, from any process, answers with
the review already posted). An approval becomes ``ToolApproved`` — with ``override_args`` when the
reviewer edited the arguments (``offer_edit=True`` offers them for editing; the server must have edit
before approve) — and anything else ``ToolDenied`` with the reviewer's comment. Who decided goes in
``answered_by`` (``policy:<id>#<rule>`` for a policy, else the reviewer's user id) and the review in
``metadata[tool_call_id]["sayso"]`` (the tool sees it as ``ctx.tool_call_metadata``).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from pydantic_ai.capabilities import HandleDeferredToolCalls
from pydantic_ai.messages import ToolCallPart
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, RunContext, ToolApproved, ToolDenied

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


def denial(tool: str, decision: Decision) -> str:
    why = decision.comment or ("nobody answered in time" if decision.expired else None)
    return f"The reviewer rejected `{tool}`" + (f": {why}" if why else ".")


class PydanticAIApprovals:
    """Sayso decides a Pydantic AI agent's ``requires_approval`` tool calls, in one channel."""

    def __init__(
        self,
        client: AsyncClient,
        channel: str,
        *,
        webhook_url: str | None = None,
        expires_in_seconds: int | None = None,
        approve: Collection[str] = APPROVING,
        offer_edit: bool = False,
    ) -> None:
        self.client = client
        self.channel = channel
        self.webhook_url = webhook_url
        self.expires_in_seconds = expires_in_seconds
        self.approve = approve
        self.offer_edit = offer_edit

    @staticmethod
    def args_of(requests: DeferredToolRequests, call: ToolCallPart) -> dict[str, Any]:
        """The arguments the tool would receive (validated, where Pydantic AI recorded them)."""
        return requests.validated_args.get(call.tool_call_id) or call.args_as_dict()

    async def ask(self, requests: DeferredToolRequests, *, key: str = "") -> dict[str, Message]:
        """Post a review for each call awaiting approval; the reviews by tool call id."""
        return {call.tool_call_id: await self._post(requests, call, key) for call in requests.approvals}

    async def _post(self, requests: DeferredToolRequests, call: ToolCallPart, key: str) -> Message:
        args = jsonable(self.args_of(requests, call))
        review = action_review(
            edit_args=args if self.offer_edit else None, expires_in_seconds=self.expires_in_seconds
        )
        text = f"Run `{call.tool_name}`?\n\n```json\n{json.dumps(args, indent=2, sort_keys=True)}\n```"
        metadata = {
            "tool": call.tool_name,
            "args": args,
            "pydanticAi": {"toolCallId": call.tool_call_id, "key": key},
        }
        return await post_action(
            self.client,
            self.channel,
            text=text,
            review=review,
            metadata=metadata,
            key=client_id("pydantic-ai", self.channel, key, call.tool_call_id, call.tool_name),
            webhook_url=self.webhook_url,
        )

    def result_of(self, call: ToolCallPart, decision: Decision, results: DeferredToolResults) -> None:
        """Add the decision on ``call`` to ``results``."""
        if decision.approved:
            results.approvals[call.tool_call_id] = ToolApproved(override_args=decision.edited_args)
        else:
            results.approvals[call.tool_call_id] = ToolDenied(denial(call.tool_name, decision))
        results.metadata[call.tool_call_id] = {
            "sayso": {
                "reviewId": decision.message_id,
                "selectedOption": decision.option,
                "comment": decision.comment,
                "decidedBy": decision.decided_by.model_dump(mode="json") if decision.decided_by else None,
            }
        }
        by = decision.decided_by
        answered_by = f"policy:{by.policy}#{by.rule}" if by else decision.responded_by
        if answered_by:
            results.answered_by[call.tool_call_id] = answered_by

    async def results(
        self, requests: DeferredToolRequests, *, key: str = "", wait: bool = True
    ) -> DeferredToolResults | None:
        """The answers to every call awaiting approval as ``DeferredToolResults`` (posting the
        reviews first if they are not there yet). With ``wait=False``: None while any is pending."""
        results = DeferredToolResults()
        reviews = await self.ask(requests, key=key)
        for call in requests.approvals:
            message = reviews[call.tool_call_id]
            if wait:
                decision = await await_decision(self.client, message.id, self.channel, self.approve)
            else:
                found = await current_decision(self.client, message.id, self.channel, self.approve)
                if found is None:
                    return None
                decision = found
            self.result_of(call, decision, results)
        return results

    def capability(self, *, key: str = "") -> HandleDeferredToolCalls[Any]:
        """A ``HandleDeferredToolCalls`` capability that decides the run's approvals in Sayso and
        waits for them inside the run (calls that are not approvals are left to other handlers)."""

        async def handle(ctx: RunContext[Any], requests: DeferredToolRequests) -> DeferredToolResults | None:
            if not requests.approvals:
                return None
            only = DeferredToolRequests(
                approvals=requests.approvals,
                metadata=requests.metadata,
                validated_args=requests.validated_args,
            )
            return await self.results(only, key=key or (ctx.run_id or ""))

        return HandleDeferredToolCalls(handler=handle)
