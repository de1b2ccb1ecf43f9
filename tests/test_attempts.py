"""Table tests of sayso_common.attempts, the one rule of what a delivery attempt means: its
verdict, what it tells a circuit breaker, its Retry-After and when it is tried next. The
dispatcher, the notifier and the operator page all call it (issue #28)."""

from __future__ import annotations

import random
import ssl
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from sayso_common.attempts import (
    RETRY_AFTER_MAX,
    ErrorKind,
    RetryPolicy,
    StatusClass,
    Verdict,
    answer_kind,
    circuit_result,
    error_kind,
    jittered,
    mail_verdict,
    next_delay,
    retry_after,
    schedule_for,
    verdict,
)
from sayso_common.numerals import RETRY_AFTER_CAP
from sayso_common.ssrf import AddressRefusedError

NOW = datetime(2026, 4, 1, 14, 32, tzinfo=UTC)
D, R, F, G = Verdict.DELIVERED, Verdict.RETRY, Verdict.FAIL, Verdict.GONE
UP, DOWN, UNCOUNTED = True, False, None


@pytest.mark.parametrize(
    ("status", "kind", "expected", "circuit"),
    [
        (200, None, D, UP),
        (201, None, D, UP),
        (204, None, D, UP),
        (299, None, D, UP),
        (100, "http_status", F, UP),  # a final 1xx is no delivery, but the receiver answered
        (199, "http_status", F, UP),
        (301, "redirect_not_followed", F, UP),
        (302, "redirect_not_followed", F, UP),
        (304, "redirect_not_followed", F, UP),
        (307, "redirect_not_followed", F, UP),
        (399, "redirect_not_followed", F, UP),
        # Up and refusing: failed at once, and no reason to hold the host's other deliveries.
        (400, "http_status", F, UP),
        (401, "http_status", F, UP),
        (403, "http_status", F, UP),
        (404, "http_status", F, UP),
        (405, "http_status", F, UP),
        (409, "http_status", F, UP),
        (413, "http_status", F, UP),
        (418, "http_status", F, UP),
        (422, "http_status", F, UP),
        (451, "http_status", F, UP),
        (499, "http_status", F, UP),
        (410, "http_status", G, UP),
        # Asked to come back later, or failing: retried, and the breaker counts them.
        (408, "http_status", R, DOWN),
        (429, "http_status", R, DOWN),
        (500, "http_status", R, DOWN),
        (501, "http_status", R, DOWN),
        (502, "http_status", R, DOWN),
        (503, "http_status", R, DOWN),
        (504, "http_status", R, DOWN),
        (599, "http_status", R, DOWN),
        (600, "http_status", R, DOWN),  # past the classes: a server error
        (999, "http_status", R, DOWN),
        # No answer.
        (None, "timeout", R, DOWN),
        (None, "connect_error", R, DOWN),
        (None, "tls_error", R, DOWN),
        # Never reached the receiver: the breaker learns nothing.
        (None, "ssrf_refused", F, UNCOUNTED),
        (None, "invalid_url", F, UNCOUNTED),
        (None, "invalid_request", F, UNCOUNTED),
        (None, "internal_error", R, UNCOUNTED),  # ours to fix; retried after the fix
        (None, None, D, UP),  # no status and no error: a Kafka topic acknowledged the record
        (None, "something_new", F, UNCOUNTED),
    ],
)
def test_verdict_and_circuit(
    status: int | None, kind: str | None, expected: Verdict, circuit: bool | None
) -> None:
    assert verdict(status, kind) is expected
    assert circuit_result(status, kind) is circuit


@pytest.mark.parametrize(
    ("status", "klass", "kind"),
    [
        (100, StatusClass.INFORMATIONAL, ErrorKind.HTTP),
        (200, StatusClass.SUCCESSFUL, None),
        (299, StatusClass.SUCCESSFUL, None),
        (300, StatusClass.REDIRECTION, ErrorKind.REDIRECT),
        (308, StatusClass.REDIRECTION, ErrorKind.REDIRECT),
        (400, StatusClass.CLIENT_ERROR, ErrorKind.HTTP),
        (500, StatusClass.SERVER_ERROR, ErrorKind.HTTP),
        (700, StatusClass.SERVER_ERROR, ErrorKind.HTTP),
    ],
)
def test_answer_kind(status: int, klass: StatusClass, kind: ErrorKind | None) -> None:
    assert StatusClass.of(status) is klass
    assert answer_kind(status) is kind
    assert f"{klass}" == f"{status // 100}xx" or status >= 600  # the metrics label


