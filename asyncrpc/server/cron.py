"""The next run of a five-field cron expression, in UTC, as resonate.sql computes it.

``minute hour day-of-month month day-of-week``; each field is ``*``, a
number, a range ``a-b``, a step ``x/n`` (from ``x`` to the field's end) or
``a-b/n``, or a comma list of these. Day-of-week counts 0 (Sunday) to 6.
When both day fields are restricted, a day matches if either does (the
classic cron rule). Names (``MON``, ``JAN``) and ``@daily``-style shorthands
are not part of the protocol's cron and are refused.

The text is read as resonate.sql reads it: spaces (only spaces) trimmed from
both ends, fields split on runs of whitespace, a number read as Postgres casts
text to an integer (``+5``, ``05``, ``0x1F`` and ``1_0`` are numbers; ``²``
and full-width digits are not), ``a-b`` and ``x/n`` split at their first ``-`` and ``/``
and read up to the next one. A tab or newline at either end is a field of its
own, and empty: six fields, refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asyncrpc.server.fields import parse_int

#: How far ahead a next run is searched for before the expression counts as never matching.
HORIZON_YEARS = 9

#: What Postgres's ``\s`` matches (its regular expressions' whitespace in a UTF-8 database):
#: Python's whitespace less the file and record separators, NEL and the non-breaking spaces.
SEPARATOR = re.compile("[\t\n\v\f\r \u1680\u2000-\u2006\u2008-\u200a\u2028\u2029\u205f\u3000]+")

#: (name, lowest, highest) of each field, in order.
FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)


class CronError(ValueError):
    """The expression is not a five-field cron expression, or it never matches."""


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        parts = SEPARATOR.split(expression.strip(" "))
        if len(parts) != len(FIELDS):
            raise CronError(
                f"cron {expression!r} has {len(parts)} fields; "
                "it needs 5: minute hour day-of-month month day-of-week"
            )
        minutes, hours, days, months, weekdays = (
            _field(part, *spec) for part, spec in zip(parts, FIELDS, strict=True)
        )
        return cls(
            minutes,
            hours,
            days,
            months,
            weekdays,
            any_day=parts[2] == "*",
            any_weekday=parts[4] == "*",
        )

    def day_matches(self, moment: datetime) -> bool:
        weekday = (moment.weekday() + 1) % 7  # Sunday is 0
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return weekday in self.weekdays
        if self.any_weekday:
            return moment.day in self.days
        return moment.day in self.days or weekday in self.weekdays


def next_run(expression: str, after_ms: int) -> int:
    """The first matching minute strictly after ``after_ms`` (ms since the epoch, UTC)."""
    cron = Cron.parse(expression)
    moment = datetime.fromtimestamp(after_ms // 60_000 * 60, UTC) + timedelta(minutes=1)
    cutoff = moment.replace(year=moment.year + HORIZON_YEARS, day=min(moment.day, 28))
    while moment < cutoff:
        if moment.month not in cron.months:
            moment = _next_month(moment)
        elif not cron.day_matches(moment):
            moment = moment.replace(hour=0, minute=0) + timedelta(days=1)
        elif moment.hour not in cron.hours:
            moment = moment.replace(minute=0) + timedelta(hours=1)
        elif moment.minute in cron.minutes:
            return int(moment.timestamp()) * 1000
        else:
            moment += timedelta(minutes=1)
    raise CronError(f"cron {expression!r} matches no time in the next {HORIZON_YEARS} years")


def _next_month(moment: datetime) -> datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(year=year, month=month, day=1, hour=0, minute=0)


def _field(spec: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in spec.split(","):
        span, slash, step_text = part.partition("/")
        step = _number(_first(step_text, "/"), name, spec) if slash else 1
        if step < 1:
            raise CronError(f"cron {name} {spec!r}: a step must be at least 1")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            start, _, end = span.partition("-")
            first, last = _number(start, name, spec), _number(_first(end, "-"), name, spec)
        else:
            first = _number(span, name, spec)
            last = high if slash else first
        if not (low <= first <= high and low <= last <= high):
            raise CronError(f"cron {name} {spec!r}: values must be from {low} to {high}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _first(text: str, separator: str) -> str:
    """``text`` up to ``separator`` (Postgres's ``split_part``: what follows a second one is
    ignored)."""
    return text.partition(separator)[0]


def _number(text: str, name: str, spec: str) -> int:
    number = parse_int(text, bits=32)
    if number is None:
        raise CronError(f"cron {name} {spec!r}: {text!r} is not a number (names are not supported)")
    return number
