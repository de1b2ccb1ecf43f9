"""``sayso-devstack run`` (what ``make run`` calls) as a newcomer meets it: a second start while
one runs, a taken port, a restart on another port, a stop at any point of the start-up, and the
banner's commands, each against the real command started as a subprocess with its own SAYSO_HOME
and SAYSO_PORT (the README's and the docs' snippets run in tests/test_readme.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from sayso_devstack.guard import PID_FILE
from sayso_devstack.mail import MailCatcher
from sayso_devstack.processes import REPO_ROOT, free_port
from sayso_devstack.stack import Stack, features, load_env_file

pytestmark = pytest.mark.slow

DEVSTACK = Path(sys.executable).parent / "sayso-devstack"
READY_TIMEOUT = 150.0  # 2 busy cores; about 7 s on a quiet machine
REFUSAL_TIMEOUT = 30.0


def _env(home: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAYSO_")}
    return env | {"SAYSO_HOME": str(home), "SAYSO_PORT": str(port)}


def _leftovers(home: Path) -> list[int]:
    """Processes whose output goes into ``home`` (every child the stack starts logs to
    ``<home>/.sayso/logs``), whatever session or process group they are in."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            target = os.readlink(entry / "fd" / "1")
        except OSError:
            continue
        if target.startswith(f"{home}/"):
            found.append(int(entry.name))
    return found


def _kill_leftovers(home: Path) -> list[int]:
    pids = _leftovers(home)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


@dataclass
class Run:
    """One ``sayso-devstack run`` process, its stdout and stderr in files outside its home."""

    home: Path
    port: int
    popen: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                pytest.fail(
                    f"devstack exited with {self.popen.returncode} while starting:\n{self.stderr[-3000:]}"
                )
            if f"Sayso is running at {self.url}\n" in self.stdout:
                try:
                    if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        pytest.fail(f"devstack not ready after {timeout:.0f}s:\n{self.stderr[-3000:]}")

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"devstack still running after {timeout:.0f}s:\n{self.stderr[-3000:]}")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM to its process group, as Ctrl-C would; SIGKILL if it does not stop in time."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.returncode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)
        _kill_leftovers(self.home)


@dataclass
class Launcher:
    """Starts runs, at most one long-lived stack at a time, and cleans up every one of them."""

    logs: Path
    home: Path
    current: Run | None = None
    runs: list[Run] = field(default_factory=list)

    def launch(
        self, home: Path, port: int, env: dict[str, str] | None = None, stdout_closed: bool = False
    ) -> Run:
        """``stdout_closed``: its stdout a pipe nobody reads, closed at once (a reader gone away)."""
        n = len(self.runs)
        out_path, err_path = self.logs / f"run{n}.out", self.logs / f"run{n}.err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            popen = subprocess.Popen(
                [str(DEVSTACK), "run"],
                stdout=subprocess.PIPE if stdout_closed else out,
                stderr=err,
                env=_env(home, port) | (env or {}),
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        if popen.stdout is not None:
            popen.stdout.close()
        run = Run(home, port, popen, out_path, err_path)
        self.runs.append(run)
        return run

    def refused(self, home: Path, port: int) -> Run:
        """A start expected to give up before starting anything."""
        run = self.launch(home, port)
        run.wait_exit(REFUSAL_TIMEOUT)
        return run

    def running(self) -> Run:
        """The stack in ``self.home``, started if none is running."""
        if self.current is None or self.current.popen.poll() is not None:
            self.start(free_port())
        assert self.current is not None
        return self.current

    def start(self, port: int) -> Run:
        self.current = self.launch(self.home, port)
        self.current.wait_ready()
        return self.current

    def stop_current(self) -> Run:
        assert self.current is not None
        run, self.current = self.current, None
        code = run.stop()
        assert code == 0, run.stderr[-3000:]
        return run

    def close(self) -> None:
        for run in self.runs:
            run.stop()
            _kill_leftovers(run.home)


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    launcher = Launcher(logs=tmp_path_factory.mktemp("devstack-logs"), home=tmp_path_factory.mktemp("home"))
    try:
        yield launcher
    finally:
        launcher.close()


