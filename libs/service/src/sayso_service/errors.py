"""The one module that turns errors into HTTP: the FastAPI exception handlers that give every
error the one shape of ``sayso_common.http_errors`` — domain errors (``sayso_common.errors``,
answered with their code's status), the routes' ``ApiError``, validation errors, HTTP errors, and
MongoDB being unreachable (503 with Retry-After). Endpoints that answer outside FastAPI (the
realtime gateway's long-poll) render a domain error with :func:`answer`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sayso_common.errors import DomainError, ErrorCode, UnauthorizedError, UnavailableError
from sayso_common.http_errors import ApiError, error_body, field_path

log = logging.getLogger(__name__)

_FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"

_STATUS_CODES = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    429: ErrorCode.RATE_LIMITED,
}


DATABASE_DOWN = UnavailableError(
    ErrorCode.UNAVAILABLE, "the database is unavailable; retry shortly", retry_after=2
)


def answer(exc: DomainError) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    """The status, body and headers a domain error is answered with."""
    headers: dict[str, str] = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, UnauthorizedError) and exc.challenge:
        headers["WWW-Authenticate"] = "Bearer"
    return exc.code.status, error_body(exc.code, exc.message, exc.field), headers or None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        status, body, headers = answer(exc)
        return JSONResponse(body, status_code=status, headers=headers)

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
            return JSONResponse(
                error_body(ErrorCode.INVALID_JSON, "request body is not valid JSON"), status_code=422
            )
        field = field_path(first.get("loc", ()))
        message = str(first.get("msg", "invalid value"))
        if field:
            message = f"{field}: {message}"
        return JSONResponse(error_body(ErrorCode.VALIDATION_ERROR, message, field or None), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_PARSE_ERROR:
            # FastAPI raises this for bodies that are not UTF-8; same answer as malformed JSON.
            return JSONResponse(
                error_body(ErrorCode.INVALID_JSON, "request body is not valid UTF-8 JSON"), status_code=422
            )
        code = _STATUS_CODES.get(exc.status_code, ErrorCode.ERROR)
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(ConnectionFailure)
    async def database_down(_: Request, exc: ConnectionFailure) -> JSONResponse:
        log.warning("MongoDB unavailable: %s", type(exc).__name__)
        status, body, headers = answer(DATABASE_DOWN)
        return JSONResponse(body, status_code=status, headers=headers)

    app.add_exception_handler(ServerSelectionTimeoutError, database_down)  # type: ignore[arg-type]
