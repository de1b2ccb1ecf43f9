"""LangGraph through Sayso (sayso.integrations.langgraph): a real graph with a SQLite checkpointer
pauses on ``interrupt``, a human answers over REST, and the graph resumes with the answer — in the
same run, and from only the persisted state (a new checkpointer, graph and client)."""

from __future__ import annotations

import asyncio
import operator
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

import sayso
from sayso.integrations.langgraph import LangGraphInbox
from tests.clients.support import answer_next, pending_review
from tests.support.stack import Owner, RunningStack


class State(TypedDict, total=False):
    task: str
    answers: Annotated[list[Any], operator.add]
    done: Annotated[list[str], operator.add]


def ask_plain(state: State) -> State:
    return {"answers": [interrupt(f"Deploy {state['task']}?")]}


def ask_inbox(state: State) -> State:
    request = {
        "action_request": {"action": "deploy", "args": {"version": state["task"], "replicas": 3}},
        "config": {"allow_accept": True, "allow_edit": True, "allow_respond": True, "allow_ignore": True},
        "description": f"Deploy **{state['task']}**?",
    }
    # Agent Inbox's examples interrupt with a list and read the first response.
    return {"answers": [interrupt([request])[0]]}


def act(state: State) -> State:
    return {"done": [f"acted on {state['task']}"]}


def build(node: Any, saver: AsyncSqliteSaver) -> Any:
    graph = StateGraph(State)
    graph.add_node("ask", node)
    graph.add_node("act", act)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", "act")
    graph.add_edge("act", END)
    return graph.compile(checkpointer=saver)


@asynccontextmanager
async def graph_at(path: Path, node: Any) -> AsyncIterator[Any]:
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        yield build(node, saver)


@pytest.fixture
async def channel(stack: RunningStack, owner: Owner) -> str:
    return str((await owner.create_agent(name="langgraph-bot"))["id"])


def thread(name: str) -> RunnableConfig:
    return {"configurable": {"thread_id": name}}


async def test_an_interrupt_is_a_review_and_the_answer_resumes_the_graph(
    stack: RunningStack, owner: Owner, channel: str, tmp_path: Path
) -> None:
    async with (
        sayso.AsyncClient(stack.url, owner.api_key) as client,
        graph_at(tmp_path / "g.db", ask_plain) as graph,
    ):
        inbox = LangGraphInbox(client, channel)
        running = asyncio.create_task(inbox.run(graph, {"task": "v2.1"}, thread("approve")))
        answered = await answer_next(owner, channel, {"selectedOption": "approve", "comment": "go"})
        run = await asyncio.wait_for(running, 30)
        assert answered["text"] == "Deploy v2.1?"
        assert answered["metadata"]["langgraph"]["threadId"] == "approve"
        answer = run.output["answers"][0]
        assert answer["approved"] is True
        assert answer["selectedOption"] == "approve"
        assert answer["comment"] == "go"
        assert answer["decidedBy"] is None
        assert run.output["done"] == ["acted on v2.1"]
        assert [d.message_id for d in run.decisions] == [answered["id"]]

        running = asyncio.create_task(inbox.run(graph, {"task": "v6.6"}, thread("reject")))
        await answer_next(owner, channel, {"selectedOption": "reject", "comment": "not today"})
        run = await asyncio.wait_for(running, 30)
        answer = run.output["answers"][0]
        assert answer["approved"] is False
        assert answer["comment"] == "not today"


async def test_agent_inbox_interrupts_get_human_responses(
    stack: RunningStack, owner: Owner, channel: str, tmp_path: Path
) -> None:
    async with (
        sayso.AsyncClient(stack.url, owner.api_key) as client,
        graph_at(tmp_path / "g.db", ask_inbox) as graph,
    ):
        inbox = LangGraphInbox(client, channel)
        cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
            ({"selectedOption": "accept"}, {"type": "accept", "args": None}),
            (
                {"selectedOption": "respond", "comment": "use 2 replicas"},
                {"type": "response", "args": "use 2 replicas"},
            ),
            ({"_dismissed": True}, {"type": "ignore", "args": None}),
        ]
        for n, (response, expected) in enumerate(cases):
            running = asyncio.create_task(inbox.run(graph, {"task": f"v{n}"}, thread(f"inbox-{n}")))
            answered = await answer_next(owner, channel, response)
            run = await asyncio.wait_for(running, 30)
            assert run.output["answers"] == [expected]
        # The review is Agent Inbox's request in Sayso's terms.
        review = answered["review"]["payload"]
        assert [o["id"] for o in review["options"]] == ["accept", "respond"]
        assert review["dismissLabel"] == "Ignore"
        assert review["allowComment"] is True
        assert answered["metadata"]["tool"] == "deploy"
        assert answered["metadata"]["args"] == {"version": "v2", "replicas": 3}
        assert answered["text"] == "Deploy **v2**?"


