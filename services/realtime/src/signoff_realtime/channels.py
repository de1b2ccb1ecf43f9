"""Channel ownership: a client may only name channels (agents) its owner holds."""

from __future__ import annotations

from signoff_common.mongo import AGENTS, Database, collection

MAX_CHANNELS = 500


class UnknownChannelError(Exception):
    """A named channel does not exist or belongs to someone else (the two are not told apart)."""


async def owned(db: Database, owner_id: str, wanted: list[str]) -> frozenset[str]:
    """The wanted channels, all checked to be the owner's; raises :class:`UnknownChannelError`."""
    if len(wanted) > MAX_CHANNELS or not all(isinstance(c, str) and 0 < len(c) <= 100 for c in wanted):
        raise UnknownChannelError(f"channels must be at most {MAX_CHANNELS} channel ids")
    unique = frozenset(wanted)
    found = await collection(db, AGENTS).count_documents({"_id": {"$in": list(unique)}, "owner_id": owner_id})
    if found != len(unique):
        raise UnknownChannelError("channel not found")
    return unique
