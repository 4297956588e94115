"""The formulas of DOMAIN.md sections 2 and 3 as pure functions.

No I/O, no Faust, no Kafka: the same functions serve the stream processors
and the reconciliation. Money and hours are ``Decimal`` end to end; sums are
exact; a ratio with a zero denominator is None; a value is rounded (half away
from zero) only by :func:`store`, when it is written to its column.
"""

from types import ModuleType as _ModuleType

from .billing import (
    BillingTrigger,
    milestone_billing,
    milestone_event_id,
    period_billable_value,
    period_close_billing,
    period_event_id,
)
from .pipeline import BookingsRow, PipelineRow, bookings_rows, pipeline_rows, weighted_pipeline
from .project import (
    approved_hours,
    backlog,
    billable_expenses,
    billed,
    contract_hours,
    contract_value,
    cost,
    delivered_value,
    earned_revenue,
    earned_time,
    expense_cost,
    hours_burn,
    margin_pct,
    milestones_done,
    planned_margin_pct,
    time_cost,
    wip,
)
from .project_request import billing_frequency, cost_center, project_code, revenue_method
from .receivables import dso, dso_as_of_date, dso_at, issued_in_window, receivables
from .resource_demand import demand_change, resource_demand_state
from .resource_week import (
    assigned_hours,
    available_hours,
    billable_hours,
    capacity_hours,
    tentative_hours,
    total_hours,
    utilization,
)
from .risk import (
    burn_rule,
    margin_rule,
    non_billable_rule,
    raised_risks,
    rate_leakage_rule,
)
from .rounding import HOURS_SCALE, MONEY_SCALE, RATIO_LIMIT, RATIO_SCALE, store, store_ratio
from .rows import (
    Assignment,
    BillingEvent,
    BillingMilestone,
    BillingPeriod,
    ChangeOrder,
    Expense,
    Invoice,
    Opportunity,
    OpportunityLine,
    Resource,
    TimeEntry,
    TimeOff,
)
from .skill_week import booked_hours, demand_hours, demand_weight, gap_hours, supply_hours
from .weeks import month_start, week_start_of, weekdays_between, weekdays_in

__all__ = [name for name, value in globals().items() if not name.startswith("_") and not isinstance(value, _ModuleType)]
