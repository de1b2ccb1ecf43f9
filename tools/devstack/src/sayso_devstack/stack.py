"""The whole local stack as one object: what ``make run`` starts and supervises."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from sayso_common import legacy
from sayso_devstack.guard import StartRefusedError, check_edge_port, check_mongo_data_dir, claim
from sayso_devstack.mail import MailCatcher
from sayso_devstack.processes import (
    REPO_ROOT,
    SERVICES,
    Proc,
    StackError,
    StartInterruptedError,
    free_port,
    mongo_url,
    port_open,
    run_migrations,
    spawn_service,
    start_caddy,
    start_mongod,
    start_tansu,
    stop_all,
    wait_healthy,
)

log = logging.getLogger("sayso.devstack")

ADMIN_EMAIL = "admin@sayso.local"
# In a state directory, names the MongoDB database when it is not the default (one taken over
# from before the rename keeps its data where it was).
MONGO_DB_FILE = "mongo-db"
# The services Caddy proxies to: their replicas are its upstreams, so each keeps its port.
EDGE_SERVICES = ("api", "realtime")


def load_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and not key.startswith("#"):
                values[key.strip()] = value.strip().strip("'\"")
    return values


def update_env_file(path: Path, updates: dict[str, str]) -> None:
    """Set ``KEY=value`` lines in place (appending keys not there yet), keeping every other line."""
    lines = path.read_text().splitlines() if path.exists() else []
    pending = dict(updates)
    out: list[str] = []
    for line in lines:
        key = line.partition("=")[0].strip()
        if key in pending:
            out.append(f"{key}={pending.pop(key)}")
        elif key not in updates:  # a key set twice keeps only its first, updated line
            out.append(line)
    out.extend(f"{k}={v}" for k, v in pending.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{line}\n" for line in out))
    tmp.chmod(0o600)
    os.replace(tmp, path)


def secret_key(state_dir: Path) -> str:
    """Generated once per checkout and kept, so stored secrets stay readable across runs."""
    path = state_dir / "secret_key"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass
class Stack:
    state_dir: Path
    edge_port: int = 8000
    dispatchers: int = 1
    # service -> replicas (SAYSO_REPLICAS); ``dispatchers`` is kept for existing callers.
    replicas: dict[str, int] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    service_env: dict[str, str] = field(default_factory=dict)
    # Settings for every service on top of the stack's own (the chaos soak shortens a few).
    extra_env: dict[str, str] = field(default_factory=dict)
    _service_of: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    # Servers taken down on purpose (take_down); the supervisor leaves them alone until they
    # are back. The lock keeps a supervisor pass from seeing a process between the two steps.
    _held: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Replicas the supervisor restarted, by name, in order (the soak tells its own kills apart).
    restarts: list[str] = field(default_factory=list)
    # Set to stop a start in progress: ``start`` then raises StartInterruptedError, having stopped
    # nothing itself (``stop`` stops what it started, as after any failed start).
    cancel: threading.Event = field(default_factory=threading.Event)
    # E-mail is caught in ``mail_dir`` when nothing else is configured (see ``_mail_env``).
    mail: MailCatcher | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}"

    @property
    def local_env_path(self) -> Path:
        return self.state_dir / "local.env"

    @property
    def mail_dir(self) -> Path:
        return self.state_dir / "mail"

    def _mail_env(self) -> dict[str, str]:
        """``SAYSO_SMTP_URL`` of the local mail catcher, started here, unless the services get
        one already (the environment or ``extra_env``) or ``SAYSO_LOCAL_MAIL=off``."""
        configured = {**os.environ, **self.extra_env}
        if configured.get("SAYSO_SMTP_URL", "").strip() or local_mail_off(configured):
            return {}
        self.mail = MailCatcher(self.mail_dir).start()
        log.info("e-mail is caught on %s and kept in %s", self.mail.url, self.mail_dir)
        return {"SAYSO_SMTP_URL": self.mail.url}

    def start(self) -> dict[str, str]:
        """Start everything; returns the credentials written to ``local.env``. Each child is in
        ``procs`` from its spawn on (a start that fails or is cancelled half-way leaves nothing
        that :meth:`stop` does not know of)."""
        started = time.monotonic()
        logs = self.state_dir / "logs"
        first_start = not self.local_env_path.exists()
        mongo = start_mongod(self.state_dir / "mongo", logs, cancel=self.cancel)
        self.procs.append(mongo)
        log.info("mongod ready on 127.0.0.1:%s (replica set rs0)", mongo.port)
        tansu = start_tansu(logs, cancel=self.cancel)
        self.procs.append(tansu)
        log.info("tansu (Kafka API) ready on 127.0.0.1:%s", tansu.port)
        db_file = self.state_dir / MONGO_DB_FILE
        database = db_file.read_text().strip() if db_file.exists() else ""
        self.service_env = {
            **({"SAYSO_MONGO_DB": database} if database else {}),
            "SAYSO_MONGO_URL": mongo_url(mongo.port),
            "SAYSO_KAFKA_BOOTSTRAP": f"127.0.0.1:{tansu.port}",
            "SAYSO_SECRET_KEY": secret_key(self.state_dir),
            "SAYSO_PUBLIC_URL": self.url,
            **self._mail_env(),
            **self.extra_env,
        }
        # Data migrations run once, before any API starts (as compose's and Kubernetes' do).
        log.info(
            "migrations: %s (progress in %s)",
            run_migrations(logs, self.service_env, cancel=self.cancel),
            logs / "migrate.log",
        )
        password = secrets.token_urlsafe(12)
        api_env = dict(self.service_env)
        if first_start:
            api_env |= {
                "SAYSO_BOOTSTRAP_ADMIN_EMAIL": ADMIN_EMAIL,
                "SAYSO_BOOTSTRAP_ADMIN_PASSWORD": password,
            }
        counts = {"dispatcher": self.dispatchers, **self.replicas}
        services: list[Proc] = []
        by_service: dict[str, list[Proc]] = {}
        for service in SERVICES:
            count = counts.get(service, 1)
            for n in range(count):
                if self.cancel.is_set():
                    raise StartInterruptedError("stopped while starting the services")
                name = service if count == 1 else f"{service}-{n + 1}"
                env = api_env if service == "api" else self.service_env
                proc = spawn_service(service, logs, env, name=name)
                self.procs.append(proc)
                by_service.setdefault(service, []).append(proc)
                services.append(proc)
                self._service_of[name] = (service, env)
        for proc in services:
            wait_healthy(proc, cancel=self.cancel)
            log.info("%s up on 127.0.0.1:%s", proc.name, proc.port)
        api_ports = [p.port for p in by_service["api"]]
        realtime_ports = [p.port for p in by_service["realtime"]]
        self.procs.append(start_caddy(logs, self.edge_port, api_ports, realtime_ports, cancel=self.cancel))
        log.info("edge (caddy) on %s", self.url)
        if first_start:
            self._bootstrap(password)
        else:
            # Credentials stay; the URL is this run's (an earlier run may have used another port).
            update_env_file(self.local_env_path, {"SAYSO_URL": self.url})
        log.info("stack ready in %.1fs", time.monotonic() - started)
        return load_env_file(self.local_env_path)

    def _bootstrap(self, password: str) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            login = client.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": password})
            login.raise_for_status()
            token = login.json()["token"]
            key = client.post(
                "/api/v1/api-keys",
                json={"label": "local agent key"},
                headers={"Authorization": f"Bearer {token}"},
            )
            key.raise_for_status()
        values = {
            "SAYSO_URL": self.url,
            "SAYSO_API_KEY": key.json()["key"],
            "SAYSO_ADMIN_EMAIL": ADMIN_EMAIL,
            "SAYSO_ADMIN_PASSWORD": password,
        }
        self.local_env_path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        self.local_env_path.chmod(0o600)

    def stop(self) -> None:
        """Stop every child: the edge first, then the services side by side, then the broker and
        MongoDB (which the services still talk to while they shut down)."""
        edge = [p for p in self.procs if p.name == "caddy"]
        services = [p for p in self.procs if p.name in self._service_of]
        first = {id(p) for p in edge + services}
        stop_all(edge)
        stop_all(services)
        stop_all(p for p in self.procs if id(p) not in first)
        self.procs.clear()
        if self.mail is not None:
            self.mail.stop()
            self.mail = None

    def processes_of(self, service: str) -> list[Proc]:
        """The running processes of one Sayso service (its replicas), as they are now."""
        with self._lock:
            return [
                p for p in self.procs if p.name in self._service_of and self._service_of[p.name][0] == service
            ]

    def _infra(self, name: str) -> tuple[int, Proc]:
        if name not in ("mongod", "tansu"):
            raise StackError(f"only mongod and tansu can be taken down, not {name!r}")
        return next((i, p) for i, p in enumerate(self.procs) if p.name == name)

    def take_down(self, name: str) -> None:
        """SIGKILL ``mongod`` or ``tansu`` and keep it down until :meth:`bring_back`, without the
        supervisor treating it as a death (fault injection: the chaos soak)."""
        with self._lock:
            self._held.add(name)
            _, proc = self._infra(name)
        proc.kill()

    def bring_back(self, name: str) -> Proc:
        """Start a server taken down by :meth:`take_down` again on its port (mongod on its data
        directory, so nothing stored is lost; tansu empty, as any restart of a memory-only
        broker); returns once it accepts connections (mongod: once it is primary again)."""
        _, old = self._infra(name)
        logs = self.state_dir / "logs"
        if name == "mongod":
            new = start_mongod(self.state_dir / "mongo", logs, port=old.port)
        else:
            new = start_tansu(logs, port=old.port)
        with self._lock:
            index, _ = self._infra(name)
            self.procs[index] = new
            self._held.discard(name)
        return new

    def _restartable(self, proc: Proc) -> bool:
        known = self._service_of.get(proc.name)
        return known is not None and {"dispatcher": self.dispatchers, **self.replicas}.get(known[0], 1) > 1

    def supervise(self, stop: threading.Event) -> int:
        """Block until ``stop`` is set (exit 0) or a child dies (exit 1, stack torn down). A
        replica of a service that runs several is restarted on its port instead: the others
        carry the load meanwhile, as in production."""
        while not stop.wait(0.5):
            with self._lock:
                code = self._supervise_pass()
            if code is not None:
                return code
        return 0

    def _supervise_pass(self) -> int | None:
        for i, proc in enumerate(self.procs):
            if proc.name in self._held:
                continue
            if not proc.alive and self._restartable(proc):
                service, env = self._service_of[proc.name]
                log.warning("%s exited with code %s; restarting it", proc.name, proc.popen.returncode)
                self.restarts.append(proc.name)
                port: int | None = proc.port
                if service not in EDGE_SERVICES and port_open(proc.port):
                    # Another program took the dead replica's port meanwhile (a free port is
                    # only free until someone binds it). Only the edge needs a fixed port.
                    log.warning("%s's port %s is taken; it gets a new one", proc.name, proc.port)
                    port = None
                self.procs[i] = spawn_service(
                    service, self.state_dir / "logs", env, port=port, name=proc.name
                )
                continue
            if not proc.alive:
                log.error(
                    "!!! %s exited with code %s; stopping the stack. %s",
                    proc.name,
                    proc.popen.returncode,
                    proc.tail(),
                )
                return 1
        return None


def parse_replicas(raw: str) -> dict[str, int]:
    """``"api=2 realtime=2 dispatcher=3 expirer=2"`` (spaces or commas) -> counts per service."""
    counts: dict[str, int] = {}
    for item in raw.replace(",", " ").split():
        service, sep, number = item.partition("=")
        if not sep or service not in SERVICES or not number.isdigit() or not 1 <= int(number) <= 16:
            raise SystemExit(
                f"SAYSO_REPLICAS: {item!r} is not service=N with a service among "
                f'{", ".join(SERVICES)} and N from 1 to 16 (e.g. "api=2 dispatcher=3")'
            )
        counts[service] = int(number)
    return counts


# Each stops the stack: Ctrl-C, `kill`, and a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run(state_dir: Path, edge_port: int, replicas: dict[str, int] | None = None) -> int:
    stop = threading.Event()
    # Only sets the event, whenever it comes and however often (the process group and a wrapper
    # such as `uv run` each forward it): the start-up watches it, and nothing it interrupts is
    # the cleanup, which always runs to the end.
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: stop.set())
    stack = Stack(state_dir=state_dir, edge_port=edge_port, replicas=replicas or {}, cancel=stop)
    # Before any child starts: this state directory free, nothing left over on its data
    # directory, the edge port free. Otherwise one sentence, not a child's exit code and logs.
    try:
        lock = claim(state_dir, stack.url)
    except (StartRefusedError, OSError) as exc:
        log.error("%s", exc)
        return 1
    try:
        return _run_claimed(stack, stop)
    finally:
        lock.release()


def _run_claimed(stack: Stack, stop: threading.Event) -> int:
    state_dir = stack.state_dir
    try:
        check_mongo_data_dir(state_dir / "mongo")
        check_edge_port(stack.edge_port)
    except (StartRefusedError, OSError) as exc:
        log.error("%s", exc)
        return 1
    # Whatever happens from the first child on (a failed or interrupted start, a banner written
    # to a closed pipe, any exception), every child is stopped before this returns.
    try:
        try:
            creds = stack.start()
        except StartInterruptedError:
            log.info("stopping the stack (asked to during start-up)")
            return 0
        except (StackError, httpx.HTTPError, OSError) as exc:
            log.error("stack failed to start: %s", exc)
            return 1
        if stop.is_set():
            log.info("stopping the stack (asked to during start-up)")
            return 0
        env = {**os.environ, **stack.service_env}
        _say(banner(stack, creds, env))
        code = stack.supervise(stop)
        log.info("stopping the stack")
        return code
    finally:
        stack.stop()


def _say(text: str) -> None:
    """Print to stdout; a closed stdout (the reader went away) does not stop the stack."""
    try:
        print(text, flush=True)
    except OSError:
        # Later writes, and the interpreter's flush at exit, go nowhere instead of failing.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - kept open until exit


def _where(url: str) -> str:
    """A server URL without its credentials (the SMTP URL carries the password)."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"


