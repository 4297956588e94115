"""The firm's people, one small function per role, run once per simulated weekday.

Each actor reads the :class:`Firm`'s mirror of its own rows (and the
:class:`~psmesh.firm.model.ErpView` of what the mesh wrote into erp) and emits
:class:`~psmesh.firm.model.RowChange` s through :meth:`Firm.emit`, which also
applies them to the mirror so that later actors of the same day see them. Every
random draw comes from the firm's one ``random.Random``, in a fixed order, and
every timestamp from the simulated day: the same seed gives the same changes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from psmesh.firm.model import (
    STAGE_PROBABILITY,
    ErpView,
    Mirror,
    RowChange,
    Stage,
    TimeStatus,
    add_weekdays,
    check_stage,
    check_status,
    check_time_status,
    instant,
    money,
    next_open_stage,
    week_start,
)
from psmesh.firm.params import REGIONS, SERVICE_LINES, SKILLS, FirmParams

SKILLS_BY_SERVICE_LINE = {
    "cloud_migration": ("aws", "azure", "gcp"),
    "data_analytics": ("data_engineering", "gcp", "azure"),
    "security": ("security",),
    "erp_implementation": ("sap", "salesforce"),
    "managed_services": ("aws", "azure", "security"),
}
ROLE_MIX = (("project_manager", 10), ("architect", 15), ("senior_consultant", 30), ("consultant", 30), ("analyst", 15))
#: Who may fill a line when nobody of its role is free: one grade up or down.
SUBSTITUTES = {
    "project_manager": ("architect", "senior_consultant"),
    "architect": ("senior_consultant",),
    "senior_consultant": ("architect", "consultant"),
    "consultant": ("senior_consultant", "analyst"),
    "analyst": ("consultant",),
}
#: A deal's team: a project manager part time, then one to three other roles
#: (drawn with the firm's role mix, so demand matches supply), hours per week each.
PM_WEEKLY = (8, 8, 12)
TEAM_WEEKLY = (16, 24, 32, 40)
TEAM_SIZES = (1, 2, 3)
#: Share of planned hours that become entries: days scatter a little under plan and
#: some lines are staffed late (measured on the presets, docs/firm.md).
DELIVERED_SHARE = 0.95
OPEN_STAGES = (Stage.PROSPECTING, Stage.QUALIFICATION, Stage.PROPOSAL, Stage.NEGOTIATION)
INDUSTRIES = ("financial_services", "healthcare", "manufacturing", "retail", "public_sector", "technology", "energy")
FIRST = ("Ada", "Bram", "Chen", "Dara", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas", "Kofi", "Lena", "Mateo", "Nia", "Omar", "Priya")
LAST = ("Adler", "Baptiste", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanova", "Jensen", "Kowalski", "Lindqvist", "Moreau", "Nakamura")
OWNERS = ("a.morgan", "b.okafor", "c.lindgren", "d.santos")
EXPENSES = (("travel", 15000, 90000), ("lodging", 12000, 45000), ("meals", 1500, 9000), ("mileage", 2000, 12000))
HOURS = Decimal("0.25")


def project_code(opportunity_id: int) -> str:
    return f"PRJ-{opportunity_id}"


def _count(rng: random.Random, expected: float) -> int:
    """A whole count whose mean is ``expected``: its floor, plus one with the fraction's chance."""
    whole = int(expected)
    return whole + (1 if rng.random() < expected - whole else 0)


def _quarter_hours(value: Decimal) -> Decimal:
    return (value / HOURS).to_integral_value() * HOURS


def _mean(values: tuple[int, ...]) -> float:
    return sum(values) / len(values)


def expected_deal_hours(p: FirmParams) -> float:
    """Mean planned hours of a deal: its team's weekly hours times its mean length in weeks."""
    weekly = _mean(PM_WEEKLY) + _mean(TEAM_SIZES) * _mean(TEAM_WEEKLY)
    return weekly * (p.project_weeks_min + p.project_weeks_max) / 2


def sold_share(p: FirmParams) -> float:
    """Share of capacity the firm sells and staffs so that billable utilization lands on target.

    Booked hours exceed the plan on overrunning projects, fall a little short
    of it elsewhere, and a share of them is not billable: hence target ÷
    (billable share × mean overrun × delivered share).
    """
    overrun = 1 + float(p.overrun_share) * (float(p.overrun_min + p.overrun_max) / 2 - 1)
    return float(p.target_utilization) / ((1 - float(p.non_billable_share)) * overrun * DELIVERED_SHARE)


def stage_loss(p: FirmParams) -> float:
    """Chance a deal is lost at each of its four steps, so that the win rate holds overall."""
    return 1 - float(p.win_rate) ** 0.25


def planned_headcount(p: FirmParams, weekday_number: int) -> float:
    """Headcount the hiring plan reaches on the n-th simulated weekday (0 = the first)."""
    initial = max(1, round(p.resources * float(p.initial_resources_share)))
    return initial + (p.resources - initial) * min(1.0, weekday_number / (p.weeks * 5))


def deals_per_weekday(p: FirmParams, weekday_number: int) -> float:
    """Deals sales opens a day: enough won hours to keep the planned headcount at the sold share."""
    hours_per_week = sold_share(p) * 40 * planned_headcount(p, weekday_number)
    return hours_per_week / (float(p.win_rate) * expected_deal_hours(p)) / 5