@pytest.mark.parametrize(
    ("status", "header", "seconds"),
    [
        (503, "120", 120.0),
        (429, "0", 0.0),
        (408, "7", 7.0),  # 408 asks to be retried too (the notifier once ignored it)
        (429, " 30 ", 30.0),
        (429, "\t30\t", 30.0),
        (503, "0120", 120.0),
        (503, "9999999999", 9999999999.0),  # read as is; the policy caps it
        (503, "99999999999", RETRY_AFTER_CAP),  # beyond ten digits: "very long"
        (503, "9" * 5000, RETRY_AFTER_CAP),
        (503, None, None),
        (503, "", None),
        (503, " ", None),
        (503, "-5", None),
        (503, "+5", None),
        (503, "5.5", None),
        (503, "1e3", None),
        (503, "inf", None),
        (503, "nan", None),
        (503, "1_0", None),
        (503, "0x10", None),
        (503, "12 0", None),
        (503, "²", None),  # str.isdigit() says yes; int() refuses
        (503, "\u0661\u0662", None),  # Arabic-Indic 12: float() would read it
        (503, "\uff11\uff12", None),  # fullwidth 12
        (503, "soon", None),
        (503, "Wed, 01 Apr 2026 14:33:00 GMT", 60.0),  # an HTTP-date a minute ahead
        (429, "Wednesday, 01-Apr-26 14:34:00 GMT", 120.0),  # the obsolete RFC 850 form
        (503, "Wed, 01 Apr 2026 14:00:00 GMT", 0.0),  # already past: no extra wait
        (
            503,
            "Fri, 31 Dec 9999 23:59:59 GMT",
            (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - NOW).total_seconds(),
        ),
        (503, "Wed, 01 Apr 2026 14:33:00", None),  # no zone
        (503, "Wed, 32 Apr 2026 14:33:00 GMT", None),
        (503, "Wed, 01 Apr ²026 14:33:00 GMT", None),
        # Only an answer that is retried has a Retry-After worth reading.
        (200, "120", None),
        (302, "120", None),
        (400, "120", None),
        (410, "120", None),
    ],
)
def test_retry_after(status: int, header: str | None, seconds: float | None) -> None:
    assert retry_after(status, header, NOW) == seconds


DEFAULT = [5, 300, 1800, 7200, 18000, 36000, 36000]


@pytest.mark.parametrize(
    ("attempts", "retry_after_s", "cap", "low", "high"),
    [
        (1, None, 3600, 4.0, 6.0),
        (2, None, 3600, 240.0, 360.0),
        (3, None, 3600, 1440.0, 2160.0),
        (4, None, 3600, 5760.0, 8640.0),
        (7, None, 3600, 28800.0, 43200.0),
        (1, 60.0, 3600, 60.0, 60.0),  # longer than the schedule: honoured
        (2, 1.0, 3600, 240.0, 360.0),  # shorter than the schedule: the schedule wins
        (2, 0.0, 3600, 240.0, 360.0),
        (1, 99999.0, 3600, 3600.0, 3600.0),  # capped at retry_after_max
        (1, RETRY_AFTER_CAP, 3600, 3600.0, 3600.0),  # "very long" too
        (1, 99999.0, 600, 600.0, 600.0),  # a service's own cap
        (1, 99999.0, 0, 4.0, 6.0),  # a cap of 0 ignores Retry-After
        (7, 99999.0, 3600, 28800.0, 43200.0),  # a cap below the scheduled wait changes nothing
    ],
)
def test_next_delay(attempts: int, retry_after_s: float | None, cap: float, low: float, high: float) -> None:
    rng = random.Random(attempts)
    policy = RetryPolicy(jitter=0.2, retry_after_max=cap)
    for _ in range(50):
        delay = next_delay(DEFAULT, attempts, retry_after_s, policy, rng)
        assert delay is not None
        assert low <= delay <= high


@pytest.mark.parametrize(
    ("schedule", "attempts"), [(DEFAULT, 8), ([60, 300, 900], 4), ([], 1), ([1], 0), ([1], -1)]
)
def test_schedule_spent(schedule: list[int], attempts: int) -> None:
    assert next_delay(schedule, attempts, 120.0, RetryPolicy()) is None


