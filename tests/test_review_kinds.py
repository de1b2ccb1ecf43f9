"""sayso_common.reviews as the services use it (pure, no server): the typed model of each
stored review, its one-click answers and their labels, the response a link or button records,
and whether the review is still open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sayso_common import reviews
from sayso_common.documents import ReviewDoc
from sayso_common.reviews import Choice, OptionDoc, ReviewError

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
ITEMS: list[OptionDoc] = [{"id": "a", "label": "Alpha"}, {"id": "b", "label": "Beta"}]
APPROVAL = reviews.normalise_payload("approval", {})


def review(type_: str, payload: dict[str, Any], **rest: Any) -> ReviewDoc:
    doc: dict[str, Any] = {"type": type_, "payload": payload, "status": "pending", "expires_at": NOW, **rest}
    return doc  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("type_", "payload", "model", "choices"),
    [
        (
            "approval",
            APPROVAL,
            reviews.Approval,
            [Choice("approve", "Approve", "primary"), Choice("reject", "Reject", "danger")],
        ),
        # Stored without options (before they were filled in): the defaults, as the inbox shows.
        (
            "approval",
            {},
            reviews.Approval,
            [Choice("approve", "Approve", "primary"), Choice("reject", "Reject", "danger")],
        ),
        (
            "selection",
            {"mode": "single", "items": ITEMS},
            reviews.Selection,
            [Choice("a", "Alpha"), Choice("b", "Beta")],
        ),
        # The older stored shape reads the same.
        (
            "selection",
            {"options": ITEMS, "multiple": False},
            reviews.Selection,
            [Choice("a", "Alpha"), Choice("b", "Beta")],
        ),
        # Several items, a form, text or JSON need the inbox.
        ("selection", {"mode": "multi", "items": ITEMS}, reviews.Selection, []),
        ("selection", {"options": ITEMS, "multiple": True}, reviews.Selection, []),
        ("form", {"fields": [{"name": "n", "type": "number"}]}, reviews.Form, []),
        ("text-input", {}, reviews.TextInput, []),
        ("freeform", {"options": ITEMS}, reviews.Freeform, []),
    ],
)
def test_each_type_reads_as_its_model_with_its_one_click_choices(
    type_: str, payload: dict[str, Any], model: type, choices: list[Choice]
) -> None:
    kind = reviews.of(review(type_, payload))
    assert isinstance(kind, model)
    assert kind.type == type_
    assert kind.choices() == choices


def test_a_selection_reads_both_stored_shapes_alike() -> None:
    placet = reviews.kind("selection", {"mode": "multi", "items": ITEMS})
    older = reviews.kind("selection", {"options": ITEMS, "multiple": True})
    assert isinstance(placet, reviews.Selection)
    assert isinstance(older, reviews.Selection)
    assert (placet.items, placet.multi) == (older.items, older.multi) == (tuple(ITEMS), True)
    assert reviews.kind("selection", {"options": ITEMS}) == reviews.Selection(
        {"options": ITEMS}, items=tuple(ITEMS), multi=False
    )


@pytest.mark.parametrize(
    ("type_", "payload", "option", "response", "label"),
    [
        ("approval", APPROVAL, "approve", {"selectedOption": "approve"}, "Approve"),
        ("approval", APPROVAL, "gone", {"selectedOption": "gone"}, "gone"),
        ("selection", {"mode": "single", "items": ITEMS}, "b", {"selectedIds": ["b"]}, "Beta"),
        ("selection", {"options": ITEMS}, "a", {"selectedIds": ["a"]}, "Alpha"),
    ],
)
def test_a_one_click_answer_is_the_response_the_inbox_sends(
    type_: str, payload: dict[str, Any], option: str, response: dict[str, Any], label: str
) -> None:
    kind = reviews.kind(type_, payload)
    assert kind.one_click(option) == response
    assert kind.label(option) == label
    if kind.choices() and option in {c.option for c in kind.choices()}:
        # What a click records passes the same check as the inbox's answer.
        assert reviews.validate_response(type_, payload, response) == response


@pytest.mark.parametrize("type_", ["form", "text-input", "freeform"])
def test_types_without_one_click_answers_refuse_one(type_: str) -> None:
    with pytest.raises(ReviewError) as refused:
        reviews.kind(type_, {}).one_click("approve")
    assert refused.value.field == "response"


def test_only_an_approval_with_arguments_is_editable() -> None:
    edit = {"edit": {"args": {"amount": 1}}}
    assert reviews.kind("approval", {**APPROVAL, **edit}).editable
    assert not reviews.kind("approval", APPROVAL).editable
    assert not reviews.kind("freeform", edit).editable  # freeform's edit is data
    assert not reviews.kind("approval", {**APPROVAL, "edit": {"args": "x"}}).editable


@pytest.mark.parametrize(
    ("status", "expires_in", "closure"),
    [
        ("pending", timedelta(seconds=1), None),
        # Overdue but not yet expired by the expirer: already closed.
        ("pending", timedelta(0), "expired"),
        ("pending", -timedelta(hours=1), "expired"),
        ("expired", timedelta(hours=1), "expired"),
        ("completed", timedelta(hours=1), "answered"),
        ("completed", -timedelta(hours=1), "answered"),
    ],
)
def test_open_or_closed(status: str, expires_in: timedelta, closure: str | None) -> None:
    doc = review("approval", APPROVAL, status=status, expires_at=NOW + expires_in)
    assert reviews.closure(doc, NOW) == closure
    assert reviews.is_open(doc, NOW) is (closure is None)
    # A naive deadline (as an older document may hold) reads as UTC.
    naive = review("approval", APPROVAL, status=status, expires_at=(NOW + expires_in).replace(tzinfo=None))
    assert reviews.closure(naive, NOW) == closure


def test_an_unknown_type_is_named() -> None:
    with pytest.raises(ReviewError) as refused:
        reviews.kind("poll", {})
    assert (refused.value.field, refused.value.message) == ("review.type", "unknown review type 'poll'")
