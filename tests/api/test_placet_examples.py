"""The example bodies from Placet's documentation (docs.placet.io: concepts/agents,
connections/rest-api, connections/mcp, concepts/iterations), each posted as written and answered
with the response the docs show, against the real stack. A client copied from those docs must
work unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.stack import Owner, RunningStack

DEPLOY_OPTIONS = [
    {"id": "approve", "label": "Approve", "style": "primary"},
    {"id": "reject", "label": "Reject", "style": "danger"},
]

# (name, message body without channelId, the docs' response or None for messages without review)
EXAMPLES: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
    ("plain", {"text": "Deployment completed successfully.", "status": "success"}, None),
    (
        "informational",
        {
            "text": "## Build Complete\n\nAll **47 tests** passed in 2.3s.",
            "status": "success",
            "metadata": {"buildId": "build-123", "duration": 2.3},
        },
        None,
    ),
    (
        "plugin-rendering",
        {
            "text": "Form submission required",
            "metadata": {"plugin": "form-submit", "name": "John Doe", "email": "john@example.com"},
        },
        None,
    ),
    (
        "approval-buttons",
        {
            "text": "Deploy v2.1 to production?",
            "review": {"type": "approval", "payload": {"options": DEPLOY_OPTIONS}},
        },
        {"selectedOption": "approve"},
    ),
    (
        "approval-comment",
        {"review": {"type": "approval", "payload": {"options": DEPLOY_OPTIONS, "allowComment": True}}},
        {"selectedOption": "approve", "comment": "Looks good"},
    ),
    (
        "approval-rest-api",
        {
            "text": "Deploy to production?",
            "review": {
                "type": "approval",
                "payload": {"options": DEPLOY_OPTIONS, "allowComment": True},
                "expiresInSeconds": 3600,
            },
        },
        {"selectedOption": "reject", "comment": "Not on a Friday"},
    ),
    (
        "approval-yes-no",
        {
            "text": "Continue processing?",
            "review": {
                "type": "approval",
                "payload": {"options": [{"id": "yes", "label": "Yes"}, {"id": "no", "label": "No"}]},
            },
        },
        {"selectedOption": "yes"},
    ),
    (
        "selection",
        {
            "review": {
                "type": "selection",
                "payload": {
                    "mode": "single",
                    "items": [
                        {"id": "option_a", "label": "Option A", "description": "First choice"},
                        {"id": "option_b", "label": "Option B", "description": "Second choice"},
                    ],
                },
            }
        },
        {"selectedIds": ["option_a"]},
    ),
    (
        "selection-migrations",
        {
            "text": "Which database migration should we run?",
            "review": {
                "type": "selection",
                "payload": {
                    "mode": "single",
                    "items": [
                        {"id": "migrate-up", "label": "Run pending migrations"},
                        {"id": "migrate-down", "label": "Rollback last migration"},
                        {"id": "skip", "label": "Skip — no changes needed"},
                    ],
                },
            },
        },
        {"selectedIds": ["skip"]},
    ),
    (
        "form-deploy",
        {
            "review": {
                "type": "form",
                "payload": {
                    "fields": [
                        {
                            "name": "environment",
                            "type": "select",
                            "label": "Environment",
                            "required": True,
                            "options": [
                                {"value": "staging", "label": "Staging"},
                                {"value": "prod", "label": "Production"},
                            ],
                        },
                        {"name": "version", "type": "text", "label": "Version", "placeholder": "e.g. 2.1.0"},
                        {"name": "notify", "type": "checkbox", "label": "Send notification"},
                    ],
                    "submitLabel": "Deploy",
                },
            }
        },
        {"environment": "prod", "version": "2.1.0", "notify": True},
    ),
    (
        "form-python",
        {
            "text": "Please configure the deployment:",
            "review": {
                "type": "form",
                "payload": {
                    "fields": [
                        {
                            "name": "env",
                            "type": "select",
                            "label": "Environment",
                            "required": True,
                            "options": [
                                {"value": "staging", "label": "Staging"},
                                {"value": "production", "label": "Production"},
                            ],
                        },
                        {"name": "instances", "type": "number", "label": "Instances", "min": 1, "max": 10},
                    ],
                    "submitLabel": "Deploy",
                },
            },
        },
        {"env": "production", "instances": 3},
    ),
    (
        "form-mcp",
        {
            "review": {
                "type": "form",
                "payload": {
                    "fields": [
                        {"name": "serverName", "type": "text", "label": "Server Name", "required": True},
                        {
                            "name": "region",
                            "type": "select",
                            "label": "Region",
                            "options": [
                                {"value": "eu-west-1", "label": "EU West"},
                                {"value": "us-east-1", "label": "US East"},
                            ],
                        },
                        {"name": "instances", "type": "number", "label": "Instances", "min": 1, "max": 10},
                        {
                            "name": "enableSSL",
                            "type": "checkbox",
                            "label": "Enable SSL",
                            "defaultValue": True,
                        },
                        {"name": "goLive", "type": "date", "label": "Go-Live Date"},
                        {
                            "name": "notes",
                            "type": "textarea",
                            "label": "Notes",
                            "placeholder": "Any details...",
                        },
                    ],
                    "submitLabel": "Deploy",
                },
            }
        },
        {"serverName": "prod-api-02", "region": "eu-west-1", "instances": 3, "enableSSL": True},
    ),
    (
        "text-input",
        {
            "review": {
                "type": "text-input",
                "payload": {
                    "placeholder": "Describe the issue...",
                    "markdown": True,
                    "minLength": 10,
                    "maxLength": 2000,
                },
            }
        },
        {"text": "The deployment failed because..."},
    ),
    (
        "text-input-prefill",
        {
            "review": {
                "type": "text-input",
                "payload": {
                    "markdown": True,
                    "placeholder": "Your response...",
                    "prefill": "## Template\n\n",
                    "minLength": 10,
                    "maxLength": 5000,
                },
            }
        },
        {"text": "The user's response text..."},
    ),
    ("freeform", {"review": {"type": "freeform", "payload": {}}}, {"anything": {"goes": [1, 2]}}),
    (
        "kroki-plugin",
        {
            "review": {
                "type": "freeform",
                "payload": {
                    "plugin": "kroki-diagram",
                    "type": "mermaid",
                    "source": "graph TD\n    A[Start] --> B[End]",
                },
            }
        },
        {"approved": True},
    ),
    (
        "iteration-step-1",
        {
            "text": "Here is the Q1 report draft.\n\n- Revenue: $1.2M\n- Growth: 15%",
            "status": "warning",
            "metadata": {"runId": "run-001", "model": "gpt-4"},
            "review": {"type": "approval", "payload": {"options": DEPLOY_OPTIONS}},
        },
        {"selectedOption": "reject"},
    ),
]


@pytest.fixture(scope="module")
async def owner(stack: RunningStack) -> AsyncIterator[Owner]:
    """One owner for every example (two Argon2 hashes each, once); each example has its own agent."""
    async with stack.new_owners(1) as [one]:
        yield one


@pytest.mark.parametrize(("body", "response"), [e[1:] for e in EXAMPLES], ids=[e[0] for e in EXAMPLES])
async def test_docs_example(owner: Owner, body: dict[str, Any], response: dict[str, Any] | None) -> None:
    agent = await owner.create_agent(name="docs")
    channel = agent["id"]
    created = await owner.agent.post("/api/v1/messages", json={"channelId": channel, **body})
    assert created.status_code == 201, created.text
    msg = created.json()
    assert msg["text"] == body.get("text")
    assert msg["status"] == body.get("status")
    for key, value in (body.get("metadata") or {}).items():
        assert msg["metadata"][key] == value
    if response is None:
        assert msg["review"] is None
        return
    review = body["review"]
    assert msg["review"]["status"] == "pending"
    assert msg["review"]["expiresAt"]
    for key, value in review["payload"].items():
        if key != "fields":  # form fields come back with their defaults filled in
            assert msg["review"]["payload"][key] == value, key
    answered = await owner.respond(msg["id"], response)
    assert answered.status_code == 200, answered.text
    waited = await owner.agent.get(
        f"/api/v1/reviews/{msg['id']}/wait", params={"channel": channel, "timeout": 30000}
    )
    assert waited.json()["status"] == "completed"
    assert waited.json()["message"]["review"]["response"] == response


async def test_iteration_example_from_the_docs(owner: Owner) -> None:
    """concepts/iterations: reject with feedback, revise with iterationOf, read the chain."""
    channel = (await owner.create_agent(name="reports"))["id"]
    step1 = next(e[1] for e in EXAMPLES if e[0] == "iteration-step-1")
    first = await owner.post_message(channel, **step1)
    rejected = await owner.human.post(
        f"/api/v1/reviews/{first['id']}/respond",
        json={
            "response": {"selectedOption": "reject"},
            "feedback": "Please add Q2 projections and fix the growth calculation.",
        },
    )
    assert rejected.status_code == 200
    waited = (
        await owner.agent.get(f"/api/v1/reviews/{first['id']}/wait", params={"channel": channel})
    ).json()
    assert waited["message"]["review"]["feedback"].startswith("Please add Q2")
    revision = await owner.post_message(
        channel,
        text="Revised Q1 report with Q2 projections.\n\n- Revenue: $1.2M\n- Growth: 18% (corrected)",
        status="warning",
        metadata={"runId": "run-002", "model": "gpt-4"},
        iterationOf=first["id"],
        review={"type": "approval", "payload": {"options": DEPLOY_OPTIONS}},
    )
    assert (revision["iterationGroupId"], revision["iteration"]) == (first["id"], 2)
    chain = (
        await owner.agent.get(f"/api/v1/messages/iterations/{revision['id']}", params={"channel": channel})
    ).json()
    assert chain["groupId"] == first["id"]
    assert [(m["id"], m["iteration"]) for m in chain["iterations"]] == [(first["id"], 1), (revision["id"], 2)]
