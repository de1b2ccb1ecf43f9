"""Every ```bash and ```python snippet of the README runs, as written and in order, against a real
stack: a newcomer pastes them into one shell, so they run in one shell here, with the variables
each one sets kept for the next.

The shell starts as a newcomer's second terminal does: at a checkout (its ``.venv`` linked in,
not on PATH), with ``SAYSO_HOME`` naming the folder whose ``.sayso/local.env`` holds what
``make run`` writes there (so a snippet that reads ``.sayso/local.env`` from the checkout fails).
A person answers every pending approval in the inbox, as the snippets expect. The harness adds
two things to what a person types: ``set -euo pipefail`` (an unset variable or a failed command
stops the run, naming the snippet's heading and line) and ``curl --fail-with-body --max-time 60``
(a 4xx or 5xx is a failure, not a silently printed error).

A block the test cannot run (it starts a stack, needs Docker, runs forever) is marked in the README
with ``<!-- not run: why -->`` on the line before it; ``<!-- save as: NAME -->`` saves a block as
a file a later snippet runs. Every other block must run."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sayso_common import legacy
from sayso_devstack.mail import MailCatcher
from sayso_devstack.processes import free_port, start_caddy
from tests.conftest import Infra
from tests.support.private import ADMIN, PrivateStack, private_stack

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = re.compile(r"<!--\s*(not run|save as):\s*(.+?)\s*-->")
BLOCK_TIMEOUT = 60.0


@dataclass
class Block:
    lang: str
    heading: str
    line: int  # of the opening fence in README.md
    code: str
    marker: tuple[str, str] | None

    @property
    def where(self) -> str:
        return f"README.md:{self.line} (under {self.heading!r})"


def readme_blocks(text: str) -> list[Block]:
    """The README's top-level ```bash and ```python blocks, in order, with the heading above each
    and the marker on the line before it."""
    blocks: list[Block] = []
    lines = text.splitlines()
    heading, i = "", 0
    while i < len(lines):
        line = lines[i]
        fence = re.fullmatch(r"```(\w*)\s*", line)
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif fence:
            start, body = i, []
            i += 1
            while i < len(lines) and lines[i] != "```":
                body.append(lines[i])
                i += 1
            if fence.group(1) in ("bash", "python"):
                found = MARKER.fullmatch(lines[start - 1].strip()) if start else None
                marker = (found.group(1), found.group(2)) if found else None
                blocks.append(Block(fence.group(1), heading, start + 1, "\n".join(body) + "\n", marker))
        i += 1
    return blocks


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# A\n```bash\necho 1\n```\n", [("bash", "A", 2, None)]),
        (
            "## B\n<!-- not run: needs kubectl -->\n```bash\nx\n```\n",
            [("bash", "B", 3, ("not run", "needs kubectl"))],
        ),
        ("# C\n```json\n{}\n```\n```python\nprint(1)\n```\n", [("python", "C", 5, None)]),
        # a "#" line inside a block is code, not a heading
        ("# D\n```bash\n# comment\n```\n```bash\ny\n```\n", [("bash", "D", 2, None), ("bash", "D", 5, None)]),
        ("# E\n<!-- save as: r.py -->\n```python\nz\n```\n", [("python", "E", 3, ("save as", "r.py"))]),
    ],
)
def test_readme_blocks_are_found(text: str, expected: list[tuple[object, ...]]) -> None:
    assert [(b.lang, b.heading, b.line, b.marker) for b in readme_blocks(text)] == expected


class Shell:
    """One bash, fed the snippets one at a time; its output is read by a thread."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # the snippets' background jobs are stopped with it
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, script: str, done: str, timeout: float) -> tuple[str, list[str]]:
        """Feed ``script``; "done" once ``done`` is printed, "exited" if the shell ended first (a
        snippet's background job may keep the pipe open, so the shell itself is watched), "timed
        out" after ``timeout``."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(script + f"\necho {done}\n")
        self.proc.stdin.flush()
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    return "exited", seen
                if time.monotonic() > deadline:
                    return "timed out", seen
                continue
            if line is None:
                return "exited", seen
            if line.rstrip().endswith(done):  # a snippet's last output may not end its line
                line = line.rstrip()[: -len(done)]
                seen.append(line)
                self.output.append(line)
                return "done", seen
            seen.append(line)
            self.output.append(line)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 15)
        self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class Person:
    """Approves every pending approval of the admin's channels, as someone in the inbox would."""

    def __init__(self, url: str) -> None:
        self.url, self.stop = url, threading.Event()
        login = httpx.post(f"{url}/api/v1/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
        login.raise_for_status()
        self.headers = {"Authorization": f"Bearer {login.json()['token']}"}
        self.thread = threading.Thread(target=self._answer, daemon=True)

    def _answer(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=10) as client:
            while not self.stop.wait(0.3):
                try:
                    for msg in client.get("/api/v1/reviews/pending").json():
                        if msg["review"]["type"] == "approval":
                            answer = {"response": {"selectedOption": "approve"}}
                            client.post(f"/api/v1/reviews/{msg['id']}/respond", json=answer)
                except httpx.HTTPError:
                    continue


@dataclass
class ReadmeStack:
    url: str  # the edge's
    home: Path  # SAYSO_HOME: its .sayso/mail/ is where the mail catcher keeps e-mail


@pytest.fixture(scope="module")
def readme_stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadmeStack]:
    """An API, realtime, dispatcher and notifier of their own behind a Caddy edge, with e-mail
    kept by ``make run``'s mail catcher in the newcomer's home, as ``make run`` has them."""
    edge_port = free_port()
    edge = f"http://127.0.0.1:{edge_port}"
    home = tmp_path_factory.mktemp("home")
    services = {"realtime": "realtime", "dispatcher": "dispatcher", "notifier": "notifier"}
    with (
        MailCatcher(home / ".sayso" / "mail") as mail,
        private_stack(
            PrivateStack,
            infra,
            "readme",
            services,
            ("dispatcher", "notifier"),
            SAYSO_PUBLIC_URL=edge,
            SAYSO_SMTP_URL=mail.url,
        ) as s,
    ):
        caddy = start_caddy(infra.log_dir, edge_port, s.stack.procs["api"].port, s.procs["realtime"].port)
        try:
            yield ReadmeStack(edge, home)
        finally:
            caddy.stop()


