"""Every ```bash and ```python snippet of the README and of every page under docs/ runs, as written
and in order, against a real stack: a newcomer pastes a page's snippets into one shell, so each
page runs in one shell here, with the variables each snippet sets kept for the next.

The shell starts as a newcomer's second terminal does: at a checkout (its ``.venv`` linked in,
not on PATH), with ``SAYSO_HOME`` naming the folder whose ``.sayso/local.env`` holds what
``make run`` writes there (so a snippet that reads ``.sayso/local.env`` from the checkout fails).
Every page but the README and the quick start continues from the quick start's first review (its
first snippet, which the README repeats), as the pages say: that snippet runs first in their
shell. A person answers every pending approval in the inbox, as the snippets expect. The harness
adds two things to what a person types: ``set -euo pipefail`` (an unset variable or a failed
command stops the run, naming the page, the snippet's heading and line) and ``curl
--fail-with-body --max-time 60`` (a 4xx or 5xx is a failure, not a silently printed error).

A block the test cannot run (it starts a stack, needs Docker, runs forever) is marked with
``<!-- not run: why -->`` on the line before it; ``<!-- save as: NAME -->`` saves a block as a
file a later snippet runs. Every other block must run."""

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
DOCS = ROOT / "docs"
# The first review, which every other page continues from (the README repeats it).
QUICK_START = DOCS / "tutorials" / "quick-start.md"
MARKER = re.compile(r"<!--\s*(not run|save as):\s*(.+?)\s*-->")
BLOCK_TIMEOUT = 60.0


@dataclass
class Block:
    lang: str
    heading: str
    line: int  # of the opening fence in its page
    code: str
    marker: tuple[str, str] | None
    page: str = "README.md"

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line} (under {self.heading!r})"

    @property
    def runs(self) -> bool:
        return not (self.marker and self.marker[0] == "not run")


def readme_blocks(text: str, page: str = "README.md") -> list[Block]:
    """A page's top-level ```bash and ```python blocks, in order, with the heading above each
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
                code = "\n".join(body) + "\n"
                blocks.append(Block(fence.group(1), heading, start + 1, code, marker, page))
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


def pages() -> list[Path]:
    """The README and every page of the docs, the README first."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def page_name(path: Path) -> str:
    return str(path.relative_to(ROOT if path == README else DOCS))


# What a page's snippets must have printed once they ran (waited for, up to 30 s: a webhook or
# an e-mail arrives a moment later), and what none may print.
EXPECTED: dict[str, list[str]] = {
    # The receiver started by the page checked the signatures of what it was sent.
    "how-to/verify-webhooks.md": ["verified webhook:test", "verified review:responded"],
    # Answered from the e-mail's link (a newcomer's e-mail path).
    "how-to/notifications.md": ["Confirm: Friday", "Answer recorded"],
    # The rule answered its review on arrival (no person involved).
    "how-to/policies.md": [
        "approve 2 small staging deploys",
        "completed {'selectedOption': 'approve'} {'policy': 'pol_",
    ],
    # The expunged message kept its id and lost its text and metadata; the audit recorded it.
    "how-to/retention.md": ["None None True", "[('expunged', 'msg_", "True None True True"],
}
FORBIDDEN: dict[str, list[str]] = {"how-to/verify-webhooks.md": ["refused"]}


def runnable_pages() -> list[str]:
    return [page_name(p) for p in pages() if any(b.runs for b in readme_blocks(p.read_text()))]


def first_review() -> Block:
    return next(b for b in readme_blocks(QUICK_START.read_text(), page_name(QUICK_START)) if b.runs)


def test_the_readme_and_the_quick_start_share_the_first_review() -> None:
    """The README's first snippet is the quick start's, which the other pages continue from."""
    readme_first = next(b for b in readme_blocks(README.read_text()) if b.runs)
    assert readme_first.code == first_review().code
    assert set(EXPECTED) | set(FORBIDDEN) <= set(runnable_pages())


@dataclass
class Newcomer:
    url: str
    home: Path  # SAYSO_HOME, with make run's .sayso/local.env


@pytest.fixture(scope="module")
def newcomer(readme_stack: ReadmeStack) -> Iterator[Newcomer]:
    """make run's admin, an agent key in .sayso/local.env, and a person answering approvals."""
    url, home = readme_stack.url, readme_stack.home
    person = Person(url)
    key = httpx.post(f"{url}/api/v1/api-keys", json={"label": "readme"}, headers=person.headers)
    assert key.status_code == 201, key.text
    (home / ".sayso" / "local.env").write_text(
        f"SAYSO_URL={url}\nSAYSO_API_KEY={key.json()['key']}\n"
        f"SAYSO_ADMIN_EMAIL={ADMIN[0]}\nSAYSO_ADMIN_PASSWORD={ADMIN[1]}\n"
    )
    person.thread.start()
    try:
        yield Newcomer(url, home)
    finally:
        person.stop.set()


@pytest.mark.parametrize("page", runnable_pages())
def test_every_snippet_runs(page: str, newcomer: Newcomer, tmp_path: Path) -> None:
    path = README if page == "README.md" else DOCS / page
    blocks = readme_blocks(path.read_text(), page)
    if path not in (README, QUICK_START):
        blocks = [first_review(), *blocks]
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    shell = Shell(checkout, newcomer_env(newcomer.home))
    ran: list[Block] = []
    try:
        prelude = 'curl() { command curl --fail-with-body --max-time 60 "$@"; }\nset -euo pipefail'
        assert shell.run(prelude, "__ready__", 10)[0] == "done"
        for n, block in enumerate(blocks):
            if not block.runs:
                continue
            if block.marker:  # save as
                (checkout / block.marker[1]).write_text(block.code)
                ran.append(block)
                continue
            script = tmp_path / f"block{n}.{'sh' if block.lang == 'bash' else 'py'}"
            script.write_text(block.code)
            command = f". {script}" if block.lang == "bash" else f"python {script}"
            status, output = shell.run(command, f"__done_{n}__", BLOCK_TIMEOUT)
            assert status == "done", (
                f"the snippet at {block.where} {status} ({script.name} holds it; a line number below "
                f"is counted from the block's first line):\n{''.join(output)}"
            )
            ran.append(block)
        assert [(b.page, b.line) for b in ran] == [(b.page, b.line) for b in blocks if b.runs]
        deadline = time.monotonic() + 30
        while not all(e in "".join(shell.output) for e in EXPECTED.get(page, [])):
            assert time.monotonic() < deadline, (EXPECTED[page], "".join(shell.output))
            shell.run("sleep 0.5", "__tick__", 10)
        for forbidden in FORBIDDEN.get(page, []):
            assert forbidden not in "".join(shell.output), "".join(shell.output)
    finally:
        shell.stop()
