"""Find uv, or install it for this user with nothing but python3 (issue #27).

    python3 tools/bootstrap_uv.py             # find or install uv, say where it is
    python3 tools/bootstrap_uv.py -- ARGS…    # the same, then run `uv ARGS…` (the Makefile's $(UV))

uv is looked for on PATH, then in the install directory ($UV_INSTALL_DIR, else ~/.local/bin, where
uv's own installer puts it), then as a Python package (`python3 -m pip install uv`). If it is in
none of them, it is installed into the install directory, trying in turn:

1. `pip install --user uv`, where the system Python allows it;
2. `pip download uv` and the `uv` binary taken out of the wheel (a zip): Debian 12 and Ubuntu 23.04+
   refuse pip installs into the system Python (`externally-managed-environment`) but not downloads;
3. the wheel fetched from the package index with the standard library, checked against the
   index's sha256, where pip is missing (Debian and Ubuntu install python3 without pip).

Standard library only: this runs before anything else is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from http.client import HTTPResponse
from pathlib import Path

# The uv the Dockerfile and CI use; any uv that reads uv.lock works, this one is what is fetched.
UV_VERSION = "0.13.9"
INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
TIMEOUT = 60


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def install_dir() -> Path:
    return Path(os.environ.get("UV_INSTALL_DIR") or Path.home() / ".local" / "bin")


def works(uv: str) -> bool:
    try:
        return subprocess.run([uv, "--version"], capture_output=True, timeout=TIMEOUT).returncode == 0
    except OSError:
        return False


def find() -> str | None:
    on_path = shutil.which("uv")
    if on_path and works(on_path):
        return on_path
    installed = install_dir() / "uv"
    if installed.is_file() and works(str(installed)):
        return str(installed)
    # A uv installed as a Python package (`pip install uv`) whose scripts directory is not on PATH.
    probe = subprocess.run(
        [sys.executable, "-c", "import uv; print(uv.find_uv_bin())"], capture_output=True, text=True
    )
    if probe.returncode == 0 and works(probe.stdout.strip()):
        return probe.stdout.strip()
    return None


def last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    return (errors or lines or ["(no output)"])[-1]


def has_pip() -> bool:
    return subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0


def pip_install_user() -> bool:
    say(f"  pip install --user uv=={UV_VERSION} …")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--user", "--no-warn-script-location", f"uv=={UV_VERSION}"],
        capture_output=True,
        text=True,
    )
    if done.returncode == 0:
        return True
    say(f"  refused: {last_line(done.stdout + done.stderr)}")
    return False


def pip_download(into: Path) -> Path | None:
    say(f"  pip download uv=={UV_VERSION} (the wheel only, nothing is installed into this Python) …")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(into),
            f"uv=={UV_VERSION}",
        ],
        capture_output=True,
        text=True,
    )
    wheels = sorted(into.glob("uv-*.whl"))
    if done.returncode == 0 and wheels:
        return wheels[0]
    say(f"  failed: {last_line(done.stdout + done.stderr)}")
    return None


def wanted_tags() -> tuple[str, str]:
    """The wheel platform family and machine for this computer, as in uv's wheel names."""
    system, machine = platform.system(), platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64" if system == "Linux" else "arm64"}.get(machine, machine)
    if system == "Linux":
        return ("manylinux" if platform.libc_ver()[0] == "glibc" else "musllinux"), machine
    if system == "Darwin":
        return "macosx", machine
    raise SystemExit(f"no uv wheel for {system}: install uv yourself (https://docs.astral.sh/uv/)")


def fetch(url: str, accept: str = "*/*") -> HTTPResponse:
    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        raise SystemExit(f"{url}: the package index must be an http(s) URL")
    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310 (scheme checked above)
    answer: HTTPResponse = urllib.request.urlopen(request, timeout=TIMEOUT)  # noqa: S310 (scheme checked above)
    return answer


def index_download(into: Path) -> Path:
    family, machine = wanted_tags()
    page = f"{INDEX}/uv/"
    say(f"  fetching the uv {UV_VERSION} wheel from {page} …")
    try:
        with fetch(page, "application/vnd.pypi.simple.v1+json") as answer:
            files = json.load(answer)["files"]
    except OSError as error:
        raise SystemExit(
            f"cannot reach {page} ({error}); without pip or network access install uv yourself "
            "(https://docs.astral.sh/uv/), or `apt-get install python3-pip ca-certificates` and retry"
        ) from error
    for entry in files:
        name: str = entry["filename"]
        if not name.startswith(f"uv-{UV_VERSION}-") or not name.endswith(".whl"):
            continue
        tags = name[: -len(".whl")].split("-")[-1].split(".")
        if any(tag.startswith(family) and tag.endswith("_" + machine) for tag in tags):
            wheel = into / name
            digest = hashlib.sha256()
            with fetch(urllib.parse.urljoin(page, entry["url"])) as answer, wheel.open("wb") as out:
                while chunk := answer.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != entry["hashes"]["sha256"]:
                raise SystemExit(f"{name}: sha256 differs from the index's, not installed")
            return wheel
    raise SystemExit(f"no uv {UV_VERSION} wheel for {family} {machine} on {page}: install uv yourself")


def unpack(wheel: Path, into: Path) -> Path:
    """Copies the uv and uvx binaries out of the wheel (uv-<version>.data/scripts/)."""
    into.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for tool in ("uvx", "uv"):
            member = next(n for n in archive.namelist() if n.endswith(f".data/scripts/{tool}"))
            partial = into / f".{tool}.partial"
            with archive.open(member) as source, partial.open("wb") as out:
                shutil.copyfileobj(source, out)
            partial.chmod(0o755)
            partial.replace(into / tool)
    return into / "uv"


def install() -> str:
    target = install_dir()
    say(f"uv not found: installing uv {UV_VERSION} for this user into {target} (Python {sys.executable}).")
    pip = has_pip()
    if pip and pip_install_user() and (found := find()):
        return found
    with tempfile.TemporaryDirectory(prefix="uv-wheel-") as scratch:
        wheel = pip_download(Path(scratch)) if pip else None
        if wheel is None:
            if not pip:
                say("  no pip in this Python (Debian/Ubuntu: the python3-pip package); not needed")
            wheel = index_download(Path(scratch))
        uv = unpack(wheel, target)
    if not works(str(uv)):
        raise SystemExit(
            f"{uv} does not run on this machine: install uv yourself (https://docs.astral.sh/uv/)"
        )
    return str(uv)


def main(argv: list[str]) -> int:
    uv = find()
    if uv is None:
        uv = install()
        version = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.strip()
        say(f"{version} installed at {uv}.")
        folder = str(Path(uv).parent)
        if folder not in os.environ.get("PATH", "").split(os.pathsep):
            say(
                f"{folder} is not on your PATH: make finds uv there by itself; to type `uv …` in your "
                f'shell, run: export PATH="{folder}:$PATH" (and add that line to ~/.profile)'
            )
    if argv[:1] == ["--"]:
        os.execv(uv, [uv, *argv[1:]])  # noqa: S606 (the Makefile's $(UV): uv takes this process over)
    if argv:
        say(__doc__ or "")
        return 2
    print(uv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