@dataclass
class Firm:
    """The simulated firm: its parameters, its one random source, its rows and its plans.

    Plans are what people know but no table records yet (when a client will
    pay, which timesheets will be late); they too come only from the seed.
    """

    params: FirmParams
    rng: random.Random
    open_loop: bool = False
    m: Mirror = field(default_factory=Mirror)
    day: date = date.min
    first_day: bool = True
    weekday_number: int = 0
    erp: ErpView = field(default_factory=ErpView)
    changes: list[RowChange] = field(default_factory=list)
    #: Ids of rows still in a non-final status, by table, in insertion order.
    open_ids: dict[str, dict[int, None]] = field(default_factory=dict)
    staffed_lines: dict[int, int] = field(default_factory=dict)
    late_timesheets: dict[tuple[int, date], bool] = field(default_factory=dict)
    corrections: list[int] = field(default_factory=list)
    #: Effort of each won deal relative to its plan (above 1 on overrunning projects).
    effort: dict[int, Decimal] = field(default_factory=dict)
    #: Rate billed on assignments whose time goes out below the sold rate.
    below_rate: dict[int, Decimal] = field(default_factory=dict)
    line_of_assignment: dict[int, int] = field(default_factory=dict)
    #: The weekday each open deal leaves its stage (won, lost or on to the next).
    next_move: dict[int, date] = field(default_factory=dict)
    losses_owed: dict[Stage, float] = field(default_factory=dict)
    #: The resource managers' plan: planned hours per week (Monday) of the won deals' lines.
    schedule: dict[date, Decimal] = field(default_factory=dict)
    payment_plans: dict[int, tuple[date, Decimal]] = field(default_factory=dict)
    invoiced_events: dict[str, int] = field(default_factory=dict)
    #: Indexes over the mirror, so no actor scans a whole table per row.
    lines_of: dict[int, list[int]] = field(default_factory=dict)
    assignments_of: dict[int, list[int]] = field(default_factory=dict)
    time_off_of: dict[int, list[int]] = field(default_factory=dict)

    # -- emitting ------------------------------------------------------------

    def insert(self, source: str, table: str, key: int, row: dict[str, Any]) -> None:
        change = RowChange(source, table, "insert", key, tuple(row.items()))
        self.m.apply(change)
        self.changes.append(change)
        if table == "opportunity_lines":
            self.lines_of.setdefault(row["opportunity_id"], []).append(key)
        elif table == "assignments":
            self.assignments_of.setdefault(row["resource_id"], []).append(key)
        elif table == "time_off":
            self.time_off_of.setdefault(row["resource_id"], []).append(key)

    def update(self, source: str, table: str, key: Any, **values: Any) -> None:
        change = RowChange(source, table, "update", key, tuple(values.items()))
        self.m.apply(change)
        self.changes.append(change)

    def track(self, table: str, key: int) -> None:
        self.open_ids.setdefault(table, {})[key] = None

    def untrack(self, table: str, key: int) -> None:
        self.open_ids.get(table, {}).pop(key, None)

    def tracked(self, table: str) -> list[int]:
        return list(self.open_ids.get(table, {}))

    def at(self, hour: int) -> Any:
        return instant(self.day, hour, self.rng.randrange(60))

    def chance(self, p: Decimal | float) -> bool:
        return self.rng.random() < float(p)

    def spread(self, total: int, initial_share: Decimal) -> int:
        """How many of ``total`` things appear today: a share on the first day, the rest evenly."""
        initial = round(total * float(initial_share))
        if self.first_day:
            return max(1, initial)
        return _count(self.rng, (total - initial) / (self.params.weeks * 5))

    # -- helpers shared by actors ----------------------------------------------

    def opportunity(self, opportunity_id: int) -> dict[str, Any]:
        return self.m.table("crm", "opportunities")[opportunity_id]

    def bookable(self, code: str | None) -> bool:
        """Closed loop: only projects the mesh created in erp; open loop: any won deal's code."""
        if code is None:
            return False
        if not self.open_loop:
            return code in self.erp.projects
        opp = self.m.table("crm", "opportunities").get(int(code.removeprefix("PRJ-")))
        return opp is not None and opp["stage"] == Stage.CLOSED_WON

    def on_time_off(self, resource_id: int) -> bool:
        rows = self.m.table("psa", "time_off")
        return any(
            rows[t]["status"] == "approved" and rows[t]["start_date"] <= self.day <= rows[t]["end_date"]
            for t in self.time_off_of.get(resource_id, ())
        )


# --- sales --------------------------------------------------------------------


def sales(f: Firm) -> None:
    """Open accounts and opportunities, move deals through the stages, handle change orders."""
    p = f.params
    for _ in range(f.spread(p.accounts, Decimal("0.6"))):
        if len(f.m.table("crm", "accounts")) < p.accounts:
            _open_account(f)
    if f.first_day:
        _open_book(f)
    else:
        # Sales prospects harder when the plan a sales cycle ahead has room, less when it is full.
        fill = schedule_fill(f, range(1, 1 + p.backlog_weeks))
        pace = min(1.25, max(0.75, 1 + (1 - fill)))
        for _ in range(_count(f.rng, deals_per_weekday(p, f.weekday_number) * pace)):
            _open_opportunity(f)
    _advance_opportunities(f)
    _change_orders(f)


