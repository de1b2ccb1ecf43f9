"""``sayso``: ask a human from a shell script, and exit on the answer.

Exit codes (``sayso ask`` and ``sayso wait``)::

    0   approved (or, for reviews that are not approvals, answered)
    1   rejected (any other option, or dismissed)
    2   expired: nobody answered before the review's deadline
    3   --timeout ran out first; the review is still pending (``sayso wait`` goes on)
    4   error: the API refused the request, the server is unreachable, or configuration is missing
    64  bad command-line arguments
    130 interrupted (Ctrl-C): the review stays pending; stderr says how to wait for it again

Every other command exits 0 on success and 4 on an error.
"""

from __future__ import annotations

import argparse
import codecs
import itertools
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TextIO

import sayso
from sayso import config
from sayso_cli import render
from sayso_cli.durations import parse_duration
from sayso_cli.spinner import Spinner

EXIT_APPROVED = 0
EXIT_REJECTED = 1
EXIT_EXPIRED = 2
EXIT_TIMEOUT = 3
EXIT_ERROR = 4
EXIT_USAGE = 64
EXIT_INTERRUPTED = 130

# Recover calls at most this many times in one command (each re-queues up to the server's batch).
MAX_RECOVER_ROUNDS = 100
# How long `feed --follow` holds each empty page open (the server's most).
FOLLOW_WAIT_MS = 30_000

STYLES = ("primary", "danger", "secondary", "ghost", "success", "warning", "default")


def wire(message: sayso.Message) -> dict[str, Any]:
    """The message as the API sent it (camelCase, ISO dates with Z)."""
    return message.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad arguments, which would read as "expired": use 64 (EX_USAGE)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def option(text: str) -> sayso.Option:
    """``id``, ``id:Label`` or ``id:Label:style``."""
    parts = text.split(":")
    if not parts[0] or len(parts) > 3:
        raise argparse.ArgumentTypeError(f"expected id[:Label[:style]], got {text!r}")
    label = (
        parts[1] if len(parts) > 1 and parts[1] else parts[0].replace("-", " ").replace("_", " ").capitalize()
    )
    style = parts[2] if len(parts) == 3 else None
    if style is not None and style not in STYLES:
        raise argparse.ArgumentTypeError(f"style must be one of {', '.join(STYLES)}")
    return sayso.Option.model_validate({"id": parts[0], "label": label, "style": style})


