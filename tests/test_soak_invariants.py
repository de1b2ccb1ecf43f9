"""The chaos soak's verdicts (bench/soak/invariants.py) on hand-made observations: each rule
passes what it should and names what it must refuse, so a soak that reports "held" means it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bench.soak import invariants
from bench.soak.actors import Channel, Endpoint, response_for, review_payload
from bench.soak.evidence import Evidence, StoredDelivery, StoredEvent, StoredReview
from bench.soak.journal import Answer, Call, Journal, LiveLog, Poll, Receipt, Review, Window
from sayso_common.webhook_signature import new_secret, signature

KILL_API = Window("kill", "api-1", "api", start=10.0, end=14.0)
KILL_DISPATCHER = Window("kill", "dispatcher-2", "dispatcher", start=30.0, end=33.0)
MONGO = Window("mongo", "mongod", "mongodb", start=50.0, end=62.0)
BROKER = Window("broker", "tansu", "kafka", start=70.0, end=72.0)
WINDOWS = [KILL_API, KILL_DISPATCHER, MONGO, BROKER]


@pytest.mark.parametrize(
    ("call", "allowed"),
    [
        # MongoDB down: 503 with Retry-After, also a moment after it is back.
        (Call(55.0, 1.0, "POST /api/v1/messages", 503, "2"), True),
        (Call(63.5, 1.0, "POST /api/v1/reviews/{id}/respond", 503, "2"), True),
        (Call(55.0, 1.0, "GET /api/v1/reviews/{id}/wait", 503, "2"), True),
        (Call(55.0, 1.0, "POST /api/v1/messages", 503, None), False),  # no Retry-After
        (Call(55.0, 1.0, "POST /api/v1/messages", 500, None), False),  # a crash is no outage
        (Call(55.0, 0.1, "POST /api/v1/messages", 502, None), False),
        (Call(70.0, 1.0, "POST /api/v1/messages", 503, "2"), False),  # long after MongoDB is back
        # A replica killed: a 502 for a request in flight on that service, nothing else.
        (Call(9.0, 2.0, "POST /api/v1/messages", 502, None), True),
        (Call(10.5, 0.1, "POST /api/v1/messages", 502, None), True),  # sent just after the kill
        (Call(9.6, 0.9, "POST /api/v1/messages", None, None, "RemoteProtocolError"), True),  # dropped
        (Call(9.6, 30.0, "POST /api/v1/messages", None, None, "ReadTimeout"), False),  # a hang
        (Call(12.0, 0.1, "POST /api/v1/messages", 502, None), False),  # the edge had moved on
        (Call(9.0, 2.0, "GET /api/v1/reviews/{id}/wait", 502, None), False),  # realtime was not killed
        (Call(29.0, 2.0, "POST /api/v1/messages", 502, None), False),  # a dispatcher kill excuses no API call
        (Call(9.0, 2.0, "POST /api/v1/messages", 503, "2"), False),
        # The broker down: the API never depends on it.
        (Call(70.5, 0.1, "POST /api/v1/messages", 503, "2"), False),
        (Call(71.0, 0.1, "POST /api/v1/messages", None, None), False),
        # Outside every window nothing fails.
        (Call(20.0, 0.1, "POST /api/v1/messages", 502, None), False),
        (Call(20.0, 30.0, "GET /api/v1/reviews/{id}/wait", None, None, "ReadTimeout"), False),
    ],
)
def test_a_failed_call_is_excused_only_by_its_own_outage(call: Call, allowed: bool) -> None:
    assert (invariants.excuse(call, WINDOWS) is not None) is allowed


def test_server_errors_names_what_no_window_explains() -> None:
    journal = Journal(windows=WINDOWS)
    journal.calls += [
        Call(1.0, 0.1, "POST /api/v1/messages", 201),
        Call(55.0, 1.0, "POST /api/v1/messages", 503, "2"),
        Call(20.0, 0.1, "POST /api/v1/messages", 500),
    ]
    check = invariants.server_errors(journal)
    assert not check.ok
    assert check.problems == ("POST /api/v1/messages at 20.0s (took 0.1s): 500 outside any window",)
    journal.calls.pop()
    assert invariants.server_errors(journal).ok


@pytest.mark.parametrize(
    ("took", "timeout_ms", "ok"),
    [(2.05, 2000, True), (2.99, 2000, True), (3.01, 2000, False), (0.2, 25000, True), (40.0, 25000, False)],
)
def test_a_long_poll_may_be_held_its_timeout_plus_one_second(took: float, timeout_ms: int, ok: bool) -> None:
    journal = Journal(polls=[Poll("msg_1", 5.0, took, timeout_ms, 200, "pending")])
    assert invariants.long_polls(journal).ok is ok


def test_a_long_poll_on_a_killed_replica_may_wait_again_once_the_edge_noticed() -> None:
    kill = Window("kill", "realtime-2", "realtime", start=7.9, end=12.0)
    notice = kill.start + invariants.EDGE_NOTICE
    retried = Poll("msg_1", 5.9, notice + 2.9 - 5.9, 2000, 200, "completed")  # retried at `notice`
    assert invariants.long_polls(Journal(polls=[retried], windows=[kill])).ok
    assert not invariants.long_polls(Journal(polls=[retried], windows=[KILL_API])).ok
    held = Poll("msg_2", 5.9, notice + 3.1 - 5.9, 2000, 200, "completed")  # a second past that
    assert not invariants.long_polls(Journal(polls=[held], windows=[kill])).ok
    sent_after = Poll("msg_3", 8.2, notice + 2.9 - 8.2, 2000, 200, "pending")  # still routed there
    assert invariants.long_polls(Journal(polls=[sent_after], windows=[kill])).ok
    later = Poll("msg_4", notice + 0.5, 3.5, 2000, 200, "pending")  # the edge had moved on
    assert not invariants.long_polls(Journal(polls=[later], windows=[kill])).ok


def test_without_a_slack_only_unanswered_polls_fail() -> None:
    slow = Poll("msg_1", 5.0, 40.0, 2000, 200, "pending")
    lost = Poll("msg_2", 5.0, 17.0, 2000, None, None)
    assert invariants.long_polls(Journal(polls=[slow]), slack=None).ok
    assert invariants.long_polls(Journal(polls=[slow, lost]), slack=None).problems == (
        "msg_2: no answer to a poll sent at 5.0s",
    )


def _event(
    event_id: str, kind: str, channel: str, message: str | None = None, owner: str = "usr_a"
) -> StoredEvent:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return StoredEvent(event_id, kind, owner, channel, message, at, at)


def test_one_outcome_wants_a_closed_review_with_exactly_one_matching_event() -> None:
    journal = Journal(reviews={m: Review(m, 0, "agt_1", "approval", "answer", 120, 0.0) for m in "abcde"})
    evidence = Evidence(
        reviews={
            "a": StoredReview("agt_1", "approval", "completed", {"selectedOption": "approve"}, 0),
            "b": StoredReview("agt_1", "approval", "expired", None, 0),
            "c": StoredReview("agt_1", "approval", "pending", None, 0),
            "d": StoredReview("agt_1", "approval", "completed", {}, 1),
        },
        events=[
            _event("evt_1", "review.responded", "agt_1", "a"),
            _event("evt_2", "review.responded", "agt_1", "b"),  # expired, yet a responded event
            _event("evt_3", "review.responded", "agt_1", "d"),
            _event("evt_4", "review.expired", "agt_1", "d"),  # two outcomes
        ],
    )
    problems = invariants.one_outcome(journal, evidence).problems
    assert [p.split(":")[0] for p in problems] == ["b", "c", "d", "d", "e"]


def test_first_answer_wins_checks_the_stored_answer_and_what_the_agent_learned() -> None:
    won = {"selectedOption": "approve"}
    lost = {"selectedOption": "reject"}
    journal = Journal(
        reviews={
            "tabs": Review("tabs", 0, "agt_1", "approval", "tabs", 120, 0.0, "completed", won),
            "twice": Review("twice", 0, "agt_1", "approval", "tabs", 120, 0.0, "completed", won),
            "ignored": Review("ignored", 0, "agt_1", "approval", "ignore", 5, 0.0, "completed", won),
            "misled": Review("misled", 0, "agt_1", "approval", "answer", 120, 0.0, "expired", None),
        },
        answers=[
            Answer("tabs", 0, 1.0, 200, won),
            Answer("tabs", 1, 1.0, 409, lost),
            Answer("twice", 0, 1.0, 200, won),
            Answer("twice", 1, 1.0, 200, lost),
            Answer("misled", 0, 1.0, 200, won),
        ],
    )
    evidence = Evidence(
        reviews={
            name: StoredReview("agt_1", "approval", "completed", won, 0)
            for name in ("tabs", "twice", "ignored", "misled")
        }
    )
    problems = invariants.first_answer_wins(journal, evidence).problems
    assert sorted(p.split(":")[0] for p in problems) == ["ignored", "ignored", "misled", "twice"]


def _receipt(
    channel: Channel, event_id: str, body: Mapping[str, object], answered: int | None, secret: str = ""
) -> Receipt:
    raw = json.dumps(body).encode()
    sig = signature(secret or channel.secret, event_id, 1_700_000_000, raw)
    return Receipt(1.0, channel.key, event_id, "1700000000", sig, raw, answered)


def test_webhooks_want_one_stable_signed_id_and_an_acknowledgement_unless_gone() -> None:
    ok = Channel("agt_ok", "o0c0", 0, "ok", new_secret())
    gone = Channel("agt_gone", "o0c1", 0, "gone", new_secret())
    body = {"event": "review:responded", "message_id": "m1", "response": {"text": "hi"}}
    reviews = {
        m: StoredReview(ch.id, "text-input", "completed", {"text": "hi"}, 0)
        for m, ch in (("m1", ok), ("m2", ok), ("m3", gone), ("m4", gone))
    }
    events = [_event(f"evt_{m}", "review.responded", r.channel, m) for m, r in reviews.items()]
    evidence = Evidence(
        reviews=reviews,
        events=events,
        deliveries=[StoredDelivery("evt_m1", "m1", ok.id, "delivered", 2)],
        disabled={gone.id},
    )
    journal = Journal(
        receipts=[
            _receipt(ok, "evt_m1", body, 500),
            _receipt(ok, "evt_m1", body, 200),
            _receipt(gone, "evt_m3", {**body, "message_id": "m3"}, 410),
            # m4: never sent, its channel's URL already disabled by that 410
        ]
    )
    channels = {c.key: c for c in (ok, gone)}
    check = invariants.webhooks(journal, evidence, channels)
    assert check.problems == ("m2 (review.responded): never reached its ok receiver",)

    # A forged signature, another webhook-id on a retry, or no acknowledgement are each refused.
    journal.receipts.append(_receipt(ok, "evt_m2", {**body, "message_id": "m2"}, 200, secret=new_secret()))
    journal.receipts.append(_receipt(ok, "evt_other", {**body, "message_id": "m2"}, 500))
    problems = invariants.webhooks(journal, evidence, channels).problems
    assert any("bad signature" in p for p in problems)
    assert any(p.startswith("m2: webhook-id") for p in problems)
    assert any(p.startswith("m2: acknowledged, yet delivery state") for p in problems)


def test_live_clients_must_see_every_event_of_their_channels_and_nothing_else() -> None:
    events = [
        _event("evt_0", "message.created", "agt_1"),  # before the baseline
        _event("evt_1", "message.created", "agt_1"),
        _event("evt_2", "review.responded", "agt_2"),
        _event("evt_3", "agent.status", "agt_1"),
        _event("evt_9", "message.created", "agt_1", owner="usr_b"),  # another owner's
    ]
    evidence = Evidence(events=events)
    everything = LiveLog("all", "socket", 0, None, connects=[0.0, 5.0])
    everything.received = [(e, "x", 1.0) for e in ("evt_0", "evt_1", "evt_2", "evt_2", "evt_3")]
    one = LiveLog("one", "sse", 0, ["agt_1"], connects=[0.0])
    one.received = [(e, "x", 1.0) for e in ("evt_1", "evt_3")]
    journal = Journal(live=[everything, one])
    check = invariants.live_clients(journal, evidence, {"evt_0"}, ["usr_a"])
    assert check.ok, check.problems
    assert "1 reconnections" in check.summary
    assert "1 repeats dropped" in check.summary

    one.received = [("evt_1", "x", 1.0), ("evt_2", "x", 1.0)]  # missed evt_3, got another channel's
    problems = invariants.live_clients(journal, evidence, {"evt_0"}, ["usr_a"]).problems
    assert [p.split(":")[1].split()[0] for p in problems] == ["missed", "1"]
    assert problems[0].endswith("no resume anchor near it")


def test_storage_skew_is_measured_on_live_events_of_the_first_connection() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    stored = {f"evt_{n}": at + timedelta(milliseconds=ms) for n, ms in enumerate([0, 10, 4, 30, 1])}
    log = LiveLog("s", "socket", 0, None, connects=[0.0, 5.0])
    # evt_2 (stored at 4 ms) after evt_1 (10 ms): 6 ms behind; after the reconnect at 5.0, a
    # replayed evt_4 (1 ms) after evt_3 (30 ms) does not count.
    log.received = [("evt_0", "x", 1.0), ("evt_1", "x", 1.1), ("evt_2", "x", 1.2), ("evt_3", "x", 6.0)]
    log.received.append(("evt_4", "x", 6.1))
    assert invariants.storage_skew(log, stored) == 0.006


def test_a_missed_event_is_placed_against_the_resume_nearest_it() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    events = [
        StoredEvent("evt_1", "message.created", "usr_a", "agt_1", None, at, at),
        StoredEvent("evt_2", "message.created", "usr_a", "agt_1", None, at, at + timedelta(milliseconds=3)),
    ]
    log = LiveLog("s", "socket", 0, None, connects=[0.0, 5.0])
    log.received = [("evt_2", "x", 1.0)]  # got evt_2, lost its connection before evt_1
    problems = invariants.live_clients(
        Journal(live=[log]), Evidence(events=events), set(), ["usr_a"]
    ).problems
    assert problems == (
        "s: missed 1 of 2 events (first ['evt_1']) over 2 connection(s); nearest resume sent evt_2: "
        "the missed id is smaller, stored -3 ms from it",
    )


def test_chaos_counts_only_restarts_the_soak_caused() -> None:
    journal = Journal(windows=[KILL_API, MONGO, BROKER], kills=["api-1"], restarts=["api-1"])
    assert invariants.chaos(journal, stack_alive=True).ok
    journal.restarts.append("realtime-2")
    assert invariants.chaos(journal, stack_alive=True).problems == (
        "realtime-2 died 1 time(s) without being killed",
    )
    assert not invariants.chaos(Journal(windows=[KILL_API]), stack_alive=True).ok  # no outages injected


@pytest.mark.parametrize("kind", ["approval", "selection", "form", "text-input", "freeform"])
def test_every_tab_answers_differently(kind: str) -> None:
    payload = review_payload(kind, 1)
    answers = [response_for(kind, payload, tab) for tab in range(3)]
    assert len({json.dumps(a, sort_keys=True) for a in answers}) == 3


def _endpoint_receipt(
    endpoint: Endpoint, event_id: str, message_id: str, answered: int | None, at: int = 1_700_000_000
) -> Receipt:
    raw = json.dumps({"event": "review:responded", "message_id": message_id}).encode()
    sig = signature(endpoint.secret, event_id, at, raw)
    return Receipt(1.0, endpoint.key, event_id, str(at), sig, raw, answered)


def test_endpoints_want_each_matching_outcome_and_nothing_their_filter_leaves_out() -> None:
    # o0's account-wide endpoint takes approvals (responded or expired) of every channel of o0; a
    # channel endpoint takes that channel's answered selections only.
    everything = Endpoint(
        "ep_all",
        "o0-ep-all",
        0,
        None,
        ("review:responded", "review:expired"),
        frozenset({"approval"}),
        2,
        new_secret(),
    )
    one = Endpoint(
        "ep_c0", "o0-ep-c0", 0, "agt_a", ("review:responded",), frozenset({"selection"}), None, new_secret()
    )
    owners = {"agt_a": 0, "agt_b": 0, "agt_other": 1}
    reviews = {
        "approved": StoredReview("agt_a", "approval", "completed", {}, 0),  # -> ep_all
        "elsewhere": StoredReview("agt_b", "approval", "expired", None, 0),  # -> ep_all
        "picked": StoredReview("agt_a", "selection", "completed", {}, 0),  # -> ep_c0
        "lapsed": StoredReview("agt_a", "selection", "expired", None, 0),  # neither: not responded
        "other": StoredReview("agt_other", "approval", "completed", {}, 0),  # another owner's
    }
    kinds = {"completed": "review.responded", "expired": "review.expired"}
    evidence = Evidence(
        reviews=reviews,
        events=[_event(f"evt_{m}", kinds[r.status], r.channel, m) for m, r in reviews.items()],
        deliveries=[
            StoredDelivery("evt_approved", "approved", "agt_a", "delivered", 1, "ep_all"),
            StoredDelivery("evt_elsewhere", "elsewhere", "agt_b", "delivered", 1, "ep_all"),
            StoredDelivery("evt_picked", "picked", "agt_a", "delivered", 2, "ep_c0"),
        ],
    )
    journal = Journal(
        endpoint_receipts=[
            _endpoint_receipt(everything, "evt_approved", "approved", 200),
            _endpoint_receipt(everything, "evt_elsewhere", "elsewhere", 200, at=1_700_000_001),
            _endpoint_receipt(one, "evt_picked", "picked", 500),
            _endpoint_receipt(one, "evt_picked", "picked", 200),  # the retry: the same webhook-id
        ]
    )
    check = invariants.endpoints(journal, evidence, [everything, one], owners)
    assert check.ok, check.problems
    assert "3 outcomes matched their filters: 3 acknowledged and delivered (1 after a retry" in check.summary

    def problems(*extra: Receipt, drop: int | None = None) -> tuple[str, ...]:
        receipts = [r for i, r in enumerate(journal.endpoint_receipts) if i != drop]
        return invariants.endpoints(
            Journal(endpoint_receipts=[*receipts, *extra]), evidence, [everything, one], owners
        ).problems

    # A filtered-out event (a selection at the approvals' endpoint), one of the wrong event type
    # (an expiry at a responded-only endpoint), another owner's: each refused.
    assert problems(_endpoint_receipt(everything, "evt_picked", "picked", 200)) == (
        "o0-ep-all got picked (selection, review.responded), which its filter or event types leave out",
    )
    assert problems(_endpoint_receipt(one, "evt_lapsed", "lapsed", 200))[0].startswith("o0-ep-c0 got lapsed")
    assert problems(_endpoint_receipt(everything, "evt_other", "other", 200))[0].startswith(
        "o0-ep-all got other"
    )
    # A matching outcome that never arrived; a retry under another webhook-id; a forged signature.
    assert problems(drop=0) == ("o0-ep-all: approved (approval, review.responded) never arrived",)
    assert problems(_endpoint_receipt(one, "evt_x", "picked", 500)) == (
        "o0-ep-c0 picked: webhook-id ['evt_picked', 'evt_x'], event evt_picked",
    )
    forged = replace(_endpoint_receipt(one, "evt_picked", "picked", 200), signature="v1,AAAA")
    assert any("bad signature" in p for p in problems(forged))
    # Acknowledged, yet the store does not say delivered.
    evidence.deliveries[2] = StoredDelivery("evt_picked", "picked", "agt_a", "failed", 9, "ep_c0")
    assert problems() == ("o0-ep-c0 picked: acknowledged, yet delivery state ['failed']",)


@pytest.mark.parametrize(
    ("stamps", "limit", "over"),
    [
        ([s for s in range(20) for _ in range(2)], 2, []),  # 2 a second for 20 s
        ([0, 0, 0, 0, 0, 0, 1, 2], 2, []),  # windows signed late pile into one second: allowed
        ([s for s in range(20) for _ in range(2)] + [5, 9, 13, 17], 2, []),  # 44 in 20 s: within 10 %
        (
            [s for s in range(20) for _ in range(2)] + [5, 9, 13, 17, 19],
            2,
            ["45 requests signed in the 20 s from second 0 (at most 44)"],
        ),
        (
            [s for s in range(30) for _ in range(3)],  # 3 a second, held for long: over
            2,
            ["60 requests signed in the 20 s from second 0 (at most 44)"],
        ),
        ([0, 0, 0, 0, 0, 0, 0, 30, 60], 2, ["7 requests signed in second 0 (limit 2/s)"]),  # a burst
        ([], 5, []),
    ],
)
def test_a_rate_limit_is_held_within_its_tolerance(stamps: list[int], limit: int, over: list[str]) -> None:
    assert invariants.rate_excess(stamps, limit) == over


def test_the_channel_webhook_check_leaves_endpoint_deliveries_to_the_endpoint_check() -> None:
    ok = Channel("agt_ok", "o0c0", 0, "ok", new_secret())
    evidence = Evidence(
        reviews={"m1": StoredReview(ok.id, "approval", "completed", {}, 0)},
        events=[_event("evt_m1", "review.responded", ok.id, "m1")],
        deliveries=[
            StoredDelivery("evt_m1", "m1", ok.id, "delivered", 1),
            StoredDelivery("evt_m1", "m1", ok.id, "pending", 3, "ep_slow"),  # an endpoint's, retrying
        ],
    )
    body = {"event": "review:responded", "message_id": "m1", "response": {}}
    journal = Journal(receipts=[_receipt(ok, "evt_m1", body, 200)])
    assert invariants.webhooks(journal, evidence, {ok.key: ok}).ok
