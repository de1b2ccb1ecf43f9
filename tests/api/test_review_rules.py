"""Table tests for review payload and response rules (pure functions, no server)."""

from __future__ import annotations

from typing import Any

import pytest

from sayso_common.reviews import DEFAULT_APPROVAL_OPTIONS, ReviewError, normalise_payload, validate_response

APPROVAL = normalise_payload("approval", {})
SELECT_ONE = normalise_payload(
    "selection", {"options": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}]}
)
SELECT_MANY = {**SELECT_ONE, "multiple": True}
FORM = normalise_payload(
    "form",
    {
        "fields": [
            {"name": "title", "label": "Title", "type": "text", "required": True},
            {"name": "count", "type": "number", "min": 1, "max": 10},
            {"name": "email", "type": "email"},
            {"name": "site", "type": "url"},
            {"name": "env", "type": "select", "options": [{"id": "prod", "label": "Prod"}]},
            {"name": "agree", "type": "checkbox"},
            {"name": "day", "type": "date"},
        ]
    },
)
TEXT = normalise_payload("text-input", {"maxLength": 5})
PLACET_SINGLE = normalise_payload(
    "selection", {"mode": "single", "items": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}]}
)
PLACET_MULTI = {**PLACET_SINGLE, "mode": "multi"}
# Placet's twelve field types, with its select options as plain strings and as {value, label}.
FORM12 = normalise_payload(
    "form",
    {
        "fields": [
            {"name": "title", "type": "text", "label": "Title", "required": True},
            {"name": "body", "type": "textarea", "label": "Body"},
            {"name": "n", "type": "number", "label": "N", "min": 0},
            {"name": "mail", "type": "email", "label": "Mail"},
            {"name": "site", "type": "url", "label": "Site"},
            {"name": "tier", "type": "select", "label": "Tier", "options": ["free", "pro"]},
            {
                "name": "env",
                "type": "select",
                "label": "Env",
                "options": [{"value": "prod", "label": "Prod"}],
            },
            {"name": "ok", "type": "checkbox", "label": "OK", "defaultValue": True},
            {"name": "day", "type": "date", "label": "Day"},
            {"name": "at", "type": "time", "label": "At"},
            {"name": "when", "type": "datetime", "label": "When"},
            {"name": "load", "type": "range", "label": "Load", "min": 0, "max": 100, "step": 5, "unit": "%"},
            {"name": "secret", "type": "password", "label": "Secret"},
        ],
        "submitLabel": "Deploy",
        "dismissLabel": "Not now",
    },
)
FORM12_ANSWER = {
    "title": "t", "body": "b", "n": 3, "mail": "a@b.co", "site": "https://x.io", "tier": "pro", "env": "prod",
    "ok": True, "day": "2026-01-31", "at": "14:30", "when": "2026-01-31T14:30", "load": 55, "secret": "hunter2",
}  # fmt: skip


def test_placet_payloads_are_kept_as_sent() -> None:
    assert PLACET_SINGLE == {
        "mode": "single",
        "items": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}],
    }
    assert FORM12["submitLabel"] == "Deploy"
    fields = {f["name"]: f for f in FORM12["fields"]}
    assert fields["tier"]["options"] == [{"value": "free", "label": "free"}, {"value": "pro", "label": "pro"}]
    assert fields["ok"]["defaultValue"] is True
    assert (fields["load"]["step"], fields["load"]["unit"]) == (5, "%")
    ghost = normalise_payload(
        "approval", {"options": [{"id": "x", "label": "X", "style": "ghost"}], "allowComment": True}
    )
    assert ghost["options"][0]["style"] == "ghost"
    assert ghost["allowComment"] is True


def test_approval_defaults_to_approve_and_reject() -> None:
    assert APPROVAL["options"] == DEFAULT_APPROVAL_OPTIONS
    # null reads as absent, as Placet's `payload.options ?? [Approve, Reject]`.
    assert normalise_payload("approval", {"options": None})["options"] == DEFAULT_APPROVAL_OPTIONS


@pytest.mark.parametrize("options", [[], "", 0, False, {}])
def test_approval_options_that_are_empty_or_falsy_are_refused(options: Any) -> None:
    """Not silently replaced by Approve/Reject: refused as a wrong type is."""
    with pytest.raises(ReviewError) as err:
        normalise_payload("approval", {"options": options})
    assert err.value.field == "review.payload.options"
    if options == []:
        assert "leave options out" in err.value.message


