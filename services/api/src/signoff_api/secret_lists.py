"""Rotating a list of sealed signing secrets (an agent's webhook secrets, a trigger's secrets).

The list is ``[{secret_enc, created_at, expires_at}]``, newest first; ``expires_at`` is None for the
current secret. A rotation seals a new current secret and gives the old current one a grace
period, keeping at most ``max_old`` retiring secrets. The write is a compare-and-swap on the list
that was read: two rotations at once can never drop a secret a user was already shown.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from signoff_common.clock import as_utc, utcnow
from signoff_common.http_errors import ApiError, not_found
from signoff_common.mongo import Collection, Doc
from signoff_common.secretbox import SecretBox


def live(secrets: list[Doc], now: datetime) -> list[Doc]:
    return [s for s in secrets if s.get("expires_at") is None or as_utc(s["expires_at"]) > now]


async def rotate(
    coll: Collection,
    query: Doc,
    field: str,
    box: SecretBox,
    new_secret: Callable[[], str],
    grace: timedelta,
    max_old: int,
) -> tuple[str, list[Doc]]:
    """Rotate ``doc[field]`` of the document matching ``query``; returns (the new secret in clear,
    the list as written). 404 if nothing matches; 409 if it keeps changing under us."""
    for _ in range(5):
        doc = await coll.find_one(query, {field: 1})
        if doc is None:
            raise not_found("resource")
        now = utcnow()
        old: list[Doc] = doc.get(field) or []
        retiring = [
            {**s, "expires_at": now + grace} if s.get("expires_at") is None else s
            for s in live(old, now)
            if grace > timedelta(0) or s.get("expires_at") is not None
        ]
        retiring.sort(key=lambda s: as_utc(s["created_at"]), reverse=True)
        secret = new_secret()
        updated = [
            {"secret_enc": box.seal(secret), "created_at": now, "expires_at": None},
            *retiring[:max_old],
        ]
        result = await coll.update_one({**query, field: old}, {"$set": {field: updated, "updated_at": now}})
        if result.modified_count == 1:
            return secret, updated
    raise ApiError(409, "conflict", "the secrets changed concurrently; try again")
