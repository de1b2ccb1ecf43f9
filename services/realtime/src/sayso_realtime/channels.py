"""Channel access: a client may only name channels it may read (its owner's, and for a user
those shared with them; see :mod:`sayso_common.membership`)."""

from __future__ import annotations

from sayso_common.membership import Reach
from sayso_common.mongo import AGENTS, Database, collection

MAX_CHANNELS = 500


class UnknownChannelError(Exception):
    """A named channel does not exist or belongs to someone else (the two are not told apart)."""


async def owned(db: Database, reach: Reach, wanted: list[str]) -> frozenset[str]:
    """The wanted channels, all checked to be within ``reach``; raises
    :class:`UnknownChannelError`."""
    if len(wanted) > MAX_CHANNELS or not all(isinstance(c, str) and 0 < len(c) <= 100 for c in wanted):
        raise UnknownChannelError(f"channels must be at most {MAX_CHANNELS} channel ids")
    unique = frozenset(wanted)
    found = await collection(db, AGENTS).count_documents({"_id": {"$in": list(unique)}, **reach.channels()})
    if found != len(unique):
        raise UnknownChannelError("channel not found")
    return unique


async def missing(db: Database, reach: Reach, wanted: list[str]) -> int | None:
    """The position in ``wanted`` of the first channel outside ``reach`` (or that does not exist);
    None when all are within it."""
    coll = collection(db, AGENTS)
    found = set(
        await coll.distinct("_id", {"$and": [{"_id": {"$in": sorted(set(wanted))}}, reach.channels()]})
    )
    return next((i for i, channel in enumerate(wanted) if channel not in found), None)
