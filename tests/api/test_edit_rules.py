"""Table tests for edit-before-approve (issue #32): ``review.payload.edit = {args, schema?}`` and
``response.editedArgs`` (pure rules of sayso_common.reviews, no server)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sayso_common.reviews import MAX_EDIT_BYTES, ReviewError, normalise_payload, validate_response

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "amount": {"type": "number", "minimum": 0, "maximum": 1000},
        "currency": {"enum": ["EUR", "USD"]},
        "note": {"type": "string", "maxLength": 20, "pattern": "^[a-z ]*$"},
        "lines": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["amount", "currency"],
    "additionalProperties": False,
}
ARGS = {"amount": 120, "currency": "EUR"}
EDITABLE = normalise_payload("approval", {"edit": {"args": ARGS, "schema": SCHEMA}})
UNCHECKED = normalise_payload("approval", {"edit": {"args": {"to": "ops@example.com"}}})
CUSTOM = normalise_payload(
    "approval",
    {
        "options": [
            {"id": "ship", "label": "Ship", "style": "primary"},
            {"id": "hold", "label": "Hold", "style": "secondary"},
            {"id": "yes", "label": "Yes"},
        ],
        "edit": {"args": ARGS, "schema": SCHEMA},
    },
)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ("amount=3", "review.payload.edit"),
        ([], "review.payload.edit"),
        ({}, "review.payload.edit.args"),
        ({"args": None}, "review.payload.edit.args"),
        ({"args": [1, 2]}, "review.payload.edit.args"),
        ({"args": "x"}, "review.payload.edit.args"),
        ({"args": {}, "extra": 1}, "review.payload.edit.extra"),
        ({"args": {"blob": "x" * MAX_EDIT_BYTES}}, "review.payload.edit.args"),
        ({"args": {}, "schema": "object"}, "review.payload.edit.schema"),
        ({"args": {}, "schema": 3}, "review.payload.edit.schema"),
        ({"args": {}, "schema": {"type": "objekt"}}, "review.payload.edit.schema"),
        ({"args": {}, "schema": {"properties": {"a": {"minimum": "zero"}}}}, "review.payload.edit.schema"),
        ({"args": {}, "schema": {"required": "amount"}}, "review.payload.edit.schema"),
        # Not RE2: back-references and look-arounds are refused up front.
        ({"args": {}, "schema": {"properties": {"a": {"pattern": "(a)\\1"}}}}, "review.payload.edit.schema"),
        ({"args": {}, "schema": {"patternProperties": {"(?=x)": {}}}}, "review.payload.edit.schema"),
        (
            {"args": {}, "schema": {"patternProperties": {"^x": {}}, "unevaluatedProperties": False}},
            "review.payload.edit.schema",
        ),
        # No network: a remote $ref is an unresolvable one.
        (
            {"args": {"a": 1}, "schema": {"properties": {"a": {"$ref": "http://127.0.0.1:9/s.json"}}}},
            "review.payload.edit.schema",
        ),
        (
            {"args": {"a": 1}, "schema": {"properties": {"a": {"$ref": "#/$defs/missing"}}}},
            "review.payload.edit.schema",
        ),
        (
            {"args": {"a": 1}, "schema": {"properties": {"a": {"$ref": "#/properties/a"}}}},
            "review.payload.edit.schema",
        ),
        # The proposed arguments must satisfy the schema, named down to the property.
        ({"args": {"currency": "EUR"}, "schema": SCHEMA}, "review.payload.edit.args.amount"),
        ({"args": {**ARGS, "amount": -1}, "schema": SCHEMA}, "review.payload.edit.args.amount"),
        ({"args": {**ARGS, "currency": "GBP"}, "schema": SCHEMA}, "review.payload.edit.args.currency"),
        ({"args": {**ARGS, "lines": [1, "2"]}, "schema": SCHEMA}, "review.payload.edit.args.lines[1]"),
        ({"args": {**ARGS, "bcc": "x"}, "schema": SCHEMA}, "review.payload.edit.args.bcc"),
        ({"args": {}, "schema": False}, "review.payload.edit.args"),
    ],
)
def test_bad_edit_is_refused_naming_the_field(edit: Any, field: str) -> None:
    with pytest.raises(ReviewError) as caught:
        normalise_payload("approval", {"edit": edit})
    assert caught.value.field == field, caught.value


def _nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array"}
    for _ in range(levels):
        schema = {"type": "array", "items": schema}
    return schema


@pytest.mark.parametrize("levels", [40, 150, 2000])
def test_a_deeply_nested_schema_is_refused_not_a_crash(levels: int) -> None:
    """150 levels of nested items (1.7 KB) overflowed jsonschema's recursion: a 500 at post time."""
    with pytest.raises(ReviewError) as caught:
        normalise_payload(
            "approval", {"edit": {"args": {}, "schema": {"properties": {"a": _nested(levels)}}}}
        )
    assert caught.value.field == "review.payload.edit.schema"
    assert "nested" in caught.value.message


