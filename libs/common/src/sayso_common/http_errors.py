"""The one error shape every HTTP service answers with: ``{"error": {"code", "message", "field"?}}``.

A public contract shared by the API and the realtime gateway (which install the same handlers,
``sayso_service.errors``) and by the domain code that raises :class:`ApiError`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
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


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def not_found(what: str) -> ApiError:
    # Same answer for "does not exist" and "not yours": ids of other owners are never confirmed.
    return ApiError(404, "not_found", f"{what} not found")


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
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