async def test_resume_needs_only_the_persisted_state(
    stack: RunningStack, owner: Owner, channel: str, tmp_path: Path
) -> None:
    db = tmp_path / "durable.db"
    # First life: run until the interrupt, post the review, forget everything but the database.
    async with sayso.AsyncClient(stack.url, owner.api_key) as client, graph_at(db, ask_plain) as graph:
        first = await graph.ainvoke({"task": "v3"}, thread("durable"))
        assert "__interrupt__" in first
        asked = await LangGraphInbox(client, channel).ask(graph, thread("durable"))
        again = await LangGraphInbox(client, channel).ask(graph, thread("durable"))
        assert [m.id for m in again] == [m.id for m in asked]  # asking again posts nothing new
    review = await pending_review(owner, channel)
    assert review["id"] == asked[0].id
    answered = await owner.respond(review["id"], {"selectedOption": "reject", "comment": "wait"})
    assert answered.status_code == 200, answered.text

    # Second life: a new saver on the same file, a new graph, a new client; only the review id.
    async with sayso.AsyncClient(stack.url, owner.api_key) as client, graph_at(db, ask_plain) as graph:
        inbox = LangGraphInbox(client, channel)
        resumed = await inbox.resume(graph, review["id"])
        assert resumed is not None
        assert resumed.output["answers"][0]["approved"] is False
        assert resumed.output["answers"][0]["comment"] == "wait"
        assert resumed.output["done"] == ["acted on v3"]
        # A second delivery of the same answer resumes nothing.
        assert await inbox.resume(graph, review["id"]) is None


async def test_a_policy_answers_at_once_and_says_so(
    stack: RunningStack, owner: Owner, channel: str, tmp_path: Path
) -> None:
    policy = {"rules": [{"name": "staging", "match": {"text": {"$regex": "staging"}}, "action": "approve"}]}
    put = await owner.agent.put(f"/api/v1/agents/{channel}/policy", json=policy)
    assert put.status_code == 200, put.text
    async with (
        sayso.AsyncClient(stack.url, owner.api_key) as client,
        graph_at(tmp_path / "g.db", ask_plain) as graph,
    ):
        run = await asyncio.wait_for(
            LangGraphInbox(client, channel).run(graph, {"task": "staging"}, thread("policy")), 30
        )
    answer = run.output["answers"][0]
    assert answer["approved"] is True
    assert answer["decidedBy"]["rule"] == 0
    assert answer["decidedBy"]["policy"].startswith("pol_")
    assert run.decisions[0].by_policy


async def test_an_expired_review_ignores_an_agent_inbox_interrupt(
    stack: RunningStack, owner: Owner, channel: str, tmp_path: Path
) -> None:
    async with (
        sayso.AsyncClient(stack.url, owner.api_key) as client,
        graph_at(tmp_path / "g.db", ask_inbox) as graph,
    ):
        inbox = LangGraphInbox(client, channel, expires_in_seconds=1)
        run = await asyncio.wait_for(inbox.run(graph, {"task": "late"}, thread("expired")), 60)
    assert run.output["answers"] == [{"type": "ignore", "args": None}]
    assert run.decisions[0].expired


async def test_agent_inbox_edit_resumes_with_the_edited_arguments(
    stack: RunningStack, owner: Owner, channel: str, tmp_path: Path
) -> None:
    async with (
        sayso.AsyncClient(stack.url, owner.api_key) as client,
        graph_at(tmp_path / "g.db", ask_inbox) as graph,
    ):
        running = asyncio.create_task(
            LangGraphInbox(client, channel).run(graph, {"task": "v7"}, thread("edit"))
        )
        edited = {"version": "v7.1", "replicas": 2}
        answered = await answer_next(owner, channel, {"selectedOption": "accept", "editedArgs": edited})
        run = await asyncio.wait_for(running, 30)
    assert answered["review"]["payload"]["edit"] == {"args": {"version": "v7", "replicas": 3}}
    assert run.output["answers"] == [{"type": "edit", "args": {"action": "deploy", "args": edited}}]
    assert run.decisions[0].edited_args == edited
