"""Next runs of five-field cron expressions (UTC), as resonate.sql computes them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from asyncrpc.server.cron import CronError, next_run


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("* * * * *", "2026-12-01 12:00:00", "2026-12-01 12:01:00"),
        ("* * * * *", "2026-12-01 12:00:59.999", "2026-12-01 12:01:00"),
        ("*/15 * * * *", "2026-12-01 12:01:00", "2026-12-01 12:15:00"),
        ("5/20 * * * *", "2026-12-01 12:26:00", "2026-12-01 12:45:00"),
        ("0 9-17/4 * * *", "2026-12-01 13:00:00", "2026-12-01 17:00:00"),
        ("30 2 * * *", "2026-12-01 03:00:00", "2026-12-02 02:30:00"),
        ("0 0 1 * *", "2026-12-15 00:00:00", "2027-01-01 00:00:00"),
        ("0 0 29 2 *", "2026-03-01 00:00:00", "2028-02-29 00:00:00"),
        ("0 12 * * 0", "2026-12-01 00:00:00", "2026-12-06 12:00:00"),  # a Sunday
        ("0 12 * * 1,3", "2026-12-01 13:00:00", "2026-12-02 12:00:00"),  # Tue -> Wed
        # both day fields restricted: either matches (the 15th or a Monday)
        ("0 0 15 * 1", "2026-12-01 00:00:00", "2026-12-07 00:00:00"),
        ("0 0 3 * 1", "2026-12-01 00:00:00", "2026-12-03 00:00:00"),
        ("  0   0  1  1  *  ", "2026-12-01 00:00:00", "2027-01-01 00:00:00"),
    ],
)
def test_next_run(cron: str, after: str, expected: str) -> None:
    assert next_run(cron, ms(after)) == ms(expected)


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("* * * *", "5"),
        ("* * * * * *", "5"),
        ("60 * * * *", "from 0 to 59"),
        ("* 24 * * *", "from 0 to 23"),
        ("* * 0 * *", "from 1 to 31"),
        ("* * * 13 *", "from 1 to 12"),
        ("* * * * 7", "from 0 to 6"),
        ("*/0 * * * *", "at least 1"),
        ("* * * JAN *", "not a number"),
        ("\u00b2 * * * *", "not a number"),  # a superscript 2: isdigit(), but not for int()
        ("* \uff15 * * *", "not a number"),  # a fullwidth 5
        ("@daily", "5"),
        ("0 0 31 2 *", "no time"),
    ],
)
def test_bad_expressions_say_what_is_wrong(cron: str, why: str) -> None:
    with pytest.raises(CronError, match=why):
        next_run(cron, 0)
