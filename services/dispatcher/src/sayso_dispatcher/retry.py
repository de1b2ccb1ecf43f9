"""What an attempt's result means, and when the next attempt is due. Pure functions."""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass


class Verdict(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # try again later, while the schedule lasts
    FAIL = "fail"  # no retry: the receiver refused it for good
    GONE = "gone"  # 410: fail, and disable the agent's default URL


# Error kinds recorded on attempts; stable strings the API shows.
TIMEOUT = "timeout"
CONNECT = "connect_error"
SSRF = "ssrf_refused"
REDIRECT = "redirect_not_followed"
HTTP = "http_status"
INVALID_REQUEST = "invalid_request"
INTERNAL = "internal_error"

RETRYABLE_ERRORS = frozenset({TIMEOUT, CONNECT, INTERNAL})


def verdict(status: int | None, error_kind: str | None) -> Verdict:
    """2xx delivered; 408, 429, 5xx, timeouts and connection errors retried; 410 gone; every
    other 4xx, a redirect (never followed) or an SSRF refusal fails at once."""
    if status is None:
        return Verdict.RETRY if error_kind in RETRYABLE_ERRORS else Verdict.FAIL
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status == 410:
        return Verdict.GONE
    if status in (408, 429) or status >= 500:
        return Verdict.RETRY
    return Verdict.FAIL


def jittered(delay: float, jitter: float, rng: random.Random | None = None) -> float:
    """``delay`` ±``jitter`` (a fraction), so receivers recovering from an outage are not hit
    by every retry at the same instant."""
    spread = (rng or random).uniform(-jitter, jitter)
    return max(0.0, delay * (1 + spread))


@dataclass(frozen=True)
class RetryPolicy:
    jitter: float = 0.2
    retry_after_max: float = 3600.0


def next_delay(
    schedule: Sequence[float],
    attempts_made: int,
    retry_after: float | None,
    policy: RetryPolicy,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the next attempt after ``attempts_made`` failed ones, or None when the
    schedule is spent. ``schedule[i]`` is the wait before retry ``i + 1``. A Retry-After longer
    than the scheduled wait is honoured, up to ``retry_after_max``."""
    index = attempts_made - 1
    if index < 0 or index >= len(schedule):
        return None
    delay = jittered(float(schedule[index]), policy.jitter, rng)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.retry_after_max))
    return delay
