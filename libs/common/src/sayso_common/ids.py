"""Sortable unique identifiers (ULID layout: 48-bit millisecond time + 80 random bits).

Event ids double as the webhook-id and the SSE/Socket.IO resume cursor, so they must sort by
creation time across processes; Crockford base32 keeps that order when compared as strings.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """Return ``prefix_`` followed by a 26-character time-ordered id."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_encode(millis, 10)}{_encode(rand, 16)}"


def id_time_ms(value: str) -> int:
    """Milliseconds since the epoch encoded in an id made by :func:`new_id`."""
    body = value.rsplit("_", 1)[-1][:10]
    out = 0
    for ch in body:
        out = out * 32 + _ALPHABET.index(ch)
    return out


def min_id(prefix: str, millis: int) -> str:
    """The smallest id :func:`new_id` can make in that millisecond: a lower bound for range
    queries by time on id-keyed collections."""
    return f"{prefix}_{_encode(max(0, millis), 10)}{'0' * 16}"