def local_mail_off(env: Mapping[str, str]) -> bool:
    return env.get("SAYSO_LOCAL_MAIL", "").strip().lower() in ("off", "0", "false", "no")


def features(
    env: Mapping[str, str], replicas: Mapping[str, int], mail_dir: Path | None = None
) -> list[tuple[str, str]]:
    """What is on and off in this run and the setting that changes it, as (label, line) rows.
    Settings are read from the environment the services get, so the banner says what they do;
    ``mail_dir``: where the local mail catcher keeps e-mail, when it runs."""

    def value(name: str) -> str:
        return env.get(name, "").strip()

    rows: list[tuple[str, str]] = []
    smtp = value("SAYSO_SMTP_URL")
    if mail_dir is not None:
        rows.append(
            (
                "E-mail",
                f"caught here, not sent: each e-mail is kept in {mail_dir} (answer links work); "
                "set SAYSO_SMTP_URL to send real e-mail",
            )
        )
    elif smtp:
        sender = value("SAYSO_SMTP_FROM") or "Sayso <sayso@localhost>"
        rows.append(("E-mail", f"on: {_where(smtp)} (SAYSO_SMTP_URL), from {sender} (SAYSO_SMTP_FROM)"))
    else:
        rows.append(
            (
                "E-mail",
                "off: SAYSO_SMTP_URL is not set, so e-mail notices are recorded as skipped "
                "(not configured, and not sent later); set it and restart",
            )
        )
    if value("SAYSO_SLACK_SIGNING_SECRET"):
        rows.append(("Slack", "buttons on (SAYSO_SLACK_SIGNING_SECRET is set)"))
    else:
        rows.append(
            (
                "Slack",
                "messages are sent, buttons off: SAYSO_SLACK_SIGNING_SECRET is not set "
                "(the Slack actions endpoint answers 404)",
            )
        )
    for label, name, what in (
        ("Webhooks", "SAYSO_DISPATCHER_ALLOWED_NETWORKS", "webhook receivers"),
        ("Slack URLs", "SAYSO_NOTIFIER_ALLOWED_NETWORKS", "Slack webhook URLs"),
    ):
        allowed = value(name)
        if allowed:
            rows.append((label, f"the SSRF guard lets {what} reach {allowed} ({name})"))
        else:
            rows.append(
                (
                    label,
                    f"the SSRF guard refuses {what} on loopback and private addresses; to reach "
                    f"this machine: {name}=127.0.0.0/8 make run",
                )
            )
    counts = " ".join(f"{service}={n}" for service, n in replicas.items() if n != 1)
    if counts:
        rows.append(("Replicas", f"{counts}, one of each other service (SAYSO_REPLICAS)"))
    else:
        rows.append(("Replicas", 'one of each service (more with SAYSO_REPLICAS="api=2 dispatcher=3")'))
    return rows


