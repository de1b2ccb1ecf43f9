"""What a notice says: the e-mail (subject, text, HTML) and the Slack Block Kit message for a
review, and the Slack update once it is closed. Pure functions over plain data: every piece of
text from an agent is escaped for where it lands (HTML, Slack mrkdwn)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sayso_common import reviews
from sayso_common.clock import as_utc
from sayso_common.documents import ReviewDoc
from sayso_common.reviews import Choice

# Slack's limits: a section's text, a button's label, the buttons of one actions block.
SLACK_TEXT = 2900
SLACK_LABEL = 75
SLACK_BUTTONS = 25
SUBJECT_TEXT = 80

HEADLINES = {
    "review": "Review requested",
    "reminder": "Reminder: review waiting",
    "escalation": "Escalated review",
}


@dataclass(frozen=True)
class Notice:
    purpose: str  # review, reminder:<i>, escalation:<i>
    channel_name: str
    text: str
    review_type: str
    expires_at: datetime
    inbox_url: str  # where the review opens in the web inbox
    # The review offers its action's arguments for editing (payload.edit): one click approves
    # them as proposed (or rejects); changing them needs the inbox.
    editable: bool = False


EDIT_NOTE = "To change the arguments before approving, open it in Sayso"


def headline(purpose: str) -> str:
    return HEADLINES.get(purpose.split(":", 1)[0], HEADLINES["review"])


def _first_line(text: str, limit: int) -> str:
    line = next((part.strip("# ").strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _deadline(when: datetime) -> str:
    return as_utc(when).strftime("%Y-%m-%d %H:%M UTC")


def email(notice: Notice, links: list[tuple[Choice, str]]) -> tuple[str, str, str]:
    """(subject, plain text, HTML). Each link opens a confirmation page; nothing is answered
    until the person presses its button there."""
    title = headline(notice.purpose)
    summary = _first_line(notice.text, SUBJECT_TEXT) or f"a {notice.review_type} review"
    subject = f"[Sayso] {title}: {summary}"
    deadline = _deadline(notice.expires_at)
    lines = [
        f"{title} in {notice.channel_name}",
        "",
        notice.text or "(no text)",
        "",
        f"Answer before {deadline}.",
        "",
    ]
    for choice, url in links:
        lines.append(f"{choice.label}: {url}")
    if notice.editable and links:
        lines += ["", f"The links approve the arguments as proposed. {EDIT_NOTE}: {notice.inbox_url}"]
    lines += ["", f"Open in Sayso: {notice.inbox_url}", ""]
    if links:
        lines.append("Each link asks you to confirm before anything is recorded. Do not forward this e-mail:")
        lines.append("its links answer as you.")
    text = "\n".join(lines) + "\n"

    def button(choice: Choice, url: str) -> str:
        colour = {"danger": "#b42318", "primary": "#175cd3", "success": "#067647"}.get(
            choice.style or "", "#344054"
        )
        return (
            f'<a href="{html.escape(url, quote=True)}" style="display:inline-block;margin:0 8px 8px 0;'
            f"padding:10px 16px;border-radius:6px;background:{colour};color:#ffffff;"
            f'text-decoration:none;font-weight:600">{html.escape(choice.label)}</a>'
        )

    body = html.escape(notice.text or "(no text)").replace("\n", "<br>\n")
    buttons = "".join(button(c, u) for c, u in links)
    page = (
        '<!doctype html>\n<html><body style="font-family:system-ui,sans-serif;color:#101828;max-width:640px">\n'
        f'<h2 style="margin:0 0 4px">{html.escape(title)}</h2>\n'
        f'<p style="margin:0 0 16px;color:#475467">in {html.escape(notice.channel_name)} · answer before '
        f"{html.escape(deadline)}</p>\n"
        f'<div style="padding:12px 16px;border:1px solid #d0d5dd;border-radius:8px">{body}</div>\n'
        f'<p style="margin:16px 0">{buttons}</p>\n'
        + (
            f"<p>The buttons approve the arguments as proposed. {EDIT_NOTE}: "
            f'<a href="{html.escape(notice.inbox_url, quote=True)}">edit in Sayso</a>.</p>\n'
            if notice.editable and links
            else ""
        )
        + f'<p><a href="{html.escape(notice.inbox_url, quote=True)}">Open in Sayso</a></p>\n'
        + (
            '<p style="color:#667085;font-size:13px">Each button asks you to confirm before anything is '
            "recorded. Do not forward this e-mail: its buttons answer as you.</p>\n"
            if links
            else ""
        )
        + "</body></html>\n"
    )
    return subject, text, page


def mrkdwn(text: str) -> str:
    """Slack's escaping: only &, < and > are special in its text objects."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _summary_block(notice: Notice, title: str) -> dict[str, Any]:
    body = _cut(mrkdwn(notice.text or "(no text)"), SLACK_TEXT)
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": f"*{mrkdwn(title)}* in {mrkdwn(notice.channel_name)}\n{body}"},
    }