def _open_account(f: Firm) -> None:
    aid = f.m.new_id("crm", "accounts")
    f.insert("crm", "accounts", aid, {
        "account_id": aid,
        "name": f"{f.rng.choice(LAST)} {f.rng.choice(('Group', 'Holdings', 'Industries', 'Partners', 'Systems'))} {aid}",
        "industry": f.rng.choice(INDUSTRIES),
        "region": f.rng.choice(REGIONS),
        "currency": f.params.currency,
        "payment_terms_days": f.rng.choice((30, 30, 45, 60)),
        "updated_at": f.at(9),
    })


def _open_book(f: Firm) -> None:
    """The first day: the book of business of a firm already in its steady state.

    A pipeline in every open stage (as many deals as the deal flow keeps
    there); won deals in progress whose teams fill the sold share of capacity,
    started on the first day (the books open then) with what remains of them
    (a length drawn in proportion to itself, then a uniform part of it: the
    remaining life of a project caught mid-way); and signed deals waiting for
    their start, ``backlog_weeks`` of the plan ahead, as a firm with a backlog has.
    """
    p, rng = f.params, f.rng
    rate, keep = deals_per_weekday(p, 0), 1 - stage_loss(p)
    for n, stage in enumerate(OPEN_STAGES):
        for _ in range(_count(rng, rate * p.stage_days * keep ** n)):
            _open_opportunity(f, stage)
    monday = week_start(f.day)
    lengths = list(range(p.project_weeks_min, p.project_weeks_max + 1))
    while f.schedule.get(monday, Decimal(0)) < _capacity_plan(f, monday) * Decimal("0.95"):
        _open_opportunity(f, Stage.CLOSED_WON, weeks=rng.randint(1, rng.choices(lengths, weights=lengths)[0]), start=monday)
    horizon = monday + timedelta(days=7 * p.backlog_weeks)
    while _open_opportunity(f, Stage.CLOSED_WON) < horizon:
        pass