def _assert_no_child_output(err: str) -> None:
    """A refusal is one sentence: no traceback, no child's exit code or logs."""
    assert "Traceback" not in err, err
    assert "mongod" not in err, err
    assert "exited with" not in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_second_start_in_the_same_home_says_it_is_already_running(launcher: Launcher) -> None:
    first = launcher.running()
    expected = (
        f"Sayso is already running at {first.url} (pid {first.popen.pid}). Stop it with Ctrl-C in "
        "its terminal, or run another copy with `SAYSO_PORT` and `SAYSO_HOME`."
    )
    mongod_log = first.home / ".sayso" / "logs" / "mongod.log"
    log_size = mongod_log.stat().st_size
    # Same port (`make run` twice), then another port: the home is what is taken.
    for port in (first.port, free_port()):
        second = launcher.refused(first.home, port)
        assert second.popen.returncode != 0
        err = second.stderr
        assert expected in err, err
        _assert_no_child_output(err)
    # Nothing of the second start reached the first stack, which is still up.
    assert mongod_log.stat().st_size == log_size
    assert first.popen.poll() is None
    assert httpx.get(f"{first.url}/healthz", timeout=30).status_code == 200
    assert (first.home / ".sayso" / PID_FILE).read_text().split() == [str(first.popen.pid), first.url]


class _OtherServer(ThreadingHTTPServer):
    """Some other program's web server: every path is a 404 page."""

    asked = False