@pytest.mark.parametrize(
    ("review_type", "payload", "field"),
    [
        ("approval", {"options": "yes"}, "review.payload.options"),
        ("approval", {"options": [{"id": "x"}]}, "review.payload.options[0].label"),
        (
            "approval",
            {"options": [{"id": "x", "label": "X", "style": "neon"}]},
            "review.payload.options[0].style",
        ),
        (
            "approval",
            {"options": [{"id": "x", "label": "X"}, {"id": "x", "label": "Y"}]},
            "review.payload.options[1].id",
        ),
        ("approval", {"options": [{"id": "", "label": "X"}]}, "review.payload.options[0].id"),
        (
            "approval",
            {"options": [{"id": f"o{i}", "label": "x"} for i in range(101)]},
            "review.payload.options",
        ),
        ("approval", [], "review.payload"),
        ("selection", {}, "review.payload.items"),
        ("selection", {"options": [{"id": "a", "label": "A"}], "multiple": "yes"}, "review.payload.multiple"),
        ("form", {}, "review.payload.fields"),
        ("form", {"fields": [{"name": "a", "type": "colour"}]}, "review.payload.fields[0].type"),
        ("form", {"fields": [{"name": "a"}, {"name": "a"}]}, "review.payload.fields[1].name"),
        ("form", {"fields": [{"name": "a", "type": "select"}]}, "review.payload.fields[0].options"),
        ("form", {"fields": [{"name": "a", "type": "number", "min": "1"}]}, "review.payload.fields[0].min"),
        ("form", {"fields": [{"name": f"f{i}"} for i in range(101)]}, "review.payload.fields"),
        ("text-input", {"maxLength": -1}, "review.payload.maxLength"),
        ("text-input", {"multiline": 1}, "review.payload.multiline"),
        ("text-input", {"prefill": 5}, "review.payload.prefill"),
        ("selection", {"mode": "many", "items": [{"id": "a", "label": "A"}]}, "review.payload.mode"),
        ("selection", {"mode": "single", "items": []}, "review.payload.items"),
        ("approval", {"allowComment": "yes"}, "review.payload.allowComment"),
        ("approval", {"submitLabel": ""}, "review.payload.submitLabel"),
        ("form", {"fields": [{"name": "r", "type": "range", "step": 0}]}, "review.payload.fields[0].step"),
        (
            "form",
            {"fields": [{"name": "r", "type": "range", "min": 5, "max": 1}]},
            "review.payload.fields[0].max",
        ),
        (
            "form",
            {"fields": [{"name": "s", "type": "select", "options": [3]}]},
            "review.payload.fields[0].options[0]",
        ),
        ("survey", {}, "review.type"),
    ],
)
def test_bad_payloads_name_the_field(review_type: str, payload: Any, field: str) -> None:
    with pytest.raises(ReviewError) as err:
        normalise_payload(review_type, payload)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("review_type", "payload", "response", "stored"),
    [
        ("approval", APPROVAL, {"selectedOption": "approve"}, {"selectedOption": "approve"}),
        (
            "approval",
            APPROVAL,
            {"selectedOption": "reject", "comment": "no"},
            {"selectedOption": "reject", "comment": "no"},
        ),
        ("selection", SELECT_ONE, {"selectedIds": ["b"]}, {"selectedIds": ["b"]}),
        ("selection", SELECT_MANY, {"selectedIds": ["a", "b"]}, {"selectedIds": ["a", "b"]}),
        ("form", FORM, {"title": "x"}, {"title": "x"}),
        (
            "form",
            FORM,
            {
                "title": "x",
                "count": 3,
                "email": "a@b.co",
                "site": "https://x.io",
                "env": "prod",
                "agree": True,
                "day": "2026-01-31",
            },
            {
                "title": "x",
                "count": 3,
                "email": "a@b.co",
                "site": "https://x.io",
                "env": "prod",
                "agree": True,
                "day": "2026-01-31",
            },
        ),
        ("text-input", TEXT, {"text": "hello"}, {"text": "hello"}),
        ("freeform", {}, {"anything": [1, {"deep": None}]}, {"anything": [1, {"deep": None}]}),
        # Placet's new vocabulary.
        ("selection", PLACET_MULTI, {"selectedIds": ["b", "a"]}, {"selectedIds": ["b", "a"]}),
        ("selection", PLACET_SINGLE, {"selectedIds": ["a"]}, {"selectedIds": ["a"]}),
        ("form", FORM12, FORM12_ANSWER, FORM12_ANSWER),
        ("form", FORM12, {"_dismissed": True}, {"_dismissed": True}),
        ("text-input", {"dismissLabel": "Skip"}, {"_dismissed": True}, {"_dismissed": True}),
        ("approval", {**APPROVAL, "dismissLabel": "Later"}, {"_dismissed": True}, {"_dismissed": True}),
    ],
)
def test_good_responses_are_stored(review_type: str, payload: Any, response: Any, stored: Any) -> None:
    assert validate_response(review_type, payload, response) == stored


