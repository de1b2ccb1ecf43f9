"""``sayso.verify_webhook`` against a real signed delivery from the dispatcher, and against
forged, altered, stale and malformed ones."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook

import sayso
from sayso.webhooks import sign
from tests.clients.support import answer_next
from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 32).decode()
BODY = b'{"event":"review:responded","message_id":"msg_1"}'


async def test_verifies_a_real_delivery(stack: RunningStack, owner: Owner, receiver: Receiver) -> None:
    async with sayso.AsyncClient(stack.url, owner.api_key) as client:
        agent = await client.create_agent("hooked", webhook_url=receiver.url("/hook"))
        assert agent.webhook_secret
        message = await client.request_review(agent.id, sayso.Approval(allow_comment=True), "Ship?")
        await answer_next(owner, agent.id, {"selectedOption": "reject", "comment": "not yet"}, delay=0)
        [delivery] = await receiver.wait_for("/hook", timeout=30)

    payload = sayso.verify_webhook(delivery.body, delivery.headers, agent.webhook_secret)
    assert payload["event"] == "review:responded"
    assert payload["message_id"] == message.id
    assert payload["response"] == {"selectedOption": "reject", "comment": "not yet"}
    # Header names in any case, and the secret among others (a rotation).
    upper = {k.upper(): v for k, v in delivery.headers.items()}
    assert sayso.verify_webhook(delivery.body, upper, [OTHER, agent.webhook_secret]) == payload

    tampered = delivery.body.replace(b"not yet", b"ship it")
    with pytest.raises(sayso.WebhookVerificationError) as forged:
        sayso.verify_webhook(tampered, delivery.headers, agent.webhook_secret)
    assert forged.value.reason == "invalid_signature"
    with pytest.raises(sayso.WebhookVerificationError) as wrong_key:
        sayso.verify_webhook(delivery.body, delivery.headers, OTHER)
    assert wrong_key.value.reason == "invalid_signature"
    later = int(delivery.headers["webhook-timestamp"]) + 301
    with pytest.raises(sayso.WebhookVerificationError) as replayed:
        sayso.verify_webhook(delivery.body, delivery.headers, agent.webhook_secret, now=later)
    assert replayed.value.reason == "timestamp_out_of_range"
    # The reference implementation agrees with the SDK on the same bytes.
    assert Webhook(agent.webhook_secret).verify(delivery.body, delivery.headers) == payload


def _headers(signature: str, msg_id: str = "evt_1", timestamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}


def test_several_signatures_in_one_header() -> None:
    now = int(time.time())
    good = sign(SECRET, "evt_1", now, BODY)
    header = f"v1,bm90LWl0 v2,whatever {good}"
    assert sayso.verify_webhook(BODY, _headers(header, timestamp=now), SECRET)["message_id"] == "msg_1"
    # Signed with the new secret during a rotation: either secret given works.
    both = f"{sign(OTHER, 'evt_1', now, BODY)} {good}"
    assert sayso.verify_webhook(BODY.decode(), _headers(both, timestamp=now), [OTHER])["event"]


def test_matches_the_reference_signer() -> None:
    now = int(time.time())
    reference = Webhook(SECRET).sign("evt_9", datetime.fromtimestamp(now, UTC), BODY.decode())
    assert reference == sign(SECRET, "evt_9", now, BODY)


# Headers are built when each case runs, never at collection: a timestamp taken at import time
# goes stale (and a "future" one turns current) in a suite that runs longer than the tolerance.
Headers = Callable[[], dict[str, str]]


@pytest.mark.parametrize(
    ("headers", "body", "secret", "reason"),
    [
        (lambda: {}, BODY, SECRET, "missing_headers"),
        (lambda: {"webhook-id": "evt_1", "webhook-timestamp": "1"}, BODY, SECRET, "missing_headers"),
        (lambda: _headers("v1,x", timestamp=0) | {"webhook-timestamp": "soon"}, BODY, SECRET, "invalid_timestamp"),
        (lambda: _headers("v1,x", timestamp=int(time.time()) - 600), BODY, SECRET, "timestamp_out_of_range"),
        (lambda: _headers("v1,x", timestamp=int(time.time()) + 600), BODY, SECRET, "timestamp_out_of_range"),
        (lambda: _headers("v1,AAAA"), BODY, SECRET, "invalid_signature"),
        (lambda: _headers("v1,ünïcode"), BODY, SECRET, "invalid_signature"),
        (lambda: _headers(""), BODY, SECRET, "missing_headers"),
        (lambda: _headers("v1,x"), BODY, "whsec_not base64!", "invalid_secret"),
        (lambda: _headers("v1,x"), BODY, [], "invalid_secret"),
    ],
    ids=[
        "no-headers", "no-signature", "bad-timestamp", "stale", "future", "forged", "non-ascii", "empty-signature",
        "bad-secret", "no-secret",
    ],
)  # fmt: skip
def test_refusals(headers: Headers, body: bytes, secret: str | list[str], reason: str) -> None:
    with pytest.raises(sayso.WebhookVerificationError) as refused:
        sayso.verify_webhook(body, headers(), secret)
    assert refused.value.reason == reason


def test_signed_non_json_body() -> None:
    now = int(time.time())
    with pytest.raises(sayso.WebhookVerificationError) as refused:
        sayso.verify_webhook(
            b"not json", _headers(sign(SECRET, "evt_1", now, b"not json"), timestamp=now), SECRET
        )
    assert refused.value.reason == "invalid_json"


def test_readme_receivers_are_valid_python() -> None:
    """The FastAPI and Flask receiver examples in the SDK's README compile."""
    readme = (Path(__file__).parents[2] / "clients" / "sdk" / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    receivers = [b for b in blocks if "verify_webhook" in b]
    assert len(receivers) >= 2
    for block in receivers:
        compile(block, "README.md", "exec")
