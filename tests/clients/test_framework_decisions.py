"""The framework integrations' reading of an answer (sayso.integrations._decisions) follows the
server's one rule of what approves (sayso_common.quorum.option_approves): the default ids, or an
option styled primary or success — unless the caller named its own approving ids."""

from __future__ import annotations

from typing import Any

import pytest

from sayso.integrations._decisions import decision_of
from sayso.models import Message
from sayso_common.quorum import option_approves

OPTIONS = [
    {"id": "ship", "label": "Ship it", "style": "primary"},
    {"id": "go", "label": "Go", "style": "success"},
    {"id": "ok", "label": "OK"},
    {"id": "hold", "label": "Hold", "style": "danger"},
    {"id": "later", "label": "Later"},
]


def _answered(option: str) -> Message:
    return Message.model_validate(
        {
            "id": "msg_1",
            "channelId": "agt_1",
            "createdAt": "2026-12-07T00:00:00Z",
            "review": {
                "type": "approval",
                "payload": {"options": OPTIONS},
                "status": "completed",
                "response": {"selectedOption": option},
            },
        }
    )


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: str(o["id"]))
def test_an_answer_approves_as_the_server_says(option: dict[str, Any]) -> None:
    assert decision_of(_answered(option["id"])).approved is option_approves(option)


def test_a_callers_own_approving_ids_are_all_that_approve() -> None:
    assert decision_of(_answered("later"), approve={"later"}).approved is True
    assert decision_of(_answered("ship"), approve={"later"}).approved is False
