"""store() rounds half away from zero; weeks are ISO weeks with Monday-to-Friday weekdays."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal as D
from fractions import Fraction

import pytest

from processors.formulas import month_start, store, week_start_of, weekdays_between, weekdays_in


def test_store_rounds_half_away_from_zero_both_signs():
    assert store(D("0.125"), 2) == D("0.13")
    assert store(D("-0.125"), 2) == D("-0.13")
    assert store(D("0.124999"), 2) == D("0.12")
    assert store(D("2.5"), 0) == D("3")


def test_store_keeps_the_column_scale_and_null():
    assert str(store(D("1"), 2)) == "1.00"
    assert str(store(D("0.5"), 4)) == "0.5000"
    assert store(None, 2) is None


def test_store_rounds_an_exact_fraction_without_drift():
    assert store(Fraction(1, 8), 2) == D("0.13")
    assert store(Fraction(-1, 8), 2) == D("-0.13")
    assert store(Fraction(2, 3), 4) == D("0.6667")


def test_weekdays_in_counts_only_monday_to_friday_of_the_week():
    monday = date(2026, 3, 2)
    assert weekdays_in(date(2026, 2, 1), date(2026, 4, 1), monday) == 5
    assert weekdays_in(date(2026, 3, 4), date(2026, 3, 8), monday) == 3  # Wed..Sun
    assert weekdays_in(date(2026, 3, 7), date(2026, 3, 8), monday) == 0  # weekend only
    assert weekdays_in(date(2026, 3, 9), date(2026, 3, 20), monday) == 0  # after the week
    assert weekdays_in(date(2026, 3, 5), date(2026, 3, 3), monday) == 0  # inverted range


def test_weekdays_in_refuses_a_week_start_that_is_not_a_monday():
    with pytest.raises(ValueError):
        weekdays_in(date(2026, 3, 2), date(2026, 3, 6), date(2026, 3, 3))


def test_weekdays_between_matches_a_day_by_day_count():
    for first in range(7):  # a start on each day of the week
        start = date(2026, 1, 1) + timedelta(days=first)
        for length in range(0, 30):
            end = start + timedelta(days=length)
            expected = sum(1 for i in range(length + 1) if (start + timedelta(days=i)).weekday() < 5)
            assert weekdays_between(start, end) == expected
        assert weekdays_between(start, start - timedelta(days=1)) == 0


def test_week_start_is_the_iso_monday():
    assert week_start_of(date(2026, 3, 8)) == date(2026, 3, 2)  # Sunday belongs to the week before
    assert week_start_of(date(2026, 3, 2)) == date(2026, 3, 2)


def test_month_start_takes_an_instant_in_utc():
    late_local = datetime(2026, 3, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5)))  # 01:00 UTC on April 1
    assert month_start(late_local) == date(2026, 4, 1)
    assert month_start(date(2026, 3, 31)) == date(2026, 3, 1)


def test_a_60_digit_quotient_stores_as_the_exact_ratio_does():
    # the stages divide in 60 digits (rounding.quotient) where the formulas take the exact rational (ratio)
    import random

    from processors.formulas.rounding import quotient, ratio

    rng = random.Random(5)
    cases = [(D("22.50"), D("40.00")), (D("1"), D("3")), (D("0.00005"), D("1")), (D("-0.00005"), D("1")),
             (D("2"), D("0.00"))]
    cases += [(D(rng.randint(-10**7, 10**7)).scaleb(-2), D(rng.randint(1, 10**6)).scaleb(-2)) for _ in range(20000)]
    for numerator, denominator in cases:
        for scale in (2, 4):
            assert store(quotient(numerator, denominator), scale) == store(ratio(numerator, denominator), scale), \
                (numerator, denominator, scale)
