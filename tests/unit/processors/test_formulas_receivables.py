"""DSO worked by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from processors.formulas import BillingPeriod, Invoice, dso, dso_as_of_date, issued_in_window, receivables, store

PERIODS = [BillingPeriod(1, date(2026, 2, 1), date(2026, 2, 28), "closed"),
           BillingPeriod(2, date(2026, 3, 1), date(2026, 3, 31), "closed"),
           BillingPeriod(3, date(2026, 4, 1), date(2026, 4, 30), "open")]

INVOICES = [
    Invoice(1, D("1000.00"), "paid", date(2026, 1, 15), paid_on=date(2026, 2, 10)),
    Invoice(2, D("2000.00"), "issued", date(2026, 2, 20), written_off=D("200.00")),
    Invoice(3, D("500.00"), "paid", date(2026, 3, 25), paid_on=date(2026, 4, 5)),  # paid after the as-of date
    Invoice(4, D("700.00"), "issued", date(2025, 12, 31)),  # 90 days before: outside the window
    Invoice(5, D("300.00"), "void", date(2026, 3, 1)),
    Invoice(6, D("400.00"), "draft", None),
    Invoice(7, D("900.00"), "issued", date(2026, 4, 2)),  # after the as-of date
]


def test_dso_is_as_of_the_end_of_the_latest_closed_period():
    assert dso_as_of_date(PERIODS) == date(2026, 3, 31)


def test_dso_worked_by_hand():
    as_of = date(2026, 3, 31)
    assert receivables(INVOICES, as_of) == D("3000.00")  # 1800 + 500 + 700
    assert issued_in_window(INVOICES, as_of) == D("3500.00")  # 1000 + 2000 + 500
    assert store(dso(INVOICES, PERIODS), 2) == D("77.14")  # 3000 / 3500 × 90 = 77.142857…


def test_window_counts_ninety_days_ending_on_the_as_of_date():
    first_day = Invoice(8, D("100.00"), "issued", date(2026, 1, 1))
    assert issued_in_window([first_day], date(2026, 3, 31)) == D("100.00")


def test_dso_is_null_without_a_closed_period_or_without_invoices_in_the_window():
    assert dso(INVOICES, [PERIODS[2]]) is None
    assert dso([INVOICES[3]], PERIODS) is None
