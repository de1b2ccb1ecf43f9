"""The soak's verdicts: plain functions over what the clients observed (the journal) and what the
stores hold once the run has drained (the evidence). Each returns a :class:`Check` whose problems
name the first offending reviews, clients or requests."""

from __future__ import annotations

import contextlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bench.soak.actors import Channel, Endpoint
from bench.soak.evidence import Evidence, StoredEvent
from bench.soak.journal import Call, Journal, LiveLog, Poll, Receipt, Window
from sayso_common.webhook_signature import matches

# Grace around the declared windows. A fault is recorded just before it is injected, and a client
# can see its effect a moment before our timestamp; after a window ends, services find a MongoDB
# that is back at their next server selection (pymongo re-checks every 0.5 s while a request
# waits, and gives up after the 1 s selection timeout), so a request already waiting can still
# fail for up to about that long.
GRACE_BEFORE = 0.5
GRACE_AFTER = 3.0
# A request sent just after a kill can still go out on the edge's pooled connection to the dead
# replica before the edge notices the connection is gone.
KILL_GRACE = 1.0
# How long past its own timeout a long-poll may be held.
POLL_SLACK = 1.0
# How long the edge may keep sending requests to a killed replica: deploy/Caddyfile checks
# /healthz every 2 s, and retries a failed attempt every 250 ms.
EDGE_NOTICE = 2.25
SHOWN = 8  # problems listed per check