def newcomer_env(home: Path) -> dict[str, str]:
    """This process's environment without the test run's virtualenv or any SAYSO_ setting."""
    venv_bin = str(ROOT / ".venv" / "bin")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SAYSO_", legacy.OLD_PREFIX)) and k != "VIRTUAL_ENV"
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env["SAYSO_HOME"] = str(home)
    env["HOOK_PORT"] = str(free_port())
    return env


def test_every_readme_snippet_runs(readme_stack: ReadmeStack, tmp_path: Path) -> None:
    url, home = readme_stack.url, readme_stack.home
    person = Person(url)
    key = httpx.post(f"{url}/api/v1/api-keys", json={"label": "readme"}, headers=person.headers)
    assert key.status_code == 201, key.text
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    (home / ".sayso" / "local.env").write_text(
        f"SAYSO_URL={url}\nSAYSO_API_KEY={key.json()['key']}\n"
        f"SAYSO_ADMIN_EMAIL={ADMIN[0]}\nSAYSO_ADMIN_PASSWORD={ADMIN[1]}\n"
    )

    blocks = readme_blocks(README.read_text())
    shell = Shell(checkout, newcomer_env(home))
    person.thread.start()
    ran: list[Block] = []
    try:
        prelude = 'curl() { command curl --fail-with-body --max-time 60 "$@"; }\nset -euo pipefail'
        assert shell.run(prelude, "__ready__", 10)[0] == "done"
        for n, block in enumerate(blocks):
            if block.marker and block.marker[0] == "not run":
                continue
            if block.marker:  # save as
                (checkout / block.marker[1]).write_text(block.code)
                ran.append(block)
                continue
            path = tmp_path / f"block{n}.{'sh' if block.lang == 'bash' else 'py'}"
            path.write_text(block.code)
            command = f". {path}" if block.lang == "bash" else f"python {path}"
            status, output = shell.run(command, f"__done_{n}__", BLOCK_TIMEOUT)
            assert status == "done", (
                f"the snippet at {block.where} {status} ({path.name} holds it; a line number below is "
                f"counted from the block's first line):\n{''.join(output)}"
            )
            ran.append(block)
        assert {b.line for b in ran} == {
            b.line for b in blocks if not (b.marker and b.marker[0] == "not run")
        }
        # The receiver the Webhooks section starts checked the signatures of what it was sent.
        printed = "".join(shell.output)
        assert "verified webhook:test" in printed, printed
        deadline = time.monotonic() + 30
        while "verified review:responded" not in "".join(shell.output) and time.monotonic() < deadline:
            shell.run("sleep 0.5", "__tick__", 10)
        assert "verified review:responded" in "".join(shell.output), "".join(shell.output)
        assert "refused" not in "".join(shell.output)
        # The Notifications section answered from the e-mail's link (a newcomer's e-mail path).
        assert "Confirm: Friday" in printed, printed
        assert "Answer recorded" in printed, printed
        # The Policies section's rule answered its review on arrival (no person involved).
        assert "approve 2 small staging deploys" in printed, printed
        assert "completed {'selectedOption': 'approve'} {'policy': 'pol_" in printed, printed
    finally:
        person.stop.set()
        shell.stop()
