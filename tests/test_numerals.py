"""Numbers read from untrusted text (sayso_common.numerals): ASCII digits only, bounded, and
None rather than an exception for anything else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sayso_common.numerals import RETRY_AFTER_CAP, leading_int, parse_uint, retry_after_seconds

NOW = datetime(2026, 4, 1, 14, 32, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "max_digits", "base", "expected"),
    [
        ("0", 12, 10, 0),
        ("7", 12, 10, 7),
        ("1767225600", 12, 10, 1767225600),
        ("007", 12, 10, 7),
        ("999999999999", 12, 10, 999999999999),
        ("1000000000000", 12, 10, None),  # one digit too many
        ("9" * 5000, 12, 10, None),  # int() would raise past 4,300 digits
        (None, 12, 10, None),
        ("", 12, 10, None),
        ("²", 12, 10, None),  # isdigit() is true, int() raises
        ("1²", 12, 10, None),
        ("\u0661\u0662", 12, 10, None),  # Arabic-Indic digits: int() reads 12
        ("\uff11\uff12", 12, 10, None),  # fullwidth digits: int() reads 12
        ("\u07c1", 12, 10, None),  # NKo digit one
        ("+12", 12, 10, None),
        ("-12", 12, 10, None),
        (" 12", 12, 10, None),
        ("12 ", 12, 10, None),
        ("12\n", 12, 10, None),
        ("\t12", 12, 10, None),
        ("1_000", 12, 10, None),  # int() takes underscores
        ("1.5", 12, 10, None),
        ("1e3", 12, 10, None),
        ("0x10", 12, 10, None),
        ("12abc", 12, 10, None),
        ("ff", 4, 16, 255),
        ("FF", 4, 16, 255),
        ("0xff", 4, 16, None),
        ("fg", 4, 16, None),
        ("\uff46", 4, 16, None),  # fullwidth f
        ("177", 4, 8, 127),
        ("8", 4, 8, None),
        ("19", 4, 8, None),
    ],
)
def test_parse_uint(text: str | None, max_digits: int, base: int, expected: int | None) -> None:
    assert parse_uint(text, max_digits, base) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1500", 1500),
        ("1500ms", 1500),  # parseInt reads the leading digits
        ("  30", 30),
        ("\t30", 30),
        ("+30", 30),
        ("-30", -30),
        ("0", 0),
        ("000042", 42),
        ("9" * 5000, 60_000),  # capped without parsing five thousand digits
        ("-" + "9" * 5000, -60_000),
        ("60001", 60_000),
        ("60000", 60_000),
        (None, None),
        ("", None),
        ("ms", None),
        ("+", None),
        ("- 5", None),
        ("²", None),
        ("\u0661\u0665\u0660\u0660", None),  # JavaScript's parseInt reads only ASCII digits too
        ("1²", 1),
        ("3.9", 3),
    ],
)
def test_leading_int(text: str | None, expected: int | None) -> None:
    assert leading_int(text, 60_000) == expected


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("7", 7.0),
        (" 120 ", 120.0),
        ("\t120", 120.0),
        ("0120", 120.0),
        ("9999999999", 9999999999.0),
        ("99999999999", RETRY_AFTER_CAP),  # very long: capped (the sender caps it further)
        ("9" * 5000, RETRY_AFTER_CAP),
        ("-5", None),
        ("+5", None),
        ("5.5", None),
        ("1e3", None),
        ("inf", None),
        ("nan", None),
        ("1_0", None),
        ("²", None),  # isdigit() is true, float() raises
        ("\u0661\u0662\u0660", None),  # float() reads 120
        ("\uff11\uff12\uff10", None),
        (" ", None),
        ("soon", None),
        ("Wed, 01 Apr 2026 14:33:00 GMT", 60.0),
        ("Wed, 01 Apr 2026 14:00:00 GMT", 0.0),  # in the past: no extra wait
        ("  Wed, 01 Apr 2026 14:33:00 GMT  ", 60.0),
        ("Wed, 01 Apr 2026 14:33:00", None),  # no zone: not an HTTP-date
        ("Wed, 01 Apr ²026 14:33:00 GMT", None),
        ("Wed, 01 Apr 99999999999 14:33:00 GMT", None),
        ("Wed, 32 Apr 2026 14:33:00 GMT", None),
    ],
)
def test_retry_after_seconds(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, NOW) == seconds
