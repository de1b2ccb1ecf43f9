"""Numbers read from text someone else wrote: headers, URL tokens, query strings, hostnames.

Python's own parsers are too generous for that: ``str.isdigit()`` is true for ``"²"`` (which
``int()`` then refuses, so an ``isdigit()`` guard lets a ValueError through, a 500), ``int()``
and ``float()`` take other scripts' digits (``"١٢"``), signs, underscores and surrounding
whitespace, ``int()`` refuses more than 4,300 digits with a ValueError, and a big enough int
overflows when mixed with a float. Every parse of untrusted numbers goes through here: ASCII
digits only, a bounded length, and None (never an exception) for anything else.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import parsedate_to_datetime

_DIGITS = {
    8: frozenset("01234567"),
    10: frozenset("0123456789"),
    16: frozenset("0123456789abcdefABCDEF"),
}
_LEADING_INT = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)")
# The whitespace HTTP allows around a field value.
_OWS = " \t"
# A Content-Length of more digits is past 2^63: no length at all.
CONTENT_LENGTH_DIGITS = 19
# Retry-After delta-seconds beyond this many digits are "very long"; RFC 9111 (for Age) caps
# an overflowing delta-seconds at 2^31.
RETRY_AFTER_DIGITS = 10
RETRY_AFTER_CAP = float(2**31)


def parse_uint(text: str | None, max_digits: int, base: int = 10) -> int | None:
    """The non-negative integer ``text`` spells in ASCII digits of ``base`` (8, 10 or 16) and
    nothing else (no sign, space, underscore or prefix), in 1 to ``max_digits`` digits; None
    otherwise."""
    if not text or len(text) > max_digits or not _DIGITS[base].issuperset(text):
        return None
    return int(text, base)


def leading_int(text: str | None, ceiling: int) -> int | None:
    """JavaScript's ``parseInt(text)``: leading whitespace, an optional sign, then ASCII digits,
    the rest ignored ("1500ms" is 1500); None when no digit leads. A magnitude above ``ceiling``
    reads as ``ceiling`` (so a thousand-digit number costs nothing)."""
    match = _LEADING_INT.match(text or "")
    if match is None:
        return None
    sign, digits = match.groups()
    digits = digits.lstrip("0") or "0"
    value = ceiling if len(digits) > len(str(ceiling)) else min(int(digits), ceiling)
    return -value if sign == "-" else value


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait: delta-seconds (ASCII digits) or an
    HTTP-date (a date already past is 0). None when absent or unreadable."""
    if not value:
        return None
    value = value.strip(_OWS)
    if value and _DIGITS[10].issuperset(value):
        if len(value) > RETRY_AFTER_DIGITS:
            return RETRY_AFTER_CAP
        return float(value)
    if not value.isascii():
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