@pytest.mark.parametrize(
    ("review_type", "payload", "response", "field"),
    [
        ("approval", APPROVAL, {"selectedOption": "maybe"}, "response.selectedOption"),
        ("approval", APPROVAL, {}, "response.selectedOption"),
        ("approval", APPROVAL, "approve", "response"),
        ("freeform", {}, [1, 2, 3], "response"),
        ("approval", APPROVAL, {"_dismissed": True}, "response.selectedOption"),  # no dismissLabel
        ("selection", PLACET_SINGLE, {"selectedIds": ["a", "b"]}, "response.selectedIds"),
        ("selection", PLACET_MULTI, {"selectedIds": ["c"]}, "response.selectedIds"),
        ("form", FORM12, {**FORM12_ANSWER, "at": "25:00"}, "response.at"),
        ("form", FORM12, {**FORM12_ANSWER, "when": "tomorrow"}, "response.when"),
        ("form", FORM12, {**FORM12_ANSWER, "load": 101}, "response.load"),
        ("form", FORM12, {**FORM12_ANSWER, "tier": "gold"}, "response.tier"),
        ("form", FORM12, {**FORM12_ANSWER, "secret": 5}, "response.secret"),
        ("approval", APPROVAL, {"selectedOption": "approve", "extra": 1}, "response.extra"),
        ("approval", APPROVAL, {"selectedOption": "approve", "comment": "x" * 4001}, "response.comment"),
        ("selection", SELECT_ONE, {"selectedIds": []}, "response.selectedIds"),
        ("selection", SELECT_ONE, {"selectedIds": ["a", "b"]}, "response.selectedIds"),
        ("selection", SELECT_MANY, {"selectedIds": ["a", "a"]}, "response.selectedIds"),
        ("selection", SELECT_MANY, {"selectedIds": ["zzz"]}, "response.selectedIds"),
        ("selection", SELECT_MANY, {"selectedIds": "a"}, "response.selectedIds"),
        ("form", FORM, {}, "response.title"),
        ("form", FORM, {"title": ""}, "response.title"),
        ("form", FORM, {"title": 5}, "response.title"),
        ("form", FORM, {"title": "x", "count": "3"}, "response.count"),
        ("form", FORM, {"title": "x", "count": True}, "response.count"),
        ("form", FORM, {"title": "x", "count": 11}, "response.count"),
        ("form", FORM, {"title": "x", "count": 0}, "response.count"),
        ("form", FORM, {"title": "x", "email": "nope"}, "response.email"),
        ("form", FORM, {"title": "x", "site": "ftp://x"}, "response.site"),
        ("form", FORM, {"title": "x", "env": "dev"}, "response.env"),
        ("form", FORM, {"title": "x", "agree": "yes"}, "response.agree"),
        ("form", FORM, {"title": "x", "day": "31/01/2026"}, "response.day"),
        ("form", FORM, {"title": "x", "day": 20260131}, "response.day"),
        ("form", FORM, {"title": "x", "unknown": 1}, "response.unknown"),
        ("text-input", TEXT, {"text": ""}, "response.text"),
        ("text-input", TEXT, {"text": "toolong"}, "response.text"),
        ("text-input", TEXT, {"text": 7}, "response.text"),
        ("text-input", TEXT, {"text": "ok", "more": 1}, "response.more"),
    ],
)
def test_bad_responses_name_the_field(review_type: str, payload: Any, response: Any, field: str) -> None:
    with pytest.raises(ReviewError) as err:
        validate_response(review_type, payload, response)
    assert err.value.field == field