OUTCOME_EVENT = {"completed": "review.responded", "expired": "review.expired"}
WIRE_NAME = {"completed": "review:responded", "expired": "review:expired"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    summary: str
    problems: tuple[str, ...] = ()


def _check(name: str, summary: str, problems: list[str]) -> Check:
    shown = problems[:SHOWN] + ([f"… and {len(problems) - SHOWN} more"] if len(problems) > SHOWN else [])
    return Check(name, not problems, summary, tuple(shown))


def one_outcome(journal: Journal, evidence: Evidence) -> Check:
    """Every review ends completed or expired, with exactly one ``review.*`` event, nothing left
    in its outbox."""
    by_message = evidence.review_events()
    problems: list[str] = []
    for review_id in sorted(set(journal.reviews) | set(evidence.reviews)):
        stored = evidence.reviews.get(review_id)
        if stored is None:
            problems.append(f"{review_id}: answered 201 but not stored")
            continue
        events = by_message.get(review_id, [])
        if stored.status not in OUTCOME_EVENT:
            problems.append(f"{review_id}: still {stored.status}")
        elif len(events) != 1:
            problems.append(f"{review_id}: {len(events)} review.* events {[e.id for e in events]}")
        elif events[0].type != OUTCOME_EVENT[stored.status]:
            problems.append(f"{review_id}: {stored.status} but its event is {events[0].type}")
        if stored.outbox:
            problems.append(f"{review_id}: {stored.outbox} event(s) left in its outbox")
    statuses = Counter(r.status for r in evidence.reviews.values())
    types = Counter(r.type for r in evidence.reviews.values())
    summary = (
        f"{len(evidence.reviews)} reviews ({', '.join(f'{t} {n}' for t, n in sorted(types.items()))}): "
        f"{statuses['completed']} completed, {statuses['expired']} expired, "
        f"{sum(len(v) for v in by_message.values())} review.* events"
    )
    return _check("one outcome, one event", summary, problems)


def first_answer_wins(journal: Journal, evidence: Evidence) -> Check:
    """At most one answer is accepted per review and it is the stored one; a review nobody
    answered expires; the agent's long-poll learned the stored outcome."""
    answers: dict[str, list[Any]] = {}
    for answer in journal.answers:
        answers.setdefault(answer.review_id, []).append(answer)
    problems: list[str] = []
    tab_winners: Counter[int] = Counter()
    races: Counter[str] = Counter()
    for review_id, review in journal.reviews.items():
        stored = evidence.reviews.get(review_id)
        if stored is None:
            continue  # one_outcome names it
        mine = answers.get(review_id, [])
        won = [a for a in mine if a.status == 200]
        if len(won) > 1:
            problems.append(f"{review_id}: {len(won)} answers accepted")
        if won and (stored.status != "completed" or stored.response != won[0].response):
            problems.append(
                f"{review_id}: accepted {won[0].response} but stored {stored.status} {stored.response}"
            )
        if not won and stored.status == "completed":
            unsure = [a.response for a in mine if a.status is None or a.status >= 500]
            if stored.response not in unsure:
                problems.append(
                    f"{review_id}: completed with {stored.response}, which no unanswered call sent"
                )
        if review.plan == "ignore" and stored.status != "expired":
            problems.append(f"{review_id}: nobody answered, yet {stored.status}")
        if review.plan == "tabs":
            tab_winners[len(won)] += 1
        if review.plan == "race":
            races[stored.status] += 1
        if review.seen_status != stored.status:
            problems.append(
                f"{review_id}: the agent's long-poll said {review.seen_status}, stored {stored.status}"
            )
        elif stored.status == "completed" and review.seen_response != stored.response:
            problems.append(
                f"{review_id}: the agent's long-poll carried {review.seen_response}, stored {stored.response}"
            )
    statuses = Counter(a.status for a in journal.answers)
    summary = (
        f"{statuses[200]} answers accepted, {statuses[409]} refused with 409; "
        f"{sum(tab_winners.values())} reviews answered from {3} tabs at once "
        f"({tab_winners[1]} with one winner); deadline races: {races['completed']} in time, "
        f"{races['expired']} too late"
    )
    return _check("first answer wins", summary, problems)


def _verified(receipt: Any, secret: str) -> bool:
    try:
        timestamp = int(receipt.timestamp)
    except ValueError:
        return False
    return matches([secret], receipt.webhook_id, timestamp, receipt.body, receipt.signature)


def webhooks(journal: Journal, evidence: Evidence, channels: Mapping[str, Channel]) -> Check:
    """Each outcome reached its channel's receiver at least once, always with the outcome's
    event id as ``webhook-id`` and a valid signature, and was acknowledged with a 2xx and marked
    delivered — unless the receiver had said 410 (the default URL is then disabled)."""
    problems: list[str] = []
    got: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    for receipt in journal.receipts:
        channel = channels.get(receipt.channel)
        if channel is None:
            problems.append(f"a webhook for unknown path {receipt.channel!r}")
            continue
        if not _verified(receipt, channel.secret):
            problems.append(f"{receipt.webhook_id}: bad signature at {receipt.at:.1f}s")
        body = json.loads(receipt.body)
        got.setdefault(str(body.get("message_id")), []).append((receipt, body))
    deliveries: dict[str, list[str]] = {}
    for delivery in evidence.deliveries:
        if delivery.endpoint_id is None:  # explicit endpoints: :func:`endpoints`
            deliveries.setdefault(delivery.event_id, []).append(delivery.state)
    by_channel = {c.id: c for c in channels.values()}
    outcomes = gone = acked = duplicates = 0
    for review_id, events in evidence.review_events().items():
        stored = evidence.reviews.get(review_id)
        if stored is None or len(events) != 1:
            continue  # one_outcome names it
        outcomes += 1
        event = events[0]
        mine = got.pop(review_id, [])
        if not mine:
            # The receiver said 410 before this outcome's event was handled: no delivery at all.
            if stored.channel in evidence.disabled and event.id not in deliveries:
                gone += 1
            else:
                behaviour = by_channel[stored.channel].behaviour if stored.channel in by_channel else "?"
                problems.append(f"{review_id} ({event.type}): never reached its {behaviour} receiver")
            continue
        ids = {r.webhook_id for r, _ in mine}
        if ids != {event.id}:
            problems.append(f"{review_id}: webhook-id {sorted(ids)}, event {event.id}")
        if {b.get("event") for _, b in mine} != {WIRE_NAME[stored.status]}:
            problems.append(
                f"{review_id}: {sorted({str(b.get('event')) for _, b in mine})} for a {stored.status} review"
            )
        if stored.status == "completed" and any(b.get("response") != stored.response for _, b in mine):
            problems.append(f"{review_id}: a webhook carried another response than the stored one")
        if any(r.answered == 410 for r, _ in mine):
            gone += 1
            continue
        ok = [r for r, _ in mine if r.answered is not None and 200 <= r.answered < 300]
        if not ok:
            problems.append(f"{review_id}: reached its receiver {len(mine)}x, never acknowledged")
        elif set(deliveries.get(event.id, [])) != {"delivered"}:
            problems.append(f"{review_id}: acknowledged, yet delivery state {deliveries.get(event.id)}")
        acked += bool(ok)
        duplicates += max(0, len(ok) - 1)
    problems += [f"webhooks for {m}, which is no stored outcome" for m in sorted(got)]
    answers = Counter(r.answered for r in journal.receipts)
    summary = (
        f"{outcomes} outcomes: {acked} acknowledged 2xx ({duplicates} acknowledged twice, same "
        f"webhook-id), {gone} after a 410; {len(journal.receipts)} requests "
        f"({', '.join(f'{_label(k)} {v}' for k, v in sorted(answers.items(), key=lambda kv: _label(kv[0])))})"
    )
    return _check("webhooks", summary, problems)


# How far a rate-limited endpoint may go past its limit, judged on the seconds its requests were
# signed in (``webhook-timestamp``: the dispatchers' clocks). The limiter admits at most the limit
# in each whole second, but a request is signed a moment after it was admitted, and on a loaded
# host (event loops running a second late) that moment can fall one or two seconds later: one
# second of signatures may hold several windows' worth. Over RATE_SPAN seconds that lag adds at
# most a couple of windows, which RATE_TOLERANCE covers; one second may hold RATE_BURST windows.
RATE_TOLERANCE = 0.10
RATE_SPAN = 20
RATE_BURST = 3


def rate_excess(stamps: Iterable[int], limit: int) -> list[str]:
    """Where requests signed at ``stamps`` (epoch seconds) went past ``limit`` a second beyond the
    tolerance: one second holding more than RATE_BURST windows' worth, or RATE_SPAN consecutive
    seconds more than the limit's worth plus RATE_TOLERANCE (the first such span only)."""
    per_second = Counter(stamps)
    problems = [
        f"{n} requests signed in second {s} (limit {limit}/s)"
        for s, n in sorted(per_second.items())
        if n > RATE_BURST * limit
    ]
    allowed = math.floor(RATE_SPAN * limit * (1 + RATE_TOLERANCE) + 1e-9)
    for start in sorted(per_second):
        n = sum(per_second.get(start + k, 0) for k in range(RATE_SPAN))
        if n > allowed:
            return [
                *problems,
                f"{n} requests signed in the {RATE_SPAN} s from second {start} (at most {allowed})",
            ]
    return problems


def _matches(endpoint: Endpoint, owner: int | None, channel: str, review_type: str, wire: str) -> bool:
    mine = endpoint.owner == owner if endpoint.channel is None else endpoint.channel == channel
    return mine and wire in endpoint.event_types and review_type in endpoint.review_types


def endpoints(
    journal: Journal, evidence: Evidence, endpoints: Sequence[Endpoint], owners: Mapping[str, int]
) -> Check:
    """Each explicit endpoint got every outcome its event types and filter match at least once,
    always with the outcome's event id as ``webhook-id`` (the same across retries) and signed
    with the endpoint's own secret, and acknowledged and marked delivered; an outcome its types
    or filter leave out never reached it; a rate-limited endpoint never started more requests
    than its limit allows (:func:`rate_excess`). ``owners``: channel id -> owner index."""
    problems: list[str] = []
    by_key = {e.key: e for e in endpoints}
    got: dict[tuple[str, str], list[Receipt]] = {}
    stamps: dict[str, list[int]] = {}
    for receipt in journal.endpoint_receipts:
        endpoint = by_key.get(receipt.channel)
        if endpoint is None:
            problems.append(f"a request for unknown endpoint path {receipt.channel!r}")
            continue
        if not _verified(receipt, endpoint.secret):
            problems.append(f"{endpoint.key} {receipt.webhook_id}: bad signature at {receipt.at:.1f}s")
        with contextlib.suppress(ValueError):
            stamps.setdefault(endpoint.key, []).append(int(receipt.timestamp))
        message_id = str(json.loads(receipt.body).get("message_id"))
        got.setdefault((endpoint.key, message_id), []).append(receipt)
    states: dict[tuple[str, str], set[str]] = {}
    for delivery in evidence.deliveries:
        if delivery.endpoint_id is not None:
            states.setdefault((delivery.endpoint_id, delivery.event_id), set()).add(delivery.state)
    expected = acked = retried = 0
    for review_id, events in sorted(evidence.review_events().items()):
        stored = evidence.reviews.get(review_id)
        if stored is None or len(events) != 1 or stored.status not in WIRE_NAME:
            continue  # one_outcome names it
        event = events[0]
        for endpoint in endpoints:
            mine = got.pop((endpoint.key, review_id), [])
            if not _matches(
                endpoint, owners.get(stored.channel), stored.channel, stored.type, WIRE_NAME[stored.status]
            ):
                if mine:
                    problems.append(
                        f"{endpoint.key} got {review_id} ({stored.type}, {event.type}), which its filter or "
                        "event types leave out"
                    )
                continue
            expected += 1
            if not mine:
                problems.append(f"{endpoint.key}: {review_id} ({stored.type}, {event.type}) never arrived")
                continue
            if (ids := {r.webhook_id for r in mine}) != {event.id}:
                problems.append(f"{endpoint.key} {review_id}: webhook-id {sorted(ids)}, event {event.id}")
            retried += len(mine) > 1
            if not any(r.answered is not None and 200 <= r.answered < 300 for r in mine):
                problems.append(f"{endpoint.key} {review_id}: reached it {len(mine)}x, never acknowledged")
            elif states.get((endpoint.id, event.id)) != {"delivered"}:
                problems.append(
                    f"{endpoint.key} {review_id}: acknowledged, yet delivery state "
                    f"{sorted(states.get((endpoint.id, event.id), set()))}"
                )
            else:
                acked += 1
    problems += [f"{key} got {m}, which is no stored outcome" for key, m in sorted(got)]
    busiest: list[str] = []
    for endpoint in endpoints:
        if endpoint.rate_limit:
            signed = stamps.get(endpoint.key, [])
            problems += [f"{endpoint.key}: {p}" for p in rate_excess(signed, endpoint.rate_limit)]
            peak = max(Counter(signed).values(), default=0)
            busiest.append(f"{endpoint.key} at most {peak}/s (limit {endpoint.rate_limit}/s)")
    summary = (
        f"{len(endpoints)} endpoints, {expected} outcomes matched their filters: {acked} acknowledged "
        f"and delivered ({retried} after a retry, same webhook-id); {len(journal.endpoint_receipts)} "
        f"requests; {'; '.join(busiest) or 'no rate limit'}"
    )
    return _check("endpoints", summary, problems)


def _label(answered: int | None) -> str:
    return "stalled" if answered is None else str(answered)


def poll_allowance(poll: Poll, windows: Iterable[Window], slack: float = POLL_SLACK) -> float:
    """How long ``poll`` may be held: its timeout plus ``slack``. A poll on a realtime replica
    that is killed is retried by the edge (a GET that got no answer), and one sent just after the
    kill still goes there: the edge keeps choosing that replica until a health check finds it
    gone (``EDGE_NOTICE``), then another replica takes the poll and waits the whole timeout again.
    Such a poll counts from then."""
    retried = [
        w.start + EDGE_NOTICE - poll.at
        for w in windows
        if w.kind == "kill"
        and w.service == "realtime"
        and poll.at <= w.start + EDGE_NOTICE
        and poll.at + poll.took >= w.start
    ]
    return max(retried, default=0.0) + poll.timeout_ms / 1000 + slack


def long_polls(journal: Journal, slack: float | None = POLL_SLACK) -> Check:
    """No long-poll was held past its allowance (:func:`poll_allowance`). With ``slack`` None the
    bound is not judged, only that every poll was answered: a time limit is a speed, which a test
    on a shared host must not assert."""
    unanswered = [
        f"{p.review_id}: no answer to a poll sent at {p.at:.1f}s" for p in journal.polls if p.status is None
    ]
    outcomes = Counter(p.outcome or str(p.status) for p in journal.polls)
    summary = (
        f"{len(journal.polls)} long-polls ({outcomes['pending']} ran out, "
        f"{outcomes['completed'] + outcomes['expired']} woken by the outcome, "
        f"{sum(v for k, v in outcomes.items() if k not in ('pending', 'completed', 'expired'))} failed)"
    )
    if slack is None:
        return _check("long-polls answered", summary + "; the time bound is `make soak`'s", unanswered)
    problems = [
        f"{p.review_id}: held {p.took:.2f}s from {p.at:.1f}s with timeout {p.timeout_ms} ms (status {p.status}; "
        f"this process's own loop ran up to {journal.lag_during(p.at, p.at + p.took):.2f}s late meanwhile)"
        for p in journal.polls
        if p.took > poll_allowance(p, journal.windows, slack)
    ]
    plain = [
        p for p in journal.polls if poll_allowance(p, journal.windows, slack) == p.timeout_ms / 1000 + slack
    ]
    beyond = max((p.took - p.timeout_ms / 1000 for p in plain), default=0.0)
    summary += (
        f"; longest hold past its timeout {beyond:+.2f}s (allowed {slack:+g}s); "
        f"{len(journal.polls) - len(plain)} in flight as a realtime replica was killed (the edge may "
        "retry those: counted from when it noticed)"
    )
    return _check("long-poll bound", summary, problems)


def live_clients(journal: Journal, evidence: Evidence, baseline: set[str], owner_ids: list[str]) -> Check:
    """Every Socket.IO and SSE client saw every event of its channels since it first connected,
    once after dropping repeats, and nothing else."""
    problems: list[str] = []
    resumes = duplicates = seen_total = 0
    stored = {e.id: e.stored for e in evidence.events}
    for log in journal.live:
        expected = {e.id for e in _events_for(evidence.events, owner_ids[log.owner], log.channels, baseline)}
        got = [event_id for event_id, _, _ in log.received]
        seen = set(got)
        resumes += max(0, len(log.connects) - 1)
        duplicates += len(got) - len(seen)
        seen_total += len(seen & expected)
        if missing := expected - seen:
            problems.append(
                f"{log.name}: missed {len(missing)} of {len(expected)} events (first {sorted(missing)[:3]}) "
                f"over {len(log.connects)} connection(s); {_resumed_around(log, min(missing), stored)}"
            )
        # Events stored before the baseline may still arrive live a moment after it: not extra.
        if extra := seen - expected - baseline:
            problems.append(
                f"{log.name}: {len(extra)} events not of its channels (first {sorted(extra)[:3]})"
            )
        problems += [f"{log.name}: {e}" for e in log.errors]
    kinds = Counter(log.kind for log in journal.live)
    behind = max((storage_skew(log, stored) for log in journal.live), default=0.0)
    summary = (
        f"{kinds['socket']} Socket.IO + {kinds['sse']} SSE clients, {resumes} reconnections with "
        f"resume; {seen_total} events expected and seen, {duplicates} repeats dropped; live events "
        f"arrived up to {behind * 1000:.0f} ms behind one stored later"
    )
    return _check("live clients", summary, problems)


def storage_skew(log: LiveLog, stored: Mapping[str, datetime]) -> float:
    """How far (seconds) an event reached this client after one the relay stored later, over its
    first connection (live events only: no resume yet). A resume must replay at least this much
    from before the last event a client saw (``STORED_OVERLAP`` in the realtime history)."""
    end = log.connects[1] if len(log.connects) > 1 else math.inf
    latest: datetime | None = None
    worst = 0.0
    for event_id, _, at in log.received:
        if at >= end:
            break
        if (stamp := stored.get(event_id)) is None:
            continue
        if latest is not None and stamp < latest:
            worst = max(worst, (latest - stamp).total_seconds())
        latest = stamp if latest is None else max(latest, stamp)
    return worst


def _resumed_around(log: LiveLog, missed: str, stored: Mapping[str, datetime]) -> str:
    """How the first missed event stands to the resume nearest it: the last event id the client
    sent on reconnecting, and the two events' ids and storage order."""
    anchors = []
    for connected in log.connects[1:]:
        before = [event_id for event_id, _, at in log.received if at < connected]
        if before:
            anchors.append(before[-1])
    if missed not in stored or not (anchors := [a for a in anchors if a in stored]):
        return "no resume anchor near it"
    anchor = min(anchors, key=lambda a: abs((stored[a] - stored[missed]).total_seconds()))
    gap_ms = (stored[missed] - stored[anchor]).total_seconds() * 1000
    order = "smaller" if missed < anchor else "greater"
    return f"nearest resume sent {anchor}: the missed id is {order}, stored {gap_ms:+.0f} ms from it"


def _events_for(
    events: Iterable[StoredEvent], owner_id: str, channels: list[str] | None, baseline: set[str]
) -> Iterable[StoredEvent]:
    for event in events:
        mine = event.owner_id == owner_id and event.id not in baseline
        if mine and (channels is None or event.channel_id in channels):
            yield event


# How a request in flight on a killed replica can end: the edge answers 502, or (when the replica
# dies while the edge relays its answer) drops the connection. A timeout is never excused: a hang.
DROPPED = ("RemoteProtocolError", "ReadError")


def excuse(call: Call, windows: Iterable[Window]) -> str | None:
    """Why a failed call is allowed, or None: a 503 with Retry-After while MongoDB was down, or a
    502 (or a dropped connection) for a request in flight on a replica of its service when that
    replica was killed."""
    for w in windows:
        end = math.inf if w.end is None else w.end
        overlaps = call.at <= end + GRACE_AFTER and call.at + call.took >= w.start - GRACE_BEFORE
        if w.kind == "mongo" and overlaps and call.status == 503 and call.retry_after:
            return "503 + Retry-After, MongoDB down"
        in_flight = call.at <= w.start + KILL_GRACE and call.at + call.took >= w.start - GRACE_BEFORE
        lost = call.status == 502 or (call.status is None and call.error in DROPPED)
        if w.kind == "kill" and w.service == call.service and lost and in_flight:
            return f"{call.status or 'dropped'}, in flight on a killed {w.service} replica"
    return None


def server_errors(journal: Journal) -> Check:
    """No 5xx (nor a request left without an answer) outside the declared windows; inside them
    only the answers :func:`excuse` allows; every 503 carries Retry-After."""
    problems: list[str] = []
    inside: Counter[str] = Counter()
    for call in journal.calls:
        if not call.failed:
            continue
        if call.status == 503 and not call.retry_after:
            problems.append(f"{call.route} at {call.at:.1f}s: 503 without Retry-After")
        reason = excuse(call, journal.windows)
        if reason is None:
            what = call.status or call.error
            problems.append(
                f"{call.route} at {call.at:.1f}s (took {call.took:.1f}s): {what} outside any window"
            )
        else:
            inside[reason] += 1
    explained = "; ".join(f"{n} x {reason}" for reason, n in inside.most_common()) or "none"
    outside = sum(1 for c in journal.calls if c.failed and excuse(c, journal.windows) is None)
    summary = f"{len(journal.calls)} requests; {outside} failed outside the windows; inside them: {explained}"
    return _check("no 5xx outside outages", summary, problems)


def drained(evidence: Evidence, seconds: float) -> Check:
    """After the drain: no outbox entry left, the dispatcher group has committed everything, no
    delivery still pending."""
    problems = [
        f"{name}: {n} document(s) with events still in their outbox"
        for name, n in evidence.outbox.items()
        if n
    ]
    problems += [f"consumer lag on {topic}: {n}" for topic, n in evidence.lag.items() if n]
    pending = sum(1 for d in evidence.deliveries if d.state == "pending")
    if pending:
        problems.append(f"{pending} deliveries still pending")
    summary = (
        f"drained in {seconds:.1f}s: outbox {sum(evidence.outbox.values())}, consumer lag "
        f"{sum(evidence.lag.values())} over {len(evidence.lag)} topics, {pending} pending deliveries"
    )
    return _check("drained", summary, problems)


def chaos(journal: Journal, stack_alive: bool) -> Check:
    """Every fault was injected and is over, and no process died but the ones the soak killed
    (``stack_alive``: the devstack supervisor never had to stop the stack)."""
    problems = [] if stack_alive else ["the devstack stopped the stack: a process without replicas died"]
    problems += [
        f"{w.target} killed at {w.start:.1f}s never came back" for w in journal.windows if w.end is None
    ]
    unplanned = Counter(journal.restarts) - Counter(journal.kills)
    problems += [f"{name} died {n} time(s) without being killed" for name, n in sorted(unplanned.items())]
    kills = Counter(w.service for w in journal.windows if w.kind == "kill")
    back = [w.end - w.start for w in journal.windows if w.kind == "kill" and w.end is not None]
    outages = [w for w in journal.windows if w.kind != "kill"]
    for kind in ("broker", "mongo"):
        if not any(w.kind == kind for w in outages):
            problems.append(f"no {kind} outage was injected")
    summary = (
        f"{sum(kills.values())} replicas killed ({', '.join(f'{s} {n}' for s, n in sorted(kills.items()))}), "
        f"each back in {min(back, default=0):.1f}-{max(back, default=0):.1f}s; "
        + "; ".join(f"{w.target} down {w.end - w.start:.1f}s" for w in outages if w.end is not None)
        + f"; {sum(unplanned.values())} unplanned restarts"
    )
    return _check("chaos injected and survived", summary, problems)


def clients_kept_going(failures: list[str]) -> Check:
    """No simulated client had to give up or got an answer it should not have (a 4xx other than
    the 409 of a closed review)."""
    return _check("clients never gave up", f"{len(failures)} calls given up or refused", failures)
