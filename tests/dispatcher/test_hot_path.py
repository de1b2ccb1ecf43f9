"""The pieces of the delivery hot path that skip work: which leases a renewal pass extends, how a
consumed batch of raw Kafka values becomes events, the sender's remembered URL verdicts, and the
dispatcher process's collector settings."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from sayso_common.events import MessageData, ReviewResponded, event_to_json, parse_batch
from sayso_common.views import MessageView, ReviewView
from sayso_dispatcher.sender import Sender
from sayso_dispatcher.settings import DispatcherSettings
from sayso_dispatcher.worker import leases_to_renew
from tests.support.receiver import Receiver

NOW = datetime(2026, 4, 1, 14, 32, tzinfo=UTC)
PERIOD = 10.0  # a 30 s lease renewed every 10 s, the defaults


@pytest.mark.parametrize(
    ("lease_left", "renewed"),
    [
        (30.0, False),  # just claimed: sent long before it could lapse
        (20.001, False),  # the next pass (10 s on) still finds more than a period left
        (20.0, True),
        (15.0, True),
        (10.0, True),
        (0.5, True),
        (-1.0, True),  # already lapsed (a stalled loop): try anyway, the claim filter decides
    ],
)
def test_only_leases_that_could_lapse_before_the_pass_after_next_are_renewed(
    lease_left: float, renewed: bool
) -> None:
    held = {"dlv_a": ("me:1", NOW + timedelta(seconds=lease_left))}
    assert leases_to_renew(held, NOW, PERIOD) == ({"dlv_a": "me:1"} if renewed else {})


def test_renewal_keeps_each_delivery_with_its_own_claim() -> None:
    held = {
        "dlv_old": ("me:1", NOW + timedelta(seconds=5)),
        "dlv_new": ("me:2", NOW + timedelta(seconds=29)),
        "dlv_mid": ("me:3", NOW + timedelta(seconds=12)),
    }
    assert leases_to_renew(held, NOW, PERIOD) == {"dlv_old": "me:1", "dlv_mid": "me:3"}


def _event_json() -> bytes:
    view = MessageView(
        id="msg_1",
        channel_id="agt_1",
        text="Deploy?",
        created_at=NOW,
        review=ReviewView(
            type="approval", status="completed", response={"selectedOption": "approve"}, responded_at=NOW
        ),
    )
    return event_to_json(
        ReviewResponded(channel_id="agt_1", owner_id="usr_1", data=MessageData(message=view))
    )


@pytest.mark.parametrize(
    ("raw", "types"),
    [
        ([], []),
        (["good"], ["review.responded"]),
        (["good", "good"], ["review.responded", "review.responded"]),
        ([None], []),  # a tombstone
        ([b"not json"], []),
        ([b'{"type": "review.responded"}'], []),  # JSON, but not an event
        ([b'{"type": "no.such.event", "id": "evt_1"}'], []),
        ([b"\xff\xfe"], []),  # not UTF-8
        ([None, "good", b"{", "good"], ["review.responded", "review.responded"]),
    ],
)
def test_raw_batches_parse_what_they_can_and_skip_the_rest(raw: list[object], types: list[str]) -> None:
    values = [_event_json() if value == "good" else value for value in raw]
    assert [event.type for event in parse_batch(values)] == types


def test_a_parsed_event_keeps_its_id_and_message() -> None:
    raw = _event_json()
    (event,) = parse_batch([raw])
    assert isinstance(event, ReviewResponded)
    assert event.data.message.id == "msg_1"
    assert event_to_json(event) == raw


async def test_remembered_url_verdicts_refuse_and_allow_as_the_first_time(receiver: Receiver) -> None:
    """The sender remembers each URL's pre-connect verdict; a refused URL must stay refused on
    every later attempt and an allowed one must keep reaching its receiver."""
    settings = DispatcherSettings(
        secret_key=SecretStr("k" * 40), dispatcher_allowed_networks=["127.0.0.1/32"]
    )
    sender = Sender(settings, "test")
    refused = [
        f"http://127.0.0.2:{receiver.port}/hook",
        f"http://127\u30020\u30020\u30022:{receiver.port}/hook",  # ideographic full stops
        "http://169.254.169.254/latest/meta-data",
    ]
    try:
        for _ in range(3):
            for url in refused:
                attempt = await sender.post(url, "POST", b"{}", {"content-type": "application/json"})
                assert (attempt.status_code, attempt.error_kind) == (None, "ssrf_refused"), url
            ok = await sender.post(receiver.url(), "POST", b"{}", {"content-type": "application/json"})
            assert (ok.status_code, ok.error_kind) == (200, None)
    finally:
        await sender.close()
    assert [r.path for r in receiver.requests] == ["/hook"] * 3


def test_the_dispatcher_process_freezes_start_up_objects_and_collects_less_often() -> None:
    code = (
        "import gc\n"
        "from sayso_dispatcher.__main__ import tune_gc\n"
        "default = gc.get_threshold()\n"
        "tune_gc(50_000)\n"
        "print(default[0], *gc.get_threshold(), gc.get_freeze_count() > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    default0, gen0, gen1, gen2, frozen = out.split()
    assert int(default0) != 50_000
    assert (int(gen0), frozen) == (50_000, "True")
    assert int(gen1) > 0
    assert int(gen2) > 0
