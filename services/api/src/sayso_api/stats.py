"""Operator numbers for one owner: webhook delivery activity and the review backlog.

Read-only and computed from what MongoDB already holds (delivery attempts, pending reviews), so
the API needs nothing from the dispatcher. MongoDB groups the attempts into a few rows per time
bucket and host; the pure functions below turn those rows into the series, rates and host
health the operator page shows, and have table tests.

Circuit breakers live in each dispatcher's memory (its ``sayso_webhook_open_circuits`` gauge
is the global truth, and it logs "circuit opened" with the lane). Per owner they are *estimated*
here from the recorded attempts with the dispatchers' policy (the same SAYSO_DISPATCHER_CIRCUIT_*
settings) and the dispatchers' rule of what counts (``sayso_common.attempts.circuit_result``: a
400 is a receiver that is up): a host whose last counted attempts trip it, the latest one a
failure, is reported as open. Whether an attempt delivered is ``attempts.verdict`` too.

An explicit endpoint has a breaker of its own in the dispatcher (its lane is the endpoint, not
the host): the page shows one row per endpoint with the same estimate over that endpoint's
attempts, its pending and given-up deliveries, and whether it is disabled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from sayso_api.schemas import Out
from sayso_common import attempts
from sayso_common.clock import as_utc, utcnow
from sayso_common.documents import EndpointDoc
from sayso_common.membership import Reach, channel_ids
from sayso_common.mongo import AGENTS, DELIVERIES, ENDPOINTS, MESSAGES, Database, Doc, collection, untyped
from sayso_common.settings import CircuitPolicy

# deliveriesPerSecond is the rate over this trailing span (the chart shows the whole window).
RATE_SECONDS = 60
MAX_HOSTS = 20
# Endpoint rows on the page: the most troubled first (each owner has at most 20 per channel).
MAX_ENDPOINT_ROWS = 100
WINDOW_DEFAULT = 300
WINDOW_MAX = 3600
BUCKETS = 30


class Bucket(Out):
    at: datetime = Field(description="Start of the bucket")
    delivered: int = Field(description="Attempts answered with 2xx")
    failed: int = Field(description="Attempts that did not get a 2xx")


class HostHealth(Out):
    host: str
    attempts: int = Field(
        description=(
            "Recent attempts considered: at most the breaker window, of those the breaker counts "
            "(not the ones refused before sending, such as by the SSRF guard)"
        )
    )
    failures: int = Field(description="Of those, attempts that did not get a 2xx")
    circuit_failures: int = Field(
        description=(
            "Of those, failures the breaker counts: no answer, 5xx, 408 or 429 (a receiver "
            "answering 400 or 404 is up and refusing, and does not open its circuit)"
        )
    )
    open: bool = Field(description="Estimated: the dispatcher's breaker would hold this host open")


class EndpointHealth(Out):
    id: str
    channel_id: str | None = Field(description="The endpoint's channel; null: account-wide")
    description: str | None = None
    url: str
    disabled: bool
    disabled_reason: str | None = None
    pending: int = Field(description="Deliveries waiting to be sent or retried")
    failed: int = Field(description="Deliveries that gave up (no retry left) in the window")
    attempts: int = Field(description="Recent attempts the endpoint's breaker counts (at most its window)")
    circuit_failures: int = Field(description="Of those, failures the breaker counts")
    open: bool = Field(description="Estimated: the dispatcher's breaker would hold this endpoint open")


class PendingReviews(Out):
    total: int
    oldest_at: datetime | None = None
    oldest_age_seconds: float | None = None
    by_channel: dict[str, int] = Field(default_factory=dict)


class Overview(Out):
    generated_at: datetime
    window_seconds: int
    bucket_seconds: int
    deliveries_per_second: float = Field(
        description=f"2xx attempts per second over the last {RATE_SECONDS} s"
    )
    attempts: int = Field(description="Attempts in the window")
    delivered: int
    failed_attempts: int
    failed_deliveries: int = Field(description="Deliveries that gave up (no retry left) in the window")
    retrying: int = Field(description="Deliveries waiting for their next retry")
    open_circuits: int
    hosts: list[HostHealth]
    endpoints: list[EndpointHealth] = Field(
        description="Every endpoint of the owner's (channel and account-wide): open circuits first"
    )
    series: list[Bucket]
    pending_reviews: PendingReviews


@dataclass(frozen=True)
class Tried:
    """What one attempt recorded, as the rules in ``sayso_common.attempts`` read it."""

    status: int | None
    kind: str | None

    @property
    def delivered(self) -> bool:
        return attempts.verdict(self.status, self.kind) is attempts.Verdict.DELIVERED


@dataclass(frozen=True)
class AttemptRow:
    """One group from MongoDB: attempts to ``host`` in bucket ``bucket`` that did (not) succeed."""

    bucket: int
    ok: bool
    count: int


def bucket_seconds(window: int, buckets: int = BUCKETS) -> int:
    return max(1, math.ceil(window / buckets))


def series(rows: Iterable[AttemptRow], start: datetime, window: int, size: int) -> list[Bucket]:
    """Every bucket of the window, empty ones included, oldest first."""
    count = math.ceil(window / size)
    delivered = [0] * count
    failed = [0] * count
    for row in rows:
        if row.bucket < 0:
            continue
        # An attempt recorded at the very instant the window ends falls in the last bucket.
        index = min(row.bucket, count - 1)
        (delivered if row.ok else failed)[index] += row.count
    return [
        Bucket(at=start + timedelta(seconds=i * size), delivered=delivered[i], failed=failed[i])
        for i in range(count)
    ]


def rate(buckets: list[Bucket], size: int, span: int = RATE_SECONDS) -> float:
    """Successful attempts per second over the last ``span`` seconds (whole buckets)."""
    if not buckets:
        return 0.0
    take = max(1, min(len(buckets), round(span / size)))
    recent = buckets[-take:]
    return round(sum(b.delivered for b in recent) / (take * size), 3)


def host_health(recent: Mapping[str, list[Tried]], policy: CircuitPolicy) -> list[HostHealth]:
    """``recent`` maps a host to its latest attempts, newest first. The breaker's window is
    the latest ``policy.window`` of those it counts. Open hosts first, then the most failing."""
    out = []
    for host, tried in recent.items():
        breaker = Breaker.of(tried, policy)
        out.append(
            HostHealth(
                host=host,
                attempts=breaker.attempts,
                failures=breaker.failures,
                circuit_failures=breaker.circuit_failures,
                open=breaker.open,
            )
        )
    out.sort(key=lambda h: (not h.open, -h.failures, h.host))
    return out[:MAX_HOSTS]


@dataclass(frozen=True)
class Breaker:
    """The estimate of one breaker (a host's or an endpoint's) from its latest attempts."""

    attempts: int
    failures: int
    circuit_failures: int
    open: bool

    @classmethod
    def of(cls, tried: list[Tried], policy: CircuitPolicy) -> Breaker:
        """``tried`` newest first. The breaker's window is the latest ``policy.window`` of those
        it counts; it is open if they trip it and the latest one failed."""
        window = [t for t in tried if attempts.circuit_result(t.status, t.kind) is not None]
        window = window[: policy.window]
        results = [attempts.circuit_result(t.status, t.kind) is True for t in window]
        return cls(
            attempts=len(window),
            failures=sum(not t.delivered for t in window),
            circuit_failures=results.count(False),
            open=policy.trips(results) and not results[0],
        )


@dataclass(frozen=True)
class Backlog:
    """An endpoint's deliveries by state, as counted from MongoDB."""

    pending: int = 0
    failed: int = 0


