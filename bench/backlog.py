"""The backlog the processor benchmarks feed a worker: a firm's change events, as the capture writes them.

Accounts, won opportunities with their lines, resources, then time entries
(inserted as 'submitted' and updated to 'approved', or with
``inserts_only`` inserted once as 'approved') and expenses. ``produce``
hands each change to ``backlog.send(table, op, **row)``: bench/processors.py
produces them to Kafka, bench/stages.py encodes them in memory. Both put the
repository ahead of bench/ on ``sys.path`` before importing this module, so
that ``processors`` is the package rather than bench/processors.py.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from processors.records import KINDS
from streams import position

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def _table(topic: str, pk: str) -> tuple[str, tuple[str, str, str]]:
    db, _, table = topic.split(".")
    return table, (topic, f"{db}/{table}", pk)


#: table → (change topic, schema stem under schemas/, primary key), for every source table the processors read
TABLES = dict(_table(topic, pk) for topic, pk, _ in KINDS.values())
UTC = timezone.utc


class Sink(Protocol):
    def send(self, table: str, op: str, **row: Any) -> None: ...

    def flush(self) -> None: ...


def value_columns(value_schema: str) -> list[str]:
    """The columns of a change topic's value schema (its envelope's ``before`` record)."""
    return [f["name"] for f in json.loads(value_schema)["fields"][0]["type"][1]["fields"]]


class Positions:
    """The ``psmesh-position`` header the capture puts on each change (streams/position.py), numbered as if each
    change were a transaction of its own: every one is new to the router, which checks it."""

    def __init__(self) -> None:
        self.lsn, self.origin = 0x1000000, position.origin("7441862374219938371", 1)

    def next(self) -> list[tuple[str, bytes]]:
        self.lsn += 0x100
        return [(position.HEADER, position.encode(self.origin, self.lsn, self.lsn - 0x80))]


def envelope(table: str, op: str, columns: list[str], row: dict[str, Any]) -> dict[str, Any]:
    """The change event the capture writes for ``row`` (its ``after`` image) of ``table``."""
    topic = TABLES[table][0]
    now = int(time.time() * 1000)
    return {"before": None, "after": {c: row.get(c) for c in columns}, "op": op, "ts_ms": now,
            "unchanged_toasted": [],
            "source": {"version": "bench", "connector": "psmesh", "name": topic.split(".")[0], "ts_ms": now,
                       "snapshot": "false", "db": topic.split(".")[0], "schema": "public", "table": table,
                       "txId": None, "lsn": None, "sequence": None}}


def produce(backlog: Sink, entries: int, inserts_only: bool = False) -> None:
    """The backlog, change by change, to ``backlog``: ``entries`` time entries (two changes each unless
    ``inserts_only``) and the rows they refer to.

    The firm is the same whatever ``entries`` (150 resources, 300 projects); its time entries are dated over 120
    days per 30,000 (expenses likewise), so that a larger backlog is a longer history at the same density (about
    1.7 entries per resource and day), not more entries in each week: a week's view row is then published about as
    often per change event at any size."""
    days = max(120, 120 * entries // 30000)
    skills = ("aws", "azure", "gcp", "sap", "salesforce", "data_engineering", "security")
    lines = ("time_and_materials", "fixed_fee")
    start = date(2026, 1, 5)
    for a in range(1, 41):
        backlog.send("accounts", "c", account_id=a, name=f"Account {a}", industry="tech", region="EMEA",
                     currency="EUR", payment_terms_days=30, updated_at=datetime.now(UTC))
    opportunities = 300
    for o in range(1, opportunities + 1):
        backlog.send("opportunities", "c", opportunity_id=o, account_id=1 + o % 40, name=f"Deal {o}", stage="closed_won",
                     probability=Decimal("100.00"), amount=Decimal("120000.00"), currency="EUR",
                     service_line="cloud_migration", contract_type=lines[o % 2], estimated_hours=Decimal("800.00"),
                     target_start_date=start, target_end_date=start + timedelta(days=180),
                     expected_close_date=start, closed_at=datetime(2026, 1, 2, 9, tzinfo=UTC), owner="bench",
                     updated_at=datetime.now(UTC))
        for n in range(3):
            backlog.send("opportunity_lines", "c", line_id=o * 10 + n, opportunity_id=o, role="consultant",
                         skill=skills[(o + n) % 7], hours=Decimal("400.00"), bill_rate=Decimal("150.00"),
                         est_cost_rate=Decimal("80.00"), start_date=start, end_date=start + timedelta(days=180))
    resources = 150
    for r in range(1, resources + 1):
        backlog.send("resources", "c", resource_id=r, name=f"R{r}", email=f"r{r}@x", role="consultant",
                     primary_skill=skills[r % 7], skills=[skills[r % 7]], region="EMEA", employment_type="employee",
                     cost_rate=Decimal("80.00"), bill_rate=Decimal("150.00"), weekly_capacity_hours=Decimal("40.00"),
                     active=True, hired_on=date(2025, 1, 6), updated_at=datetime.now(UTC))
    for e in range(1, entries + 1):
        row = dict(entry_id=e, resource_id=1 + e % resources, project_code=f"PRJ-{1 + e % opportunities}",
                   role="consultant", work_date=start + timedelta(days=(e // resources) % days), hours=Decimal("7.50"),
                   billable=e % 5 != 0, bill_rate=Decimal("150.00"), cost_rate=Decimal("80.00"), narrative="work",
                   updated_at=datetime.now(UTC))
        if not inserts_only:
            backlog.send("time_entries", "c", **row, status="submitted")
        backlog.send("time_entries", "u" if not inserts_only else "c", **row, status="approved",
                     approved_at=datetime.now(UTC))
    for x in range(1, entries // 6 + 1):
        backlog.send("expenses", "c", expense_id=x, resource_id=1 + x % resources,
                     project_code=f"PRJ-{1 + x % opportunities}", expense_date=start + timedelta(days=x % days),
                     category="travel", amount=Decimal("212.40"), currency="EUR", billable=True, status="approved",
                     approved_at=datetime.now(UTC), updated_at=datetime.now(UTC))
    backlog.flush()
