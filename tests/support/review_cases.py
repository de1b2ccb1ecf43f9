"""The shared table of review responses (tests/cases/review_responses.json), read as both of its
runners need it: the Python rules (tests/test_review_cases.py) and the inbox's JavaScript in
Chromium (tests/web/test_review_cases.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).parent.parent / "cases" / "review_responses.json"


def expand(value: Any) -> Any:
    """The table writes a long string as ``{"$repeat": [text, times]}``."""
    if isinstance(value, dict):
        if set(value) == {"$repeat"}:
            text, times = value["$repeat"]
            return text * times
        return {k: expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v) for v in value]
    return value


def table() -> dict[str, Any]:
    loaded: dict[str, Any] = expand(json.loads(TABLE_PATH.read_text()))
    return loaded


def response_cases() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(id, type, payload, case) for every valid and invalid response."""
    out = []
    for group in table()["responses"]:
        for kind in ("valid", "invalid"):
            for i, case in enumerate(group[kind]):
                out.append((f"{group['name']}: {kind} {i}", group["type"], group["payload"], case))
    return out
