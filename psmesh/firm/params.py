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
    """Everything that shapes the simulated firm. Frozen: one run, one set of parameters."""

    model_config = ConfigDict(frozen=True)

    name: str = "Northwind Consulting"
    currency: str = Field("USD", min_length=3, max_length=3)
    #: First simulated day; the calendar starts on the Monday of its ISO week.
    start_date: date = date(2026, 1, 5)
    weeks: int = Field(26, ge=1)

    resources: int = Field(200, ge=1, description="headcount reached by the end of the run")
    initial_resources_share: Decimal = Decimal("0.80")
    accounts: int = Field(60, ge=1)
    opportunities: int = Field(300, ge=1, description="opportunities opened over `weeks` weeks")
    #: Share of the opportunities already open on the first day (the pipeline the firm starts with).
    initial_pipeline_share: Decimal = Decimal("0.25")

    #: Billable utilization the resource managers staff to (SPI Research: 66–75 %).
    target_utilization: Decimal = Field(Decimal("0.70"), gt=0, le=1)
    #: Realization: sold bill rate / rate-card rate, drawn per line in this range (SPI: 85–95 %).
    realization_min: Decimal = Decimal("0.85")
    realization_max: Decimal = Decimal("0.95")
    #: Win rate of qualified pipeline (SPI / HubSpot sales benchmarks: 25–40 %).
    win_rate: Decimal = Field(Decimal("0.40"), gt=0, lt=1)
    #: Mean weekdays an opportunity spends in one open stage.
    stage_days: int = Field(10, ge=1)
    fixed_fee_share: Decimal = Decimal("0.30")
    subcontractor_share: Decimal = Decimal("0.15")
    rate_card: dict[str, Rate] = Field(default_factory=lambda: dict(DEFAULT_RATE_CARD))

    #: Project length in weeks, drawn uniformly in this range.
    project_weeks_min: int = 4
    project_weeks_max: int = 16
    change_order_daily_chance: Decimal = Decimal("0.01")

    #: Consultants: share of days whose timesheet is submitted late (the next week).
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
    # ~12 resources, ~6 accounts, ~15 opportunities in 6 weeks: deals must close
    # inside the run, hence the short stages and short projects.
    "small": FirmParams(
        name="Small Demo Consulting",
        weeks=6,
        resources=12,
        accounts=6,
        opportunities=15,
        initial_pipeline_share=Decimal("0.40"),
        stage_days=2,
        project_weeks_min=2,
        project_weeks_max=5,
        change_order_daily_chance=Decimal("0.03"),
    ),
    "load": FirmParams(),
}


def preset(name: str) -> FirmParams:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown firm size {name!r}; expected one of {', '.join(PRESETS)}") from None