def test_no_jitter_is_exact_and_the_default_cap_is_an_hour() -> None:
    assert next_delay([10, 20], 2, None, RetryPolicy(jitter=0)) == 20.0
    assert next_delay([10], 1, 1e9, RetryPolicy(jitter=0)) == RETRY_AFTER_MAX == 3600.0


def test_jitter_spreads_both_ways() -> None:
    rng = random.Random(7)
    values = [jittered(100, 0.2, rng) for _ in range(500)]
    assert min(values) < 90 < 110 < max(values)
    assert all(80 <= v <= 120 for v in values)
    assert jittered(0, 0.5, rng) == 0.0


@pytest.mark.parametrize(
    ("own", "expected"),
    [
        (None, [5, 300]),  # no schedule of its own: the service's
        ([60, 60, 600], [60, 60, 600]),  # the agent's replaces it
        ([], []),  # an empty one: no retries at all
    ],
)
def test_schedule_for(own: list[int] | None, expected: list[int]) -> None:
    default = (5, 300)
    got = schedule_for(own, default)
    assert got == expected
    assert got is not own  # a copy: the delivery document keeps its own


KEY = ConnectionKey("receiver.example", 443, True, True, None, None, None)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (TimeoutError(), ErrorKind.TIMEOUT),
        (aiohttp.ServerTimeoutError("read"), ErrorKind.TIMEOUT),
        (aiohttp.ConnectionTimeoutError("connect"), ErrorKind.TIMEOUT),
        (aiohttp.ClientConnectorError(KEY, AddressRefusedError("10.0.0.1 is private")), ErrorKind.SSRF),
        (aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "refused")), ErrorKind.CONNECT),
        (
            aiohttp.ClientConnectorCertificateError(KEY, ssl.SSLCertVerificationError("self-signed")),
            ErrorKind.TLS,
        ),
        (aiohttp.ClientConnectorSSLError(KEY, ssl.SSLError("wrong version")), ErrorKind.TLS),
        (aiohttp.ServerFingerprintMismatch(b"a", b"b", "receiver.example", 443), ErrorKind.TLS),
        (ssl.SSLError("bad record mac"), ErrorKind.TLS),
        (aiohttp.ServerDisconnectedError(), ErrorKind.CONNECT),
        (aiohttp.ClientPayloadError("cut short"), ErrorKind.CONNECT),
        (ConnectionResetError(104, "reset"), ErrorKind.CONNECT),
        (OSError("no route"), ErrorKind.CONNECT),
        (aiohttp.InvalidURL("http://[::1"), ErrorKind.INVALID_URL),
        (
            ValueError("Newline or carriage return character detected in HTTP status message"),
            ErrorKind.INVALID_REQUEST,
        ),
        (TypeError("header value must be str"), ErrorKind.INVALID_REQUEST),
        (RuntimeError("unexpected"), ErrorKind.INTERNAL),
        (KeyError("x"), ErrorKind.INTERNAL),
    ],
)
def test_error_kind(exc: Exception, kind: ErrorKind) -> None:
    assert error_kind(exc) is kind


@pytest.mark.parametrize(
    ("kind", "code", "expected"),
    [
        (None, None, D),
        (ErrorKind.RECIPIENT_REFUSED, 550, F),  # permanent
        (ErrorKind.RECIPIENT_REFUSED, 450, R),  # transient (greylisting)
        (ErrorKind.RECIPIENT_REFUSED, None, F),  # refused without a code
        (ErrorKind.SMTP_STATUS, 554, F),
        (ErrorKind.SMTP_STATUS, 421, R),
        (ErrorKind.SMTP_AUTH, None, R),  # fixing the credentials lets the retries through
        (ErrorKind.TIMEOUT, None, R),
        (ErrorKind.CONNECT, None, R),
        (ErrorKind.NOT_CONFIGURED, None, F),
        (ErrorKind.NO_ADDRESS, None, F),
    ],
)
def test_mail_verdict(kind: ErrorKind | None, code: int | None, expected: Verdict) -> None:
    assert mail_verdict(kind, code) is expected


def test_error_kinds_are_the_stored_strings() -> None:
    # Stored on attempts and shown by the API as they are: renaming one breaks readers.
    assert {k.value for k in ErrorKind} == {
        "timeout", "connect_error", "tls_error", "ssrf_refused", "redirect_not_followed",
        "http_status", "invalid_url", "invalid_request", "internal_error", "not_configured",
        "no_address", "recipient_refused", "smtp_auth", "smtp_status",
    }  # fmt: skip