def build_parser() -> Parser:
    common = Parser(add_help=False)
    # SUPPRESS: the flag may come before or after the command without one hiding the other.
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    common.add_argument("--url", default=argparse.SUPPRESS, help="server URL (default: SAYSO_URL)")
    common.add_argument("--api-key", default=argparse.SUPPRESS, help="API key (default: SAYSO_API_KEY)")

    parser = Parser(
        prog="sayso",
        description="Human sign-off from the shell. Configure with SAYSO_URL and SAYSO_API_KEY "
        "(and SAYSO_DEFAULT_CHANNEL to skip --channel).",
        epilog="ask/wait exit codes: 0 approved, 1 rejected, 2 expired, 3 --timeout ran out, 4 error, "
        "64 bad arguments, 130 interrupted.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=[common])

    channel_help = "channel (agent) id (default: SAYSO_DEFAULT_CHANNEL)"
    ask = command("ask", "Ask for approval, wait, print the answer; the exit code says which")
    ask.add_argument("text", help='the question, in markdown ("-" reads it from stdin)')
    ask.add_argument("--channel", help=channel_help)
    ask.add_argument(
        "--option",
        action="append",
        type=option,
        dest="options",
        metavar="ID[:LABEL[:STYLE]]",
        help="a button (repeatable; default approve:Approve:primary and reject:Reject:danger)",
    )
    ask.add_argument(
        "--approve",
        action="append",
        metavar="ID",
        help='option ids that mean "approved" (repeatable; default "approve", else the first option)',
    )
    ask.add_argument("--allow-comment", action="store_true", help="let the reviewer add a comment")
    ask.add_argument(
        "--edit-args",
        type=json_object,
        metavar="JSON",
        help="offer these arguments (a JSON object) for editing before approval; an edited approval "
        "prints them as editedArgs",
    )
    ask.add_argument(
        "--edit-schema",
        type=json_object,
        metavar="JSON",
        help="JSON Schema the edited arguments must satisfy",
    )
    ask.add_argument(
        "--timeout", type=duration, help="stop waiting after this long (90, 30s, 10m, 2h); exit 3"
    )
    ask.add_argument("--expires", type=duration, help="the review's deadline (default: the server's, 24h)")
    ask.add_argument("--metadata", type=json.loads, help="JSON object stored with the message")

    wait = command("wait", "Wait for the answer to a review already sent; same exit codes as ask")
    wait.add_argument("message_id")
    wait.add_argument("--channel", help=channel_help)
    wait.add_argument("--approve", action="append", metavar="ID", help="option ids that mean approved")
    wait.add_argument("--timeout", type=duration, help="stop waiting after this long; exit 3")

    send = command("send", "Post a message (no answer needed); prints its id")
    send.add_argument("text", help='the message, in markdown ("-" reads it from stdin)')
    send.add_argument("--channel", help=channel_help)
    send.add_argument("--status", choices=("info", "success", "warning", "error"))

    expunge = command(
        "expunge", "Remove a message's content and attachments, keeping its record and audit entries"
    )
    expunge.add_argument("message_id")
    expunge.add_argument("--channel", help="the message's channel (optional)")

    pending = command("pending", "List the reviews still waiting for an answer")
    pending.add_argument("--channel", help="only this channel (default: all of yours)")

    tail = command("tail", "Print live events as they happen (Ctrl-C to stop)")
    tail.add_argument("--channel", help="only this channel (default: all of yours)")
    tail.add_argument("--since", metavar="EVENT_ID", help="first replay the events after this one")

    agents = command("agents", "Create and list agents (channels): an agent's id is the channel to use")
    actions = agents.add_subparsers(dest="agents_command", required=True, parser_class=Parser)
    create = actions.add_parser(
        "create",
        help="Create an agent; prints its id (the webhook secret, shown once, goes to stderr)",
        description="Create an agent; prints its id. Its webhook signing secret (whsec_…) is "
        "shown this once: on stderr, or in the --json output.",
        parents=[common],
    )
    create.add_argument("name")
    create.add_argument("--description")
    create.add_argument("--webhook-url", metavar="URL", help="where answers are delivered (signed webhooks)")
    actions.add_parser("list", help="List your agents", description="List your agents", parents=[common])

    policy = command("policy", "Read, change and dry-run the rules that answer reviews before a person")
    policy_actions = policy.add_subparsers(dest="policy_command", required=True, parser_class=Parser)

    def policy_action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = policy_actions.add_parser(name, help=help_text, description=help_text, parents=[common])
        sub.add_argument("--channel", help=channel_help)
        return sub

    for name, help_text in (
        ("list", "Show the rules, numbered in the order they are tried"),
        ("get", 'Print the policy as JSON ({"rules": [...]}: edit it and `policy set` it)'),
    ):
        policy_action(name, help_text).add_argument(
            "--account", action="store_true", help="the account's policy (tried after each channel's)"
        )
    put = policy_action("set", "Replace the rules with those in a JSON file (a new version)")
    put.add_argument("file", help='{"rules": [...]} or [...] ("-" reads stdin)')
    put.add_argument("--account", action="store_true", help="the account's policy")
    add = policy_action("add", "Append a rule (tried after the existing ones; a new version)")
    add.add_argument("--account", action="store_true", help="the account's policy")
    add.add_argument(
        "--match", type=json_object, default={}, help='filter, JSON (e.g. \'{"metadata.env": "staging"}\')'
    )
    add.add_argument("--action", choices=("approve", "reject", "ask"), required=True)
    add.add_argument("--response", type=json_object, help="what approve or reject records, JSON")
    add.add_argument("--name")
    add.add_argument("--risk", choices=("low", "medium", "high", "critical"))
    dry = policy_action(
        "test", "Say which rule a message would match and what would happen (nothing is stored)"
    )
    dry.add_argument("--text", help="the message text")
    dry.add_argument("--type", default="approval", help="review type (default approval)")
    dry.add_argument("--payload", type=json_object, default={}, help="review payload, JSON")
    dry.add_argument("--metadata", type=json_object, help="message metadata, JSON")

    hooks = command(
        "endpoints", "Add, list, rotate and remove webhook endpoints (beside the agent's own URL)"
    )
    hook_actions = hooks.add_subparsers(dest="endpoints_command", required=True, parser_class=Parser)

    def hook_action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = hook_actions.add_parser(name, help=help_text, description=help_text, parents=[common])
        sub.add_argument("--channel", help=channel_help)
        sub.add_argument("--account", action="store_true", help="the account-wide endpoints (every channel)")
        return sub

    hook_add = hook_action(
        "add", "Add an endpoint; prints its id (its signing secret, shown once, goes to stderr)"
    )
    # Not "url": that is the server's (--url).
    hook_add.add_argument(
        "endpoint_url", metavar="URL", nargs="?", help="where deliveries are POSTed (or give --kafka-topic)"
    )
    hook_add.add_argument(
        "--kafka-topic", metavar="TOPIC", help="deliver to this Kafka topic instead of a URL"
    )
    hook_add.add_argument(
        "--kafka-bootstrap",
        metavar="HOST:PORT",
        action="append",
        help="another cluster's broker (repeatable; default: the server's own cluster)",
    )
    hook_add.add_argument(
        "--kafka-protocol",
        choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
        help="its security protocol",
    )
    hook_add.add_argument("--kafka-sasl-mechanism", choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))
    hook_add.add_argument("--kafka-username")
    # A password on the command line would show in ps and shell histories: it comes from the environment.
    hook_add.add_argument(
        "--kafka-password-env", metavar="VAR", help="the environment variable holding the SASL password"
    )
    hook_add.add_argument(
        "--kafka-ca-file", metavar="PEM", type=Path, help="CA certificates to check the brokers with"
    )
    hook_add.add_argument("--description")
    hook_add.add_argument(
        "--event",
        action="append",
        dest="events",
        metavar="TYPE",
        help="an event type or group to send, repeatable: review:responded, review:expired, "
        "review:voted, message:created, message:updated, delivery:status, agent:status, "
        "approval:remembered, approval:revoked, operator:endpoint_disabled, operator:retries_exhausted, "
        "operator:circuit_open (an ops endpoint), or review:*, delivery:*, operator:* … "
        "(default review:responded and review:expired)",
    )
    hook_add.add_argument(
        "--filter", type=json_object, help='content filter, JSON (e.g. \'{"message.metadata.env": "prod"}\')'
    )
    hook_add.add_argument("--format", choices=("placet", "processa", "standard"))
    hook_add.add_argument("--rate-limit", type=int, metavar="N", help="at most N deliveries a second")
    hook_action("list", "List the endpoints")
    hook_action("rotate", "Issue a new signing secret (printed once)").add_argument("endpoint_id")
    hook_action("rm", "Remove an endpoint").add_argument("endpoint_id")
    recover = hook_action(
        "recover", "Send again the endpoint's deliveries that failed since a time (same webhook-id)"
    )
    recover.add_argument("endpoint_id")
    recover.add_argument(
        "--since", type=moment, help="ISO 8601 time, or how long ago (2h, 1d); default 24 h ago"
    )
    replay = hook_action(
        "replay", "Deliver to the endpoint the stored events of a time range it matches, once each"
    )
    replay.add_argument("endpoint_id")
    replay.add_argument(
        "--from", dest="start", type=moment, required=True, help="ISO 8601 time, or how long ago (2h)"
    )
    replay.add_argument("--to", dest="end", type=moment, help="ISO 8601 time, or how long ago; default now")

    pull = command("feed", "Print the pull feed's events, one JSON object a line, oldest first")
    pull.add_argument("--channel", help="only this channel (default: all of yours)")
    pull.add_argument(
        "--types", help="comma-separated event types or groups (review:*,agent:status); default all"
    )
    pull.add_argument("--after", metavar="CURSOR", help="the cursor printed last time: only what came after")
    pull.add_argument("--follow", action="store_true", help="keep waiting for new events (Ctrl-C to stop)")

    log = command("audit", "Print the audit log: every decision and policy change, newest first")
    log.add_argument("--channel", help="only this channel")
    log.add_argument("--since", type=timestamp, help="from this time (ISO 8601)")
    log.add_argument("--until", type=timestamp, help="before this time (ISO 8601)")
    log.add_argument("--actor", help="a user, policy or API key id, or policy | system | agent")
    log.add_argument("--decision", help="the recorded option or outcome (approve, reject …)")
    log.add_argument(
        "--kind", help="answered, auto_decided, voted, quorum_decided, expired, policy_changed …"
    )
    log.add_argument("--limit", type=int, help="at most this many entries (text output)")
    log.add_argument(
        "--format",
        choices=("text", "jsonl", "csv"),
        default="text",
        help="jsonl and csv stream the whole export",
    )
    return parser


