"""The ``sayso`` command as a shell script runs it: a real process against the real stack, the
human answering over REST; exit codes and ``--json`` output."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sayso_cli import __main__ as cli
from sayso_cli.durations import format_elapsed, parse_duration
from sayso_cli.spinner import Spinner
from tests.clients.support import answer_next, pending_review
from tests.support.stack import Owner, RunningStack

SAYSO = str(Path(sys.executable).parent / "sayso")


def cli_env(stack: RunningStack, owner: Owner, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAYSO_")}
    return env | {"SAYSO_URL": stack.url, "SAYSO_API_KEY": owner.api_key} | extra


async def run(
    env: dict[str, str], *args: str, timeout: float = 60, stdin: bytes | None = None
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        SAYSO,
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def channel(owner: Owner) -> str:
    agent: dict[str, Any] = await owner.create_agent(name="cli")
    return str(agent["id"])


async def test_ask_exits_0_when_approved(stack: RunningStack, owner: Owner, channel: str) -> None:
    env = cli_env(stack, owner)
    human = asyncio.create_task(answer_next(owner, channel, {"selectedOption": "approve", "comment": "go"}))
    code, out, err = await run(env, "ask", "Deploy v2.1?", "--channel", channel, "--allow-comment", "--json")
    answered = await human
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "approved"
    assert (result["selectedOption"], result["comment"]) == ("approve", "go")
    assert result["messageId"] == answered["id"]
    assert answered["text"] == "Deploy v2.1?"
    assert answered["review"]["payload"]["allowComment"] is True
    assert "\r" not in err  # no spinner when stderr is not a terminal


async def test_ask_exits_1_when_rejected(stack: RunningStack, owner: Owner, channel: str) -> None:
    env = cli_env(stack, owner, SAYSO_DEFAULT_CHANNEL=channel)
    human = asyncio.create_task(answer_next(owner, channel, {"selectedOption": "later"}))
    code, out, _ = await run(
        env, "ask", "-", "--option", "ship:Ship it:primary", "--option", "later:Not now", "--approve", "ship",
        stdin=b"Release **now**?",
    )  # fmt: skip
    answered = await human
    assert code == 1
    assert out.strip() == "rejected: later"
    assert answered["text"] == "Release **now**?"
    assert [o["id"] for o in answered["review"]["payload"]["options"]] == ["ship", "later"]


async def test_ask_exits_2_when_expired(stack: RunningStack, owner: Owner, channel: str) -> None:
    code, out, _ = await run(
        cli_env(stack, owner), "--json", "ask", "Quick?", "--channel", channel, "--expires", "1s"
    )
    assert code == 2
    result = json.loads(out)
    assert result["status"] == "expired"
    assert result["expiresAt"].endswith("Z")


async def test_ask_exits_3_when_the_timeout_runs_out(stack: RunningStack, owner: Owner, channel: str) -> None:
    env = cli_env(stack, owner)
    code, out, _ = await run(env, "ask", "Later?", "--channel", channel, "--timeout", "1", "--json")
    assert code == 3
    pending = json.loads(out)
    assert pending["status"] == "timeout"
    # `sayso wait` picks the same review up again; `pending` lists it.
    code, out, _ = await run(env, "pending", "--channel", channel, "--json")
    assert code == 0
    assert [m["id"] for m in json.loads(out)] == [pending["messageId"]]
    human = asyncio.create_task(answer_next(owner, channel, {"selectedOption": "approve"}))
    code, out, _ = await run(env, "wait", pending["messageId"], "--channel", channel)
    await human
    assert (code, out.strip()) == (0, "approved: approve")


async def test_errors_exit_4_and_bad_arguments_64(stack: RunningStack, owner: Owner, channel: str) -> None:
    env = cli_env(stack, owner)
    code, out, err = await run(env, "--json", "send", "hi", "--channel", "agt_missing")
    assert code == 4
    assert "404" in err
    assert json.loads(out)["httpStatus"] == 404
    code, _, err = await run(env | {"SAYSO_API_KEY": "hp_wrong"}, "pending")
    assert code == 4
    assert "401" in err
    code, _, err = await run(env, "ask", "x", "--channel", channel, "--timeout", "soon")
    assert code == 64
    assert "not a duration" in err
    code, _, _ = await run(env, "ask", "x")  # no channel anywhere
    assert code == 4


async def test_send_pending_and_tail(stack: RunningStack, owner: Owner, channel: str) -> None:
    env = cli_env(stack, owner)
    code, out, _ = await run(
        env, "send", "Build **passed**", "--channel", channel, "--status", "success", "--json"
    )
    assert code == 0
    sent = json.loads(out)
    assert (sent["text"], sent["status"], sent["channelId"]) == ("Build **passed**", "success", channel)
    code, out, _ = await run(env, "send", "plain", "--channel", channel)
    assert code == 0
    assert out.strip().startswith("msg_")
    code, out, err = await run(env, "pending", "--channel", channel)
    assert (code, out) == (0, "")
    assert "no pending reviews" in err

    tail = await asyncio.create_subprocess_exec(
        SAYSO, "tail", "--channel", channel, "--json", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert tail.stdout is not None
    try:
        seen: dict[str, Any] = {}

        async def until_seen() -> None:
            while True:
                line = await tail.stdout.readline()  # type: ignore[union-attr]
                assert line, "tail ended"
                event = json.loads(line)
                if event["type"] == "message:created" and event["data"]["text"].startswith("live "):
                    seen.update(event)
                    return

        async def keep_sending() -> None:
            # Until the stream is surely connected: the first messages may predate it.
            for i in range(60):
                await owner.post_message(channel, text=f"live {i}")
                await asyncio.sleep(0.5)

        sender = asyncio.create_task(keep_sending())
        try:
            await asyncio.wait_for(until_seen(), 30)
        finally:
            sender.cancel()
        assert seen["id"].startswith("evt_")
        assert seen["data"]["channelId"] == channel
    finally:
        tail.terminate()
        await tail.wait()


def test_spinner_on_a_terminal() -> None:
    """With a terminal on stderr the wait shows a spinner and the elapsed time."""
    primary, secondary = pty.openpty()
    stream = os.fdopen(secondary, "w", encoding="utf-8", closefd=True)
    try:
        with Spinner("waiting", stream):
            time.sleep(0.35)
        stream.flush()
        written = os.read(primary, 4096).decode()
    finally:
        stream.close()
        os.close(primary)
    assert "waiting 0:00" in written
    assert written.count("\r") >= 2  # redrawn in place
    assert any(frame in written for frame in "⠋⠙⠹")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d", 86400),
        ("1.5m", 90),
        ("0.5", 0.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5", "10x", "m10", "1h 30m", "soon", "5m5"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by case
        parse_duration(text)


def test_elapsed_format() -> None:
    assert [format_elapsed(s) for s in (0, 61.9, 3600 + 62)] == ["0:00", "1:01", "1:01:02"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("go", ("go", "Go", None)),
        ("ship:Ship it", ("ship", "Ship it", None)),
        ("no:No:danger", ("no", "No", "danger")),
    ],
)
def test_option_syntax(text: str, expected: tuple[str, str, str | None]) -> None:
    parsed = cli.option(text)
    assert (parsed.id, parsed.label, parsed.style) == expected


async def test_agents_create_and_list(stack: RunningStack, owner: Owner) -> None:
    """A newcomer gets a channel id without curl: create prints the id (scriptable) and says,
    on stderr, the webhook secret the server shows only this once."""
    env = cli_env(stack, owner)
    code, out, err = await run(env, "agents", "create", "cli-made", "--description", "from the shell")
    assert code == 0, err
    created = out.strip()
    assert created.startswith("agt_")
    assert f"SAYSO_DEFAULT_CHANNEL={created}" in err
    assert "whsec_" in err
    assert "only this once" in err
    code, out, err = await run(
        env, "--json", "agents", "create", "cli-hooked", "--webhook-url", "https://agent.example.com/hook"
    )
    assert code == 0, err
    hooked = json.loads(out)
    assert (hooked["name"], hooked["webhookUrl"]) == ("cli-hooked", "https://agent.example.com/hook")
    assert hooked["webhookSecret"].startswith("whsec_")
    # The id is a channel: `send` takes it.
    code, _, err = await run(env, "send", "hello", "--channel", created)
    assert code == 0, err

    code, out, err = await run(env, "agents", "list")
    assert code == 0, err
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "cli-made" in lines[created]
    assert "no webhook" in lines[created]
    assert "https://agent.example.com/hook" in lines[hooked["id"]]
    code, out, _ = await run(env, "agents", "list", "--json")
    listed = {a["id"]: a for a in json.loads(out)}
    assert listed[created]["description"] == "from the shell"
    assert "webhookSecret" not in listed[created]  # shown once, at creation only
    code, _, err = await run(env, "agents")
    assert code == 64  # an action is required
    assert "create" in err
    assert "list" in err


async def test_ctrl_c_says_the_review_is_still_pending(
    stack: RunningStack, owner: Owner, channel: str
) -> None:
    env = cli_env(stack, owner)
    proc = await asyncio.create_subprocess_exec(
        SAYSO, "ask", "Interrupt me?", "--channel", channel, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        review = await pending_review(owner, channel)
        await asyncio.sleep(0.3)  # parked on its long-poll, usually
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130
    text = err.decode()
    assert f"review {review['id']} is still pending" in text
    assert f"sayso wait {review['id']} --channel {channel}" in text
    assert out == b""
    # It is: the command it names picks the same review up.
    human = asyncio.create_task(answer_next(owner, channel, {"selectedOption": "reject"}))
    code, out_text, _ = await run(env, "wait", review["id"], "--channel", channel)
    await human
    assert (code, out_text.strip()) == (1, "rejected: reject")


def test_an_unreachable_server_is_named_with_what_to_check() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAYSO_")}
    done = subprocess.run(
        [SAYSO, "pending"], env=env | {"SAYSO_URL": url, "SAYSO_API_KEY": "hp_x"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 4
    assert f"cannot reach {url}" in done.stderr
    assert "SAYSO_URL" in done.stderr
    assert "make run" in done.stderr


async def test_ask_offers_arguments_for_editing(stack: RunningStack, owner: Owner, channel: str) -> None:
    """Edit before approve (#32): --edit-args/--edit-schema offer the action's arguments; the
    reviewer's edited ones come back as editedArgs (exit 0, approved)."""
    env = cli_env(stack, owner)
    schema = {"type": "object", "properties": {"replicas": {"type": "integer", "maximum": 10}}}
    edited = {"replicas": 4}
    human = asyncio.create_task(
        answer_next(owner, channel, {"selectedOption": "approve", "editedArgs": edited})
    )
    code, out, err = await run(
        env, "ask", "Scale up?", "--channel", channel, "--json",
        "--edit-args", '{"replicas": 8}', "--edit-schema", json.dumps(schema),
    )  # fmt: skip
    answered = await human
    assert code == 0, err
    assert json.loads(out)["editedArgs"] == edited
    assert answered["review"]["payload"]["edit"] == {"args": {"replicas": 8}, "schema": schema}

    human = asyncio.create_task(
        answer_next(owner, channel, {"selectedOption": "approve", "editedArgs": edited})
    )
    code, out, err = await run(
        env, "ask", "Scale up?", "--channel", channel, "--edit-args", '{"replicas": 8}'
    )
    await human
    assert code == 0, err
    assert out.splitlines() == ["approved: approve", 'edited arguments: {"replicas": 4}']

    for bad in (["--edit-args", "[1]"], ["--edit-args", "{"], ["--edit-schema", "{}"]):
        code, _, err = await run(env, "ask", "Scale?", "--channel", channel, *bad)
        assert code == 64, err