def banner(stack: Stack, creds: Mapping[str, str], env: Mapping[str, str]) -> str:
    """What ``make run`` prints once the stack is up: where it is, the credentials, the commands
    that work from a shell (the clients live in the checkout's ``.venv``, not on PATH), and what is
    on and off."""
    url, local_env = stack.url, stack.local_env_path
    bin_dir = Path(sys.executable).parent
    replicas = {"dispatcher": stack.dispatchers, **stack.replicas}
    rows = [
        ("API docs", f"{url}/docs"),
        ("Health", f"{url}/healthz"),
        ("Admin", f"{creds.get('SAYSO_ADMIN_EMAIL')} / {creds.get('SAYSO_ADMIN_PASSWORD')}"),
        ("API key", f"{creds.get('SAYSO_API_KEY')}"),
        ("Settings", f"{local_env} is current for this run (SAYSO_URL={url})"),
        *features(env, replicas, stack.mail_dir if stack.mail is not None else None),
        ("Logs", f"{stack.state_dir / 'logs'}"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"Sayso is running at {url}"]
    lines += [f"  {label + ':':<{width}}{text}" for label, text in rows]
    lines += [
        "",
        "From another shell (the sayso command is in the checkout's .venv, not on your PATH):",
        f"  set -a; . {local_env}; set +a",
        f'  uv run sayso send "hello" --channel <agent id>       # in {REPO_ROOT}',
        f'  {bin_dir / "sayso"} send "hello" --channel <agent id>',
        f"  (or `. {bin_dir / 'activate'}` once, then `sayso …`; `sayso --help` lists the commands)",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n" + "\n".join(lines) + "\n"


def take_over_old_state(state_dir: Path) -> None:
    """A state directory that ``make run`` kept before the rename (``legacy.OLD_STATE_DIR`` beside this one)
    becomes this one, once: moved, the names in its ``local.env`` renamed, and its data still read
    from the database it was written to (recorded in ``mongo-db``, which ``start`` reads)."""
    old = state_dir.with_name(legacy.OLD_STATE_DIR)
    if state_dir.exists() or not old.is_dir():
        return
    old.rename(state_dir)
    env_file = state_dir / "local.env"
    renamed = {
        legacy.NEW_PREFIX + key[len(legacy.OLD_PREFIX) :]: value
        for key, value in load_env_file(env_file).items()
        if key.startswith(legacy.OLD_PREFIX)
    }
    if renamed:
        env_file.unlink()
        update_env_file(env_file, renamed)
    (state_dir / MONGO_DB_FILE).write_text(f"{legacy.OLD_MONGO_DB}\n")
    log.warning(
        "moved %s to %s (the product is now called Sayso); its data stays in MongoDB database %r",
        old,
        state_dir,
        legacy.OLD_MONGO_DB,
    )


def env_state_dir() -> Path:
    """``$SAYSO_HOME/.sayso``, or ``.sayso`` in the checkout when SAYSO_HOME is unset."""
    home = os.environ.get("SAYSO_HOME", "").strip()
    return (Path(home).expanduser() if home else REPO_ROOT) / ".sayso"


def env_port(default: int = 8000) -> int:
    raw = os.environ.get("SAYSO_PORT", str(default))
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"SAYSO_PORT must be a port number, got {raw!r}") from None


__all__ = [
    "SERVICES",
    "STOP_SIGNALS",
    "Stack",
    "banner",
    "env_port",
    "env_state_dir",
    "features",
    "free_port",
    "parse_replicas",
    "run",
    "update_env_file",
]
