"""`make` on a machine without uv, whose Python refuses pip installs or has no pip (issue #27).

Each case runs the Makefile's `uv` target with a PATH that holds no uv and a fresh HOME, then checks
that a working uv is where the bootstrap says (~/.local/bin) and that the Makefile's fallback,
`python3 tools/bootstrap_uv.py -- …`, runs it without installing again. Downloads the uv wheel
(about 18 MB) from the package index; skipped only when the index cannot be reached.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_PYTHON = Path("/usr/bin/python3")
# What a clean machine's environment keeps: where pip and urllib find the index and certificates.
KEPT = ("PIP_", "SSL_CERT_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def index_reachable() -> bool:
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    try:
        with urllib.request.urlopen(f"{index}/uv/", timeout=15):  # noqa: S310 (the index pip uses)
            return True
    except OSError:
        return False


def clean_env(home: Path, first: Path | None) -> dict[str, str]:
    dirs = ([str(first)] if first else []) + ["/usr/bin", "/bin"]
    assert not [d for d in dirs if (Path(d) / "uv").exists()], "the clean PATH must hold no uv"
    kept = {k: v for k, v in os.environ.items() if k.startswith(KEPT)}
    return {**kept, "PATH": os.pathsep.join(dirs), "HOME": str(home), "LANG": "C.UTF-8"}


def pip_refuses(python: Path) -> bool:
    probe = subprocess.run(
        [str(python), "-m", "pip", "install", "--user", "--dry-run", "--no-index", "uv"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return probe.returncode != 0 and "externally-managed-environment" in probe.stdout + probe.stderr


def python_for(case: str, tmp_path: Path) -> Path | None:
    """The directory to put first on PATH, whose python3 the Makefile runs (None: the system's)."""
    if case == "externally-managed":
        if not DEBIAN_PYTHON.exists() or not pip_refuses(DEBIAN_PYTHON):
            pytest.skip("no externally managed system Python (Debian 12 / Ubuntu 23.04+) at /usr/bin/python3")
        return None
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    no_pip = subprocess.run([str(venv / "bin/python3"), "-m", "pip", "--version"], capture_output=True)
    assert no_pip.returncode != 0, "the venv made --without-pip must have no pip"
    return venv / "bin"


@pytest.mark.parametrize(
    ("case", "route"),
    [
        # Debian 12's python3 with python3-pip: pip install --user is refused, pip download is not.
        ("externally-managed", "pip download uv"),
        # python3 without pip (Debian's default): the wheel comes from the index via urllib.
        ("no-pip", "fetching the uv"),
    ],
)
def test_make_installs_uv_with_nothing_but_python3(case: str, route: str, tmp_path: Path) -> None:
    if not index_reachable():
        pytest.skip("the package index is unreachable, so uv cannot be downloaded")
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home, python_for(case, tmp_path))

    first = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "uv"],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    told = first.stdout + first.stderr
    assert first.returncode == 0, told
    assert "uv not found: installing uv" in told
    assert route in told
    if case == "externally-managed":
        assert "refused: error: externally-managed-environment" in told
    uv = home / ".local/bin/uv"
    assert f"installed at {uv}" in told
    assert f'export PATH="{home / ".local/bin"}:$PATH"' in told
    version = subprocess.run([str(uv), "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert version.returncode == 0
    assert version.stdout.startswith("uv 0.")

    # The Makefile's $(UV) when uv is not on PATH: finds the installed one and runs it, quietly.
    again = subprocess.run(
        ["python3", "tools/bootstrap_uv.py", "--", "--version"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout == version.stdout
    assert again.stderr == ""
