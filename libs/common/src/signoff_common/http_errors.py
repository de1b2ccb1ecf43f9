"""The one error shape every HTTP service answers with: ``{"error": {"code", "message", "field"?}}``.

A public contract shared by the API and the realtime gateway, so both install the same handlers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


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


def _loc_to_field(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts)


_FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.field), status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request", "type": ""}
        kind = str(first.get("type", ""))
        if kind in ("json_invalid", "json_type"):
            return JSONResponse(error_body("invalid_json", "request body is not valid JSON"), status_code=422)
        field = _loc_to_field(first.get("loc", ()))
        message = str(first.get("msg", "invalid value"))
        if field:
            message = f"{field}: {message}"
        return JSONResponse(error_body("validation_error", message, field or None), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_PARSE_ERROR:
            # FastAPI raises this for bodies that are not UTF-8; same answer as malformed JSON.
            return JSONResponse(
                error_body("invalid_json", "request body is not valid UTF-8 JSON"), status_code=422
            )
        code = _STATUS_CODES.get(exc.status_code, "error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(ConnectionFailure)
    async def database_down(_: Request, exc: ConnectionFailure) -> JSONResponse:
        log.warning("MongoDB unavailable: %s", type(exc).__name__)
        return JSONResponse(
            error_body("unavailable", "the database is unavailable; retry shortly"),
            status_code=503,
            headers={"Retry-After": "2"},
        )

    app.add_exception_handler(ServerSelectionTimeoutError, database_down)  # type: ignore[arg-type]
