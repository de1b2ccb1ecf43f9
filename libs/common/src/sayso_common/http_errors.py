"""The one error shape every HTTP service answers with: ``{"error": {"code", "message", "field"?}}``.

A public contract shared by the API and the realtime gateway (which install the same handlers,
``sayso_service.errors``). Domain code raises ``sayso_common.errors.DomainError``; :class:`ApiError`
is for the routes alone (a status the edge decides, with headers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sayso_common.errors import ErrorCode


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: ErrorCode,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers


def error_body(code: ErrorCode, message: str, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code.value, "message": message}
    if field:
        body["field"] = field
    return {"error": body}


_LOCATIONS = ("body", "query", "path", "header")


def field_path(loc: Sequence[str | int]) -> str:
    """The one field-path format of every error: ``review.payload.fields[0].name`` (names joined
    by dots, list positions in brackets), from a pydantic error location. The request part a
    location starts with (``body``, ``query`` …) is left out."""
    path = ""
    for i, part in enumerate(loc):
        if i == 0 and part in _LOCATIONS:
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path
