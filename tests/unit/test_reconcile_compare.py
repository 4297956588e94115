"""psmesh.reconcile.compare: differences between expected and actual views, and the SQL's building blocks."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from psmesh.reconcile import VIEW_COLUMNS, VIEW_KEYS, VIEW_SQL, compare

WEEK = date(2026, 1, 5)


def views(**overrides):
    base = {
        "resource_week": {(7, WEEK): {"capacity_hours": Decimal("40.00"), "utilization": Decimal("0.7500")}},
        "project_risks": {("PRJ-1", "burn"): {}},
    }
    base.update(overrides)
    return base


def test_equal_views_have_no_differences():
    assert compare(views(), views()) == []


def test_decimals_compare_by_value_not_by_scale():
    actual = views(resource_week={(7, WEEK): {"capacity_hours": Decimal("40"), "utilization": Decimal("0.75")}})
    assert compare(views(), actual) == []


def test_missing_and_extra_keys_are_named():
    actual = views(project_risks={("PRJ-2", "margin"): {}})
    assert compare(views(), actual) == [
        "project_risks (PRJ-1, burn): missing",
        "project_risks (PRJ-2, margin): extra row",
    ]


def test_a_differing_column_shows_both_values():
    actual = views(resource_week={(7, WEEK): {"capacity_hours": Decimal("40.00"), "utilization": Decimal("0.7501")}})
    assert compare(views(), actual) == [
        "resource_week (7, 2026-01-05): utilization expected Decimal('0.7500'), got Decimal('0.7501')"
    ]


def test_null_differs_from_zero_and_equals_null():
    null = views(resource_week={(7, WEEK): {"capacity_hours": Decimal("40.00"), "utilization": None}})
    zero = views(resource_week={(7, WEEK): {"capacity_hours": Decimal("40.00"), "utilization": Decimal(0)}})
    assert compare(null, null) == []
    assert compare(null, zero) == ["resource_week (7, 2026-01-05): utilization expected None, got Decimal('0')"]


def test_absent_columns_and_views_are_differences():
    actual = views(resource_week={(7, WEEK): {"capacity_hours": Decimal("40.00")}})
    assert compare(views(), actual) == ["resource_week (7, 2026-01-05): utilization expected Decimal('0.7500'), got <absent>"]
    assert compare(views(), {"project_risks": views()["project_risks"]}) == ["resource_week: view missing (1 rows expected)"]
    assert compare({}, {"pipeline": {}}) == ["pipeline: unexpected view (0 rows)"]


def test_one_query_per_reporting_view_with_its_contract_columns():
    assert set(VIEW_SQL) == set(VIEW_KEYS) == set(VIEW_COLUMNS) == {
        "project_financials", "resource_week", "skill_week", "pipeline", "bookings", "project_risks"}
    for view, query in VIEW_SQL.items():
        select = query.rsplit("SELECT", 1)[-1]
        for column in (*VIEW_KEYS[view], *VIEW_COLUMNS[view]):
            assert column in select, (view, column)
