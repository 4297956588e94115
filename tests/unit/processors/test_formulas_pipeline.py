"""Weighted pipeline, pipeline rows and bookings rows."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal as D

from processors.formulas import ChangeOrder, Opportunity, bookings_rows, pipeline_rows, weighted_pipeline


def opp(oid, stage, prob, amount, line="security", close=date(2026, 3, 15), closed_at=None):
    return Opportunity(oid, stage, D(prob), D(amount), line, "fixed_fee", D("10.00"), close, closed_at)


def test_weighted_pipeline_is_amount_times_probability_for_open_stages_only():
    assert weighted_pipeline(opp(1, "proposal", "35.50", "1000.00")) == D("355.0000")
    assert weighted_pipeline(opp(2, "closed_won", "100", "1000.00")) == 0
    assert weighted_pipeline(opp(3, "closed_lost", "0", "1000.00")) == 0


def test_pipeline_rows_group_open_opportunities_by_service_line_and_close_month():
    rows = pipeline_rows([
        opp(1, "proposal", "50", "100.00", close=date(2026, 3, 1)),
        opp(2, "negotiation", "25", "200.00", close=date(2026, 3, 31)),
        opp(3, "prospecting", "10", "300.00", close=date(2026, 4, 1)),
        opp(4, "closed_won", "100", "999.00", close=date(2026, 3, 5)),
        opp(5, "qualification", "20", "50.00", line="data_analytics", close=date(2026, 3, 9)),
    ])
    march = rows[("security", date(2026, 3, 1))]
    assert (march.open_count, march.open_amount, march.weighted_amount) == (2, D("300.00"), D("100"))
    assert rows[("security", date(2026, 4, 1))].weighted_amount == D("30")
    assert rows[("data_analytics", date(2026, 3, 1))].open_count == 1
    assert len(rows) == 3


def test_bookings_rows_group_won_by_utc_month_of_closed_at_summing_contract_value():
    east = timezone(timedelta(hours=3))
    won_april_utc = datetime(2026, 4, 1, 1, 0, tzinfo=east)  # 22:00 UTC on March 31
    rows = bookings_rows(
        [opp(1, "closed_won", "100", "100.00", closed_at=won_april_utc),
         opp(2, "closed_won", "100", "50.00", closed_at=datetime(2026, 3, 2, tzinfo=timezone.utc)),
         opp(3, "closed_lost", "0", "70.00", closed_at=datetime(2026, 3, 2, tzinfo=timezone.utc)),
         opp(4, "closed_won", "100", "10.00", closed_at=datetime(2026, 4, 2, tzinfo=timezone.utc))],
        {1: [ChangeOrder(1, 1, D("25.00"), D("0"), "approved"), ChangeOrder(2, 1, D("5.00"), D("0"), "draft")]},
    )
    march = rows[("security", date(2026, 3, 1))]
    assert (march.won_count, march.contract_value) == (2, D("175.00"))
    april = rows[("security", date(2026, 4, 1))]
    assert (april.won_count, april.contract_value) == (1, D("10.00"))
