"""The SDK's models and calls against the running API's ``/openapi.json``, so neither can drift:

* every field of each SDK model is a property of the matching API schema, with a compatible type
  (the SDK accepts every JSON type and enum value the API may send);
* every property the API documents is modelled, every field the API requires is present, and no
  SDK field is required that the API may leave out;
* every endpoint the SDK calls exists with that method (the long-poll and the event stream are
  served by the realtime service and are not in the API's document).
"""

from __future__ import annotations

import functools
import operator
import types
from datetime import datetime
from typing import Any, Literal, Union, get_args, get_origin

import httpx
import pytest
from pydantic import BaseModel

import sayso
from sayso import calls, files, models
from tests.support.stack import RunningStack

# (SDK model, API schema whose properties it must model, API schema whose required fields it
# must have). Agent: the fields of the creation answer (with webhookSecret), required as listed.
PAIRS: list[tuple[type[BaseModel], str, str]] = [
    (sayso.Message, "MessageView", "MessageView"),
    (sayso.Review, "ReviewView", "ReviewView"),
    (models.Callback, "CallbackView", "CallbackView"),
    (models.PolicyFallback, "PolicyFallbackView", "PolicyFallbackView"),
    (sayso.Attachment, "AttachmentView", "AttachmentView"),
    (sayso.StatusEvent, "StatusEventView", "StatusEventView"),
    (sayso.Agent, "AgentCreated", "AgentOut"),
    (models.Command, "CommandOut", "CommandOut"),
    (sayso.MessagePage, "MessagePage", "MessagePage"),
    (sayso.IterationChain, "IterationsOut", "IterationsOut"),
    (files.FileInfo, "FileOut", "FileOut"),
    (files.UploadTicket, "UploadOut", "UploadOut"),
    (files.DownloadLink, "DownloadLinkOut", "DownloadLinkOut"),
    (sayso.ScopedToken, "ScopedTokenCreated", "ScopedTokenOut"),
    (sayso.Policy, "PolicyOut", "PolicyOut"),
    (sayso.PolicyTest, "PolicyTestOut", "PolicyTestOut"),
    (models.PolicyAsked, "AskedOut", "AskedOut"),
    (sayso.AuditPage, "AuditPage", "AuditPage"),
    (sayso.AuditEntry, "AuditEntryOut", "AuditEntryOut"),
    (sayso.AuditActor, "AuditActorOut", "AuditActorOut"),
    (sayso.Endpoint, "EndpointCreated", "EndpointOut"),
    (sayso.EndpointSecret, "EndpointSecretRotated", "EndpointSecretRotated"),
    (sayso.EndpointRecovered, "RecoverOut", "RecoverOut"),
    (sayso.EndpointReplayed, "ReplayOut", "ReplayOut"),
    (sayso.FeedPage, "FeedPage", "FeedPage"),
]
REALTIME_PATHS = {"/api/v1/reviews/{id}/wait", "/api/v1/events", "/api/v1/events/tickets"}


@pytest.fixture(scope="module")
def openapi(stack: RunningStack) -> dict[str, Any]:
    resp = httpx.get(f"{stack.url}/openapi.json", timeout=30)
    assert resp.status_code == 200, resp.text
    document: dict[str, Any] = resp.json()
    return document


def resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def api_shapes(schema: dict[str, Any], document: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of a property schema (anyOf/oneOf flattened, refs resolved)."""
    schema = resolve(schema, document)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return [s for sub in schema[key] for s in api_shapes(sub, document)]
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return api_shapes(schema["allOf"][0], document)
    return [schema]


def json_type(shape: dict[str, Any]) -> str:
    if "const" in shape:
        return {str: "string", bool: "boolean", int: "integer"}.get(type(shape["const"]), "any")
    kind = shape.get("type")
    if kind is None:
        return "object" if "properties" in shape else "any"
    assert isinstance(kind, str), f"unexpected type list {kind!r}"
    return kind


def sdk_shapes(annotation: Any) -> list[Any]:
    """The alternatives of a Python annotation (unions flattened)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return [s for arg in get_args(annotation) for s in sdk_shapes(arg)]
    return [annotation]


def sdk_type(shape: Any) -> str:
    origin = get_origin(shape) or shape
    if shape is Any:
        return "any"
    if shape is type(None):
        return "null"
    if origin is Literal:
        return "string"
    table: dict[Any, str] = {
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        datetime: "string",
    }
    if origin in table:
        return table[origin]
    if origin in (list, tuple):
        return "array"
    if origin is dict or (isinstance(origin, type) and issubclass(origin, BaseModel)):
        return "object"
    raise AssertionError(f"no JSON type for {shape!r}")


def incompatibilities(name: str, api: dict[str, Any], annotation: Any, document: dict[str, Any]) -> list[str]:
    """Why the SDK's ``annotation`` could fail to read what the API documents (empty: it can't)."""
    problems: list[str] = []
    sdk = sdk_shapes(annotation)
    sdk_kinds = {sdk_type(s) for s in sdk}
    if "any" in sdk_kinds:
        return []
    if "number" in sdk_kinds:
        sdk_kinds.add("integer")
    for shape in api_shapes(api, document):
        kind = json_type(shape)
        if kind not in sdk_kinds:
            problems.append(f"{name}: API sends {kind}, SDK reads {sorted(sdk_kinds)}")
            continue
        literals = [s for s in sdk if get_origin(s) is Literal]
        if kind == "string" and literals and str not in sdk:
            allowed = {v for lit in literals for v in get_args(lit)}
            sent = set(shape.get("enum", [])) | ({shape["const"]} if "const" in shape else set())
            if not sent:
                problems.append(f"{name}: API sends any string, SDK only {sorted(allowed)}")
            elif not sent <= allowed:
                problems.append(f"{name}: API values {sorted(sent - allowed)} unknown to the SDK")
        if kind == "array":
            item_annotations = [get_args(s)[0] for s in sdk if get_origin(s) in (list, tuple) and get_args(s)]
            if item_annotations and "items" in shape:
                items = functools.reduce(operator.or_, item_annotations)
                problems += incompatibilities(f"{name}[]", shape["items"], items, document)
    return problems


@pytest.mark.parametrize(("model", "schema_name", "required_of"), PAIRS, ids=[p[1] for p in PAIRS])
def test_model_matches_the_api_schema(
    openapi: dict[str, Any], model: type[BaseModel], schema_name: str, required_of: str
) -> None:
    schemas = openapi["components"]["schemas"]
    assert schema_name in schemas, f"the API no longer documents {schema_name}"
    properties: dict[str, Any] = schemas[schema_name]["properties"]
    api_required = set(schemas[required_of].get("required", []))
    fields = {(info.alias or name): info for name, info in model.model_fields.items()}

    unknown = sorted(set(fields) - set(properties))
    assert not unknown, f"{model.__name__} fields the API does not have: {unknown}"
    unmodelled = sorted(set(properties) - set(fields))
    assert not unmodelled, f"{schema_name} properties the SDK does not model: {unmodelled}"
    missing = sorted(api_required - set(fields))
    assert not missing, f"{model.__name__} lacks fields the API requires: {missing}"
    over_required = sorted(k for k, info in fields.items() if info.is_required() and k not in api_required)
    assert not over_required, f"{model.__name__} requires fields the API may omit: {over_required}"

    problems = [
        p for k, info in fields.items() for p in incompatibilities(k, properties[k], info.annotation, openapi)
    ]
    assert not problems, "\n".join(problems)


def sdk_calls() -> list[calls.Call[Any]]:
    """One of every call the SDK makes (ids are placeholders)."""
    ticket = files.UploadTicket.model_validate(
        {
            "id": "f",
            "fileKey": "f",
            "uploadUrl": "http://x/api/v1/files/upload/t",
            "expiresAt": "2030-01-01T00:00:00Z",
            "maxBytes": 1,
        }
    )
    return [
        calls.create_agent("a", {}),
        calls.list_agents(),
        calls.get_agent("a"),
        calls.update_agent("a", {}),
        calls.delete_agent("a"),
        calls.ping("a", "active", None),
        calls.list_plugins(),
        calls.send_message("c", "t"),
        calls.get_message("m", "c"),
        calls.list_messages("c", None, None, None, False),
        calls.delete_message("m", "c"),
        calls.expunge_message("m", "c"),
        calls.ack("m", "c"),
        calls.iterations("m", "c"),
        calls.patch_stream("s", "c", "t"),
        calls.stream_status("s", "c", "t", False),
        calls.get_review("m", "c"),
        calls.pending_reviews("c"),
        calls.wait_once("m", "c", 1000),
        calls.create_ticket(["c"]),
        calls.create_token(["c"], 60, False, None),
        calls.list_tokens(),
        calls.revoke_token("t"),
        files.ticket_call("c", "n", "text/plain"),
        files.put_call(ticket, b"", "text/plain"),
        files.store_text_call("c", "x", "n", "text/plain"),
        files.get_call("f"),
        files.list_call("c", None),
        files.download_call("f"),
        files.link_call("f"),
        calls.get_policy("c"),
        calls.get_policy(None),
        calls.set_policy("c", []),
        calls.set_policy(None, []),
        calls.test_policy("c", {}),
        calls.audit_page({}, None, None),
        calls.create_endpoint("c", {}),
        calls.create_endpoint(None, {}),
        calls.list_endpoints("c"),
        calls.list_endpoints(None),
        calls.get_endpoint("c", "e"),
        calls.get_endpoint(None, "e"),
        calls.update_endpoint("c", "e", {}),
        calls.update_endpoint(None, "e", {}),
        calls.delete_endpoint("c", "e"),
        calls.delete_endpoint(None, "e"),
        calls.rotate_endpoint_secret("c", "e"),
        calls.rotate_endpoint_secret(None, "e"),
        calls.feed_page("c", "x", 1),
    ]


def template_of(path: str, templates: list[str]) -> str | None:
    parts = path.split("/")
    for template in templates:
        pattern = template.split("/")
        if len(pattern) == len(parts) and all(
            p == q or (p.startswith("{") and p.endswith("}")) for p, q in zip(pattern, parts, strict=True)
        ):
            return template
    return None


def test_every_sdk_call_is_an_api_operation(openapi: dict[str, Any]) -> None:
    # Literal paths first, so /messages/streams/{id} is not taken for /messages/{id}/….
    templates = sorted(openapi["paths"], key=lambda t: t.count("{"))
    missing = []
    for call in sdk_calls():
        template = template_of(call.path, templates)
        if template is None:
            generic = template_of(call.path, sorted(REALTIME_PATHS))
            if generic is None:
                missing.append(f"{call.method} {call.path}")
            continue
        if call.method.lower() not in openapi["paths"][template]:
            missing.append(f"{call.method} {template}")
    assert not missing, f"SDK calls the API does not document: {missing}"
