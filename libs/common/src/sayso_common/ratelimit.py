"""Fixed-window rate limits counted in MongoDB, so every replica shares one budget (the API's
inbound webhooks, the realtime gateway's stream tickets)."""

from __future__ import annotations

import time
from datetime import timedelta

from pymongo import ReturnDocument

from sayso_common.clock import utcnow
from sayso_common.http_errors import ApiError
from sayso_common.mongo import RATE_LIMITS, Database, collection


async def hit(
    db: Database, key: str, limit: int, window_seconds: int = 60, *, setting: str, what: str
) -> None:
    """Count one request against ``key``; 429 with ``Retry-After`` once ``limit`` is passed, naming
    ``what`` is limited and ``setting``, the server setting that sets it."""
    now = time.time()
    window = int(now // window_seconds)
    doc = await collection(db, RATE_LIMITS).find_one_and_update(
        {"_id": f"{key}:{window}"},
        {"$inc": {"n": 1}, "$setOnInsert": {"expire_at": utcnow() + timedelta(seconds=2 * window_seconds)}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert doc is not None  # upsert with ReturnDocument.AFTER always returns the document
    if doc["n"] > limit:
        retry = max(1, int((window + 1) * window_seconds - now) + 1)
        raise ApiError(
            429,
            "rate_limited",
            f"at most {limit} requests per {window_seconds} s for {what} ({setting})",
            headers={"Retry-After": str(retry)},
        )
