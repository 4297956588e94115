"""The source tables of DOMAIN.md section 1, per source database.

The topology may capture other tables (a firm's systems have more), but a
table outside this list is not part of the business contract, so validation
warns about it rather than refusing it.
"""

from __future__ import annotations

DOMAIN_TABLES: dict[str, tuple[str, ...]] = {
    "crm": ("accounts", "opportunities", "opportunity_lines", "opportunity_milestones", "change_orders"),
    "psa": ("resources", "assignments", "time_off"),
    "timeexp": ("time_entries", "expenses"),
    "erp": ("billing_milestones", "billing_periods", "invoices", "projects", "billing_events"),
}
