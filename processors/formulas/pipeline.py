"""Pipeline and bookings (DOMAIN.md section 2): group keys and sums, exact."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from .project import contract_value
from .rounding import ZERO
from .rows import CLOSED_WON, ChangeOrder, Opportunity
from .weeks import month_start


@dataclass(frozen=True)
class PipelineRow:
    """One reporting.pipeline row: open opportunities of a service line closing in a month."""

    service_line: str
    close_month: date
    open_count: int
    open_amount: Decimal
    weighted_amount: Decimal


@dataclass(frozen=True)
class BookingsRow:
    """One reporting.bookings row: closed_won opportunities of a service line won in a month (UTC)."""

    service_line: str
    won_month: date
    won_count: int
    contract_value: Decimal


def weighted_pipeline(o: Opportunity) -> Decimal:
    """amount × probability / 100 for an open stage; 0 for closed_won and closed_lost."""
    if not o.is_open:
        return ZERO
    return o.amount * o.probability / 100


def pipeline_rows(opportunities: Iterable[Opportunity]) -> dict[tuple[str, date], PipelineRow]:
    """Open opportunities grouped by (service_line, first day of the month of expected_close_date).

    An open opportunity without an expected_close_date has no month and is left out.
    """
    rows: dict[tuple[str, date], PipelineRow] = {}
    for o in opportunities:
        if not o.is_open or o.expected_close_date is None:
            continue
        key = (o.service_line, month_start(o.expected_close_date))
        prev = rows.get(key) or PipelineRow(key[0], key[1], 0, ZERO, ZERO)
        rows[key] = PipelineRow(
            key[0], key[1], prev.open_count + 1, prev.open_amount + o.amount,
            prev.weighted_amount + weighted_pipeline(o),
        )
    return rows


def bookings_rows(
    opportunities: Iterable[Opportunity], change_orders: Mapping[int, Sequence[ChangeOrder]]
) -> dict[tuple[str, date], BookingsRow]:
    """closed_won opportunities grouped by (service_line, first day of the UTC month of closed_at).

    ``change_orders`` maps opportunity_id to its change orders; contract_value
    counts the approved ones.
    """
    rows: dict[tuple[str, date], BookingsRow] = {}
    for o in opportunities:
        if o.stage != CLOSED_WON or o.closed_at is None:
            continue
        key = (o.service_line, month_start(o.closed_at))
        prev = rows.get(key) or BookingsRow(key[0], key[1], 0, ZERO)
        value = contract_value(o, change_orders.get(o.opportunity_id, ()))
        rows[key] = BookingsRow(key[0], key[1], prev.won_count + 1, prev.contract_value + value)
    return rows
