"""How a trigger's mapping turns a body into message fields (pure): an optional mapped field the
body leaves out is left out, one that is there and wrong is refused naming its pointer."""

from __future__ import annotations

from typing import Any

import pytest

from sayso_api.triggers import Mapping, map_body
from sayso_common.errors import DomainError

MAPPING = Mapping.model_validate(
    {"text": "/summary", "status": "/level", "reviewType": "approval", "metadata": {"export": "/export_id"}}
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (  # the example body of docs/how-to/inbound-webhooks.md: no level, so no status
            {"summary": "Export finished", "export_id": "exp_1"},
            {
                "text": "Export finished",
                "review": {"type": "approval", "payload": {}},
                "metadata": {"export": "exp_1"},
            },
        ),
        (
            {"summary": "Export finished", "level": "success", "export_id": "exp_1"},
            {
                "text": "Export finished",
                "status": "success",
                "review": {"type": "approval", "payload": {}},
                "metadata": {"export": "exp_1"},
            },
        ),
        ({"summary": "s", "level": None}, {"text": "s", "review": {"type": "approval", "payload": {}}}),
        ({"summary": {"n": 1}}, {"text": '{"n": 1}', "review": {"type": "approval", "payload": {}}}),
    ],
)
def test_mapped_fields(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert map_body(body, MAPPING, []) == expected


@pytest.mark.parametrize(
    ("body", "required", "code", "field"),
    [
        ({"summary": "s", "level": "loud"}, [], "invalid_mapping", "/level"),
        ({"summary": "s", "level": 3}, [], "invalid_mapping", "/level"),
        ({"summary": "s", "level": ""}, [], "invalid_mapping", "/level"),
        ({"level": "info"}, [], "missing_keys", "/summary"),
        ({"summary": "s"}, ["/export_id"], "missing_keys", "/export_id"),
    ],
)
def test_mapping_refusals(body: dict[str, Any], required: list[str], code: str, field: str) -> None:
    with pytest.raises(DomainError) as raised:
        map_body(body, MAPPING, required)
    assert (raised.value.code.status, raised.value.code, raised.value.field) == (422, code, field)
