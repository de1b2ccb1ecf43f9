"""The notifier's Slack sender reads a Slack answer's Retry-After with the dispatcher's rule
(sayso_common.numerals): ``²`` is absent, not an exception out of the send."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from sayso_notifier.senders import Slack
from sayso_notifier.settings import NotifierSettings
from tests.support.receiver import Handler, Received, Receiver


def busy(retry_after: str) -> Handler:
    async def handler(_: web.Request, __: Received) -> web.StreamResponse:
        return web.Response(status=429, text="rate_limited", headers={"Retry-After": retry_after})

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
