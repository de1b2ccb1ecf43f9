"""Fixed-window rate limits counted in MongoDB, so every replica shares one budget (the API's
inbound webhooks, the realtime gateway's stream tickets, the dispatcher's per-endpoint limits)."""

from __future__ import annotations

import time
from datetime import timedelta

from pymongo import ReturnDocument

from sayso_common.clock import utcnow
from sayso_common.errors import ErrorCode, RateLimitedError
from sayso_common.mongo import RATE_LIMITS, Database, collection


async def count(db: Database, key: str, window_seconds: int, now: float) -> tuple[int, float]:
    """Count one hit against ``key`` in the window of ``window_seconds`` that holds ``now`` (epoch
    seconds); returns the hits in that window so far, this one included, and when it ends. One
    document per key and window, removed by its TTL index."""
    window = int(now // window_seconds)
    doc = await collection(db, RATE_LIMITS).find_one_and_update(
        {"_id": f"{key}:{window}"},
        {"$inc": {"n": 1}, "$setOnInsert": {"expire_at": utcnow() + timedelta(seconds=2 * window_seconds)}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert doc is not None  # upsert with ReturnDocument.AFTER always returns the document
    return doc["n"], float((window + 1) * window_seconds)


async def hit(
    db: Database, key: str, limit: int, window_seconds: int = 60, *, setting: str, what: str
) -> None:
    """Count one request against ``key``; :class:`RateLimitedError` once ``limit`` is passed, naming
    ``what`` is limited and ``setting``, the server setting that sets it."""
    now = time.time()
    hits, ends = await count(db, key, window_seconds, now)
    if hits > limit:
        retry = max(1, int(ends - now) + 1)
        raise RateLimitedError(
            ErrorCode.RATE_LIMITED,
            f"at most {limit} requests per {window_seconds} s for {what} ({setting})",
            retry_after=retry,
        )
