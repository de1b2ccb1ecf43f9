"""RFC 6901 JSON pointers used by trigger mappings (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from sayso_api.triggers import _MISSING, resolve_pointer
from sayso_common.http_errors import field_path

DOC: dict[str, Any] = {"a": {"b": [10, {"c": "deep"}]}, "x/y": 1, "m~n": 2, "": 3, "zero": 0, "nul": None}


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("", DOC),
        ("/a/b/0", 10),
        ("/a/b/1/c", "deep"),
        ("/x~1y", 1),
        ("/m~0n", 2),
        ("/", 3),
        ("/zero", 0),
        ("/nul", None),
        ("/a/b/2", _MISSING),
        ("/a/b/-1", _MISSING),
        ("/a/b/01x", _MISSING),
        ("/a/b/01", _MISSING),  # RFC 6901: no leading zeros in an array index
        ("/a/b/00", _MISSING),
        ("/a/b/+1", _MISSING),
        ("/a/b/\uff11", _MISSING),  # a fullwidth digit is not an index
        ("/a/missing", _MISSING),
        ("/zero/deeper", _MISSING),
    ],
)
def test_resolve_pointer(pointer: str, expected: Any) -> None:
    assert resolve_pointer(DOC, pointer) is expected or resolve_pointer(DOC, pointer) == expected


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("body", "review", "payload", "fields", 0, "name"), "review.payload.fields[0].name"),
        (("body", "commands", 1, "command"), "commands[1].command"),
        (("query", "limit"), "limit"),
        (("body",), ""),
        ((0, "a"), "[0].a"),
        (("review", "body"), "review.body"),  # only a leading location is dropped
    ],
)
def test_error_field_paths_have_one_format(loc: tuple[str | int, ...], path: str) -> None:
    assert field_path(loc) == path