class _NotSayso(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert isinstance(self.server, _OtherServer)
        self.server.asked = True
        body = b"<html><body>Not Found</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_port_taken_by_another_program_is_named(launcher: Launcher, tmp_path: Path) -> None:
    home = tmp_path / "home"
    # Another web server that answers (a listener that never answers costs the start-up's whole
    # 15 s wait for a busy Sayso API to describe itself, and would end the same way).
    with _OtherServer(("127.0.0.1", 0), _NotSayso) as other:
        serving = threading.Thread(target=other.serve_forever, daemon=True)
        serving.start()
        try:
            port = other.server_address[1]
            run = launcher.refused(home, port)
            assert other.asked, "the start-up did not ask the program on the port what it is"
        finally:
            other.shutdown()
            serving.join(10)
    err = run.stderr
    assert run.popen.returncode != 0
    assert f"Port {port} on 127.0.0.1 is already in use by another program" in err, err
    assert "`SAYSO_PORT" in err
    _assert_no_child_output(err)
    assert not (home / ".sayso" / "mongo").exists()  # refused before any child started
    assert not (home / ".sayso" / PID_FILE).exists()
    assert _leftovers(home) == []


def test_port_taken_by_a_sayso_from_another_home_is_named(launcher: Launcher, tmp_path: Path) -> None:
    first = launcher.running()
    home = tmp_path / "home"
    run = launcher.refused(home, first.port)
    err = run.stderr
    assert run.popen.returncode != 0
    assert f"Port {first.port} is taken by another Sayso stack" in err, err
    assert "SAYSO_PORT=" in err
    _assert_no_child_output(err)
    assert not (home / ".sayso" / "mongo").exists()
    assert first.popen.poll() is None


# --- the banner (issue #27 items 1 and 3) ------------------------------------------------------


def test_banner_commands_work_from_a_shell_as_printed(launcher: Launcher) -> None:
    run = launcher.running()
    out = run.stdout
    # Only the banner on stdout: no JSON line, no log line (those go to stderr).
    assert out.startswith(f"\nSayso is running at {run.url}\n"), out
    assert not [line for line in out.splitlines() if line.startswith(("{", "[sayso]"))], out
    local_env = run.home / ".sayso" / "local.env"
    source = f"set -a; . {local_env}; set +a"  # the real path: SAYSO_HOME is set here
    assert f"  {source}\n" in out, out
    assert f'uv run sayso send "hello" --channel <agent id>       # in {REPO_ROOT}\n' in out, out
    [cli_line] = [line.strip() for line in out.splitlines() if '/sayso send "hello"' in line]
    assert cli_line.startswith(str(DEVSTACK.parent / "sayso"))
    # What is on and off in this run, and the setting for each.
    mail_dir = run.home / ".sayso" / "mail"
    assert f"E-mail:     caught here, not sent: each e-mail is kept in {mail_dir}" in out, out
    assert "buttons off: SAYSO_SLACK_SIGNING_SECRET is not set" in out, out
    assert "SAYSO_DISPATCHER_ALLOWED_NETWORKS=127.0.0.0/8 make run" in out, out
    assert "SAYSO_NOTIFIER_ALLOWED_NETWORKS=127.0.0.0/8 make run" in out, out
    assert "Replicas:   one of each service" in out, out

    key = load_env_file(local_env)["SAYSO_API_KEY"]
    with httpx.Client(base_url=run.url, headers={"x-api-key": key}, timeout=10) as client:
        agent = client.post("/api/v1/agents", json={"name": "banner-bot"})
        assert agent.status_code == 201, agent.text
        channel = agent.json()["id"]
        # Pasted into a shell elsewhere, with no SAYSO_* set and no .venv on PATH.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAYSO_")}
        env["PATH"] = "/usr/bin:/bin"
        script = f"{source}\n{cli_line.replace('<agent id>', channel)}"
        done = subprocess.run(
            ["bash", "-c", script], cwd=run.home, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        sent = client.get("/api/v1/messages", params={"channel": channel})
        assert sent.status_code == 200, sent.text
        assert [m["text"] for m in sent.json()["data"]] == ["hello"]

        # E-mail with no mail server: the review's e-mail is kept in the folder the banner names,
        # readable only by its owner, and its answer link answers (issue #27's done-when).
        asked = client.post(
            "/api/v1/messages",
            json={"channelId": channel, "text": "Ship 2.0 tonight?", "review": {"type": "approval"}},
        )
        assert asked.status_code == 201, asked.text
        link = _answer_link(mail_dir, "Ship 2.0 tonight?", "Approve")
        assert oct(mail_dir.stat().st_mode & 0o777) == "0o700"
        assert {oct(f.stat().st_mode & 0o777) for f in mail_dir.iterdir()} == {"0o600"}
        assert link.startswith(f"{run.url}/a/"), link
        assert "Confirm: Approve" in httpx.get(link, timeout=10).text
        assert "Answer recorded" in httpx.post(link, timeout=10).text
        review = client.get(f"/api/v1/messages/{asked.json()['id']}").json()["review"]
        assert review["status"] == "completed", review
        assert review["response"]["selectedOption"] == "approve", review


def _answer_link(folder: Path, text: str, label: str, timeout: float = 30) -> str:
    """The ``label`` answer link of the kept e-mail about ``text``, once it is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
            body = path.read_text()
            if text in body:
                [line] = [line for line in body.splitlines() if line.startswith(f"{label}: ")]
                return line.removeprefix(f"{label}: ").strip()
        time.sleep(0.2)
    pytest.fail(f"no e-mail about {text!r} in {folder} after {timeout:.0f}s")


def test_restart_on_another_port_rewrites_sayso_url(launcher: Launcher) -> None:
    first = launcher.running()
    local_env = first.home / ".sayso" / "local.env"
    pid_file = first.home / ".sayso" / PID_FILE
    before_text = local_env.read_text()
    before = load_env_file(local_env)
    assert before["SAYSO_URL"] == first.url
    # Every start runs the data migrations before the services (sayso-api migrate).
    migrate_log = first.home / ".sayso" / "logs" / "migrate.log"
    migrated = migrate_log.read_text().count("done: 0 documents changed by 2 migrations")
    assert migrated >= 1
    launcher.stop_current()  # a clean stop: exit 0, children gone, pid file removed
    assert _leftovers(first.home) == []
    assert not pid_file.exists()
    # A pid file left by a run that is gone must not block the next start.
    gone = subprocess.Popen(["true"])
    gone.wait()
    pid_file.write_text(f"{gone.pid}\n{first.url}\n")

    new_port = free_port()
    while new_port == first.port:
        new_port = free_port()
    second = launcher.start(new_port)
    after = load_env_file(local_env)
    assert after["SAYSO_URL"] == second.url != first.url
    assert {k: v for k, v in after.items() if k != "SAYSO_URL"} == {
        k: v for k, v in before.items() if k != "SAYSO_URL"
    }
    # Only the SAYSO_URL line changed.
    assert local_env.read_text() == before_text.replace(
        f"SAYSO_URL={first.url}\n", f"SAYSO_URL={second.url}\n"
    )
    assert f"{local_env} is current for this run (SAYSO_URL={second.url})" in second.stdout
    assert migrate_log.read_text().count("done: 0 documents changed by 2 migrations") == migrated + 1
    assert pid_file.read_text().split() == [str(second.popen.pid), second.url]
    # The kept key works on the new port.
    listed = httpx.get(
        f"{second.url}/api/v1/agents", headers={"x-api-key": after["SAYSO_API_KEY"]}, timeout=10
    )
    assert listed.status_code == 200, listed.text
    launcher.stop_current()
    assert _leftovers(first.home) == []
    assert not pid_file.exists()


# --- a stop at any point of the start-up (issue #27 item 8) ------------------------------------

STOP_TIMEOUT = 90.0  # a whole start-up and stop on 2 busy cores, with room


def _until(what: str, run: Run, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if ready():
            return
        if run.popen.poll() is not None:
            pytest.fail(f"devstack exited with {run.popen.returncode} before {what}:\n{run.stderr[-3000:]}")
        time.sleep(0.02)
    pytest.fail(f"no {what} after {READY_TIMEOUT:.0f}s:\n{run.stderr[-3000:]}")


def _edge_answers(run: Run) -> bool:
    try:
        return httpx.get(f"{run.url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# When the signal comes: mongod spawned (the first child), the api spawned (infrastructure up,
# services starting), the edge answering /healthz (credentials not yet written, banner not yet
# printed: the window the script hit).
POINTS: dict[str, Callable[[Run], bool]] = {
    "mongod": lambda run: (run.home / ".sayso" / "logs" / "mongod.log").exists(),
    # The local mail catcher up: the migrations (a separate process, 5-6 s here) run next, and
    # Ctrl-C reaches them.
    "migrate": lambda run: "e-mail is caught on" in run.stderr,
    "api": lambda run: (run.home / ".sayso" / "logs" / "api.log").exists(),
    "edge": _edge_answers,
}


@pytest.mark.parametrize(
    ("point", "signals", "stdout_closed"),
    [
        ("mongod", [signal.SIGTERM], False),
        ("mongod", [signal.SIGINT, signal.SIGINT], False),
        ("migrate", [signal.SIGINT], False),  # a terminal's Ctrl-C, during the migrations
        ("api", [signal.SIGTERM, signal.SIGTERM], False),  # the group's, then the wrapper's
        ("api", [signal.SIGHUP], False),  # the terminal closed
        ("edge", [signal.SIGTERM, signal.SIGTERM], False),
        ("edge", [signal.SIGINT], True),  # nobody reads stdout any more (a driving script's pipe)
    ],
    ids=[
        "mongod-term",
        "mongod-int-twice",
        "migrate-int",
        "api-term-twice",
        "api-hup",
        "edge-term-twice",
        "edge-stdout-gone",
    ],
)
def test_a_stop_during_start_up_leaves_no_child_behind(
    launcher: Launcher, tmp_path: Path, point: str, signals: list[signal.Signals], stdout_closed: bool
) -> None:
    home = tmp_path / "home"
    run = launcher.launch(home, free_port(), stdout_closed=stdout_closed)
    _until(f"{point} started", run, lambda: POINTS[point](run))
    for n, sig in enumerate(signals):
        # The first to the process group (as a terminal or `kill -- -PGID` sends it), any second
        # straight to the process (as `uv run` and make forward theirs).
        if n == 0:
            os.killpg(run.popen.pid, sig)
        else:
            os.kill(run.popen.pid, sig)
    code = run.wait_exit(STOP_TIMEOUT)
    # Every child is gone by the time `make run` has exited, not later.
    assert _leftovers(home) == [], run.stderr[-3000:]
    assert code == 0, run.stderr[-3000:]
    err = run.stderr
    assert "Traceback" not in err, err
    assert "stopping the stack" in err, err
    assert not (home / ".sayso" / PID_FILE).exists()
    if point != "edge":
        # Stopped where it was, not after finishing the start-up.
        assert "edge (caddy)" not in err, err
        assert not (home / ".sayso" / "logs" / "caddy.log").exists()
    # The next start in this home is not refused by anything left over: its mongod comes up.
    again = launcher.launch(home, free_port())
    _until("mongod up again", again, lambda: "mongod ready on" in again.stderr)
    assert again.stop() == 0, again.stderr[-3000:]
    assert _leftovers(home) == []


@pytest.mark.parametrize(
    ("env", "replicas", "expected", "absent"),
    [
        (
            {},
            {"dispatcher": 1},
            [
                "E-mail: off: SAYSO_SMTP_URL is not set",
                "Slack: messages are sent, buttons off: SAYSO_SLACK_SIGNING_SECRET is not set",
                "Webhooks: the SSRF guard refuses webhook receivers on loopback and private addresses; "
                "to reach this machine: SAYSO_DISPATCHER_ALLOWED_NETWORKS=127.0.0.0/8 make run",
                "Slack URLs: the SSRF guard refuses Slack webhook URLs on loopback and private "
                "addresses; to reach this machine: SAYSO_NOTIFIER_ALLOWED_NETWORKS=127.0.0.0/8 make run",
                'Replicas: one of each service (more with SAYSO_REPLICAS="api=2 dispatcher=3")',
            ],
            [],
        ),
        (
            {
                "SAYSO_SMTP_URL": "smtps://mailer:hunter2-secret@smtp.example.com:465",
                "SAYSO_SMTP_FROM": "Ops <ops@example.com>",
                "SAYSO_SLACK_SIGNING_SECRET": "slack-signing-secret",
                "SAYSO_DISPATCHER_ALLOWED_NETWORKS": "127.0.0.0/8,10.0.0.0/8",
                "SAYSO_NOTIFIER_ALLOWED_NETWORKS": "127.0.0.0/8",
            },
            {"dispatcher": 3, "api": 2, "expirer": 1},
            [
                "E-mail: on: smtps://smtp.example.com:465 (SAYSO_SMTP_URL), from Ops <ops@example.com>",
                "Slack: buttons on (SAYSO_SLACK_SIGNING_SECRET is set)",
                "Webhooks: the SSRF guard lets webhook receivers reach 127.0.0.0/8,10.0.0.0/8 "
                "(SAYSO_DISPATCHER_ALLOWED_NETWORKS)",
                "Slack URLs: the SSRF guard lets Slack webhook URLs reach 127.0.0.0/8",
                "Replicas: dispatcher=3 api=2, one of each other service (SAYSO_REPLICAS)",
            ],
            ["hunter2", "mailer", "slack-signing-secret"],  # never a credential
        ),
        (
            {"SAYSO_SMTP_URL": "  ", "SAYSO_SLACK_SIGNING_SECRET": ""},  # blank is unset
            {},
            ["E-mail: off", "buttons off"],
            [],
        ),
        (
            {"SAYSO_SMTP_URL": "smtp://host.example:notaport"},  # the notifier refuses it itself
            {},
            ["E-mail: on: smtp://host.example (SAYSO_SMTP_URL), from Sayso <sayso@localhost>"],
            [],
        ),
    ],
    ids=["defaults", "all-set", "blank", "bad-port"],
)
def test_banner_features_say_what_is_on_and_its_setting(
    env: dict[str, str], replicas: dict[str, int], expected: list[str], absent: list[str]
) -> None:
    text = "\n".join(f"{label}: {line}" for label, line in features(env, replicas))
    for part in expected:
        assert part in text, text
    for part in absent:
        assert part not in text, text


def test_banner_names_the_mail_folder_when_mail_is_caught(tmp_path: Path) -> None:
    # The catcher's own SMTP URL is in the services' environment: the row names the folder.
    env = {"SAYSO_SMTP_URL": "smtp://127.0.0.1:2525"}
    rows = dict(features(env, {}, tmp_path / "mail"))
    assert rows["E-mail"].startswith(f"caught here, not sent: each e-mail is kept in {tmp_path / 'mail'}")
    assert "set SAYSO_SMTP_URL to send real e-mail" in rows["E-mail"]
    assert "127.0.0.1:2525" not in rows["E-mail"]


@pytest.mark.parametrize(
    ("env", "caught"),
    [
        ({}, True),
        ({"SAYSO_SMTP_URL": "smtp://mail.example:25"}, False),  # a real server wins
        ({"SAYSO_LOCAL_MAIL": "off"}, False),
        ({"SAYSO_LOCAL_MAIL": " OFF "}, False),
        ({"SAYSO_LOCAL_MAIL": "on"}, True),
        ({"SAYSO_SMTP_URL": "  "}, True),  # blank is unset
    ],
)
def test_mail_is_caught_only_when_nothing_else_is_set(
    env: dict[str, str], caught: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SAYSO_SMTP_URL", "SAYSO_LOCAL_MAIL"):
        monkeypatch.delenv(name, raising=False)
    stack = Stack(state_dir=tmp_path, extra_env=env)
    try:
        got = stack._mail_env()
        assert ("SAYSO_SMTP_URL" in got) is caught
        assert (stack.mail is not None) is caught
    finally:
        stack.stop()
    assert stack.mail is None  # stopped with the stack


def test_the_mail_catcher_keeps_each_message_readable_and_private(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = (
        "Sayso <s@localhost>",
        "ana@example.com",
        "[Sayso] Ja?",
    )
    long_link = "http://127.0.0.1:8000/a/" + "x" * 120  # folded by quoted-printable in transit
    message.set_content(f"Über alles\nApprove: {long_link}\n", cte="quoted-printable")
    message.add_alternative("<p>Über alles</p>", subtype="html")
    with MailCatcher(folder) as catcher:
        port = int(catcher.url.rsplit(":", 1)[1])
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(message)
            # Too large for the folder: refused, nothing kept.
            with pytest.raises(smtplib.SMTPException):
                smtp.sendmail("s@localhost", ["ana@example.com"], b"Subject: big\r\n\r\n" + b"a" * (11 << 20))
    [eml] = folder.glob("*.eml")
    [txt] = folder.glob("*.txt")
    assert eml.stem == txt.stem
    text = txt.read_text()
    assert "To: ana@example.com\n" in text
    assert "Subject: [Sayso] Ja?" in text
    assert f"Approve: {long_link}\n" in text  # decoded: the link is one line again
    assert "\r" not in text  # lines end as in a file (a link must not end in a carriage return)
    assert "Über alles" in text
    assert "<p>" not in text  # the plain part, not the HTML one
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert {oct(p.stat().st_mode & 0o777) for p in (eml, txt)} == {"0o600"}
