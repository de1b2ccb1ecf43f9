"""Slack's interactive callbacks: the request's signature, and what a button click does.

Slack signs each request with the app's signing secret: ``v0=`` HMAC-SHA256 over
``v0:{X-Slack-Request-Timestamp}:{raw body}``. A request is accepted only with a timestamp within
the window (a replay of a recorded request is refused once it is older) and a matching signature,
compared in constant time. A replay inside the window gets past this, and is then stopped by the
answer token it carries: its notification's links are used already, so nothing is answered twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qs

from pymongo.errors import DuplicateKeyError

from sayso_api import answers
from sayso_api.reviewing import Reviewing
from sayso_common import notifications, numerals
from sayso_common.clock import utcnow
from sayso_common.errors import ErrorCode, InvalidError, UnauthorizedError
from sayso_common.mongo import NOTIFICATIONS, Database, collection
from sayso_common.secretbox import SecretBox

# Slack's documented limits are far below this; anything bigger is not from Slack.
MAX_TIMESTAMP_DIGITS = 12


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "v0=" + hmac.new(secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()


def verify(
    secret: bytes, timestamp: str | None, given: str | None, body: bytes, now: float, tolerance: int
) -> None:
    """Raise UnauthorizedError naming the reason unless Slack signed ``body`` within ``tolerance`` seconds."""
    if not timestamp or not given:
        raise UnauthorizedError(
            "X-Slack-Request-Timestamp and X-Slack-Signature are required", ErrorCode.MISSING_HEADERS
        )
    stamp = numerals.parse_uint(timestamp, MAX_TIMESTAMP_DIGITS)
    if stamp is None:
        raise UnauthorizedError("X-Slack-Request-Timestamp is not a Unix time", ErrorCode.INVALID_TIMESTAMP)
    if abs(now - stamp) > tolerance:
        raise UnauthorizedError(
            f"the request is more than {tolerance} s old or ahead", ErrorCode.TIMESTAMP_OUT_OF_RANGE
        )
    if not hmac.compare_digest(given.encode(), signature(secret, timestamp, body).encode()):
        raise UnauthorizedError("the Slack signature does not match", ErrorCode.INVALID_SIGNATURE)


def interaction(body: bytes) -> dict[str, Any]:
    """The ``payload`` field of a form-encoded interaction request, parsed."""
    try:
        raw = parse_qs(body.decode(), strict_parsing=False).get("payload", [""])[0]
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise InvalidError(
            ErrorCode.INVALID_PAYLOAD, "the body carries no JSON payload field", "payload"
        ) from None
    if not isinstance(payload, dict):
        raise InvalidError(ErrorCode.INVALID_PAYLOAD, "payload must be a JSON object", "payload")
    return payload


async def act(
    db: Database, reviewing: Reviewing, box: SecretBox, key: bytes, payload: dict[str, Any]
) -> list[answers.Found]:
    """Answer with every answer button the interaction carries (Slack sends the one clicked),
    then have the notifier replace the message with the outcome through ``response_url``. Other
    buttons (Open in Sayso) carry no token and do nothing here."""
    results: list[answers.Found] = []
    response_url = payload.get("response_url")
    for action in payload.get("actions") or []:
        token = action.get("value") if isinstance(action, dict) else None
        if not isinstance(token, str) or not token:
            continue
        found = await answers.answer(db, reviewing, key, token)
        results.append(found)
        # A removed reviewer's click answers nothing and is told nothing of the review's outcome.
        shown = found.notification is not None and found.status != "revoked"
        if shown and isinstance(response_url, str) and response_url:
            await _update_message(db, box, found, response_url)
    return results


async def _update_message(db: Database, box: SecretBox, found: answers.Found, response_url: str) -> None:
    """Queue the outcome update of the clicked message (sent by the notifier, through the SSRF
    guard). The response_url is sealed: for 30 minutes it lets anyone post into the channel."""
    assert found.notification is not None
    coll = collection(db, NOTIFICATIONS)
    sealed = box.seal(response_url)
    doc = notifications.outcome_of(found.notification, utcnow(), sealed)
    try:
        await coll.insert_one(doc)
    except DuplicateKeyError:
        # The notifier queued a follow-up first; while unsent, make it replace the message instead.
        await coll.update_one({"key": doc["key"], "state": "pending"}, {"$set": {"response_url_enc": sealed}})
