"""Domain code never speaks HTTP (issue #28): outside the HTTP edge (the API's routes, the
long-poll's ASGI endpoint, and ``sayso_service``, whose ``errors`` module is the one mapping to
HTTP), nothing builds an ``ApiError`` or ``HTTPException``, raises with a literal status, or
branches on a caught error's status; every code is an ``ErrorCode`` member (never a string), and
each domain error class carries only codes of its status. Read from the source, like the route
table tests; plus the mapping itself, as a table."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from sayso_service.errors import answer

from sayso_common import errors
from sayso_common.errors import (
    ConflictError,
    DomainError,
    ErrorCode,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
    UnavailableError,
)

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("libs/*/src/**/*.py")])
# The HTTP edge: where a status may be written. Everything else raises domain errors.
EDGE = (
    "services/api/src/sayso_api/routes/",
    "services/realtime/src/sayso_realtime/wait_endpoint.py",  # the long-poll route, plain ASGI
    "libs/service/src/sayso_service/",  # the mapping module (errors.py), CORS, probes
)
# Modules not converted yet, each with the reason; this list only shrinks.
NOT_YET: dict[str, str] = {}
HTTP_ERRORS = {"ApiError", "HTTPException"}
# Calls whose argument in this position is an error code.
CODE_ARGUMENT = {"ApiError": 1, "error_body": 0, **{c.__name__: 0 for c in errors.STATUSES}}
CODE_ARGUMENT["UnauthorizedError"] = 1
CODE_ARGUMENT["NotFoundError"] = -1  # its code is implied


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _name(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _is_status(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int and 400 <= node.value <= 599


def http_in_domain(source: str) -> Iterator[tuple[int, str]]:
    """Where domain code speaks HTTP: (line, what)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in HTTP_ERRORS:
            yield node.lineno, f"builds {_name(node.func)}"
        if isinstance(node, ast.ImportFrom) and any(a.name in HTTP_ERRORS for a in node.names):
            yield node.lineno, "imports an HTTP error"
        if (
            isinstance(node, ast.Raise)
            and isinstance(node.exc, ast.Call)
            and _name(node.exc.func) not in HTTP_ERRORS
        ):
            call = node.exc
            given = [*call.args[:1], *(k.value for k in call.keywords if k.arg in ("status", "status_code"))]
            if any(_is_status(a) for a in given):
                yield node.lineno, "raises with a literal HTTP status"
        if isinstance(node, ast.ExceptHandler) and node.name:
            for inner in ast.walk(ast.Module(body=node.body, type_ignores=[])):
                if (
                    isinstance(inner, ast.Attribute)
                    and isinstance(inner.value, ast.Name)
                    and inner.value.id == node.name
                    and inner.attr in ("status", "status_code")
                ):
                    yield inner.lineno, f"branches on {node.name}.{inner.attr}"


def bad_codes(source: str) -> Iterator[tuple[int, str]]:
    """Codes that are not ErrorCode members, and domain errors built with another status's code."""
    for node in ast.walk(ast.parse(source)):
        if (
            (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "ErrorCode"
            )
            and node.attr not in ErrorCode.__members__
            and not hasattr(ErrorCode, node.attr)
        ):
            yield node.lineno, f"ErrorCode.{node.attr} is not a code"
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        position = CODE_ARGUMENT.get(name)
        if position is None or position < 0:
            continue
        code = node.args[position] if len(node.args) > position else None
        code = next((k.value for k in node.keywords if k.arg == "code"), code)
        if isinstance(code, ast.Constant) and isinstance(code.value, str):
            yield node.lineno, f"{name} with the string {code.value!r}, not an ErrorCode"
            continue
        member = (
            ErrorCode.__members__.get(code.attr)
            if isinstance(code, ast.Attribute)
            and isinstance(code.value, ast.Name)
            and code.value.id == "ErrorCode"
            else None
        )
        if member is None:
            continue  # a variable or a conditional: mypy holds it to ErrorCode
        if name == "ApiError" and _is_status(node.args[0]):
            status = node.args[0].value  # type: ignore[attr-defined]
            if status != member.status:
                yield node.lineno, f"ApiError({status}) with {member.value}, a {member.status} code"
        cls = getattr(errors, name, None)
        if cls in errors.STATUSES and member.status not in errors.STATUSES[cls]:
            yield node.lineno, f"{name} with {member.value}, a {member.status} code"


def _domain_sources() -> list[Path]:
    return [p for p in SOURCES if not _rel(p).startswith(EDGE) and _rel(p) not in NOT_YET]


