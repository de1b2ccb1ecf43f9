"""Numbers read from what a server or a sender wrote (headers, SSE fields): ASCII digits only.

Python's own parsers are too generous: ``str.isdigit()`` is true for ``"²"`` (which ``int()``
refuses, so an ``isdigit()`` guard lets a ValueError through), ``int()`` and ``float()`` take
other scripts' digits, signs, underscores and spaces, ``float()`` takes ``nan`` and ``inf``, and a
huge int overflows against a float. The SDK's rule is the server's (``sayso_common.numerals``),
kept here because the SDK installs without the server's libraries.
"""

from __future__ import annotations

_DIGITS = frozenset("0123456789")


def ascii_digits(text: str) -> bool:
    """True for one or more ASCII digits and nothing else."""
    return bool(text) and _DIGITS.issuperset(text)


def parse_uint(text: str | None, max_digits: int) -> int | None:
    """The non-negative integer ``text`` spells in 1 to ``max_digits`` ASCII digits and nothing
    else (no sign, space or underscore); None otherwise."""
    if not text or len(text) > max_digits or not ascii_digits(text):
        return None
    return int(text)
