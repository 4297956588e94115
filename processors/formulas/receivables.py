"""Days sales outstanding (DOMAIN.md section 2)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal

from .rounding import ZERO, ratio
from .rows import BillingPeriod, Invoice

DSO_WINDOW_DAYS = 90
CLOSED = "closed"
VOID = "void"


def dso_as_of_date(periods: Iterable[BillingPeriod]) -> date | None:
    """end_date of the latest closed billing period (the greatest end_date); None when none is closed."""
    ends = [p.end_date for p in periods if p.status == CLOSED]
    return max(ends) if ends else None


def _issued_by(inv: Invoice, as_of: date) -> bool:
    return inv.status != VOID and inv.issued_on is not None and inv.issued_on <= as_of


def receivables(invoices: Iterable[Invoice], as_of: date) -> Decimal:
    """Σ (amount − written_off) of invoices issued on or before ``as_of`` and not paid by it.

    Void invoices never count; an invoice paid after ``as_of`` is still open at ``as_of``.
    """
    return sum(
        (i.amount - i.written_off for i in invoices
         if _issued_by(i, as_of) and (i.paid_on is None or i.paid_on > as_of)),
        ZERO,
    )


def issued_in_window(invoices: Iterable[Invoice], as_of: date) -> Decimal:
    """Σ amount of invoices issued in the 90 days up to ``as_of``: as_of − 89 ≤ issued_on ≤ as_of."""
    first = as_of - timedelta(days=DSO_WINDOW_DAYS - 1)
    return sum((i.amount for i in invoices if _issued_by(i, as_of) and i.issued_on >= first), ZERO)  # type: ignore[operator]


def dso_at(invoices: Iterable[Invoice], as_of: date) -> Decimal | None:
    """receivables / issued_in_window × 90 at ``as_of``; None when nothing was issued in the window."""
    invoices = list(invoices)
    return ratio(receivables(invoices, as_of) * DSO_WINDOW_DAYS, issued_in_window(invoices, as_of))


def dso(invoices: Iterable[Invoice], periods: Iterable[BillingPeriod]) -> Decimal | None:
    """DSO as of the end_date of the latest closed billing period; None without a closed period."""
    as_of = dso_as_of_date(periods)
    return None if as_of is None else dso_at(invoices, as_of)
