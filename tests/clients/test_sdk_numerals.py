"""The SDK reads numbers a server or sender wrote (Retry-After, an SSE ``retry:`` field, a
webhook's timestamp) as ASCII digits only: ``"²"`` (a digit to ``str.isdigit()``, refused by
``int()``), other scripts' digits, ``nan``, signs and thousand-digit numbers are unreadable or
refused by name, never an exception out of the SDK."""

from __future__ import annotations

import base64
import time

import pytest

import sayso
from sayso.errors import RETRY_AFTER_CAP, retry_after_seconds
from sayso.events import DEFAULT_RETRY_MS, EventParser
from sayso.numerals import parse_uint
from sayso.webhooks import sign

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
BODY = b'{"event":"review:responded"}'
ODD = [
    "\u00b2",
    "1\u00b2",
    "\u0661\u0662",
    "\uff11\uff12",
    "+12",
    "-12",
    " 12",
    "12 ",
    "1_0",
    "1.5",
    "nan",
    "inf",
    "",
]


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("12", 12), ("007", 7), ("9" * 12, 10**12 - 1),
                                                ("9" * 13, None), ("9" * 5000, None), (None, None),
                                                *((t, None) for t in ODD)])  # fmt: skip
def test_parse_uint(text: str | None, expected: int | None) -> None:
    assert parse_uint(text, 12) == expected


@pytest.mark.parametrize(("value", "seconds"), [("3", 3.0), (" 3 ", 3.0), ("\t0", 0.0), (None, None),
                                                ("9999999999", 9999999999.0), ("9" * 11, RETRY_AFTER_CAP),
                                                ("9" * 5000, RETRY_AFTER_CAP),
                                                ("Wed, 01 Apr 2026 14:33:00 GMT", None),
                                                *((t, None) for t in ODD if t.strip(" ") != "12")])  # fmt: skip
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value) == seconds


@pytest.mark.parametrize("value", [*ODD, "9" * 5000])
def test_an_odd_sse_retry_field_is_ignored(value: str) -> None:
    parser = EventParser()
    assert parser.feed(f"retry: {value}") is None
    assert parser.retry_ms == DEFAULT_RETRY_MS
    parser.feed("retry: 5000")
    assert parser.retry_ms == 5000


@pytest.mark.parametrize("stamp", [*(t for t in ODD if t), "9" * 400, "9" * 5000])
def test_an_odd_webhook_timestamp_is_invalid_timestamp(stamp: str) -> None:
    headers = {"webhook-id": "evt_1", "webhook-timestamp": stamp, "webhook-signature": "v1,AAAA"}
    with pytest.raises(sayso.WebhookVerificationError) as caught:
        sayso.verify_webhook(BODY, headers, SECRET)
    assert caught.value.reason == "invalid_timestamp"


def test_a_plain_timestamp_still_verifies() -> None:
    now = int(time.time())
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(SECRET, "evt_1", now, BODY),
    }
    assert sayso.verify_webhook(BODY, headers, SECRET) is not None
