"""``sayso tail`` shows the review policies' events: a vote, and the default an expiry applied."""

from __future__ import annotations

from typing import Any

import pytest

import sayso
from sayso_cli.render import event_line


def _review(**review: Any) -> dict[str, Any]:
    return {"id": "msg_1", "channelId": "agt_1", "review": {"type": "approval", **review}}


@pytest.mark.parametrize(
    ("name", "data", "shown"),
    [
        (
            "review:voted",
            {
                **_review(status="pending"),
                "vote": {"email": "ana@example.com", "response": {"selectedOption": "approve"}},
            },
            "agt_1  msg_1  ana@example.com voted approve",
        ),
        (
            "review:expired",
            _review(status="expired", defaultResponse={"selectedOption": "reject"}),
            "expired, default: reject",
        ),
        ("review:expired", _review(status="expired", defaultResponse=None), "msg_1  expired"),
        (
            "review:expired",
            _review(status="expired", expiredReason="channel_deleted", onExpire={"response": {}}),
            "msg_1  expired: channel deleted",
        ),
    ],
)
def test_tail_lines(name: str, data: dict[str, Any], shown: str) -> None:
    line = event_line(sayso.Event(id="evt_1", type=name, data=data))
    assert line.endswith(shown), line
