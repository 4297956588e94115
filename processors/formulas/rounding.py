"""Exact arithmetic and the one place a value is rounded: when it is stored.

Sums stay exact ``Decimal``. A quotient is formed once, from exact operands,
as a :class:`fractions.Fraction`, and turned into a ``Decimal`` in a context
wide enough (60 digits) that rounding it later to a column's scale gives the
same result as rounding the exact rational: a rational with a small
denominator that is not itself a terminating decimal cannot lie within
10**-50 of a half-way point.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction

_WIDE = Context(prec=60, rounding=ROUND_HALF_UP)

#: Column scales of the reporting store (DOMAIN.md section 4).
MONEY_SCALE = 2
HOURS_SCALE = 2
RATIO_SCALE = 4
#: A stored ratio is numeric(7,4) (DOMAIN.md section 4): it holds less than 1,000 (100,000 %) either way.
RATIO_LIMIT = Decimal(1000)

ZERO = Decimal(0)
#: the quantum of each scale, formed once: store() runs for every column of every view row published
_QUANTA = {scale: Decimal(1).scaleb(-scale) for scale in range(0, 13)}


def exact_ratio(numerator: Decimal | Fraction | int, denominator: Decimal | Fraction | int) -> Fraction | None:
    """numerator / denominator exactly; None when the denominator is zero."""
    den = Fraction(denominator)
    if den == 0:
        return None
    return Fraction(numerator) / den


def quotient(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    """numerator / denominator to 60 digits; None when the denominator is zero.

    Cheaper than a ``Fraction`` and, for the same reason as :func:`to_decimal`,
    rounded by :func:`store` and compared with a decimal threshold as the exact
    rational would be: a ratio of amounts with a few decimals that is not on a
    rounding half-way point or a threshold lies far further than 10**-50 from it.
    """
    if not denominator:
        return None
    return _WIDE.divide(numerator, denominator)


def wide(operation: str, a: Decimal, b: Decimal) -> Decimal:
    """``a`` (operation) ``b`` in the 60-digit context: exact for the amounts and quotients kept here."""
    return getattr(_WIDE, operation)(a, b)


def to_decimal(value: Fraction | Decimal | int | None) -> Decimal | None:
    """A ``Decimal`` for an exact rational: exact when it terminates, else 60 digits."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    if type(value) is not Fraction:
        value = Fraction(value)
    return _WIDE.divide(Decimal(value.numerator), Decimal(value.denominator))


def ratio(numerator: Decimal | Fraction | int, denominator: Decimal | Fraction | int) -> Decimal | None:
    """numerator / denominator as a ``Decimal``; None when the denominator is zero."""
    return to_decimal(exact_ratio(numerator, denominator))


def store(value: Decimal | Fraction | int | None, scale: int) -> Decimal | None:
    """Round ``value`` half away from zero to ``scale`` places, for storage only.

    None stays None (a null ratio). A ``Fraction`` is rounded exactly.
    """
    if value is None:
        return None
    quantum = _QUANTA.get(scale) or Decimal(1).scaleb(-scale)
    if type(value) is Decimal:
        return value.quantize(quantum, rounding=ROUND_HALF_UP, context=_WIDE)
    if isinstance(value, Fraction):
        scaled = abs(value) * 10**scale
        whole, rest = divmod(scaled.numerator, scaled.denominator)
        if 2 * rest >= scaled.denominator:
            whole += 1
        sign = -1 if value < 0 else 1
        return (Decimal(sign * whole).scaleb(-scale)).quantize(quantum)
    return Decimal(value).quantize(quantum, rounding=ROUND_HALF_UP, context=_WIDE)


def store_ratio(value: Decimal | Fraction | int | None) -> Decimal | None:
    """A ratio as its view column stores it: rounded to RATIO_SCALE places, and None, as for a zero denominator,
    when it does not fit numeric(7,4) (|ratio| ≥ 1,000: the margin (1.00 − 1,500.00) / 1.00 = −1,499 of a project
    that delivered 1.00 at a cost of 1,500.00, say). Such a ratio tells nothing a reader can use, and the row must still be
    published: its money columns are exact (docs/formulas.md, "Ratios out of range")."""
    stored = store(value, RATIO_SCALE)
    return None if stored is None or abs(stored) >= RATIO_LIMIT else stored
