"""The SDK's pure pieces, as tables: retry decisions, error mapping, SSE parsing, review bodies,
answers, upload targets; and that no client package imports a service."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import httpx
import pytest

import sayso
from sayso import calls
from sayso.events import EventParser
from sayso.files import upload_target
from sayso.retry import RetryPolicy
from sayso.reviews import parse_answer

POLICY = RetryPolicy(max_retries=3, max_wait=30.0, backoff=0.5)


@pytest.mark.parametrize(
    ("attempt", "status", "retry_after", "idempotent", "expected"),
    [
        (0, 429, 2.0, False, 2.0),  # throttled: always retried, as told
        (0, 429, None, False, 0.5),  # no Retry-After: back off
        (2, 429, None, True, 2.0),  # doubling
        (0, 429, 31.0, True, None),  # longer than max_wait: raise now
        (3, 429, 1.0, True, None),  # out of retries
        (0, 503, 2.0, True, 2.0),  # unavailable, safe to repeat
        (0, 503, 2.0, False, None),  # unavailable, not safe
        (1, None, None, True, 1.0),  # transport failure, safe
        (0, None, None, False, None),  # transport failure, not safe
        (0, 500, None, True, None),  # a server bug is not retried
        (0, 409, None, True, None),
        (0, 422, None, True, None),
    ],
)
def test_retry_policy(
    attempt: int, status: int | None, retry_after: float | None, idempotent: bool, expected: float | None
) -> None:
    assert POLICY.delay(attempt, status=status, retry_after=retry_after, idempotent=idempotent) == expected


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    kwargs: dict[str, Any] = {"json": body} if not isinstance(body, str) else {"text": body}
    return httpx.Response(status, headers=headers, request=httpx.Request("GET", "http://x/"), **kwargs)


@pytest.mark.parametrize(
    ("status", "body", "kind", "code", "message", "field"),
    [
        (422, {"error": {"code": "validation_error", "message": "bad", "field": "text"}}, sayso.ValidationError,
         "validation_error", "bad", "text"),
        (404, {"error": {"code": "not_found", "message": "message not found"}}, sayso.NotFound, "not_found",
         "message not found", None),
        (409, {"error": {"code": "conflict", "message": "answered"}}, sayso.Conflict, "conflict", "answered", None),
        (403, {"statusCode": 403, "message": "Not your agent"}, sayso.Forbidden, "error", "Not your agent", None),
        (502, "<html>Bad gateway</html>", sayso.ApiError, "error", "<html>Bad gateway</html>", None),
        (413, {"error": {"code": "payload_too_large", "message": "big", "field": 7}}, sayso.PayloadTooLarge,
         "payload_too_large", "big", None),
    ],
)  # fmt: skip
def test_error_mapping(
    status: int, body: Any, kind: type[sayso.ApiError], code: str, message: str, field: str | None
) -> None:
    error = sayso.errors.error_from_response(_response(status, body))
    assert type(error) is kind
    assert (error.status, error.code, error.message, error.field) == (status, code, message, field)


@pytest.mark.parametrize(
    # A negative delta is no delta-seconds: absent, so the SDK's own backoff applies (odd values:
    # tests/clients/test_sdk_numerals.py).
    ("header", "seconds"),
    [("5", 5.0), (" 0 ", 0.0), ("-3", None), ("Wed, 21 Oct 2026", None)],
)
def test_retry_after(header: str, seconds: float | None) -> None:
    error = sayso.errors.error_from_response(_response(429, {}, {"Retry-After": header}))
    assert isinstance(error, sayso.Throttled)
    assert error.retry_after == seconds


def test_event_parser() -> None:
    parser = EventParser()
    lines = [
        "retry: 5000", ": connected", "",
        "id: evt_1", "event: review:responded", 'data: {"id": "msg_1",', 'data: "x": 1}', "",
        ": heartbeat", "",
        "event: agent:status", "data: not json", "",
    ]  # fmt: skip
    events = [e for line in lines if (e := parser.feed(line)) is not None]
    assert [(e.id, e.type, e.data) for e in events] == [
        ("evt_1", "review:responded", {"id": "msg_1", "x": 1}),
        (None, "agent:status", "not json"),
    ]
    assert (parser.retry_ms, parser.last_event_id) == (5000, "evt_1")
    # After a reconnect the server repeats events from just before the resume point: dropped, and
    # the resume point stays.
    again = ["id: evt_2", "data: {}", "", "id: evt_1", "data: {}", "", "id: evt_3", "data: {}", ""]
    replayed = [e for line in again if (e := parser.feed(line)) is not None]
    assert [e.id for e in replayed] == ["evt_2", "evt_3"]
    assert parser.last_event_id == "evt_3"
    parser.feed("event: error")
    parser.feed('data: {"code": "credentials_revoked", "message": "revoked"}')
    with pytest.raises(sayso.Unauthorized):
        parser.feed("")  # the server's last frame for a revoked credential


@pytest.mark.parametrize(
    ("review", "body"),
    [
        (sayso.Approval(), {"type": "approval", "payload": {"options": [
            {"id": "approve", "label": "Approve", "style": "primary"},
            {"id": "reject", "label": "Reject", "style": "danger"}], "allowComment": False}}),
        (sayso.Selection(items=[sayso.Item(id="a", label="A", description="first")], mode="multi"),
         {"type": "selection", "payload": {"items": [{"id": "a", "label": "A", "description": "first"}], "mode": "multi"}}),
        (sayso.TextInput(min_length=10, markdown=True, submit_label="Send"),
         {"type": "text-input", "payload": {"submitLabel": "Send", "markdown": True, "minLength": 10}}),
        (sayso.Form(fields=[sayso.FormField(name="n", label="N", type="number", default_value=1, step=0.5)]),
         {"type": "form", "payload": {"fields": [{"name": "n", "label": "N", "type": "number", "required": False,
                                                   "defaultValue": 1, "step": 0.5}]}}),
        (sayso.Freeform(plugin="kroki-diagram", type="mermaid", source="graph TD"),
         {"type": "freeform", "payload": {"plugin": "kroki-diagram", "type": "mermaid", "source": "graph TD"}}),
        ({"type": "approval", "payload": {}}, {"type": "approval", "payload": {}}),
    ],
    ids=["approval", "selection", "text-input", "form", "freeform", "placet-dict"],
)  # fmt: skip
def test_review_bodies(review: sayso.ReviewRequest | dict[str, Any], body: dict[str, Any]) -> None:
    assert calls.review_body(review) == body
    assert calls.review_body(review, expires_in=90.4)["expiresInSeconds"] == 90


@pytest.mark.parametrize(
    ("review_type", "response", "expected"),
    [
        ("approval", {"selectedOption": "approve"}, sayso.ApprovalAnswer(selected_option="approve")),
        ("selection", {"selectedIds": []}, sayso.SelectionAnswer(selected_ids=[])),
        ("form", {"a": 1}, sayso.FormAnswer(values={"a": 1})),
        ("text-input", {"text": ""}, sayso.TextInputAnswer(text="")),
        ("freeform", {"anything": [1]}, sayso.FreeformAnswer(data={"anything": [1]})),
        ("form", {"_dismissed": True}, sayso.Dismissed()),
    ],
)
def test_answers(review_type: str, response: dict[str, Any], expected: Any) -> None:
    assert parse_answer(review_type, response) == expected


def test_wait_poll_length_and_placet_timeout_status() -> None:
    call = calls.wait_once("m/1", "a b", 90_000)
    assert call.path == "/api/v1/reviews/m%2F1/wait"
    assert call.params == {"channel": "a b", "timeout": "30000"}  # never above the server's cap
    assert calls.wait_once("m", "c", 0).params == {"channel": "c", "timeout": "1"}  # never 0 (= default)
    placet = sayso.WaitResult.model_validate({"status": "timeout"})
    assert (placet.done, placet.message) == (False, None)


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://127.0.0.1:8000/api/v1/files/upload/file_1.99.sig", "/api/v1/files/upload/file_1.99.sig"),
        ("https://public.example/api/v1/files/upload/t?x=1", "/api/v1/files/upload/t?x=1"),
        ("https://bucket.s3.example/obj?sig=1", "https://bucket.s3.example/obj?sig=1"),
    ],
)
def test_upload_target(url: str, target: str) -> None:
    assert upload_target(url) == target


def test_message_creation_always_carries_a_client_id() -> None:
    first, second = calls.send_message("c", "t"), calls.send_message("c", "t")
    assert first.json["clientId"] != second.json["clientId"]
    assert first.idempotent
    assert calls.send_message("c", "t", client_id="mine").json["clientId"] == "mine"


CLIENTS = Path(__file__).parents[2] / "clients"
SERVICES = ("sayso_api", "sayso_common", "sayso_dispatcher", "sayso_expirer", "sayso_realtime")


@pytest.mark.parametrize(
    "source", sorted(CLIENTS.glob("*/src/**/*.py")), ids=lambda p: str(p.relative_to(CLIENTS))
)
def test_clients_use_the_public_api_only(source: Path) -> None:
    imported: list[str] = []
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.append(node.module)
    assert not [m for m in imported if m.split(".")[0] in (*SERVICES, "sayso_devstack")]


def test_a_review_answered_by_a_policy_reads_its_rule() -> None:
    review = {"type": "approval", "status": "completed", "response": {"selectedOption": "approve"}}
    decided = sayso.models.Review.model_validate(
        {**review, "respondedBy": None, "decidedBy": {"policy": "pol_1", "rule": 2, "version": 7}}
    )
    assert decided.decided_by is not None
    assert (decided.decided_by.policy, decided.decided_by.rule, decided.decided_by.version) == ("pol_1", 2, 7)
    assert decided.responded_by is None
    assert decided.answer is not None
    assert sayso.models.Review.model_validate({**review, "respondedBy": "usr_1"}).decided_by is None
