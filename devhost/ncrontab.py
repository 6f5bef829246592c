"""NCRONTAB schedules, as the Functions host reads a timer trigger's ``schedule``.

Six fields, seconds first: ``{second} {minute} {hour} {day} {month} {day-of-week}``, in UTC (the
host's default without ``WEBSITE_TIME_ZONE``). ``croniter`` parses and steps them; this module only
pins the field order and refuses what the host would refuse (five-field cron, TimeSpan strings).
"""

from __future__ import annotations

from datetime import datetime

from croniter import croniter


class ScheduleError(ValueError):
    """Not a six-field NCRONTAB expression."""


def parse_schedule(expression: str) -> str:
    """Check an NCRONTAB expression and return it with single spaces."""
    fields = expression.split()
    if len(fields) != 6:
        raise ScheduleError(f"schedule {expression!r} is not NCRONTAB (six fields, seconds first)")
    normalised = " ".join(fields)
    if not croniter.is_valid(normalised, second_at_beginning=True):
        raise ScheduleError(f"schedule {expression!r} is not a valid NCRONTAB expression")
    return normalised


def next_occurrence(schedule: str, after: datetime) -> datetime:
    """The first occurrence strictly after ``after`` (an aware UTC datetime)."""
    occurrence: datetime = croniter(schedule, after, second_at_beginning=True).get_next(datetime)
    return occurrence