def _open_opportunity(f: Firm, stage: Stage = Stage.PROSPECTING, weeks: int | None = None, start: date | None = None) -> date:
    """A new deal in ``stage``; returns its target start.

    A closed_won one (the opening book) was won before the first day and
    starts on ``start``, or when its team fits the plan.
    """
    p, rng = f.params, f.rng
    oid = f.m.new_id("crm", "opportunities")
    account_id = rng.choice(list(f.m.table("crm", "accounts")))
    service_line = rng.choice(SERVICE_LINES)
    contract_type = "fixed_fee" if f.chance(p.fixed_fee_share) else "time_and_materials"
    weeks = weeks or rng.randint(p.project_weeks_min, p.project_weeks_max)
    won = stage is Stage.CLOSED_WON
    others = [r for r, _ in ROLE_MIX[1:]]
    weights = [w for _, w in ROLE_MIX[1:]]
    team = [("project_manager", rng.choice(PM_WEEKLY))]
    for _ in range(rng.choice(TEAM_SIZES)):
        pick = rng.choices(range(len(others)), weights=weights)[0]
        team.append((others.pop(pick), rng.choice(TEAM_WEEKLY)))
        weights.pop(pick)
    if won:
        closed_at = instant(f.day - timedelta(days=rng.randint(3, 28)), 15, rng.randrange(60))
        close = closed_at.date()
        start = start or _start_when_staffed(f, sum(w for _, w in team), weeks, week_start(f.day))
    else:
        close = add_weekdays(f.day, p.stage_days * (4 - OPEN_STAGES.index(stage)))
        start = week_start(close) + timedelta(days=7)
    end = start + timedelta(days=weeks * 7 - 3)
    lines = []
    for role, weekly in team:
        rate = p.rate_card[role]
        realization = Decimal(rng.randint(int(p.realization_min * 100), int(p.realization_max * 100))) / 100
        lines.append({
            "role": role,
            "skill": rng.choice(SKILLS_BY_SERVICE_LINE[service_line]),
            "hours": money(weekly * weeks),
            "bill_rate": money(rate.bill * realization),
            "est_cost_rate": rate.cost,
            "start_date": start,
            "end_date": end,
        })
    labour = sum((line["hours"] * line["bill_rate"] for line in lines), Decimal(0))
    # A fixed fee prices in a risk premium over the time-and-materials estimate.
    amount = money(labour * Decimal("1.10") if contract_type == "fixed_fee" else labour)
    f.insert("crm", "opportunities", oid, {
        "opportunity_id": oid,
        "account_id": account_id,
        "name": f"{service_line.replace('_', ' ').title()} {oid}",
        "stage": stage.value,
        "probability": STAGE_PROBABILITY[stage],
        "amount": amount,
        "currency": p.currency,
        "service_line": service_line,
        "contract_type": contract_type,
        "estimated_hours": money(sum((line["hours"] for line in lines), Decimal(0))),
        "target_start_date": start,
        "target_end_date": end,
        "expected_close_date": close,
        "closed_at": closed_at if won else None,
        "owner": rng.choice(OWNERS),
        "updated_at": closed_at if won else f.at(10),
    })
    if not won:
        f.track("opportunities", oid)
        f.next_move[oid] = _stage_end(f, f.day, remaining=f.first_day)
    for line in lines:
        lid = f.m.new_id("crm", "opportunity_lines")
        f.insert("crm", "opportunity_lines", lid, {"line_id": lid, "opportunity_id": oid, **line})
    if contract_type == "fixed_fee":
        shares = (Decimal("0.30"), Decimal("0.40"))
        dates = (start + timedelta(days=(end - start).days // 3), start + timedelta(days=2 * (end - start).days // 3))
        parts = [money(amount * s) for s in shares]
        parts.append(amount - sum(parts))
        for n, (part, planned) in enumerate(zip(parts, (*dates, end)), start=1):
            mid = f.m.new_id("crm", "opportunity_milestones")
            f.insert("crm", "opportunity_milestones", mid, {
                "milestone_id": mid, "opportunity_id": oid, "name": f"Milestone {n}", "amount": part, "planned_date": planned,
            })
    if won:
        _plan_delivery(f, oid)
    return start


def _weekly_plan(f: Firm, oid: int) -> dict[date, Decimal]:
    """Planned hours per week (Monday) of a deal's lines."""
    lines = f.m.table("crm", "opportunity_lines")
    plan: dict[date, Decimal] = {}
    for lid in f.lines_of.get(oid, ()):
        line = lines[lid]
        weeks = max(1, ((line["end_date"] - line["start_date"]).days + 3) // 7)
        week, end = week_start(line["start_date"]), line["end_date"]
        while week <= end:
            plan[week] = plan.get(week, Decimal(0)) + line["hours"] / weeks
            week += timedelta(days=7)
    return plan


def _capacity_plan(f: Firm, week: date) -> Decimal:
    """Hours the firm means to sell in ``week``: the sold share of its planned headcount."""
    p = f.params
    weekday_number = f.weekday_number + 5 * ((week - week_start(f.day)).days // 7)
    return Decimal(str(round(sold_share(p) * 40 * planned_headcount(p, weekday_number), 2)))


def _start_when_staffed(f: Firm, weekly: Decimal | int, weeks: int, first: date) -> date:
    """The first Monday from ``first`` on from which a team of ``weekly`` hours for ``weeks`` fits the plan.

    Fits: every week of it stays under the sold share of capacity with half of
    the team's hours to spare, so that the plan sits on the target on average.
    A firm that is full for months takes the latest Monday it looked at.
    """
    half = Decimal(weekly) / 2
    for n in range(26):
        start = first + timedelta(days=7 * n)
        if all(f.schedule.get(start + timedelta(days=7 * k), Decimal(0)) + half
               <= _capacity_plan(f, start + timedelta(days=7 * k)) for k in range(weeks)):
            return start
    return start


def schedule_fill(f: Firm, weeks_ahead: range) -> float:
    """Planned hours over the firm's plan in those weeks ahead (1.0 = sold out to target)."""
    monday = week_start(f.day)
    weeks = [monday + timedelta(days=7 * n) for n in weeks_ahead]
    planned = sum((f.schedule.get(w, Decimal(0)) for w in weeks), Decimal(0))
    return float(planned / sum((_capacity_plan(f, w) for w in weeks), Decimal(0)))


def _plan_delivery(f: Firm, oid: int) -> None:
    """A won deal: its weeks enter the plan; some projects overrun their planned hours (an effort above 1)."""
    p = f.params
    f.track("won", oid)
    for week, hours in _weekly_plan(f, oid).items():
        f.schedule[week] = f.schedule.get(week, Decimal(0)) + hours
    effort = Decimal(1)
    if f.chance(p.overrun_share):
        effort = Decimal(f.rng.randint(int(p.overrun_min * 100), int(p.overrun_max * 100))) / 100
    f.effort[oid] = effort


def _replan_on_signature(f: Firm, oid: int) -> dict[str, Any]:
    """The signed dates: work starts when the team fits the plan; shift lines and milestones there.

    Returns the opportunity's new dates (to go with its close). Lines and
    milestones change first, so the close carries dates that agree with them.
    """
    opp = f.opportunity(oid)
    plan = _weekly_plan(f, oid)
    weekly = max(plan.values(), default=Decimal(0))
    first = week_start(f.day) + timedelta(days=7)
    shift = _start_when_staffed(f, weekly, len(plan), first) - opp["target_start_date"]
    if not shift:
        return {}
    lines = f.m.table("crm", "opportunity_lines")
    for lid in f.lines_of.get(oid, ()):
        f.update("crm", "opportunity_lines", lid, start_date=lines[lid]["start_date"] + shift, end_date=lines[lid]["end_date"] + shift)
    for mid, m in f.m.table("crm", "opportunity_milestones").items():
        if m["opportunity_id"] == oid:
            f.update("crm", "opportunity_milestones", mid, planned_date=m["planned_date"] + shift)
    return {"target_start_date": opp["target_start_date"] + shift, "target_end_date": opp["target_end_date"] + shift}


def _stage_end(f: Firm, entered: date, remaining: bool = False) -> date:
    """When a deal that entered a stage on ``entered`` moves on: half to one and a half ``stage_days`` later.

    ``remaining``: a deal already in the stage on the first day, any part of the way through.
    """
    days = f.params.stage_days
    return add_weekdays(entered, f.rng.randint(1 if remaining else max(1, days // 2), days * 3 // 2))


def _advance_opportunities(f: Firm) -> None:
    p = f.params
    # Four steps to a win, each lost with the same chance: the win rate overall.
    lose = stage_loss(p)
    for oid in f.tracked("opportunities"):
        if f.next_move[oid] > f.day:
            continue
        opp = f.opportunity(oid)
        current = Stage(opp["stage"])
        # Which deal is lost is random; how many are lost keeps close to the rate
        # (the shortfall so far, plus a draw), so a small firm's win rate holds too.
        owed = f.losses_owed.get(current, 0.0) + lose
        lost = f.rng.random() < owed
        f.losses_owed[current] = owed - lost
        new = check_stage(current, Stage.CLOSED_LOST if lost else next_open_stage(current))
        f.next_move[oid] = _stage_end(f, f.day)
        when = f.at(15)
        values: dict[str, Any] = {"stage": new.value, "probability": STAGE_PROBABILITY[new], "updated_at": when}
        if new.closed:
            values["closed_at"] = when
            f.untrack("opportunities", oid)
            if new is Stage.CLOSED_WON:
                values.update(_replan_on_signature(f, oid))
                _plan_delivery(f, oid)
        f.update("crm", "opportunities", oid, **values)


def _change_orders(f: Firm) -> None:
    p = f.params
    for cid in f.tracked("change_orders"):
        row = f.m.table("crm", "change_orders")[cid]
        if row["updated_at"].date() < f.day and f.chance(0.5):
            status = check_status("change_orders", row["status"], "approved" if f.chance(0.8) else "rejected")
            when = f.at(11)
            f.update("crm", "change_orders", cid, status=status, approved_at=when if status == "approved" else None, updated_at=when)
            f.untrack("change_orders", cid)
    for oid in f.tracked("won"):
        opp = f.opportunity(oid)
        if opp["closed_at"].date() < f.day and f.chance(p.change_order_daily_chance):
            pct = Decimal(f.rng.randint(5, 20)) / 100
            cid = f.m.new_id("crm", "change_orders")
            f.insert("crm", "change_orders", cid, {
                "change_order_id": cid,
                "opportunity_id": oid,
                "description": f"Extended scope {cid}",
                "amount_delta": money(opp["amount"] * pct),
                "hours_delta": money(opp["estimated_hours"] * pct),
                "status": "draft",
                "approved_at": None,
                "updated_at": f.at(14),
            })
            f.track("change_orders", cid)


# --- resource managers ----------------------------------------------------------


def resource_managers(f: Firm) -> None:
    """Hire, staff lines of likely and won deals (tentative, then confirmed), decide time off."""
    p = f.params
    for _ in range(f.spread(p.resources, p.initial_resources_share)):
        if len(f.m.table("psa", "resources")) < p.resources:
            _hire(f)
    _staff(f)
    _decide_time_off(f)


def _hire(f: Firm) -> None:
    p, rng = f.params, f.rng
    rid = f.m.new_id("psa", "resources")
    # The role furthest below its share of the mix: a small firm still has every role.
    have = [r["role"] for r in f.m.table("psa", "resources").values()]
    role = max(ROLE_MIX, key=lambda rw: rw[1] * rid / 100 - have.count(rw[0]))[0]
    primary = rng.choice(SKILLS)
    others = rng.sample([s for s in SKILLS if s != primary], rng.randint(0, 2))
    sub = f.chance(p.subcontractor_share)
    cost = p.rate_card[role].cost * Decimal(rng.randint(90, 110)) / 100
    first, last = rng.choice(FIRST), rng.choice(LAST)
    f.insert("psa", "resources", rid, {
        "resource_id": rid,
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}.{rid}@firm.example",
        "role": role,
        "primary_skill": primary,
        "skills": sorted([primary, *others]),
        "region": rng.choice(REGIONS),
        "employment_type": "subcontractor" if sub else "employee",
        "cost_rate": money(cost * Decimal("1.15") if sub else cost),
        "bill_rate": p.rate_card[role].bill,
        "weekly_capacity_hours": Decimal("40.00"),
        "active": True,
        "hired_on": f.day,
        "updated_at": f.at(8),
    })


def _peak_load(f: Firm, resource_id: int, start: date, end: date, confirmed_only: bool = False, but: int = 0) -> Decimal:
    """The resource's busiest week between ``start`` and ``end``: hours of its live assignments.

    ``confirmed_only`` ignores tentative ones (a won deal goes before a likely
    one); ``but`` leaves one assignment out.
    """
    rows = f.m.table("psa", "assignments")
    weeks: dict[date, Decimal] = {}
    first = week_start(start)
    for aid in f.assignments_of.get(resource_id, ()):
        a = rows[aid]
        if aid == but or a["status"] == "cancelled" or a["end_date"] < start or end < a["start_date"]:
            continue
        if confirmed_only and a["status"] != "confirmed":
            continue
        week, last = max(week_start(a["start_date"]), first), min(a["end_date"], end)
        while week <= last:
            weeks[week] = weeks.get(week, Decimal(0)) + a["hours_per_week"]
            week += timedelta(days=7)
    return max(weeks.values(), default=Decimal(0))


def _confirm(f: Firm, aid: int) -> None:
    """A confirmed assignment: some go out below the sold rate (a courtesy discount, a junior's rate)."""
    p = f.params
    if f.chance(p.below_rate_share):
        a = f.m.table("psa", "assignments")[aid]
        sold = _sold_rate(f, a["opportunity_id"], a["role"])
        off = Decimal(f.rng.randint(int(p.below_rate_discount_min * 100), int(p.below_rate_discount_max * 100))) / 100
        f.below_rate[aid] = money(sold * (1 - off))


def _sold_rate(f: Firm, opportunity_id: int, role: str) -> Decimal:
    lines = f.m.table("crm", "opportunity_lines")
    return min(lines[lid]["bill_rate"] for lid in f.lines_of[opportunity_id] if lines[lid]["role"] == role)


def _staff(f: Firm) -> None:
    assignments = f.m.table("psa", "assignments")
    lines = f.m.table("crm", "opportunity_lines")
    # Settle tentative assignments of deals that closed (tracked, so no full scan);
    # a confirmed one takes the line's dates, which the signature may have moved.
    for aid in f.tracked("assignments"):
        a = assignments[aid]
        stage = f.opportunity(a["opportunity_id"])["stage"]
        if stage == Stage.CLOSED_WON:
            line = lines[f.line_of_assignment[aid]]
            room = _peak_load(f, a["resource_id"], max(line["start_date"], f.day), line["end_date"], True, aid)
            if room + a["hours_per_week"] > 40:
                # Not free at the signed dates: release them and staff the line afresh.
                f.update("psa", "assignments", aid, status=check_status("assignments", a["status"], "cancelled"), updated_at=f.at(9))
                f.untrack("assignments", aid)
                del f.staffed_lines[line["line_id"]]
                continue
            f.update("psa", "assignments", aid, status=check_status("assignments", a["status"], "confirmed"),
                     project_code=project_code(a["opportunity_id"]), start_date=line["start_date"],
                     end_date=line["end_date"], updated_at=f.at(9))
            _confirm(f, aid)
            f.untrack("assignments", aid)
        elif stage == Stage.CLOSED_LOST:
            f.update("psa", "assignments", aid, status=check_status("assignments", a["status"], "cancelled"), updated_at=f.at(9))
            f.untrack("assignments", aid)
    # Staff lines of deals at proposal or later (probability ≥ 50) that have no one yet:
    # someone of the line's role (skill match first, least busy today next), else
    # of a neighbouring grade, who has room for the line's hours in every week of it.
    resources = f.m.table("psa", "resources")
    busy = {rid: _peak_load(f, rid, f.day, f.day) for rid in resources}
    for line in lines.values():
        if line["line_id"] in f.staffed_lines or line["end_date"] < f.day:
            continue
        opp = f.opportunity(line["opportunity_id"])
        if opp["probability"] < 50 or opp["stage"] == Stage.CLOSED_LOST:
            continue
        weeks = max(1, ((line["end_date"] - line["start_date"]).days + 3) // 7)
        per_week = min(Decimal(40), money(line["hours"] / weeks))
        grades = (line["role"], *SUBSTITUTES[line["role"]])
        candidates = sorted(
            (grades.index(r["role"]), r["primary_skill"] != line["skill"] and line["skill"] not in r["skills"], busy[rid], rid)
            for rid, r in resources.items()
            if r["role"] in grades and r["active"]
        )
        start = max(line["start_date"], f.day)
        won = opp["stage"] == Stage.CLOSED_WON
        pick = next((rid for *_, rid in candidates if _peak_load(f, rid, start, line["end_date"], won) + per_week <= 40), None)
        if pick is None:
            continue  # nobody free: the line waits for a hire or for someone to free up
        aid = f.m.new_id("psa", "assignments")
        f.insert("psa", "assignments", aid, {
            "assignment_id": aid, "resource_id": pick, "project_code": project_code(opp["opportunity_id"]) if won else None,
            "opportunity_id": opp["opportunity_id"], "role": line["role"], "start_date": line["start_date"],
            "end_date": line["end_date"], "hours_per_week": per_week, "status": "confirmed" if won else "tentative",
            "updated_at": f.at(11),
        })
        f.staffed_lines[line["line_id"]] = aid
        f.line_of_assignment[aid] = line["line_id"]
        if won:
            _confirm(f, aid)
        else:
            f.track("assignments", aid)


def _decide_time_off(f: Firm) -> None:
    for tid in f.tracked("time_off"):
        if f.chance(0.5):
            row = f.m.table("psa", "time_off")[tid]
            f.update("psa", "time_off", tid, status=check_status("time_off", row["status"], "approved" if f.chance(0.9) else "cancelled"))
            f.untrack("time_off", tid)
    for rid in list(f.m.table("psa", "resources")):
        if f.chance(f.params.time_off_daily_chance):
            start = add_weekdays(f.day, f.rng.randint(5, 20))
            tid = f.m.new_id("psa", "time_off")
            f.insert("psa", "time_off", tid, {
                "time_off_id": tid, "resource_id": rid, "start_date": start,
                "end_date": add_weekdays(start, f.rng.randint(0, 4)), "hours_per_day": Decimal("8.00"), "status": "requested",
            })
            f.track("time_off", tid)


# --- consultants -------------------------------------------------------------------


def consultants(f: Firm) -> None:
    """Enter the day's time, file expenses (some late), submit timesheets, correct rejections."""
    p = f.params
    resources = f.m.table("psa", "resources")
    for eid in f.corrections:
        _correct(f, eid)
    f.corrections = []
    for aid, a in f.m.table("psa", "assignments").items():
        if a["status"] != "confirmed" or not a["start_date"] <= f.day <= a["end_date"] or not f.bookable(a["project_code"]):
            continue
        r = resources[a["resource_id"]]
        if f.on_time_off(r["resource_id"]):
            continue
        effort = f.effort.get(a["opportunity_id"], Decimal(1))
        # A day's hours scatter a little under plan: a project on plan finishes a bit under budget.
        hours = _quarter_hours(a["hours_per_week"] * effort / 5 + Decimal(f.rng.randint(-4, 3)) / 4)
        if hours > 0:
            rate = f.below_rate.get(aid) or _sold_rate(f, a["opportunity_id"], a["role"])
            _enter_time(f, r, a["project_code"], a["role"], f.day, min(hours, Decimal(12)),
                        billable=not f.chance(p.non_billable_share), bill_rate=rate,
                        narrative=f"{a['role'].replace('_', ' ')} work")
        if f.chance(p.expense_daily_chance):
            _file_expense(f, r, a)
    _submit_timesheets(f)


def _enter_time(f: Firm, r: dict[str, Any], code: str, role: str, work_date: date, hours: Decimal, *,
                billable: bool, bill_rate: Decimal, narrative: str) -> None:
    eid = f.m.new_id("timeexp", "time_entries")
    f.insert("timeexp", "time_entries", eid, {
        "entry_id": eid, "resource_id": r["resource_id"], "project_code": code, "role": role, "work_date": work_date,
        "hours": money(hours), "billable": billable, "bill_rate": bill_rate, "cost_rate": r["cost_rate"],
        "status": TimeStatus.DRAFT.value, "narrative": narrative, "submitted_at": None, "approved_at": None,
        "updated_at": f.at(17),
    })
    f.track("time_drafts", eid)
    key = (r["resource_id"], week_start(work_date))
    if key not in f.late_timesheets:
        f.late_timesheets[key] = f.chance(f.params.late_time_share)


def _correct(f: Firm, rejected_id: int) -> None:
    old = f.m.table("timeexp", "time_entries")[rejected_id]
    r = f.m.table("psa", "resources")[old["resource_id"]]
    hours = max(Decimal("0.25"), old["hours"] - Decimal(f.rng.randint(0, 4)) / 4)
    _enter_time(f, r, old["project_code"], old["role"], old["work_date"], hours, billable=old["billable"],
                bill_rate=old["bill_rate"], narrative=f"correction of entry {rejected_id}")


def _submit_timesheets(f: Firm) -> None:
    """Timesheets go in on Friday; a late one goes in on the Tuesday after."""
    entries = f.m.table("timeexp", "time_entries")
    for eid in f.tracked("time_drafts"):
        e = entries[eid]
        monday = week_start(e["work_date"])
        late = f.late_timesheets[(e["resource_id"], monday)]
        due = monday + timedelta(days=8 if late else 4)
        if f.day >= due:
            when = f.at(18)
            f.update("timeexp", "time_entries", eid, status=check_time_status(e["status"], "submitted"), submitted_at=when, updated_at=when)
            f.untrack("time_drafts", eid)
            f.track("time_submitted", eid)


def _file_expense(f: Firm, r: dict[str, Any], a: dict[str, Any]) -> None:
    rng = f.rng
    category, low, high = rng.choice(EXPENSES)
    spent = f.day
    if f.chance(f.params.late_expense_share):
        spent = max(a["start_date"], f.day - timedelta(days=rng.randint(7, 21)))
    xid = f.m.new_id("timeexp", "expenses")
    f.insert("timeexp", "expenses", xid, {
        "expense_id": xid, "resource_id": r["resource_id"], "project_code": a["project_code"], "expense_date": spent,
        "category": category, "amount": money(Decimal(rng.randint(low, high)) / 100), "currency": f.params.currency,
        "billable": f.chance(0.8), "status": "submitted", "approved_at": None, "updated_at": f.at(19),
    })
    f.track("expenses", xid)


# --- project managers ------------------------------------------------------------


def project_managers(f: Firm) -> None:
    """Approve or reject submitted time and expenses; complete billing milestones that are due."""
    p = f.params
    entries = f.m.table("timeexp", "time_entries")
    for eid in f.tracked("time_submitted"):
        e = entries[eid]
        if e["submitted_at"].date() >= f.day:
            continue
        when = f.at(10)
        if f.chance(p.time_rejection_share):
            f.update("timeexp", "time_entries", eid, status=check_time_status(e["status"], "rejected"), updated_at=when)
            f.corrections.append(eid)
        else:
            f.update("timeexp", "time_entries", eid, status=check_time_status(e["status"], "approved"), approved_at=when, updated_at=when)
        f.untrack("time_submitted", eid)
    expenses = f.m.table("timeexp", "expenses")
    for xid in f.tracked("expenses"):
        x = expenses[xid]
        if x["updated_at"].date() < f.day and f.chance(0.6):
            when = f.at(11)
            status = check_status("expenses", x["status"], "approved" if f.chance(0.95) else "rejected")
            f.update("timeexp", "expenses", xid, status=status, approved_at=when if status == "approved" else None, updated_at=when)
            f.untrack("expenses", xid)
    # Only milestones the mesh created in erp; the firm never inserts them.
    done = f.m.table("erp", "billing_milestones")
    for mid, (_, status, planned) in f.erp.milestones.items():
        if status == "planned" and mid not in done and planned <= f.day and f.chance(0.5):
            f.update("erp", "billing_milestones", mid, status=check_status("billing_milestones", status, "completed"), completed_at=f.at(16))


# --- finance -------------------------------------------------------------------------


def finance(f: Firm) -> None:
    """Run the weekly billing period, invoice the mesh's billing events, record payments."""
    periods = f.m.table("erp", "billing_periods")
    monday = week_start(f.day)
    # Tuesday: last week's timesheets were due on Friday and approved on Monday;
    # those submitted late come in after the close and go to the next one.
    if f.day.isoweekday() >= 2:
        for pid in f.tracked("periods"):
            if periods[pid]["end_date"] < monday:
                f.update("erp", "billing_periods", pid, status=check_status("billing_periods", "open", "closed"), closed_at=f.at(10))
                f.untrack("periods", pid)
    if f.day.isoweekday() == 1 or f.first_day:
        if not any(periods[pid]["start_date"] == monday for pid in f.tracked("periods")):
            pid = f.m.new_id("erp", "billing_periods")
            f.insert("erp", "billing_periods", pid, {
                "period_id": pid, "start_date": monday, "end_date": monday + timedelta(days=6), "status": "open", "closed_at": None,
            })
            f.track("periods", pid)
    _invoice(f)


def _invoice(f: Firm) -> None:
    p, rng = f.params, f.rng
    invoices = f.m.table("erp", "invoices")
    for iid in f.tracked("invoices_paying"):
        due, written_off = f.payment_plans[iid]
        if due <= f.day:
            f.update("erp", "invoices", iid, status=check_status("invoices", "issued", "paid"), paid_on=f.day,
                     written_off=written_off, updated_at=f.at(12))
            f.untrack("invoices_paying", iid)
    for iid in f.tracked("invoices_draft"):
        inv = invoices[iid]
        if inv["updated_at"].date() >= f.day:
            continue
        terms = _payment_terms(f, inv["project_code"])
        due = f.day + timedelta(days=terms)
        written_off = Decimal("0.00")
        if f.chance(p.write_off_share):
            pays = due + timedelta(days=rng.randint(30, 90))
            written_off = money(inv["amount"] * Decimal(rng.randint(10, 100)) / 100)
        elif f.chance(p.late_payment_share):
            pays = due + timedelta(days=rng.randint(1, 45))
        else:
            pays = due - timedelta(days=rng.randint(0, terms // 2))
        f.payment_plans[iid] = (add_weekdays(pays, 0), written_off)
        f.update("erp", "invoices", iid, status=check_status("invoices", "draft", "issued"), issued_on=f.day, due_on=due, updated_at=f.at(9))
        f.untrack("invoices_draft", iid)
        f.track("invoices_paying", iid)
    # Only billing events the mesh wrote; sorted so the order never depends on the read.
    for event_id in sorted(f.erp.billing_events):
        if event_id in f.invoiced_events:
            continue
        code, amount, currency, _ = f.erp.billing_events[event_id]
        iid = f.m.new_id("erp", "invoices")
        f.insert("erp", "invoices", iid, {
            "invoice_id": iid, "project_code": code, "billing_event_id": event_id, "amount": amount, "currency": currency,
            "status": "draft", "issued_on": None, "due_on": None, "paid_on": None, "written_off": Decimal("0.00"),
            "updated_at": f.at(16),
        })
        f.invoiced_events[event_id] = iid
        f.track("invoices_draft", iid)


def _payment_terms(f: Firm, code: str) -> int:
    try:
        opp = f.opportunity(int(code.removeprefix("PRJ-")))
    except (KeyError, ValueError):
        return 30
    return f.m.table("crm", "accounts")[opp["account_id"]]["payment_terms_days"]


#: The order in which the firm's people act on a weekday.
ACTORS = (finance, sales, resource_managers, consultants, project_managers)


def simulate_day(f: Firm, day: date, erp: ErpView) -> list[RowChange]:
    """The row changes of one simulated day (none on a weekend), applied to the mirror."""
    f.changes = []
    if day.isoweekday() > 5:
        return f.changes
    f.day, f.erp = day, erp
    for actor in ACTORS:
        actor(f)
    f.first_day = False
    f.weekday_number += 1
    return f.changes
