"""The FastAPI exception handlers that give every error the one shape of
``sayso_common.http_errors``: domain errors, validation errors, HTTP errors, and MongoDB being
unreachable (503 with Retry-After)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sayso_common.http_errors import ApiError, error_body, field_path

log = logging.getLogger(__name__)

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
        field = field_path(first.get("loc", ()))
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
