"""Lists of sealed signing secrets (an agent's webhook secrets, a trigger's secrets): the one home
for creating, reading and rotating them.

The list is ``[{secret_enc, created_at, expires_at}]`` (:class:`SecretDoc`), newest first;
``expires_at`` is None for the current secret. A rotation seals a new current secret and gives
the old current one a grace period, keeping at most ``max_old`` retiring secrets. The write is a
compare-and-swap on the list that was read: two rotations at once can never drop a secret a user
was already shown.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from sayso_common.clock import as_utc, utcnow
from sayso_common.documents import SecretDoc
from sayso_common.errors import ConflictError, ErrorCode, NotFoundError
from sayso_common.secretbox import SecretBox


def first(box: SecretBox, secret: str, now: datetime) -> list[SecretDoc]:
    """The list a new agent or trigger starts with: ``secret`` as the current one."""
    return [{"secret_enc": box.seal(secret), "created_at": now, "expires_at": None}]


def live(secrets: list[SecretDoc], now: datetime) -> list[SecretDoc]:
    """The secrets still valid at ``now``, newest first."""
    alive = [s for s in secrets if (end := s.get("expires_at")) is None or as_utc(end) > now]
    return sorted(alive, key=lambda s: as_utc(s["created_at"]), reverse=True)


def opened(box: SecretBox, secrets: list[SecretDoc], now: datetime) -> list[str]:
    """The live secrets in clear, newest first."""
    return [box.open(s["secret_enc"]) for s in live(secrets, now)]


async def rotate(
    coll: AsyncCollection[Any],
    query: dict[str, Any],
    field: str,
    box: SecretBox,
    new_secret: Callable[[], str],
    grace: timedelta,
    max_old: int,
) -> tuple[str, list[SecretDoc]]:
    """Rotate ``doc[field]`` of the document matching ``query``; returns (the new secret in clear,
    the list as written). NotFoundError if nothing matches; ConflictError if it keeps changing under us."""
    for _ in range(5):
        doc = await coll.find_one(query, {field: 1})
        if doc is None:
            raise NotFoundError("resource")
        now = utcnow()
        old: list[SecretDoc] = doc.get(field) or []
        retiring: list[SecretDoc] = [
            {**s, "expires_at": now + grace} if s.get("expires_at") is None else s
            for s in live(old, now)
            if grace > timedelta(0) or s.get("expires_at") is not None
        ]
        updated = [*first(box, secret := new_secret(), now), *retiring[:max_old]]
        result = await coll.update_one({**query, field: old}, {"$set": {field: updated, "updated_at": now}})
        if result.modified_count == 1:
            return secret, updated
    raise ConflictError(ErrorCode.CONFLICT, "the secrets changed concurrently; try again")