def test_domain_code_does_not_speak_http() -> None:
    found = [
        f"{_rel(p)}:{line}: {what}" for p in _domain_sources() for line, what in http_in_domain(p.read_text())
    ]
    assert not found, "raise a sayso_common.errors domain error instead:\n" + "\n".join(found)


def test_every_code_is_an_error_code_of_the_right_class() -> None:
    found = [f"{_rel(p)}:{line}: {what}" for p in SOURCES for line, what in bad_codes(p.read_text())]
    assert not found, "\n".join(found)


def test_the_allow_list_names_files_that_exist() -> None:
    assert all((ROOT / path).is_file() for path in NOT_YET)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ('raise ApiError(404, ErrorCode.NOT_FOUND, "x")', "builds ApiError"),
        ('raise HTTPException(status_code=409, detail="x")', "builds HTTPException"),
        ("from sayso_common.http_errors import ApiError", "imports an HTTP error"),
        ('raise Refusal(409, "x")', "raises with a literal HTTP status"),
        ('raise Refusal(code="x", status=422)', "raises with a literal HTTP status"),
        (
            "try:\n    f()\nexcept DomainError as exc:\n    if exc.status == 404:\n        pass",
            "branches on exc.status",
        ),
    ],
)
def test_the_scan_sees_http_in_domain_code(source: str, problem: str) -> None:
    assert [what for _, what in http_in_domain(source)] == [problem]


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (
            'ConflictError("review_closed", "x")',
            "ConflictError with the string 'review_closed', not an ErrorCode",
        ),
        ('error_body("not_found", "x")', "error_body with the string 'not_found', not an ErrorCode"),
        (
            'UnauthorizedError("x", "bad_token")',
            "UnauthorizedError with the string 'bad_token', not an ErrorCode",
        ),
        ('ConflictError(ErrorCode.TEXT_TOO_LARGE, "x")', "ConflictError with text_too_large, a 413 code"),
        ('ApiError(403, ErrorCode.NOT_FOUND, "x")', "ApiError(403) with not_found, a 404 code"),
        ("ErrorCode.NO_SUCH_THING", "ErrorCode.NO_SUCH_THING is not a code"),
    ],
)
def test_the_scan_sees_codes_outside_the_enum(source: str, problem: str) -> None:
    assert [what for _, what in bad_codes(source)] == [problem]


def test_clean_domain_code_passes_the_scan() -> None:
    source = (
        "try:\n    f()\nexcept NotFoundError:\n    raise NotFoundError('agent') from None\n"
        "raise ConflictError(ErrorCode.REVIEW_CLOSED, 'the review is no longer pending', 'response')\n"
        "raise RateLimitedError(ErrorCode.RATE_LIMITED, 'slow down', retry_after=3)\n"
    )
    assert not [*http_in_domain(source), *bad_codes(source)]


def test_every_code_has_an_error_status_and_a_meaning() -> None:
    for code in ErrorCode:
        assert code.value.isidentifier(), code
        assert code.value == code.value.lower() == code.name.lower()
        assert 400 <= code.status <= 599, code
        assert code.meaning.endswith("."), code


@pytest.mark.parametrize(
    ("error", "status", "body", "headers"),
    [
        (NotFoundError("agent"), 404, {"code": "not_found", "message": "agent not found"}, None),
        (
            NotFoundError("user", "email", message="no user has this e-mail"),
            404,
            {"code": "not_found", "message": "no user has this e-mail", "field": "email"},
            None,
        ),
        (
            ConflictError(ErrorCode.REVIEW_CLOSED, "the review is no longer pending", "response"),
            409,
            {"code": "review_closed", "message": "the review is no longer pending", "field": "response"},
            None,
        ),
        (
            RateLimitedError(ErrorCode.RATE_LIMITED, "at most 5", retry_after=7),
            429,
            {"code": "rate_limited", "message": "at most 5"},
            {"Retry-After": "7"},
        ),
        (
            UnauthorizedError("bad token", challenge=True),
            401,
            {"code": "unauthorized", "message": "bad token"},
            {"WWW-Authenticate": "Bearer"},
        ),
        (
            UnauthorizedError("wrong e-mail or password", ErrorCode.INVALID_CREDENTIALS),
            401,
            {"code": "invalid_credentials", "message": "wrong e-mail or password"},
            None,
        ),
        (
            UnavailableError(ErrorCode.DISPATCHER_UNAVAILABLE, "no dispatcher", retry_after=5),
            503,
            {"code": "dispatcher_unavailable", "message": "no dispatcher"},
            {"Retry-After": "5"},
        ),
    ],
)
def test_the_mapping_answers_with_the_codes_status_and_the_one_shape(
    error: DomainError, status: int, body: dict[str, str], headers: dict[str, str] | None
) -> None:
    assert answer(error) == (status, {"error": body}, headers)
