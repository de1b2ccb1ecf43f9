"""The notifier's Slack sender reads a Slack answer's Retry-After with the dispatcher's rule
(sayso_common.numerals): ``²`` is absent, not an exception out of the send. Which answers are
retried is the dispatcher's rule too (sayso_common.attempts): 408 is, which the notifier once
failed at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web

from sayso_notifier.senders import Slack
from sayso_notifier.settings import NotifierSettings
from tests.support.receiver import Handler, Received, Receiver


def busy(retry_after: str, status: int = 429) -> Handler:
    async def handler(_: web.Request, __: Received) -> web.StreamResponse:
        return web.Response(status=status, text="rate_limited", headers={"Retry-After": retry_after})

    return handler


@pytest.fixture
async def sender(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Slack]:
    monkeypatch.setenv("SAYSO_SECRET_KEY", "k" * 32)
    monkeypatch.setenv("SAYSO_NOTIFIER_ALLOWED_NETWORKS", "127.0.0.0/8")
    slack = Slack(NotifierSettings())
    yield slack
    await slack.close()


@pytest.mark.parametrize(
    ("retry_after", "seconds"), [("²", None), ("١٢", None), ("nan", None), ("30", 30.0), (" 30 ", 30.0)]
)
async def test_a_slack_retry_after_is_read_as_ascii_seconds(
    sender: Slack, receiver: Receiver, retry_after: str, seconds: float | None
) -> None:
    receiver.routes["/slack"] = busy(retry_after)
    sent = await sender.post(receiver.url("/slack"), {"text": "hi"})
    assert (sent.verdict, sent.error_kind, sent.retry_after) == ("retry", "http_status", seconds)


@pytest.mark.parametrize(
    ("status", "verdict", "kind", "seconds"),
    [
        (408, "retry", "http_status", 30.0),
        (429, "retry", "http_status", 30.0),
        (503, "retry", "http_status", 30.0),
        (400, "failed", "http_status", None),  # no retry, so no Retry-After to honour
        (410, "failed", "http_status", None),  # channel_is_archived
        (302, "failed", "redirect_not_followed", None),
    ],
)
async def test_slack_answers_are_judged_by_the_shared_rule(
    sender: Slack, receiver: Receiver, status: int, verdict: str, kind: str, seconds: float | None
) -> None:
    receiver.routes["/slack"] = busy("30", status)
    sent = await sender.post(receiver.url("/slack"), {"text": "hi"})
    assert (sent.verdict, sent.error_kind, sent.retry_after) == (verdict, kind, seconds)


async def test_a_slack_retry_after_may_be_an_http_date(sender: Slack, receiver: Receiver) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(minutes=10), usegmt=True)
    receiver.routes["/slack"] = busy(when, 503)
    sent = await sender.post(receiver.url("/slack"), {"text": "hi"})
    assert sent.verdict == "retry"
    assert sent.retry_after is not None
    assert 500 < sent.retry_after <= 600