def slack_review(notice: Notice, buttons: list[tuple[Choice, str]]) -> dict[str, Any]:
    """The Block Kit message: the review, its deadline, and a button per answer (its value the
    signed token the API verifies), or a link to the inbox for reviews one click cannot answer."""
    title = headline(notice.purpose)
    elements: list[dict[str, Any]] = []
    for i, (choice, token) in enumerate(buttons[:SLACK_BUTTONS]):
        button: dict[str, Any] = {
            "type": "button",
            "action_id": f"sayso_answer_{i}",
            "text": {"type": "plain_text", "text": _cut(choice.label, SLACK_LABEL)},
            "value": token,
        }
        if choice.style in ("primary", "danger"):
            button["style"] = choice.style
        elements.append(button)
    elements.append(
        {
            "type": "button",
            "action_id": "sayso_open",
            "text": {"type": "plain_text", "text": "Open in Sayso"},
            "url": notice.inbox_url,
        }
    )
    return {
        # The notification fallback is mrkdwn too: escaped like the blocks.
        "text": mrkdwn(f"{title}: {_first_line(notice.text, 150) or notice.review_type}"),
        "blocks": [
            _summary_block(notice, title),
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"Answer before {_deadline(notice.expires_at)}"}]
                + (
                    [
                        {
                            "type": "mrkdwn",
                            "text": f"The buttons approve the arguments as proposed. {EDIT_NOTE}.",
                        }
                    ]
                    if notice.editable
                    else []
                ),
            },
            {"type": "actions", "elements": elements},
        ],
    }


def _answer(review: ReviewDoc, response: Any) -> str:
    """A response in words: the chosen options' labels where there are any."""
    if not isinstance(response, dict):
        return "answered"
    labels = {c.option: c.label for c in reviews.of(review).choices()}
    if response.get("_dismissed"):
        return "dismissed"
    if "selectedOption" in response:
        label = labels.get(str(response["selectedOption"]), str(response["selectedOption"]))
        return f"{label} (with edited arguments)" if isinstance(response.get("editedArgs"), dict) else label
    if isinstance(response.get("selectedIds"), list):
        return ", ".join(labels.get(str(i), str(i)) for i in response["selectedIds"])
    return "answered"


def outcome_line(review: ReviewDoc, responder: str | None) -> str:
    """One line saying how the review ended (or, while still open, that it waits)."""
    status = review["status"]
    if status == "expired":
        if review.get("default_response") is not None:
            return f"Expired: the default applied ({_answer(review, review['default_response'])})"
        return "Expired without an answer"
    if status != "completed":
        if "quorum" in review:
            return "Vote recorded; waiting for the other reviewers"
        return "Still waiting for an answer"
    answer = _answer(review, review.get("response"))
    return f"{answer} by {responder}" if responder else answer


def slack_outcome(notice: Notice, line: str, replace: bool) -> dict[str, Any]:
    """The closed review: the message itself replaced (through the click's ``response_url``) or
    a follow-up in the same channel (an incoming webhook cannot edit what it posted)."""
    message: dict[str, Any] = {
        "text": mrkdwn(f"{line}: {_first_line(notice.text, 150) or notice.review_type}"),
        "blocks": [
            _summary_block(notice, "Review closed" if replace else "Review closed (follow-up)"),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"*{mrkdwn(line)}*"}]},
        ],
    }
    if replace:
        message["replace_original"] = True
    return message


OPERATOR_HEADLINES = {
    "operator.endpoint_disabled": "Webhook endpoint disabled",
    "operator.retries_exhausted": "Webhook deliveries failing",
    "operator.circuit_open": "Webhook receiver unreachable",
}


@dataclass(frozen=True)
class IncidentNotice:
    """An operator notice (sayso_common.incidents): one webhook target's incident."""

    type: str  # operator.endpoint_disabled …
    channel_name: str
    endpoint_id: str | None  # None: the channel's own webhook URL
    url: str
    reason: str
    since: datetime
    inbox_url: str  # the channel in the web inbox


def operator_email(notice: IncidentNotice) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of an operator notice; sent once per incident."""
    title = OPERATOR_HEADLINES.get(notice.type, "Webhook incident")
    target = f"endpoint {notice.endpoint_id}" if notice.endpoint_id else "the channel's webhook URL"
    subject = f"[Sayso] {title}: {_cut(notice.url, SUBJECT_TEXT)}"
    facts = [
        ("Channel", notice.channel_name),
        ("Target", f"{target}, {notice.url}"),
        ("What happened", notice.reason),
        ("Since", _deadline(notice.since)),
    ]
    footer = (
        "You get one e-mail per incident; the next comes once this one is over (the target "
        "recovered or was re-enabled) and a new one begins. Turn these e-mails off with "
        "operatorEmails: false in your notification preferences."
    )
    lines = [f"{title} in {notice.channel_name}", ""]
    lines += [f"{name}: {value}" for name, value in facts]
    lines += ["", f"Open in Sayso: {notice.inbox_url}", "", footer]
    text = "\n".join(lines) + "\n"
    rows = "".join(
        f'<tr><th style="text-align:left;padding:4px 12px 4px 0">{html.escape(name)}</th>'
        f"<td>{html.escape(value)}</td></tr>\n"
        for name, value in facts
    )
    page = (
        '<!doctype html>\n<html><body style="font-family:system-ui,sans-serif;color:#101828;max-width:640px">\n'
        f'<h2 style="margin:0 0 12px">{html.escape(title)}</h2>\n'
        f"<table>\n{rows}</table>\n"
        f'<p><a href="{html.escape(notice.inbox_url, quote=True)}">Open in Sayso</a></p>\n'
        f'<p style="color:#667085;font-size:13px">{html.escape(footer)}</p>\n'
        "</body></html>\n"
    )
    return subject, text, page