def endpoint_health(
    endpoints: Iterable[EndpointDoc],
    backlog: Mapping[str, Backlog],
    recent: Mapping[str, list[Tried]],
    policy: CircuitPolicy,
) -> list[EndpointHealth]:
    """One row per endpoint: open circuits first, then disabled ones, then the most given up
    and waiting; ties in the order given (oldest endpoint first)."""
    out = []
    for doc in endpoints:
        breaker = Breaker.of(recent.get(doc["_id"], []), policy)
        counts = backlog.get(doc["_id"], Backlog())
        out.append(
            EndpointHealth(
                id=doc["_id"],
                channel_id=doc.get("channel_id"),
                description=doc.get("description"),
                url=doc["url"],
                disabled=bool(doc.get("disabled")),
                disabled_reason=doc.get("disabled_reason"),
                pending=counts.pending,
                failed=counts.failed,
                attempts=breaker.attempts,
                circuit_failures=breaker.circuit_failures,
                open=breaker.open,
            )
        )
    out.sort(key=lambda e: (not e.open, not e.disabled, -e.failed, -e.pending))
    return out[:MAX_ENDPOINT_ROWS]


async def endpoints_overview(
    db: Database, owner_id: str, channels: list[str], policy: CircuitPolicy, start: datetime
) -> list[EndpointHealth]:
    """The owner's endpoints with their deliveries in ``channels`` (the owner's): pending ones
    (however old), those that gave up since ``start``, and the breaker's estimate over the
    attempts since ``start``."""
    docs = await collection(db, ENDPOINTS).find({"owner_id": owner_id}).sort("created_at", 1).to_list()
    if not docs:
        return []
    ids = [d["_id"] for d in docs]
    facets = await (
        await untyped(db, DELIVERIES).aggregate(
            [
                # Each branch of the $or is a tight range of the (channel_id, state, updated_at)
                # index: the pending deliveries (few: they deliver or give up on their schedule)
                # and the recently finished ones, never an endpoint's whole history.
                {
                    "$match": {
                        "channel_id": {"$in": channels},
                        "owner_id": owner_id,
                        "endpoint_id": {"$in": ids},
                        "$or": [
                            {"state": "pending"},
                            {"state": {"$in": ["delivered", "failed"]}, "updated_at": {"$gte": start}},
                        ],
                    }
                },
                {
                    "$project": {
                        "endpoint_id": 1,
                        "state": 1,
                        "updated_at": 1,
                        "attempts.at": 1,
                        "attempts.status_code": 1,
                        "attempts.error_kind": 1,
                    }
                },
                {
                    "$facet": {
                        "states": [
                            {
                                "$group": {
                                    "_id": "$endpoint_id",
                                    "pending": {"$sum": {"$cond": [{"$eq": ["$state", "pending"]}, 1, 0]}},
                                    "failed": {
                                        "$sum": {
                                            "$cond": [
                                                {
                                                    "$and": [
                                                        {"$eq": ["$state", "failed"]},
                                                        {"$gte": ["$updated_at", start]},
                                                    ]
                                                },
                                                1,
                                                0,
                                            ]
                                        }
                                    },
                                }
                            }
                        ],
                        "recent": _recent_attempts("$endpoint_id", start, policy.window),
                    }
                },
            ]
        )
    ).to_list()
    facet = facets[0] if facets else {"states": [], "recent": []}
    backlog = {r["_id"]: Backlog(pending=r["pending"], failed=r["failed"]) for r in facet["states"]}
    recent = {r["_id"]: [_tried(x) for x in r["recent"]] for r in facet["recent"]}
    return endpoint_health(docs, backlog, recent, policy)


