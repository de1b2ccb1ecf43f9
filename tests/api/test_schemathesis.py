"""Property-based API testing with Schemathesis against the running stack: generated requests
for every operation in /openapi.json, with an agent key and with a user session. No answer may
be a 5xx, and every answer must match the documented status codes, content types and schemas."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from sayso_api import deps, routes
from sayso_api.app import create_app
from sayso_api.settings import ApiSettings
from tests.support.stack import Owner, RunningStack

pytestmark = pytest.mark.slow

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
# A fixed seed keeps CI deterministic; run `schemathesis run` by hand with other seeds to explore.
SEED = "20261123"
# Schemathesis's phases (its `--phases`): "coverage" sends deterministic boundary and off-schema
# values of every parameter and body field (about 44 cases an operation here), "fuzzing" up to
# `-n` generated requests an operation, "stateful" chains operations through the schema's links.
ALL_PHASES = "coverage,fuzzing,stateful"
# The dependencies that refuse an API key (deps.py): only a user session gets past them.
SESSION_ONLY: tuple[Callable[..., Any], ...] = (deps._user, deps._answerer)


async def _schemathesis(stack: RunningStack, header: str, report: Path, *options: str) -> tuple[int, str]:
    # Straight to the API with a forwarded address of its own: fuzzing the login endpoint trips the
    # per-address throttle, which must not lock out the other tests' logins from 127.0.0.1.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "run", f"{stack.api_url}/openapi.json",
        "-H", header, "-H", "X-Forwarded-For: 198.51.100.77", "-c", CHECKS, "-n", "12", "--seed", SEED, "--no-shrink",
        "--request-timeout", "10", "--report", "junit", "--report-junit-path", str(report), *options,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    return proc.returncode or 0, out.decode(errors="replace")


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _session_only_operations(stack: RunningStack) -> list[str]:
    """``METHOD /path`` of every documented operation that refuses an API key, read from the
    route modules of this code (every documented operation is one of theirs)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in stack.env.items():
            patch.setenv(name, value)
        documented = create_app(ApiSettings()).openapi()["paths"]
    found: dict[str, bool] = {}
    for module in pkgutil.iter_modules(routes.__path__, f"{routes.__name__}."):
        for route in importlib.import_module(module.name).router.routes:
            if isinstance(route, APIRoute) and route.path in documented:
                session_only = any(call in SESSION_ONLY for call in _calls(route.dependant))
                found |= {
                    f"{m} {route.path}": session_only
                    for m in route.methods or ()
                    if m.lower() in documented[route.path]
                }
    assert len(found) == sum(len(ops) for ops in documented.values()), "an operation outside routes/"
    return sorted(name for name, session_only in found.items() if session_only)


def _check(code: int, output: str) -> None:
    summary = output[output.find("FAILURES") :] if "FAILURES" in output else output[-3000:]
    assert code == 0, summary[:8000]
    assert "Tested: " in output


async def test_no_server_errors_and_schema_conformance_with_an_api_key(
    stack: RunningStack, owner: Owner, tmp_path: Path
) -> None:
    """Every phase over every operation."""
    code, output = await _schemathesis(
        stack, f"x-api-key: {owner.api_key}", tmp_path / "junit.xml", "--phases", ALL_PHASES
    )
    _check(code, output)


async def test_no_server_errors_and_schema_conformance_with_a_session(
    stack: RunningStack, owner: Owner, tmp_path: Path
) -> None:
    """Fuzzing and stateful over every operation, the coverage phase over the operations only a
    session reaches. The coverage phase's cases are the same requests whatever the credential
    (measured: 4,547 of a run's 5,841 cases, half its time), so on the operations an API key also
    reaches they ran twice; the credential's own handling is what fuzzing here checks."""
    header = f"Authorization: Bearer {owner.token}"
    code, output = await _schemathesis(stack, header, tmp_path / "fuzz.xml", "--phases", "fuzzing,stateful")
    _check(code, output)
    session_only = _session_only_operations(stack)
    assert len(session_only) > 10, session_only  # the user's own settings, answers, keys …
    names = [arg for name in session_only for arg in ("--include-name", name)]
    code, output = await _schemathesis(
        stack, header, tmp_path / "coverage.xml", "--phases", "coverage", *names
    )
    _check(code, output)
    assert f"Selected: {len(session_only)}/" in output, output[-3000:]
