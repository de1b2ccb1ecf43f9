"""When to try a request again, as a pure function of what went wrong.

* 429 is always retried: the server refused before doing anything. Its ``Retry-After`` is
  honoured; asked to wait longer than ``max_wait``, the SDK raises :class:`Throttled` instead.
* 503 and transport failures (refused, reset, timed out) are retried only for requests that are
  safe to repeat: reads, and message creation, which always carries a ``clientId`` so a retry
  after a lost answer returns the message instead of posting it twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from sayso.errors import ApiError, SaysoError, TransportError, error_from_response


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    # Longest Retry-After honoured by waiting (seconds); longer ones are raised at once.
    max_wait: float = 30.0
    # First back-off for a transport failure or a 503 without Retry-After; doubles each time.
    backoff: float = 0.5

    def delay(
        self, attempt: int, *, status: int | None, retry_after: float | None, idempotent: bool
    ) -> float | None:
        """Seconds to wait before retry ``attempt + 1`` (``attempt`` counts from 0), or None to give
        up. ``status`` is None for a transport failure."""
        if attempt >= self.max_retries:
            return None
        if status is not None and status not in (429, 503):
            return None
        if status != 429 and not idempotent:
            return None
        wait = retry_after if retry_after is not None else self.backoff * (2**attempt)
        if wait > self.max_wait:
            return None
        return wait


NO_RETRIES = RetryPolicy(max_retries=0)


def next_delay(
    policy: RetryPolicy, attempt: int, idempotent: bool, outcome: httpx.Response | Exception
) -> float:
    """The wait before the next attempt, or the exception to raise now: a typed
    :class:`~sayso.errors.ApiError` for an answer, :class:`~sayso.errors.TransportError` for
    a failure below HTTP."""
    if isinstance(outcome, httpx.Response):
        error: SaysoError = error_from_response(outcome)
        status: int | None = outcome.status_code
        retry_after = error.retry_after if isinstance(error, ApiError) else None
    else:
        error, status, retry_after = TransportError(f"{type(outcome).__name__}: {outcome}"), None, None
    delay = policy.delay(attempt, status=status, retry_after=retry_after, idempotent=idempotent)
    if delay is None:
        raise error from (outcome if isinstance(outcome, Exception) else None)
    return delay
