"""The three client packages build as wheels (``uv build --package``), with what they need."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def uv() -> list[str]:
    """uv as the Makefile finds it: on PATH, else through tools/bootstrap_uv.py (which finds the
    uv it installed, in ~/.local/bin on a fresh machine, not necessarily on PATH)."""
    found = shutil.which("uv")
    if found:
        return [found]
    return [sys.executable, str(ROOT / "tools" / "bootstrap_uv.py"), "--"]


@pytest.mark.parametrize(
    ("package", "module", "script"),
    [
        ("sayso", "sayso", None),
        ("sayso-mcp", "sayso_mcp", "sayso-mcp"),
        ("sayso-cli", "sayso_cli", "sayso"),
    ],
)
def test_wheel_builds(tmp_path: Path, package: str, module: str, script: str | None) -> None:
    built = subprocess.run(
        [*uv(), "build", "--package", package, "--wheel", "--out-dir", str(tmp_path), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("*.whl")
    assert wheel.name.startswith(package.replace("-", "_") + "-0.1.0-py3-none-any")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert f"{module}/__init__.py" in names
        assert f"{module}/py.typed" in names
        # Nothing of the services travels with the clients: they speak HTTP only.
        assert not [n for n in names if n.startswith(("sayso_api", "sayso_common", "sayso_realtime"))]
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
        assert f"Name: {package}\n" in metadata
        assert "sayso-common" not in metadata
        assert "sayso-api" not in metadata
        if script:
            entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
            assert f"{script} = {module}.__main__:main" in entry_points


def test_sdk_wheel_offers_the_framework_extras(tmp_path: Path) -> None:
    built = subprocess.run(
        [*uv(), "build", "--package", "sayso", "--wheel", "--out-dir", str(tmp_path), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for module in ("langgraph", "openai_agents", "pydantic_ai"):
        assert f"sayso/integrations/{module}.py" in names
    for extra, requirement in [
        ("langgraph", "langgraph"),
        ("openai-agents", "openai-agents"),
        ("pydantic-ai", "pydantic-ai-slim"),
    ]:
        assert f"Provides-Extra: {extra}\n" in metadata
        assert f"Requires-Dist: {requirement}" in metadata
        assert f"extra == '{extra}'" in metadata


def test_importing_the_sdk_imports_no_framework() -> None:
    # The extras are optional: `import sayso` must work (and stay light) without them.
    code = (
        "import sys, sayso, sayso.integrations\n"
        "loaded = [m for m in ('langgraph', 'agents', 'pydantic_ai', 'openai') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert ran.returncode == 0, ran.stderr
