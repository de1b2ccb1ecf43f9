"""A LangGraph graph written for Agent Inbox, with Sayso as its inbox.

The graph asks before it deploys (Agent Inbox's HumanInterrupt: accept, edit, respond, ignore) and
keeps its checkpoints in SQLite, so the process that starts a run and the one that finishes it
need not be the same:

    python deploy_graph.py start v2.1            # runs until the question; prints the review id; exits
    python deploy_graph.py resume                # waits (long-poll) for the answer; finishes the run
    WHSEC=whsec_… python deploy_graph.py serve 9000   # or: a webhook receiver that finishes runs

Environment: SAYSO_URL and SAYSO_API_KEY (``.sayso/local.env`` after ``make run``),
SAYSO_CHANNEL (an agent's id: the channel the reviews go to), and for ``serve`` the agent's
webhook secret in WHSEC; ``start --webhook-url`` sends the answer to a receiver. Run it with
``uv run --group frameworks python examples/langgraph/deploy_graph.py …`` in the checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

import sayso
from sayso.integrations.langgraph import LangGraphInbox, Resumed


class State(TypedDict, total=False):
    version: str
    outcome: str


def ask(state: State) -> State:
    request = {
        "action_request": {"action": "deploy", "args": {"version": state["version"], "env": "production"}},
        "config": {"allow_accept": True, "allow_edit": True, "allow_respond": True, "allow_ignore": True},
        "description": f"Deploy **{state['version']}** to production?",
    }
    response = interrupt([request])[0]  # Agent Inbox's HumanResponse
    kind = response["type"]
    if kind == "accept":
        return {"outcome": f"deployed {state['version']} to production"}
    if kind == "edit":
        args = response["args"]["args"]
        return {"outcome": f"deployed {args['version']} to {args['env']} (edited)"}
    if kind == "response":
        return {"outcome": f"not deployed; the reviewer said: {response['args']}"}
    return {"outcome": "skipped"}


@asynccontextmanager
async def opened(db: str) -> AsyncIterator[tuple[Any, LangGraphInbox]]:
    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    async with AsyncSqliteSaver.from_conn_string(db) as saver, sayso.AsyncClient() as client:
        yield (
            builder.compile(checkpointer=saver),
            LangGraphInbox(client, os.environ["SAYSO_CHANNEL"], webhook_url=os.environ.get("HOOK_URL")),
        )


def thread(name: str) -> RunnableConfig:
    return {"configurable": {"thread_id": name}}


async def start(db: str, name: str, version: str) -> None:
    async with opened(db) as (graph, inbox):
        await graph.ainvoke({"version": version}, thread(name))
        for review in await inbox.ask(graph, thread(name)):
            print("review", review.id, review.review.status if review.review else "", flush=True)


async def resume(db: str, name: str) -> None:
    async with opened(db) as (graph, inbox):
        run = await inbox.run(graph, None, thread(name))
        for decision in run.decisions:
            print("decided by", f"policy {decision.decided_by.policy}" if decision.decided_by else "a person")
        print("outcome:", run.output["outcome"], flush=True)


def serve(db: str, port: int, once: bool) -> None:
    secret = os.environ["WHSEC"]

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))

            async def handle() -> Resumed | None:
                async with opened(db) as (graph, inbox):
                    return await inbox.resume_from_webhook(graph, body, dict(self.headers), secret)

            try:
                resumed = asyncio.run(handle())
            except sayso.WebhookVerificationError as exc:
                self.send_response(401)
                self.end_headers()
                print("refused:", exc.reason, flush=True)
                return
            self.send_response(204)
            self.end_headers()
            if resumed is not None:
                print("outcome:", resumed.output["outcome"], flush=True)
                if once:
                    raise SystemExit(0)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", port), Receiver)
    print("listening on", port, flush=True)
    try:
        server.serve_forever()
    except SystemExit:
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", default="deploy_graph.db", help="the SQLite checkpoint file")
    parser.add_argument("--thread", default="deploy-1", help="the graph thread")
    commands = parser.add_subparsers(dest="command", required=True)
    started = commands.add_parser("start")
    started.add_argument("version")
    commands.add_parser("resume")
    served = commands.add_parser("serve")
    served.add_argument("port", type=int)
    served.add_argument("--once", action="store_true", help="exit after the first resumed run")
    args = parser.parse_args()
    if args.command == "start":
        asyncio.run(start(args.db, args.thread, args.version))
    elif args.command == "resume":
        asyncio.run(resume(args.db, args.thread))
    else:
        serve(args.db, args.port, args.once)


if __name__ == "__main__":
    main()