def timestamp(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time, got {text!r}") from None


def moment(text: str) -> datetime:
    """An ISO 8601 time (without a zone: UTC), or a duration meaning that long ago (``2h``)."""
    try:
        ago = parse_duration(text)
    except ValueError:
        at = timestamp(text)
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    return datetime.now(UTC) - timedelta(seconds=ago)


class Cli:
    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.json: bool = getattr(args, "json", False)
        self.out = out
        self.err = err
        self.url: str | None = None

    def client(self) -> sayso.Client:
        client = sayso.Client(getattr(self.args, "url", None), getattr(self.args, "api_key", None))
        self.url = client.url
        return client

    def channel(self, required: bool = True) -> str | None:
        chosen: str | None = getattr(self.args, "channel", None) or config.env("SAYSO_DEFAULT_CHANNEL")
        if required and not chosen:
            raise sayso.ConfigurationError("--channel is required (or set SAYSO_DEFAULT_CHANNEL)")
        return chosen

    def text(self) -> str:
        value: str = self.args.text
        return sys.stdin.read() if value == "-" else value

    def emit(self, data: Any, human: str) -> None:
        self.out.write((json.dumps(data, ensure_ascii=False) if self.json else human) + "\n")
        self.out.flush()

    # ── commands ─────────────────────────────────────────────────────────────────────────────

    def ask(self) -> int:
        options = self.args.options or sayso.Approval().options
        edit = (
            sayso.Edit(args=self.args.edit_args, json_schema=self.args.edit_schema)
            if self.args.edit_args is not None
            else None
        )
        review = sayso.Approval(options=options, allow_comment=self.args.allow_comment, edit=edit)
        with self.client() as client:
            channel = self.channel()
            assert channel is not None
            message = client.request_review(
                channel, review, self.text(), expires_in=self.args.expires, metadata=self.args.metadata
            )
            return self._wait(client, message, channel, [o.id for o in options])

    def wait(self) -> int:
        with self.client() as client:
            channel = self.channel()
            assert channel is not None
            current = client.get_review(self.args.message_id, channel)
            options = (current.review.payload.get("options") if current.review else None) or []
            ids = [str(o["id"]) for o in options if isinstance(o, dict) and "id" in o]
            return self._wait(client, current, channel, ids)

    def _wait(self, client: sayso.Client, message: sayso.Message, channel: str, option_ids: list[str]) -> int:
        message_id = message.id
        approve = set(self.args.approve or (["approve"] if "approve" in option_ids else option_ids[:1]))
        label = f"Waiting for an answer to {message_id}…"
        try:
            with Spinner(label, self.err, quiet=self.json):
                answer = client.wait(message_id, channel, self.args.timeout)
        except KeyboardInterrupt:
            return self._interrupted(message, channel)
        except sayso.Expired as exc:
            expired_at = wire(exc.message).get("review", {}).get("expiresAt")
            self.emit(
                {"status": "expired", "messageId": message_id, "channelId": channel, "expiresAt": expired_at},
                f"expired: nobody answered {message_id} in time",
            )
            return EXIT_EXPIRED
        except sayso.WaitTimeout:
            self.emit(
                {"status": "timeout", "messageId": message_id, "channelId": channel},
                f"timed out: {message_id} is still pending (sayso wait {message_id} --channel {channel})",
            )
            return EXIT_TIMEOUT
        return self._answered(answer, approve)

    def _interrupted(self, message: sayso.Message, channel: str) -> int:
        """Ctrl-C stops the waiting, not the review: say so, and how to pick it up again."""
        expires_at = wire(message).get("review", {}).get("expiresAt")
        self.err.write(
            f"\ninterrupted: review {message.id} is still pending"
            + (f" until {expires_at}" if expires_at else "")
            + f" (answer it in the inbox, or let it expire).\n"
            f"Wait for its answer again with: sayso wait {message.id} --channel {channel}\n"
        )
        self.err.flush()
        if self.json:
            self.emit(
                {
                    "status": "interrupted",
                    "messageId": message.id,
                    "channelId": channel,
                    "expiresAt": expires_at,
                },
                "",
            )
        return EXIT_INTERRUPTED

    def _answered(self, answer: sayso.Answer, approve: set[str]) -> int:
        value = answer.value
        if isinstance(value, sayso.ApprovalAnswer):
            status = "approved" if value.selected_option in approve else "rejected"
        elif isinstance(value, sayso.Dismissed):
            status = "rejected"
        else:
            status = "answered"
        review = answer.review
        data = {
            "status": status,
            "messageId": answer.message_id,
            "channelId": answer.message.channel_id,
            "reviewType": review.type,
            "response": answer.response,
            "selectedOption": value.selected_option if isinstance(value, sayso.ApprovalAnswer) else None,
            "comment": value.comment if isinstance(value, sayso.ApprovalAnswer) else None,
            "editedArgs": value.edited_args if isinstance(value, sayso.ApprovalAnswer) else None,
            "feedback": review.feedback,
            "respondedBy": review.responded_by,
            "respondedAt": wire(answer.message)["review"].get("respondedAt"),
        }
        human = f"{status}: {render.response_text(review.type, answer.response)}"
        if isinstance(value, sayso.ApprovalAnswer) and value.edited_args is not None:
            human += f"\nedited arguments: {json.dumps(value.edited_args, ensure_ascii=False)}"
        if review.feedback:
            human += f"\nfeedback: {review.feedback}"
        self.emit(data, human)
        return EXIT_REJECTED if status == "rejected" else EXIT_APPROVED

    def send(self) -> int:
        with self.client() as client:
            channel = self.channel()
            assert channel is not None
            message = client.send_message(channel, self.text(), status=self.args.status)
        self.emit(wire(message), message.id)
        return 0

    def expunge(self) -> int:
        with self.client() as client:
            message = client.expunge_message(self.args.message_id, getattr(self.args, "channel", None))
        self.emit(wire(message), message.id)
        return 0

    def pending(self) -> int:
        with self.client() as client:
            reviews = client.pending_reviews(self.channel(required=False))
        if self.json:
            self.emit([wire(m) for m in reviews], "")
        elif reviews:
            self.out.write("".join(render.pending_line(m) + "\n" for m in reviews))
        else:
            self.err.write("no pending reviews\n")
        return 0

    def tail(self) -> int:
        with self.client() as client:
            for event in client.events(self.channel(required=False), last_event_id=self.args.since):
                self.emit({"id": event.id, "type": event.type, "data": event.data}, render.event_line(event))
        return 0

    def agents(self) -> int:
        with self.client() as client:
            if self.args.agents_command == "create":
                fields = {"description": self.args.description, "webhook_url": self.args.webhook_url}
                agent = client.create_agent(self.args.name, **{k: v for k, v in fields.items() if v})
                self.emit(render.agent_wire(agent), agent.id)
                if not self.json:
                    self.err.write(render.created_note(agent))
                return 0
            found = client.list_agents()
        if self.json:
            self.emit([render.agent_wire(a) for a in found], "")
        elif found:
            self.out.write("".join(render.agent_line(a) + "\n" for a in found))
        else:
            self.err.write("no agents yet: sayso agents create NAME\n")
        return 0

    def _policy_channel(self) -> str | None:
        """None for the account's policy (--account), else the channel."""
        return None if getattr(self.args, "account", False) else self.channel()

    def policy(self) -> int:
        action = self.args.policy_command
        with self.client() as client:
            if action == "test":
                channel = self.channel()
                assert channel is not None
                review: dict[str, Any] = {"type": self.args.type, "payload": self.args.payload}
                message = {"text": self.args.text, "review": review, "metadata": self.args.metadata}
                result = client.test_policy(channel, {k: v for k, v in message.items() if v is not None})
                self.emit(result.model_dump(mode="json"), render.policy_test_line(result))
                return 0
            channel = self._policy_channel()
            if action == "set":
                raw = _rules_file(self.args.file)
                saved = client.set_policy(raw, channel)
            elif action == "add":
                rule = {"match": self.args.match, "action": self.args.action}
                rule |= {
                    k: v
                    for k, v in (
                        ("response", self.args.response),
                        ("name", self.args.name),
                        ("risk", self.args.risk),
                    )
                    if v is not None
                }
                # Read, append, replace: the API replaces a policy as a whole.
                saved = client.set_policy([*client.get_policy(channel).rules, rule], channel)
            else:
                saved = client.get_policy(channel)
        if action == "get":
            self.emit(
                {"rules": saved.rules}, json.dumps({"rules": saved.rules}, indent=2, ensure_ascii=False)
            )
            return 0
        human = "\n".join(
            [render.policy_head(saved), *(render.rule_line(i, r) for i, r in enumerate(saved.rules))]
        )
        self.emit(saved.model_dump(mode="json"), human)
        return 0

    def endpoints(self) -> int:
        args = self.args
        channel = None if args.account else self.channel()
        with self.client() as client:
            if args.endpoints_command == "add":
                fields = {
                    "description": args.description,
                    "event_types": args.events,
                    "filter": args.filter,
                    "format": args.format,
                    "rate_limit": args.rate_limit,
                }
                if args.kafka_topic is not None:
                    fields["destination"] = self._kafka_destination()
                made = client.create_endpoint(
                    args.endpoint_url, channel, **{k: v for k, v in fields.items() if v is not None}
                )
                self.emit(render.endpoint_wire(made), made.id)
                if not self.json:
                    self.err.write(f"signing secret (shown only this once, keep it): {made.secret}\n")
                return 0
            if args.endpoints_command == "rotate":
                rotated = client.rotate_endpoint_secret(args.endpoint_id, channel)
                self.emit(rotated.model_dump(mode="json", by_alias=True), rotated.secret)
                return 0
            if args.endpoints_command == "rm":
                client.delete_endpoint(args.endpoint_id, channel)
                self.emit({"deleted": True}, f"removed {args.endpoint_id}")
                return 0
            if args.endpoints_command == "recover":
                return self._recover(client, args.endpoint_id, channel)
            if args.endpoints_command == "replay":
                return self._replay(client, args.endpoint_id, channel)
            found = client.list_endpoints(channel)
        if self.json:
            self.emit([render.endpoint_wire(e) for e in found], "")
        elif found:
            self.out.write("".join(render.endpoint_line(e) + "\n" for e in found))
        else:
            self.err.write("no endpoints yet: sayso endpoints add URL (or --kafka-topic TOPIC)\n")
        return 0

    def _kafka_destination(self) -> dict[str, Any]:
        args = self.args
        password = None
        if args.kafka_password_env:
            password = config.env(args.kafka_password_env)
            if not password:
                raise sayso.ConfigurationError(f"--kafka-password-env: {args.kafka_password_env} is not set")
        ca_cert = None
        if args.kafka_ca_file is not None:
            try:
                ca_cert = args.kafka_ca_file.read_text()
            except OSError as exc:
                raise sayso.ConfigurationError(f"--kafka-ca-file: {exc.strerror or exc}") from None
        return sayso.kafka_destination(
            args.kafka_topic,
            args.kafka_bootstrap,
            protocol=args.kafka_protocol,
            sasl_mechanism=args.kafka_sasl_mechanism,
            username=args.kafka_username,
            password=password,
            ca_cert=ca_cert,
        )

    def _recover(self, client: sayso.Client, endpoint_id: str, channel: str | None) -> int:
        """Each call re-queues a bounded batch; call again while the server says there is more.
        The rounds are bounded too: a receiver still down fails the re-sent ones again."""
        since, total, rounds = self.args.since, 0, 0
        while True:
            done = client.recover_endpoint(endpoint_id, channel, since=since)
            since = since or done.since  # every round from the first one's start
            total += done.requeued
            rounds += 1
            if done.more and not self.json:
                self.err.write(f"requeued {total} so far\n")
                self.err.flush()
            if not done.more or done.requeued == 0 or rounds >= MAX_RECOVER_ROUNDS:
                break
        result = {"requeued": total, "since": since.isoformat(), "more": done.more}
        self.emit(result, f"requeued {total} failed deliveries since {since.isoformat()} (same webhook-ids)")
        if done.more and not self.json:
            self.err.write("more remain: run it again\n")
        return 0

    def _replay(self, client: sayso.Client, endpoint_id: str, channel: str | None) -> int:
        start, end = self.args.start, self.args.end or datetime.now(UTC)

        def progress(total: sayso.EndpointReplayed) -> None:
            if total.more and not self.json:
                self.err.write(f"scanned {total.scanned} events, queued {total.queued} so far\n")
                self.err.flush()

        done = client.replay_endpoint(endpoint_id, start, end, channel, progress=progress)
        human = (
            f"queued {done.queued}, re-sent {done.requeued} failed, skipped {done.skipped} already sent "
            f"({done.scanned} events scanned)"
        )
        self.emit(done.model_dump(mode="json", by_alias=True, exclude={"more", "next_cursor"}), human)
        return 0

    def feed(self) -> int:
        args = self.args
        types = [t.strip() for t in args.types.split(",")] if args.types else None
        cursor = args.after
        with self.client() as client:
            while True:
                page = client.feed(
                    args.channel, cursor, wait_ms=FOLLOW_WAIT_MS if args.follow else None, types=types
                )
                for event in page.data:
                    self.out.write(json.dumps(event, ensure_ascii=False) + "\n")
                self.out.flush()
                cursor = page.next_cursor
                if not page.data and not args.follow:
                    break
        if cursor and not self.json:
            self.err.write(f"next: sayso feed --after {cursor}\n")
        return 0

    def audit(self) -> int:
        args = self.args
        filters = {
            "since": args.since,
            "until": args.until,
            "channel": args.channel,
            "actor": args.actor,
            "decision": args.decision,
            "kind": args.kind,
        }
        with self.client() as client:
            if args.format != "text":
                # Written as it arrives: an export can be larger than memory.
                decoder = codecs.getincrementaldecoder("utf-8")()
                for chunk in client.audit_export(args.format, **filters):
                    self.out.write(decoder.decode(chunk))
                self.out.write(decoder.decode(b"", final=True))
                self.out.flush()
                return 0
            entries = itertools.islice(client.audit(**filters), args.limit)
            shown = 0
            for entry in entries:
                self.emit(entry.model_dump(mode="json"), render.audit_line(entry))
                shown += 1
        if not shown and not self.json:
            self.err.write("no audit entries match\n")
        return 0


def _rules_file(path: str) -> list[Any]:
    """The rules in ``path`` ("-": stdin): ``{"rules": [...]}`` (what ``policy get`` prints) or a
    bare list."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        raw = json.loads(text)
    except OSError as exc:
        raise sayso.ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise sayso.ConfigurationError(f"{path} is not JSON: {exc}") from None
    rules = raw.get("rules") if isinstance(raw, dict) else raw
    if not isinstance(rules, list):
        raise sayso.ConfigurationError(f'{path} must hold {{"rules": [...]}} or a list of rules')
    return rules


def run(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "edit_schema", None) is not None and getattr(args, "edit_args", None) is None:
        parser.error("--edit-schema needs --edit-args")
    cli = Cli(args, out or sys.stdout, err or sys.stderr)
    handlers: dict[str, Callable[[], int]] = {
        "ask": cli.ask,
        "wait": cli.wait,
        "send": cli.send,
        "expunge": cli.expunge,
        "pending": cli.pending,
        "tail": cli.tail,
        "agents": cli.agents,
        "policy": cli.policy,
        "audit": cli.audit,
        "endpoints": cli.endpoints,
        "feed": cli.feed,
    }
    try:
        return handlers[args.command]()
    except KeyboardInterrupt:
        # Ctrl-C is how `tail` and `feed --follow` end; for the others the wait was abandoned.
        return 0 if args.command in ("tail", "feed") else EXIT_INTERRUPTED
    except sayso.SaysoError as exc:
        if isinstance(exc, sayso.TransportError):
            cli.err.write(render.unreachable(cli.url, exc))
        else:
            field = f" (field {exc.field})" if isinstance(exc, sayso.ApiError) and exc.field else ""
            cli.err.write(f"sayso: error: {exc}{field}\n")
        if cli.json:
            detail: dict[str, Any] = {"status": "error", "error": str(exc)}
            if isinstance(exc, sayso.ApiError):
                detail.update(httpStatus=exc.status, code=exc.code, field=exc.field)
            cli.emit(detail, "")
        return EXIT_ERROR


def main() -> NoReturn:
    sys.exit(run())


if __name__ == "__main__":
    main()