@pytest.mark.parametrize(
    "edit",
    [
        {"args": {}},
        {"args": {"x": [1, {"y": None}]}},
        {"args": ARGS, "schema": SCHEMA},
        {"args": ARGS, "schema": None},
        {"args": {"a": 1}, "schema": True},
        {
            "args": {"a": 1},
            "schema": {"$defs": {"n": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/n"}}},
        },
        {"args": {"id": "x-1"}, "schema": {"patternProperties": {"^i": {"pattern": "^x-[0-9]+$"}}}},
    ],
)
def test_good_edit_is_stored_as_sent(edit: dict[str, Any]) -> None:
    stored = normalise_payload("approval", {"edit": edit})
    assert stored["edit"] == edit
    assert stored["options"][0]["id"] == "approve"


def test_edit_null_is_no_edit() -> None:
    assert normalise_payload("approval", {"edit": None})["edit"] is None


def test_a_quorum_review_cannot_be_editable() -> None:
    with pytest.raises(ReviewError) as caught:
        normalise_payload("approval", {"edit": {"args": {}}}, quorum=True)
    assert caught.value.field == "review.payload.edit"
    assert "quorum" in caught.value.message
    assert "edit" not in normalise_payload("approval", {}, quorum=True)


@pytest.mark.parametrize("review_type", ["selection", "form", "text-input"])
def test_only_approval_reviews_are_editable(review_type: str) -> None:
    base = {
        "selection": {"items": [{"id": "a", "label": "A"}]},
        "form": {"fields": [{"name": "a", "label": "A"}]},
        "text-input": {},
    }[review_type]
    with pytest.raises(ReviewError) as caught:
        normalise_payload(review_type, {**base, "edit": {"args": {}}})
    assert caught.value.field == "review.payload.edit"


def test_freeform_payload_keeps_an_edit_key_as_data() -> None:
    assert normalise_payload("freeform", {"edit": "anything"}) == {"edit": "anything"}


@pytest.mark.parametrize(
    ("payload", "response", "stored"),
    [
        (EDITABLE, {"selectedOption": "approve"}, {"selectedOption": "approve"}),
        (
            EDITABLE,
            {"selectedOption": "reject", "comment": "no"},
            {"selectedOption": "reject", "comment": "no"},
        ),
        (
            EDITABLE,
            {"selectedOption": "approve", "editedArgs": {"amount": 99.5, "currency": "USD"}},
            {"selectedOption": "approve", "editedArgs": {"amount": 99.5, "currency": "USD"}},
        ),
        (
            EDITABLE,
            {"editedArgs": {**ARGS, "note": "half now"}, "comment": "ok", "selectedOption": "approve"},
            {"selectedOption": "approve", "comment": "ok", "editedArgs": {**ARGS, "note": "half now"}},
        ),
        # No schema: any object.
        (
            UNCHECKED,
            {"selectedOption": "approve", "editedArgs": {}},
            {"selectedOption": "approve", "editedArgs": {}},
        ),
        # Approving is the one rule (sayso_common.quorum): a primary style or an approving id.
        (
            CUSTOM,
            {"selectedOption": "ship", "editedArgs": ARGS},
            {"selectedOption": "ship", "editedArgs": ARGS},
        ),
        (
            CUSTOM,
            {"selectedOption": "yes", "editedArgs": ARGS},
            {"selectedOption": "yes", "editedArgs": ARGS},
        ),
    ],
)
def test_edited_args_accepted(
    payload: dict[str, Any], response: dict[str, Any], stored: dict[str, Any]
) -> None:
    assert validate_response("approval", payload, response) == stored


@pytest.mark.parametrize(
    ("payload", "response", "field"),
    [
        (EDITABLE, {"selectedOption": "reject", "editedArgs": ARGS}, "response.editedArgs"),
        (CUSTOM, {"selectedOption": "hold", "editedArgs": ARGS}, "response.editedArgs"),
        (
            normalise_payload("approval", {}),
            {"selectedOption": "approve", "editedArgs": ARGS},
            "response.editedArgs",
        ),
        (EDITABLE, {"selectedOption": "approve", "editedArgs": None}, "response.editedArgs"),
        (EDITABLE, {"selectedOption": "approve", "editedArgs": [ARGS]}, "response.editedArgs"),
        (EDITABLE, {"selectedOption": "approve", "editedArgs": "amount=3"}, "response.editedArgs"),
        (
            EDITABLE,
            {"selectedOption": "approve", "editedArgs": {"currency": "EUR"}},
            "response.editedArgs.amount",
        ),
        (
            EDITABLE,
            {"selectedOption": "approve", "editedArgs": {**ARGS, "amount": "120"}},
            "response.editedArgs.amount",
        ),
        (
            EDITABLE,
            {"selectedOption": "approve", "editedArgs": {**ARGS, "amount": 1001}},
            "response.editedArgs.amount",
        ),
        (
            EDITABLE,
            {"selectedOption": "approve", "editedArgs": {**ARGS, "currency": "GBP"}},
            "response.editedArgs.currency",
        ),
        (
            EDITABLE,
            {"selectedOption": "approve", "editedArgs": {**ARGS, "note": "UPPER"}},
            "response.editedArgs.note",
        ),
        (
            EDITABLE,
            {"selectedOption": "approve", "editedArgs": {**ARGS, "lines": [1, 2.5]}},
            "response.editedArgs.lines[1]",
        ),
        (
            EDITABLE,
            {"selectedOption": "approve", "editedArgs": {**ARGS, "to": "x"}},
            "response.editedArgs.to",
        ),
        (
            UNCHECKED,
            {"selectedOption": "approve", "editedArgs": {"blob": "x" * MAX_EDIT_BYTES}},
            "response.editedArgs",
        ),
        (EDITABLE, {"selectedOption": "approve", "editedArgs": ARGS, "args": ARGS}, "response.args"),
    ],
)
def test_bad_edited_args_refused_naming_the_place(
    payload: dict[str, Any], response: dict[str, Any], field: str
) -> None:
    with pytest.raises(ReviewError) as caught:
        validate_response("approval", payload, response)
    assert caught.value.field == field, caught.value


def test_edited_args_are_not_dismissal() -> None:
    payload = normalise_payload("approval", {"dismissLabel": "Skip", "edit": {"args": ARGS}})
    assert validate_response("approval", payload, {"_dismissed": True}) == {"_dismissed": True}


def test_a_backtracking_pattern_does_not_stall() -> None:
    """``^(a+)+$`` against 40 a's and a '!' takes Python's re about 2^40 steps (the test would hang
    until pytest's timeout); RE2 answers at once."""
    schema = {"properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}
    payload = normalise_payload("approval", {"edit": {"args": {"s": "aaa"}, "schema": schema}})
    with pytest.raises(ReviewError) as caught:
        validate_response(
            "approval", payload, {"selectedOption": "approve", "editedArgs": {"s": "a" * 40 + "!"}}
        )
    assert caught.value.field == "response.editedArgs.s"


class _SchemaHost(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        body = json.dumps({"type": "integer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/schema+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_remote_ref_is_never_fetched() -> None:
    """A schema served on loopback that the arguments satisfy: fetched, it would pass; here it is
    an unresolvable reference and nothing asks the server for it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SchemaHost)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/amount.json"
        edit = {"args": {"a": 1}, "schema": {"properties": {"a": {"$ref": url}}}}
        with pytest.raises(ReviewError) as caught:
            normalise_payload("approval", {"edit": edit})
        assert caught.value.field == "review.payload.edit.schema"
        assert _SchemaHost.hits == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