def age_seconds(oldest: datetime | None, now: datetime) -> float | None:
    if oldest is None:
        return None
    return round(max(0.0, (now - as_utc(oldest)).total_seconds()), 3)


async def pending_reviews(db: Database, reach: Reach, now: datetime | None = None) -> PendingReviews:
    """Pending reviews in the channels ``reach`` covers (shared ones too: they wait for the
    caller as much as their own do) that still exist: a deleted channel's are nobody's."""
    now = now or utcnow()
    live = await channel_ids(db, reach)
    rows = await (
        await untyped(db, MESSAGES).aggregate(
            [
                {"$match": {**reach.scope(), "review.status": "pending", "channel_id": {"$in": live}}},
                {"$group": {"_id": "$channel_id", "n": {"$sum": 1}, "oldest": {"$min": "$created_at"}}},
            ]
        )
    ).to_list()
    oldest = min((as_utc(r["oldest"]) for r in rows if r.get("oldest")), default=None)
    return PendingReviews(
        total=sum(r["n"] for r in rows),
        oldest_at=oldest,
        oldest_age_seconds=age_seconds(oldest, now),
        by_channel={r["_id"]: r["n"] for r in rows},
    )


def _recent_attempts(key: str, start: datetime, window: int) -> list[Doc]:
    """An aggregation facet: per ``key`` (``$host``, ``$endpoint_id``), the newest ``window``
    attempts since ``start`` that the breaker counts: answers, and the target not answering (not
    what never reached it, such as an SSRF refusal)."""
    return [
        {"$unwind": "$attempts"},
        {
            "$match": {
                "attempts.at": {"$gte": start},
                "$or": [
                    {"attempts.status_code": {"$ne": None}},
                    {"attempts.error_kind": {"$in": sorted(attempts.UNANSWERED_KINDS)}},
                ],
            }
        },
        {"$sort": {"attempts.at": -1}},
        {
            "$group": {
                "_id": key,
                "recent": {
                    "$firstN": {
                        "input": {"status": "$attempts.status_code", "kind": "$attempts.error_kind"},
                        "n": window,
                    }
                },
            }
        },
    ]


