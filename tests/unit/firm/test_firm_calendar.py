"""The simulated calendar: weekdays are Monday to Friday, weeks are ISO weeks."""

from datetime import UTC, date, datetime

from psmesh.firm.model import add_weekdays, instant, is_weekday, iso_week, simulated_days, week_start, weekdays_between


def test_weekdays_are_monday_to_friday():
    week = [date(2026, 1, 5 + i) for i in range(7)]  # Monday 2026-01-05 .. Sunday
    assert [is_weekday(d) for d in week] == [True] * 5 + [False] * 2


def test_week_start_is_the_monday_of_the_iso_week():
    assert week_start(date(2026, 1, 11)) == date(2026, 1, 5)
    assert week_start(date(2026, 1, 5)) == date(2026, 1, 5)
    assert week_start(date(2027, 1, 1)) == date(2026, 12, 28)


def test_iso_week_crosses_the_year_boundary():
    assert iso_week(date(2027, 1, 1)) == (2026, 53)
    assert iso_week(date(2025, 12, 29)) == (2026, 1)


def test_weekdays_between_counts_both_ends_and_skips_weekends():
    assert weekdays_between(date(2026, 1, 5), date(2026, 1, 11)) == 5
    assert weekdays_between(date(2026, 1, 9), date(2026, 1, 12)) == 2  # Friday to Monday
    assert weekdays_between(date(2026, 1, 10), date(2026, 1, 11)) == 0
    assert weekdays_between(date(2026, 1, 12), date(2026, 1, 5)) == 0
    assert weekdays_between(date(2026, 1, 1), date(2026, 12, 31)) == 261


def test_add_weekdays_skips_weekends():
    assert add_weekdays(date(2026, 1, 9), 1) == date(2026, 1, 12)
    assert add_weekdays(date(2026, 1, 10), 0) == date(2026, 1, 12)
    assert add_weekdays(date(2026, 1, 5), 10) == date(2026, 1, 19)


def test_simulated_days_start_on_a_monday_and_cover_whole_weeks():
    days = list(simulated_days(date(2026, 1, 7), 2))
    assert days[0] == date(2026, 1, 5) and days[-1] == date(2026, 1, 18) and len(days) == 14


def test_instants_come_from_the_simulated_day_in_utc():
    assert instant(date(2026, 1, 5), 17, 30) == datetime(2026, 1, 5, 17, 30, tzinfo=UTC)
