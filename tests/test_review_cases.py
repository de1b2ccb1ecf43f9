"""The shared table of review responses (tests/cases/review_responses.json) against the Python
rules, sayso_common.reviews; tests/web/test_review_cases.py runs the same table against the
inbox's review_rules.js."""

from __future__ import annotations

from typing import Any

import pytest

from sayso_common import reviews
from sayso_common.quorum import option_approves
from sayso_common.reviews import DEFAULT_APPROVAL_OPTIONS, ReviewError, validate_response
from tests.support.review_cases import response_cases, table

CASES = response_cases()


@pytest.mark.parametrize(("type_", "payload", "case"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_response_in_the_table(type_: str, payload: dict[str, Any], case: dict[str, Any]) -> None:
    if "field" not in case:
        assert validate_response(type_, payload, case["response"]) == case.get("stored", case["response"])
        return
    with pytest.raises(ReviewError) as refused:
        validate_response(type_, payload, case["response"])
    assert (refused.value.field, refused.value.message) == (case["field"], case["message"])


def test_the_table_covers_every_type_and_field_kind() -> None:
    groups = table()["responses"]
    assert {g["type"] for g in groups} >= set(reviews.REVIEW_TYPES)
    kinds = {f["type"] for g in groups if g["type"] == "form" for f in g["payload"]["fields"]}
    assert kinds == set(reviews.FIELD_TYPES)
    assert all(g["invalid"] for g in groups)


def test_the_default_options_selection_shapes_and_approving_options() -> None:
    shared = table()
    assert shared["default_approval_options"] == DEFAULT_APPROVAL_OPTIONS
    for shape in shared["selection_shapes"]:
        read = reviews.kind("selection", shape["payload"])
        assert isinstance(read, reviews.Selection)
        assert (list(read.items), read.multi) == (shape["items"], shape["multi"]), shape
    for case in shared["approves"]:
        assert option_approves(case["option"]) is case["approves"], case
