"""The notifier's and the answer paths' pure pieces, table-tested: quiet hours, answer-link
tokens, Slack's request signature, who is told what and when, escaping, the SMTP URL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack

import pytest

from sayso_api import slack
from sayso_common import answer_links, membership, reviews
from sayso_common.answer_links import AnswerLink, LinkError
from sayso_common.documents import AgentDoc, MessageDoc, NotificationPrefsDoc, QuietHoursDoc, UserDoc
from sayso_common.errors import DomainError
from sayso_notifier import content, planner
from sayso_notifier.quiet import held_until, quiet_until
from sayso_notifier.settings import NotifierSettings

T0 = datetime(2026, 3, 28, 22, 30, tzinfo=UTC)  # a Saturday; Europe/Berlin goes to summer time next night


def q(start: str, end: str, zone: str = "UTC") -> QuietHoursDoc:
    return {"start": start, "end": end, "time_zone": zone}


@pytest.mark.parametrize(
    ("now", "quiet", "until"),
    [
        (T0, None, None),
        (T0, q("22:00", "07:00"), datetime(2026, 3, 29, 7, 0, tzinfo=UTC)),  # spans midnight, evening side
        (T0.replace(hour=3), q("22:00", "07:00"), datetime(2026, 3, 28, 7, 0, tzinfo=UTC)),  # morning side
        (T0.replace(hour=7), q("22:00", "07:00"), None),  # end is exclusive
        (T0.replace(hour=22, minute=0), q("22:00", "07:00"), datetime(2026, 3, 29, 7, 0, tzinfo=UTC)),
        (T0.replace(hour=12), q("22:00", "07:00"), None),
        (T0.replace(hour=12), q("09:00", "17:00"), datetime(2026, 3, 28, 17, 0, tzinfo=UTC)),
        (T0.replace(hour=18), q("09:00", "17:00"), None),
        (T0, q("08:00", "08:00"), None),  # empty window
        # 23:30 in Berlin (UTC+1); the night's end at 07:00 is already summer time (UTC+2).
        (T0, q("22:00", "07:00", "Europe/Berlin"), datetime(2026, 3, 29, 5, 0, tzinfo=UTC)),
        (T0, q("22:00", "07:00", "America/New_York"), None),  # 18:30 there
        (T0, q("22:00", "07:00", "Not/AZone"), None),  # unreadable: never holds back
        (T0, q("25:00", "07:00"), None),
        (T0, q("", ""), None),
    ],
)
def test_quiet_hours(now: datetime, quiet: QuietHoursDoc | None, until: datetime | None) -> None:
    assert quiet_until(now, quiet) == until


KEY = answer_links.link_key("test-secret-key-" + "x" * 32)
LINK = AnswerLink("ntf_1", "msg_1", "usr_1", "approve", int((T0 + timedelta(hours=1)).timestamp()))


def test_answer_link_round_trip_and_key_derivation() -> None:
    token = answer_links.sign(KEY, LINK)
    assert answer_links.verify(KEY, token, T0) == LINK
    # URL-safe as it is, and keyed by a derived key, never the secret itself.
    assert all(c.isalnum() or c in "-_." for c in token)
    assert ("test-secret-key-" + "x" * 32).encode() != KEY
    assert answer_links.link_key("another-secret-key-xxxxxxxxxxxxxxxx") != KEY


@pytest.mark.parametrize(
    ("mangle", "code"),
    [
        (lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), "invalid_link"),
        (lambda t: t.split(".")[0], "invalid_link"),
        (lambda t: "." + t.split(".")[1], "invalid_link"),
        (lambda t: t + ".extra", "invalid_link"),
        (lambda t: "x" * 1200, "invalid_link"),
        (
            lambda t: answer_links.sign(answer_links.link_key("other-secret-key-xxxxxxxxxxxxxxxx"), LINK),
            "invalid_link",
        ),
        (
            lambda t: answer_links.sign(KEY, AnswerLink("n", "m", "r", "o", int(T0.timestamp()))),
            "link_expired",
        ),
        # Signed but not a token's shape (only a key holder could make one; still refused).
        (lambda t: _signed_body(b'{"n": 1}'), "invalid_link"),
        (lambda t: _signed_body(b'["n", "m", "r", "o", "soon"]'), "invalid_link"),
        (lambda t: _signed_body(b"not json"), "invalid_link"),
    ],
)
def test_answer_link_refusals(mangle: Any, code: str) -> None:
    with pytest.raises(LinkError) as caught:
        answer_links.verify(KEY, mangle(answer_links.sign(KEY, LINK)), T0)
    assert caught.value.code == code


def _signed_body(raw: bytes) -> str:
    import base64
    import hashlib
    import hmac

    body = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    mac = (
        base64.urlsafe_b64encode(hmac.new(KEY, body.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    )
    return f"{body}.{mac}"


SECRET = b"8f742231b10e8888abcd99yyyzzz85a5"
BODY = b"payload=%7B%22type%22%3A%22block_actions%22%7D"
NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "code"),
    [
        ("1700000000", slack.signature(SECRET, "1700000000", BODY), BODY, None),
        ("1699999701", slack.signature(SECRET, "1699999701", BODY), BODY, None),  # 299 s old
        ("1699999699", slack.signature(SECRET, "1699999699", BODY), BODY, "timestamp_out_of_range"),
        ("1700000301", slack.signature(SECRET, "1700000301", BODY), BODY, "timestamp_out_of_range"),
        ("1700000000", slack.signature(SECRET, "1700000000", BODY), BODY + b"&x=1", "invalid_signature"),
        ("1700000000", slack.signature(b"other", "1700000000", BODY), BODY, "invalid_signature"),
        ("1700000000", slack.signature(SECRET, "1700000001", BODY), BODY, "invalid_signature"),
        ("1700000000", "v1=" + slack.signature(SECRET, "1700000000", BODY)[3:], BODY, "invalid_signature"),
        ("1700000000", "", BODY, "missing_headers"),
        (None, slack.signature(SECRET, "1700000000", BODY), BODY, "missing_headers"),
        ("17e8", "v0=00", BODY, "invalid_timestamp"),
        ("-1", "v0=00", BODY, "invalid_timestamp"),
        ("1" * 40, "v0=00", BODY, "invalid_timestamp"),
    ],
)
def test_slack_signature(timestamp: str | None, signature: str, body: bytes, code: str | None) -> None:
    if code is None:
        slack.verify(SECRET, timestamp, signature, body, NOW, 300)
        return
    with pytest.raises(DomainError) as caught:
        slack.verify(SECRET, timestamp, signature, body, NOW, 300)
    assert caught.value.code.status == 401
    assert caught.value.code == code


NOW_PLAN = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _message(**review: Any) -> MessageDoc:
    return {
        "_id": "msg_1",
        "channel_id": "agt_1",
        "owner_id": "usr_owner",
        "text": "Deploy?",
        "created_at": NOW_PLAN,
        "review": {
            "type": "approval",
            "status": "pending",
            "expires_at": NOW_PLAN + timedelta(minutes=10),
            "payload": {"options": [{"id": "ok", "label": "OK"}]},
            **review,  # type: ignore[typeddict-item]
        },
    }


def _user(uid: str, **prefs: Unpack[NotificationPrefsDoc]) -> UserDoc:
    return {
        "_id": uid,
        "email": f"{uid}@x.test",
        "password_hash": "",
        "created_at": NOW_PLAN,
        "notifications": prefs,
    }


AGENT: AgentDoc = {
    "_id": "agt_1",
    "owner_id": "usr_owner",
    "name": "bot",
    "created_at": NOW_PLAN,
    "members": [{"user_id": "usr_member", "email": "usr_member@x.test", "added_at": NOW_PLAN}],
}
USERS = {
    "usr_owner": _user("usr_owner"),
    "usr_member": _user("usr_member", email=False, slack_webhook_enc="sealed"),
}


def _keys(docs: list[Any]) -> set[tuple[str, str, str, str]]:
    return {(d["purpose"], d["recipient_id"], d["kind"], d["state"]) for d in docs}


def test_plan_owner_and_members_by_their_preferences() -> None:
    docs = planner.plan(_message(), AGENT, USERS, NOW_PLAN, email_ready=True)
    assert _keys(docs) == {
        ("review", "usr_owner", "email", "pending"),
        ("review", "usr_member", "slack", "pending"),
    }
    assert all(d["next_attempt_at"] == NOW_PLAN for d in docs)
    assert {d["responder_id"] for d in docs} == {"usr_owner", "usr_member"}


def test_plan_reminders_escalation_channel_slack_and_what_cannot_be_sent() -> None:
    message = _message(
        reminders=[300, 3600],  # 3600 s before a 10-minute deadline has passed already: dropped
        escalation=[
            {"after_seconds": 120, "notify": ["usr_owner@x.test", "esc@x.test", "ghost@x.test"]},
            {"after_seconds": 900, "notify": ["usr_owner@x.test"]},  # after the deadline: dropped
        ],
    )
    agent: AgentDoc = {**AGENT, "members": [], "slack_webhook_enc": "sealed"}
    # usr_esc has an account (even handed in among the users) but is no reviewer of the channel.
    users = {**USERS, "usr_esc": _user("usr_esc")}
    docs = planner.plan(message, agent, users, NOW_PLAN, email_ready=False)
    assert _keys(docs) == {
        ("review", "usr_owner", "email", "skipped"),
        ("review", "agt_1", "slack", "pending"),
        ("reminder:0", "usr_owner", "email", "skipped"),
        ("reminder:0", "agt_1", "slack", "pending"),
        ("escalation:0", "usr_owner", "email", "skipped"),
        ("escalation:0", "esc@x.test", "email", "skipped"),
        ("escalation:0", "ghost@x.test", "email", "skipped"),
    }
    due = {(d["purpose"], d["recipient_id"]): d.get("next_attempt_at") for d in docs}
    assert due[("reminder:0", "agt_1")] == NOW_PLAN + timedelta(minutes=5)
    skipped = {d["recipient_id"]: d["last_error"] for d in docs if d["state"] == "skipped"}
    # An address with an account outside the channel and one with none: told apart by nothing.
    assert skipped["esc@x.test"] == skipped["ghost@x.test"] == planner.NOT_A_REVIEWER
    assert skipped["usr_owner"] == planner.EMAIL_NOT_CONFIGURED
    assert all(d["escalation"] == d["purpose"].startswith("escalation") for d in docs)
    assert len({d["key"] for d in docs}) == len(docs)


def test_plan_nothing_for_closed_or_overdue_reviews() -> None:
    assert planner.plan(_message(status="completed"), AGENT, USERS, NOW_PLAN, True) == []
    assert planner.plan(_message(expires_at=NOW_PLAN), AGENT, USERS, NOW_PLAN, True) == []


@pytest.mark.parametrize(
    ("user_id", "reviewer"),
    [("usr_owner", True), ("usr_member", True), ("usr_gone", False), ("", False), ("agt_1", False)],
)
def test_who_may_answer_and_be_escalated_to(user_id: str, reviewer: bool) -> None:
    assert membership.may_answer(AGENT, user_id) is reviewer
    users = {**USERS, "usr_gone": _user("usr_gone")}
    assert (f"{user_id}@x.test" in membership.reviewers_by_email(AGENT, users)) is reviewer


QUIET = q("00:00", "23:59")


@pytest.mark.parametrize(
    ("prefs", "escalation", "held"),
    [
        ({}, False, False),
        ({}, True, False),
        ({"quiet_hours": QUIET}, False, True),
        ({"quiet_hours": QUIET}, True, True),  # an agent's escalation waits like any notice
        ({"quiet_hours": QUIET, "escalations_during_quiet_hours": True}, True, False),
        ({"quiet_hours": QUIET, "escalations_during_quiet_hours": True}, False, True),
        ({"quiet_hours": QUIET, "escalations_during_quiet_hours": False}, True, True),
    ],
)
def test_quiet_hours_hold_escalations_unless_let_through(
    prefs: NotificationPrefsDoc, escalation: bool, held: bool
) -> None:
    assert (held_until(T0.replace(hour=12), prefs, escalation) is not None) is held


def test_choices_and_escaping() -> None:
    assert (
        reviews.of(
            {
                "type": "selection",
                "status": "pending",
                "payload": {"mode": "multi", "items": [{"id": "a", "label": "A"}]},
            }
        ).choices()
        == []
    )
    assert reviews.of(
        {"type": "selection", "status": "pending", "payload": {"options": [{"id": "a", "label": "A"}]}}
    ).choices() == [reviews.Choice("a", "A")]
    assert reviews.of({"type": "form", "status": "pending", "payload": {}}).choices() == []
    assert content.mrkdwn("<!here> & <@U1>") == "&lt;!here&gt; &amp; &lt;@U1&gt;"
    notice = content.Notice(
        "reminder:0", "ops <team>", "<script>x</script>\n# Title", "approval", NOW_PLAN, "http://x/#/c/a"
    )
    subject, text, page = content.email(notice, [(reviews.Choice("ok", "O<k>"), 'http://x/a/t?"q')])
    assert subject == "[Sayso] Reminder: review waiting: <script>x</script>"
    assert "<script>" not in page
    assert "O&lt;k&gt;" in page
    assert 'href="http://x/a/t?&quot;q"' in page
    assert 'O<k>: http://x/a/t?"q' in text


@pytest.mark.parametrize(
    ("env", "server", "error"),
    [
        ({}, None, None),
        ({"SAYSO_SMTP_URL": "smtp://mail.local:2525"}, ("mail.local", 2525, "none", None, None), None),
        ({"SAYSO_SMTP_URL": "smtp://mail.local"}, ("mail.local", 25, "none", None, None), None),
        (
            {"SAYSO_SMTP_URL": "smtps://u%40x:p%3Ass@mail.local"},
            ("mail.local", 465, "implicit", "u@x", "p:ss"),
            None,
        ),
        (
            {"SAYSO_SMTP_URL": "smtp://u:pw@mail.local:587", "SAYSO_SMTP_STARTTLS": "true"},
            ("mail.local", 587, "starttls", "u", "pw"),
            None,
        ),
        ({"SAYSO_SMTP_URL": "smtp://u:pw@mail.local:587"}, None, "in clear"),
        ({"SAYSO_SMTP_URL": "http://mail.local"}, None, "smtp://"),
        ({"SAYSO_SMTP_URL": "smtp://mail.local:99999"}, None, "invalid port"),
        ({"SAYSO_NOTIFIER_LEASE_SECONDS": "5"}, None, "lease"),
    ],
)
def test_smtp_settings(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], server: Any, error: str | None
) -> None:
    monkeypatch.setenv("SAYSO_SECRET_KEY", "k" * 32)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if error:
        with pytest.raises(ValueError, match=error) as caught:
            NotifierSettings()
        assert "pw" not in str(caught.value)
        return
    parsed = NotifierSettings().smtp_server()
    assert (
        None if parsed is None else (parsed.host, parsed.port, parsed.tls, parsed.username, parsed.password)
    ) == server


OPTIONS = {"options": [{"id": "ok", "label": "Ship it"}, {"id": "no", "label": "Hold"}]}


@pytest.mark.parametrize(
    ("review", "responder", "line"),
    [
        ({"status": "completed", "response": {"selectedOption": "ok"}}, "a@x.test", "Ship it by a@x.test"),
        ({"status": "completed", "response": {"selectedOption": "gone"}}, None, "gone"),
        ({"status": "completed", "response": {"_dismissed": True}}, "a@x.test", "dismissed by a@x.test"),
        ({"status": "expired"}, None, "Expired without an answer"),
        (
            {"status": "expired", "default_response": {"selectedOption": "no"}},
            None,
            "Expired: the default applied (Hold)",
        ),
        ({"status": "pending"}, None, "Still waiting for an answer"),
        (
            {"status": "pending", "quorum": {"approvals": 2}},
            None,
            "Vote recorded; waiting for the other reviewers",
        ),
    ],
)
def test_outcome_lines(review: dict[str, Any], responder: str | None, line: str) -> None:
    assert content.outcome_line({"type": "approval", "payload": OPTIONS, **review}, responder) == line  # type: ignore[typeddict-item]


def test_an_editable_review_says_editing_needs_the_inbox() -> None:
    """Edit before approve (#32): one-click answers approve the arguments as proposed; the e-mail
    and the Slack message say so and link the inbox, where they can be changed."""
    review: Any = {
        "type": "approval",
        "status": "pending",
        "payload": {**OPTIONS, "edit": {"args": {"amount": 120}}},
    }
    assert reviews.of(review).editable
    plain: Any = {**review, "payload": OPTIONS}
    freeform: Any = {**review, "type": "freeform"}
    assert not reviews.of(plain).editable
    assert not reviews.of(freeform).editable
    inbox = "http://x/#/c/agt_1"
    links = [(reviews.Choice("ok", "Ship it"), "http://x/a/1")]
    for editable in (True, False):
        notice = content.Notice("review", "ops", "Pay alice?", "approval", NOW_PLAN, inbox, editable=editable)
        _, text, page = content.email(notice, links)
        slack = json.dumps(content.slack_review(notice, links))
        assert (content.EDIT_NOTE in text) is editable
        assert (f"{content.EDIT_NOTE}: {inbox}" in text) is editable
        assert (f'{content.EDIT_NOTE}: <a href="{inbox}">' in page) is editable
        assert (content.EDIT_NOTE in slack) is editable
    answered: Any = {
        **review,
        "status": "completed",
        "response": {"selectedOption": "ok", "editedArgs": {"amount": 90}},
    }
    assert content.outcome_line(answered, "a@x.test") == "Ship it (with edited arguments) by a@x.test"
