"""The firm's parameters, with two presets: ``small`` (tests) and ``load`` (benchmarks).

Defaults are the industry benchmarks written down, with their sources, in
docs/firm.md. Money and rates are :class:`~decimal.Decimal`, never float.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ROLES = ("project_manager", "architect", "senior_consultant", "consultant", "analyst")
SKILLS = ("aws", "azure", "gcp", "sap", "salesforce", "data_engineering", "security")
SERVICE_LINES = ("cloud_migration", "data_analytics", "security", "erp_implementation", "managed_services")
REGIONS = ("NA", "EMEA", "APAC", "LATAM")


class Rate(BaseModel):
    """Standard (rate-card) bill rate and fully loaded cost rate of one role, per hour."""

    model_config = ConfigDict(frozen=True)

    bill: Decimal = Field(decimal_places=2, gt=0)
    cost: Decimal = Field(decimal_places=2, gt=0)


#: Rate card of a US mid-market IT consultancy. Cost ≈ 56–58 % of the list rate,
#: so that after an 85–95 % realization the project margin lands near 35 %.
DEFAULT_RATE_CARD: dict[str, Rate] = {
    "project_manager": Rate(bill=Decimal("210.00"), cost=Decimal("118.00")),
    "architect": Rate(bill=Decimal("250.00"), cost=Decimal("140.00")),
    "senior_consultant": Rate(bill=Decimal("195.00"), cost=Decimal("110.00")),
    "consultant": Rate(bill=Decimal("160.00"), cost=Decimal("92.00")),
    "analyst": Rate(bill=Decimal("120.00"), cost=Decimal("70.00")),
}


class FirmParams(BaseModel):
    """Everything that shapes the simulated firm. Frozen: one run, one set of parameters.

    The deal flow is not a count: sales opens deals at the rate that keeps the
    firm staffed at ``target_utilization`` (capacity × target ÷ win rate ÷ mean
    hours of a deal), and the firm starts with the book of business a firm in
    that steady state has (projects in progress, a pipeline in every stage).
    """

    model_config = ConfigDict(frozen=True)

    name: str = "Northwind Consulting"
    currency: str = Field("USD", min_length=3, max_length=3)
    #: First simulated day; the calendar starts on the Monday of its ISO week.
    start_date: date = date(2026, 1, 5)
    weeks: int = Field(26, ge=1)

    resources: int = Field(200, ge=1, description="headcount reached by the end of the run")
    initial_resources_share: Decimal = Decimal("0.90")
    accounts: int = Field(60, ge=1)

    #: Billable utilization the firm sells and staffs to (SPI Research: 66–75 %).
    target_utilization: Decimal = Field(Decimal("0.70"), gt=0, le=1)
    #: Realization: sold bill rate / rate-card rate, drawn per line in this range (SPI: 85–95 %).
    realization_min: Decimal = Decimal("0.85")
    realization_max: Decimal = Decimal("0.95")
    #: Win rate of the deals that enter the pipeline (assumption, see docs/firm.md).
    win_rate: Decimal = Field(Decimal("0.40"), gt=0, lt=1)
    #: Mean weekdays an opportunity spends in one open stage. With a 40 % win rate,
    #: 12 gives an open pipeline of about 1.5× a quarter's bookings (docs/firm.md).
    stage_days: int = Field(12, ge=1)
    fixed_fee_share: Decimal = Decimal("0.30")
    subcontractor_share: Decimal = Decimal("0.15")
    rate_card: dict[str, Rate] = Field(default_factory=lambda: dict(DEFAULT_RATE_CARD))

    #: Weeks of the plan ahead that signed work fills on the first day (the firm's backlog).
    backlog_weeks: int = Field(4, ge=0)
    #: Project length in weeks, drawn uniformly in this range.
    project_weeks_min: int = Field(4, ge=1)
    project_weeks_max: int = Field(16, ge=1)
    change_order_daily_chance: Decimal = Decimal("0.01")
    #: Share of won projects that overrun, and by how much their hours exceed the plan.
    overrun_share: Decimal = Decimal("0.20")
    overrun_min: Decimal = Decimal("1.10")
    overrun_max: Decimal = Decimal("1.35")
    #: Share of staffed assignments whose time is billed below the sold rate, and the discount.
    below_rate_share: Decimal = Decimal("0.10")
    below_rate_discount_min: Decimal = Decimal("0.05")
    below_rate_discount_max: Decimal = Decimal("0.20")

    #: Consultants: share of weekly timesheets submitted late (the Tuesday after, once the period is closed).
    late_time_share: Decimal = Decimal("0.10")
    time_rejection_share: Decimal = Decimal("0.03")
    non_billable_share: Decimal = Decimal("0.05")
    expense_daily_chance: Decimal = Decimal("0.08")
    late_expense_share: Decimal = Decimal("0.20")
    time_off_daily_chance: Decimal = Decimal("0.01")

    #: Finance: share of invoices paid after due date, and share written off in part.
    late_payment_share: Decimal = Decimal("0.25")
    write_off_share: Decimal = Decimal("0.02")

    @field_validator("rate_card")
    @classmethod
    def _every_role_rated(cls, card: dict[str, Rate]) -> dict[str, Rate]:
        missing = set(ROLES) - set(card)
        if missing:
            raise ValueError(f"rate card misses roles: {', '.join(sorted(missing))}")
        return card


PRESETS: dict[str, FirmParams] = {
    # 12 resources and 6 accounts for 10 weeks: enough for the measured figures
    # (docs/firm.md) after a 2-week warm-up, small enough for a test.
    "small": FirmParams(
        name="Small Demo Consulting",
        weeks=10,
        resources=12,
        initial_resources_share=Decimal("1.00"),
        accounts=6,
        project_weeks_min=3,
        project_weeks_max=8,
        change_order_daily_chance=Decimal("0.03"),
    ),
    "load": FirmParams(),
}


def preset(name: str) -> FirmParams:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown firm size {name!r}; expected one of {', '.join(PRESETS)}") from None
