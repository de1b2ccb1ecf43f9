"""LangGraph: a graph's ``interrupt(...)`` becomes a Sayso review, and the answer resumes the
graph with ``Command(resume=...)`` — also in another process, from the webhook.

>>> inbox = LangGraphInbox(client, channel)          # a sayso.AsyncClient and an agent's id
>>> run = await inbox.run(graph, {"task": "deploy"}, {"configurable": {"thread_id": "t1"}})
>>> run.output, [d.decided_by for d in run.decisions]

Durable: the graph needs a checkpointer that outlives the process (``AsyncSqliteSaver`` from
``langgraph-checkpoint-sqlite``, or any other saver); Sayso keeps the review, and the review's
``metadata.langgraph`` names the thread and the interrupt. After a restart either call
:meth:`LangGraphInbox.run` again with the same thread (``input=None``: the same reviews are found
again, not posted twice) or resume from an answer: :meth:`LangGraphInbox.resume` (a review id, e.g.
from the long-poll) or :meth:`LangGraphInbox.resume_from_webhook` (the signed delivery).

Two interrupt shapes:

* **Agent Inbox's** ``HumanInterrupt`` (``{"action_request": {"action", "args"}, "config":
  {"allow_accept", "allow_edit", "allow_respond", "allow_ignore"}, "description"}``, alone or in a
  one-element list as Agent Inbox's examples pass it): options ``accept``/``respond``, a dismiss
  button "Ignore", the arguments offered for editing; the graph is resumed with Agent Inbox's
  ``HumanResponse`` (``accept``, ``edit``, ``response``, ``ignore``; a list for a list).
* **anything else**: an Approve/Reject review whose text is the value (a string, or a dict's
  ``question``/``description``/``text``); the graph is resumed with ``{"approved",
  "selectedOption", "comment", "editedArgs", "dismissed", "expired", "decidedBy"}``.

An expired review resumes with its ``onExpire`` default if it had one; otherwise an Agent Inbox
interrupt is ignored (``{"type": "ignore"}``) and any other gets ``approved: False, expired: True``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, Interrupt, StateSnapshot

from sayso.aio import AsyncClient
from sayso.integrations._decisions import (
    Decision,
    action_review,
    await_decision,
    client_id,
    current_decision,
    jsonable,
    post_action,
)
from sayso.models import Message
from sayso.reviews import Option
from sayso.webhooks import verify_webhook

Shape = Literal["agent-inbox", "agent-inbox-list", "value"]
ANSWER_EVENTS = ("review:responded", "review:expired")


class Graph(Protocol):
    """What is used of a compiled LangGraph graph (``StateGraph(...).compile(checkpointer=...)``)."""

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, /) -> Any: ...

    async def aget_state(self, config: RunnableConfig, /) -> StateSnapshot: ...


@dataclass(frozen=True)
class Resumed:
    """One resume: the graph's output after it, the decision it was resumed with, and the
    value handed to ``Command(resume=...)``."""

    output: Any
    decision: Decision
    value: Any


@dataclass
class Run:
    """A graph run to its end: its output, and the decisions taken on the way (in order)."""

    output: Any
    decisions: list[Decision] = field(default_factory=list)


def is_human_interrupt(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("action_request"), Mapping)
        and isinstance(value.get("config"), Mapping)
    )


def shape_of(value: Any) -> Shape:
    if is_human_interrupt(value):
        return "agent-inbox"
    if isinstance(value, Sequence) and not isinstance(value, str) and value and is_human_interrupt(value[0]):
        return "agent-inbox-list"
    return "value"


def human_interrupt(value: Any, shape: Shape) -> Mapping[str, Any]:
    # A list: Agent Inbox answers its first request (as its UI does).
    found: Mapping[str, Any] = value[0] if shape == "agent-inbox-list" else value
    return found


def inbox_review(request: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Agent Inbox's HumanInterrupt as a Sayso review: its text, review and metadata."""
    action = request["action_request"]
    config = request["config"]
    name, args = str(action.get("action", "")), dict(action.get("args") or {})
    options = []
    if config.get("allow_accept") or config.get("allow_edit"):
        options.append(Option(id="accept", label="Accept", style="primary"))
    if config.get("allow_respond"):
        options.append(Option(id="respond", label="Respond"))
    review = action_review(
        options=options or [Option(id="accept", label="Accept", style="primary")],
        allow_comment=bool(config.get("allow_respond")),
        edit_args=args if config.get("allow_edit") else None,
        dismiss_label="Ignore" if config.get("allow_ignore") else None,
    )
    text = (
        request.get("description") or f"Run `{name}`?\n\n```json\n{json.dumps(jsonable(args), indent=2)}\n```"
    )
    return str(text), review, {"tool": name, "args": jsonable(args)}


