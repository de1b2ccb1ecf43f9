"""Checks made before ``make run`` starts any child: one stack per state directory, a free edge
port, no mongod left over on the data directory. Each refusal is one plain sentence saying what
to do, instead of a child's exit code and its logs."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import httpx

PID_FILE = "run.pid"


class StartRefusedError(Exception):
    """The stack cannot start here; the message says why and what to do instead."""


def already_running_message(url: str, pid: int | None) -> str:
    who = f"pid {pid}" if pid else "pid unknown"
    return (
        f"Sayso is already running at {url} ({who}). Stop it with Ctrl-C in its terminal, "
        "or run another copy with `SAYSO_PORT` and `SAYSO_HOME`."
    )


def read_pid_file(path: Path) -> tuple[int | None, str | None]:
    """(pid, url) from a pid file: the pid on the first line, the stack's edge URL on the second."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None, None
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    url = lines[1].strip() if len(lines) > 1 and lines[1].strip() else None
    return pid, url


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but alive
    return True


def _cmdline(pid: int) -> str | None:
    """The process's command line, or None where /proc cannot say (then only liveness counts)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def _is_devstack(pid: int) -> bool:
    if pid == os.getpid() or not pid_alive(pid):
        return False
    cmdline = _cmdline(pid)
    return cmdline is None or "sayso-devstack" in cmdline or "sayso_devstack" in cmdline


@dataclass
class RunLock:
    """``<state dir>/run.pid``, holding this process's pid and edge URL, locked (``flock``) while
    the stack runs. The kernel drops the lock when the process dies however it dies, so a pid file
    left by a killed run never blocks the next one."""

    path: Path
    fd: int

    def release(self) -> None:
        if self.fd < 0:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)
        self.fd = -1


def claim(state_dir: Path, url: str) -> RunLock:
    """Take the state directory for this process, or raise :class:`StartRefusedError` naming the stack
    that has it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / PID_FILE
    for _ in range(5):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid, running_url = read_pid_file(path)
            raise StartRefusedError(
                already_running_message(running_url or "an unknown address", pid)
            ) from None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                os.close(fd)
                raise
            # No locks on this file system: fall back to the pid in the file, checked for life.
            pid, running_url = read_pid_file(path)
            if pid is not None and _is_devstack(pid):
                os.close(fd)
                raise StartRefusedError(
                    already_running_message(running_url or "an unknown address", pid)
                ) from None
        # A run stopping right now unlinks the file after we opened it: then lock the new one.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{url}\n".encode())
        return RunLock(path, fd)
    raise StartRefusedError(f"could not take {path}: another start is racing for it; try again")


def check_mongo_data_dir(data_dir: Path) -> None:
    """mongod writes its pid into ``mongod.lock`` and empties it on a clean exit; a live pid there
    is a mongod left running by a run that did not stop its children."""
    pid, _ = read_pid_file(data_dir / "mongod.lock")
    if pid is None or pid == os.getpid() or not pid_alive(pid):
        return
    cmdline = _cmdline(pid)
    if cmdline is not None and "mongod" not in cmdline:
        return  # the pid was reused by something else; mongod itself will sort out its lock file
    raise StartRefusedError(
        f"A mongod from an earlier run is still using {data_dir} (pid {pid}); that run did not "
        f"stop its children. Stop it with `kill {pid}` (and any other leftovers of that run), "
        "then start again."
    )


def _is_sayso(port: int) -> bool:
    try:
        # Generous: a busy API builds its OpenAPI document in 1 to 2 s the first time, and more
        # than 5 s on a host also running the chaos soak (seen in the test suite); this only runs
        # when the port is already taken.
        resp = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=15.0)
        return bool(resp.json().get("info", {}).get("title") == "Sayso API")
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Caddy does: connections still in TIME_WAIT from an earlier run do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            if exc.errno == errno.EACCES:
                raise StartRefusedError(
                    f"Port {port} needs root to listen on; pick a port above 1023 with `SAYSO_PORT`, "
                    "e.g. `SAYSO_PORT=8000 make run`."
                ) from None
            raise
    return True


def check_edge_port(port: int) -> None:
    """Raise :class:`StartRefusedError` if something already listens on the edge port."""
    if _port_free(port):
        return
    suggestion = next((p for p in range(port + 1, min(port + 50, 65536)) if _port_free(p)), None)
    instead = f"`SAYSO_PORT={suggestion} make run`" if suggestion else "another `SAYSO_PORT`"
    if _is_sayso(port):
        raise StartRefusedError(
            f"Port {port} is taken by another Sayso stack (started from another `SAYSO_HOME`). "
            f"Stop it with Ctrl-C in its terminal, or start this one on another port: {instead}."
        )
    raise StartRefusedError(
        f"Port {port} on 127.0.0.1 is already in use by another program, so Sayso's edge cannot "
        f"listen there. Stop that program, or start Sayso on another port with `SAYSO_PORT`: "
        f"{instead}."
    )


__all__ = [
    "PID_FILE",
    "RunLock",
    "StartRefusedError",
    "already_running_message",
    "check_edge_port",
    "check_mongo_data_dir",
    "claim",
    "pid_alive",
    "read_pid_file",
]
