"""ISO weeks (Monday start), weekdays (Monday to Friday) and month keys."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache


#: A week's Friday and Sunday, from its Monday.
FRIDAY = timedelta(days=4)
SUNDAY = timedelta(days=6)


@lru_cache(maxsize=65536)
def week_start_of(day: date) -> date:
    """The Monday of ``day``'s ISO week.

    Remembered per day: the stages ask it for every time entry they fold, of a few hundred distinct days, and
    the lookup costs a fraction of the date arithmetic."""
    return day - timedelta(days=day.weekday())


def week_end_of(week_start: date) -> date:
    """The Sunday of the week starting on Monday ``week_start``."""
    _require_monday(week_start)
    return week_start + SUNDAY


def _require_monday(week_start: date) -> None:
    if week_start.weekday() != 0:
        raise ValueError(f"week_start {week_start} is not a Monday")


#: weekdays among ``rest`` consecutive days from a day of weekday ``first`` (0 = Monday): _REST_WEEKDAYS[first][rest]
_REST_WEEKDAYS = tuple(tuple(sum(1 for i in range(rest) if (first + i) % 7 < 5) for rest in range(7))
                       for first in range(7))


def weekdays_between(start: date, end: date) -> int:
    """Number of Monday-to-Friday dates in [start, end]; 0 when end < start.

    Five per whole week, and the days left over counted from a table (a week's capacity asks this for each
    assignment and time-off request, so it is in every resource_week row)."""
    if end < start:
        return 0
    full, rest = divmod((end - start).days + 1, 7)
    return full * 5 + _REST_WEEKDAYS[start.weekday()][rest]


def weekdays_in(start: date, end: date, week_start: date) -> int:
    """Weekdays of [start, end] that fall inside the week starting ``week_start`` (0..5)."""
    _require_monday(week_start)
    return weekdays_between(max(start, week_start), min(end, week_start + FRIDAY))


def in_week(day: date, week_start: date) -> bool:
    """Whether ``day`` is between the week's Monday and its Sunday."""
    return week_start <= day <= week_end_of(week_start)


def month_start(day: date | datetime) -> date:
    """First day of the month; an instant is taken in UTC first."""
    if isinstance(day, datetime):
        if day.tzinfo is None:
            raise ValueError("an instant must be timezone-aware")
        day = day.astimezone(timezone.utc).date()
    return day.replace(day=1)