def _tried(row: Mapping[str, Any]) -> Tried:
    # A field an old document lacks comes back absent from a group key, null from $firstN.
    return Tried(row.get("status"), row.get("kind"))


async def overview(
    db: Database, owner_id: str, policy: CircuitPolicy, window: int = WINDOW_DEFAULT
) -> Overview:
    now = utcnow()
    size = bucket_seconds(window)
    start = now - timedelta(seconds=window)
    channels = [
        a["_id"] for a in await collection(db, AGENTS).find({"owner_id": owner_id}, {"_id": 1}).to_list()
    ]
    # The (channel_id, state, updated_at) index narrows this to the owner's recently touched
    # deliveries; an attempt in the window always moved its delivery's updated_at into it.
    scope = {"channel_id": {"$in": channels}, "owner_id": owner_id, "updated_at": {"$gte": start}}
    facets = await (
        await untyped(db, DELIVERIES).aggregate(
            [
                {"$match": scope},
                {
                    "$project": {
                        "host": 1,
                        "state": 1,
                        "attempt_count": 1,
                        "attempts.at": 1,
                        "attempts.status_code": 1,
                        "attempts.error_kind": 1,
                    }
                },
                {
                    "$facet": {
                        "buckets": [
                            {"$unwind": "$attempts"},
                            {"$match": {"attempts.at": {"$gte": start}}},
                            {
                                "$group": {
                                    "_id": {
                                        "bucket": {
                                            "$floor": {
                                                "$divide": [
                                                    {"$subtract": ["$attempts.at", start]},
                                                    size * 1000,
                                                ]
                                            }
                                        },
                                        # Classified below, by the rule the dispatcher uses.
                                        "status": "$attempts.status_code",
                                        "kind": "$attempts.error_kind",
                                    },
                                    "n": {"$sum": 1},
                                }
                            },
                        ],
                        "hosts": _recent_attempts("$host", start, policy.window),
                        "states": [
                            {
                                "$group": {
                                    "_id": None,
                                    "failed": {"$sum": {"$cond": [{"$eq": ["$state", "failed"]}, 1, 0]}},
                                    "retrying": {
                                        "$sum": {
                                            "$cond": [
                                                {
                                                    "$and": [
                                                        {"$eq": ["$state", "pending"]},
                                                        {"$gt": ["$attempt_count", 0]},
                                                    ]
                                                },
                                                1,
                                                0,
                                            ]
                                        }
                                    },
                                }
                            }
                        ],
                    }
                },
            ]
        )
    ).to_list()
    facet = facets[0] if facets else {"buckets": [], "hosts": [], "states": []}
    rows = [AttemptRow(int(r["_id"]["bucket"]), _tried(r["_id"]).delivered, r["n"]) for r in facet["buckets"]]
    buckets = series(rows, start, window, size)
    hosts = host_health(
        {str(h["_id"] or "?"): [_tried(x) for x in h["recent"]] for h in facet["hosts"]}, policy
    )
    states = facet["states"][0] if facet["states"] else {"failed": 0, "retrying": 0}
    delivered = sum(b.delivered for b in buckets)
    failed = sum(b.failed for b in buckets)
    return Overview(
        generated_at=now,
        window_seconds=window,
        bucket_seconds=size,
        deliveries_per_second=rate(buckets, size),
        attempts=delivered + failed,
        delivered=delivered,
        failed_attempts=failed,
        failed_deliveries=states["failed"],
        retrying=states["retrying"],
        open_circuits=sum(1 for h in hosts if h.open),
        hosts=hosts,
        endpoints=await endpoints_overview(db, owner_id, channels, policy, start),
        series=buckets,
        pending_reviews=await pending_reviews(db, Reach(owner_id), now),
    )
