"""The AsyncAPI 3.0 document (``/asyncapi.json``): valid against the official JSON Schema, equal to
what ``python -m sayso_devstack.asyncapi`` generates from the event models (the drift test), served
with its HTML page, and describing the events the stack really publishes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from sayso_common.documents import EventDoc
from sayso_common.events import event_to_json
from sayso_common.outbox import event_from_events_document
from sayso_devstack import asyncapi
from tests.support.stack import Owner, RunningStack, eventually

SCHEMA = Path(__file__).parent / "contract" / "asyncapi-3.0.0.schema.json"


def committed() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(asyncapi.DOCUMENT.read_text())
    return loaded


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolve(doc: dict[str, Any], ref: str) -> Any:
    target: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target


def test_the_document_is_valid_asyncapi_3() -> None:
    doc = committed()
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(doc)
    assert doc["asyncapi"] == "3.0.0"
    for ref in refs(doc):  # the schema does not check that references lead somewhere
        assert ref.startswith("#/"), ref
        resolve(doc, ref)


def test_the_committed_document_is_the_generated_one() -> None:
    """Fails when an event model, a topic or a consumer group changes without the document:
    regenerate it with `uv run --frozen python -m sayso_devstack.asyncapi`."""
    assert asyncapi.render(asyncapi.document()) == asyncapi.DOCUMENT.read_text()
    assert asyncapi.main(["--check"]) == 0


def test_the_consumer_groups_come_from_faststream() -> None:
    doc = committed()
    receives = {name for name, op in doc["operations"].items() if op["action"] == "receive"}
    assert {"dispatcher.receive.review.responded", "notifier.receive.message.created"} <= receives
    # The dispatcher reads it for endpoints that ask for delivery:status; the notifier does not.
    assert "dispatcher.receive.delivery.status" in receives
    assert "notifier.receive.delivery.status" not in receives
    socket = doc["channels"]["socketio"]["messages"]
    assert {resolve(doc, m["$ref"])["name"] for m in socket.values()} >= {"review:responded", "auth:revoked"}
    sse = doc["channels"]["sse"]["messages"]
    assert {resolve(doc, m["$ref"])["name"] for m in sse.values()} >= {"review:responded", "error"}


def validator_for(doc: dict[str, Any], schema_name: str) -> jsonschema.Draft7Validator:
    registry: Registry[Any] = Registry().with_resource(
        "urn:asyncapi", Resource.from_contents(doc, default_specification=DRAFT7)
    )
    return jsonschema.Draft7Validator(
        {"$ref": f"urn:asyncapi#/components/schemas/{schema_name}"}, registry=registry
    )


async def test_served_with_its_page_and_the_real_events_fit_it(stack: RunningStack, owner: Owner) -> None:
    async with stack.client() as client:
        served = await client.get("/asyncapi.json")
        page = await client.get("/asyncapi")
    assert served.status_code == 200
    assert served.json() == committed()
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]  # no script at all
    assert "<script" not in page.text  # nothing from a CDN
    assert "https://" not in page.text
    assert 'id="channel-review.responded"' in page.text
    assert 'id="schema-MessageView"' in page.text

    doc = served.json()
    agent = await owner.create_agent()
    msg = await owner.post_message(agent["id"], review={"type": "approval", "payload": {}})
    answered = await owner.human.post(
        f"/api/v1/reviews/{msg['id']}/respond", json={"response": {"selectedOption": "approve"}}
    )
    assert answered.status_code == 200
    async with stack.mongo() as mongo:

        async def stored() -> list[dict[str, Any]] | None:
            found = await mongo.sayso.events.find({"data.message.id": msg["id"]}).to_list()
            return found if len(found) >= 2 else None

        documents = await eventually(stored, what="the message's two events in the events collection")
    for document in documents:
        event = event_from_events_document(cast(EventDoc, document))
        record = json.loads(event_to_json(event))  # what the relay publishes to Kafka
        validator_for(doc, type(event).__name__).validate(record)
        broken = {**record, "data": {**record["data"], "message": {**record["data"]["message"], "id": 7}}}
        with pytest.raises(jsonschema.ValidationError):
            validator_for(doc, type(event).__name__).validate(broken)
