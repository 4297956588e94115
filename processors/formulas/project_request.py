"""Derived fields of a project request (DOMAIN.md section 3)."""

from __future__ import annotations

from .project import FIXED_FEE, TIME_AND_MATERIALS

_BILLING_FREQUENCY = {TIME_AND_MATERIALS: "period", FIXED_FEE: "milestone"}
_REVENUE_METHOD = {TIME_AND_MATERIALS: "as_delivered", FIXED_FEE: "milestone"}


def project_code(opportunity_id: int) -> str:
    """The cross-system key 'PRJ-<opportunity_id>'."""
    return f"PRJ-{opportunity_id}"


def billing_frequency(contract_type: str) -> str:
    """'period' for time_and_materials, 'milestone' for fixed_fee."""
    try:
        return _BILLING_FREQUENCY[contract_type]
    except KeyError:
        raise ValueError(f"unknown contract_type {contract_type!r}") from None


def revenue_method(contract_type: str) -> str:
    """'as_delivered' for time_and_materials, 'milestone' for fixed_fee."""
    try:
        return _REVENUE_METHOD[contract_type]
    except KeyError:
        raise ValueError(f"unknown contract_type {contract_type!r}") from None


def cost_center(region: str, service_line: str) -> str:
    """'CC-<region>-<service_line>', region being the account's region."""
    return f"CC-{region}-{service_line}"
