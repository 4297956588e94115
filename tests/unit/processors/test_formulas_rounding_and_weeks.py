"""store() rounds half away from zero; weeks are ISO weeks with Monday-to-Friday weekdays."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal as D
from fractions import Fraction

import pytest

from processors.formulas import month_start, store, store_ratio, week_start_of, weekdays_between, weekdays_in


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


def test_a_ratio_a_numeric_7_4_cannot_hold_is_stored_null_as_for_a_zero_denominator():
    assert store_ratio(D("999.99994")) == D("999.9999")
    assert store_ratio(D("-999.99994")) == D("-999.9999")
    assert store_ratio(D("999.99995")) is None  # rounds to 1000.0000
    assert store_ratio(Fraction(1) - Fraction("1680.70")) is None
    assert store_ratio(Fraction(2701, 1)) is None
    assert store_ratio(Fraction(1, 3)) == D("0.3333")
    assert store_ratio(None) is None


def test_a_project_whose_ratios_overflow_still_publishes_its_row_in_its_avro_schema():
    """The row the project stage computes for a project that delivered 1.00 at a cost of 1,680.70 encodes with
    views.project_financials' schema: its ratios are null, its money columns exact."""
    import json
    from pathlib import Path

    import fastavro

    from processors.project import ProjectStage
    from processors.records import parse

    opportunity = {"opportunity_id": 8, "account_id": 1, "name": "overrun", "stage": "closed_won",
                   "probability": "100.00", "amount": "1.00", "currency": "EUR", "service_line": "security",
                   "contract_type": "time_and_materials", "estimated_hours": "0.01", "target_start_date": None,
                   "target_end_date": None, "expected_close_date": None, "closed_at": "2026-03-01T00:00:00+00:00"}
    stage = ProjectStage()
    stage.on_row("PRJ-8", "opportunity", 8, (parse("opportunity", opportunity), opportunity))
    for n, (hours, billable, cost_rate) in enumerate([("0.01", True, "70.00"), ("12.00", False, "140.00")]):
        entry = {"entry_id": n, "resource_id": 1, "project_code": "PRJ-8", "role": "analyst", "work_date": "2026-03-02",
                 "hours": hours, "billable": billable, "bill_rate": "100.00", "cost_rate": cost_rate,
                 "status": "approved"}
        stage.on_row("PRJ-8", "entry", n, parse("entry", entry))
    [row] = [row for view, _, row in stage.view_rows() if view == "project_financials"]
    assert (row["margin_pct"], row["hours_burn"]) == (None, None)
    assert (row["delivered_value"], row["cost"]) == (D("1.00"), D("1680.70"))
    schema = json.loads((Path(__file__).parents[3] / "schemas/views/project_financials-value.avsc").read_text())
    record = {**row, "updated_at": datetime(2026, 3, 3, tzinfo=timezone.utc)}
    fastavro.validation.validate(record, fastavro.parse_schema(schema), raise_errors=True)