def human_response(request: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
    """The decision as Agent Inbox's HumanResponse."""
    action = request["action_request"]
    config = request["config"]
    if decision.dismissed or decision.option is None:
        return {"type": "ignore", "args": None}
    if decision.option == "respond":
        return {"type": "response", "args": decision.comment or ""}
    if decision.option == "accept":
        if decision.edited_args is not None:
            return {"type": "edit", "args": {"action": action.get("action"), "args": decision.edited_args}}
        if not config.get("allow_accept"):  # only editing was offered: accepting keeps the arguments
            return {
                "type": "edit",
                "args": {"action": action.get("action"), "args": dict(action.get("args") or {})},
            }
        return {"type": "accept", "args": None}
    return {"type": "ignore", "args": None}


def value_review(value: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Any other interrupt value as an Approve/Reject review."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping):
        said = value.get("question") or value.get("description") or value.get("text")
        text = str(said) if said else f"```json\n{json.dumps(jsonable(value), indent=2)}\n```"
    else:
        text = f"```json\n{json.dumps(jsonable(value), indent=2)}\n```"
    return text, action_review(), {"interrupt": jsonable(value)}


def value_answer(decision: Decision) -> dict[str, Any]:
    return {
        "approved": decision.approved,
        "selectedOption": decision.option,
        "comment": decision.comment,
        "editedArgs": decision.edited_args,
        "dismissed": decision.dismissed,
        "expired": decision.expired,
        "decidedBy": decision.decided_by.model_dump(mode="json") if decision.decided_by else None,
    }


def resume_value(value: Any, shape: Shape, decision: Decision) -> Any:
    if shape == "value":
        return value_answer(decision)
    answer = human_response(human_interrupt(value, shape), decision)
    return [answer] if shape == "agent-inbox-list" else answer


class LangGraphInbox:
    """Sayso as the inbox of a LangGraph graph's interrupts, for one channel (an agent's id).

    ``webhook_url`` sends each answer there as a signed webhook (else the agent's own webhook
    settings apply); ``expires_in_seconds`` bounds each review (the server's default otherwise).
    """

    def __init__(
        self,
        client: AsyncClient,
        channel: str,
        *,
        webhook_url: str | None = None,
        expires_in_seconds: int | None = None,
    ) -> None:
        self.client = client
        self.channel = channel
        self.webhook_url = webhook_url
        self.expires_in_seconds = expires_in_seconds

    @staticmethod
    def thread_of(config: RunnableConfig) -> str:
        thread = (config.get("configurable") or {}).get("thread_id")
        if not thread:
            raise ValueError('the graph config needs {"configurable": {"thread_id": ...}}')
        return str(thread)

    async def ask(self, graph: Graph, config: RunnableConfig) -> list[Message]:
        """Post a review for each interrupt the thread is paused on (once: asking again, from
        this process or another, answers with the reviews already posted)."""
        thread = self.thread_of(config)
        snapshot = await graph.aget_state(config)
        return [await self._post(thread, pending) for pending in snapshot.interrupts]

    async def _post(self, thread: str, pending: Interrupt) -> Message:
        shape = shape_of(pending.value)
        if shape == "value":
            text, review, metadata = value_review(pending.value)
        else:
            text, review, metadata = inbox_review(human_interrupt(pending.value, shape))
        if self.expires_in_seconds is not None:
            review["expiresInSeconds"] = self.expires_in_seconds
        metadata["langgraph"] = {"threadId": thread, "interruptId": pending.id, "shape": shape}
        return await post_action(
            self.client,
            self.channel,
            text=text,
            review=review,
            metadata=metadata,
            key=client_id("langgraph", self.channel, thread, pending.id),
            webhook_url=self.webhook_url,
        )

    async def resume(
        self, graph: Graph, review_id: str, *, config: RunnableConfig | None = None
    ) -> Resumed | None:
        """Resume the thread the review paused, with its answer. None if the review is still
        pending, or if its interrupt is no longer pending (already resumed: a repeated webhook
        does nothing). ``config`` adds settings to the resume's config (the thread comes from
        the review)."""
        decision = await current_decision(self.client, review_id, self.channel)
        if decision is None:
            return None
        return await self._resume(graph, decision, config)

    async def resume_from_webhook(
        self,
        graph: Graph,
        body: bytes | str,
        headers: Mapping[str, str],
        secret: str | Sequence[str],
        *,
        config: RunnableConfig | None = None,
    ) -> Resumed | None:
        """Verify a webhook delivery (raises :class:`sayso.WebhookVerificationError`) and, if it
        answers a review of this channel, resume its thread (as :meth:`resume`)."""
        event = verify_webhook(body, headers, secret)
        if not isinstance(event, dict) or event.get("event") not in ANSWER_EVENTS:
            return None
        review_id = event.get("message_id")
        if not isinstance(review_id, str) or event.get("channelId") != self.channel:
            return None
        return await self.resume(graph, review_id, config=config)

    async def _resume(
        self, graph: Graph, decision: Decision, config: RunnableConfig | None
    ) -> Resumed | None:
        message = await self.client.get_review(decision.message_id, self.channel)
        marker = (message.metadata or {}).get("langgraph")
        if not isinstance(marker, dict):
            raise ValueError(f"review {message.id} was not posted by LangGraphInbox")
        thread, interrupt_id, shape = marker["threadId"], marker["interruptId"], marker["shape"]
        run_config: RunnableConfig = {**(config or {})}
        run_config["configurable"] = {**(run_config.get("configurable") or {}), "thread_id": thread}
        snapshot = await graph.aget_state(run_config)
        pending = next((i for i in snapshot.interrupts if i.id == interrupt_id), None)
        if pending is None:
            return None
        value = resume_value(pending.value, shape, decision)
        output = await graph.ainvoke(Command(resume={interrupt_id: value}), run_config)
        return Resumed(output=output, decision=decision, value=value)

    async def run(self, graph: Graph, input: Any, config: RunnableConfig) -> Run:
        """Run the graph to its end, pausing on each interrupt until Sayso has its answer
        (long-poll). ``input=None`` continues a paused thread (after a restart)."""
        self.thread_of(config)
        done = Run(output=await graph.ainvoke(input, config) if input is not None else None)
        while True:
            asked = await self.ask(graph, config)
            if not asked:
                if done.output is None:
                    done.output = (await graph.aget_state(config)).values
                return done
            for message in asked:
                decision = await await_decision(self.client, message.id, self.channel)
                resumed = await self._resume(graph, decision, config)
                if resumed is not None:
                    done.decisions.append(decision)
                    done.output = resumed.output
