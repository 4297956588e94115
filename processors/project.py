"""The project stage: everything keyed by project_code ('PRJ-' || opportunity_id).

One :class:`ProjectState` per opportunity folds the rows that share its
project_code: the opportunity, its lines, milestones plan and change orders
(crm), its time entries and expenses (timeexp), its billing milestones and
billing events (erp). From them it keeps the ``project_financials`` view and
``project_risks`` rows, and derives project requests, resource demand,
billing triggers and risk alerts (DOMAIN.md sections 2 and 3).

Sums are kept incrementally (old contribution out, new one in), exactly, in
``Decimal``; the state is a pure function of the mirrored rows plus the small
metadata of what was already emitted, so rebuilding it from the mirror after
a restart gives the same figures.

Derived events carry deterministic ids and are re-derived, never re-invented,
on replay: a trigger already recorded is re-sent with its recorded amount.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any

from processors.effects import Effects
from processors.formulas import (
    HOURS_SCALE,
    MONEY_SCALE,
    RATIO_SCALE,
    BillingMilestone,
    BillingPeriod,
    ChangeOrder,
    Expense,
    Opportunity,
    TimeEntry,
    billing_frequency,
    cost_center,
    demand_change,
    demand_weight,
    milestone_event_id,
    month_start,
    period_billable_value,
    period_event_id,
    resource_demand_state,
    revenue_method,
    store,
)
from processors.formulas.billing import (
    MILESTONE_COMPLETED,
    PERIOD_CLOSE,
    close_counts,
    milestone_adjustment,
    milestone_adjustment_id,
    parse_trigger_id,
)
from processors.formulas.rounding import quotient, store_ratio, wide
from processors.formulas.risk import (
    BURN,
    MARGIN,
    NON_BILLABLE,
    NON_BILLABLE_THRESHOLD,
    RATE_LEAKAGE,
    RULES,
    burn_rule,
    margin_rule,
)
from processors.formulas.rows import CLOSED_WON

ZERO = Decimal(0)
ONE = Decimal(1)
APPROVED = "approved"
TIME_AND_MATERIALS = "time_and_materials"
REQUESTS_TOPIC = "derived.project_requests"
DEMAND_TOPIC = "derived.resource_demand"
TRIGGERS_TOPIC = "derived.billing_triggers"
ALERTS_TOPIC = "derived.project_risk_alerts"
#: Row kinds that change a project's request, demand or rollup contributions (others change figures only).
COMMERCIAL_KINDS = frozenset({"opportunity", "line", "opp_milestone", "change_order"})


def project_code_of(opportunity_id: int) -> str:
    return f"PRJ-{opportunity_id}"


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Sums:
    """The project's running sums, each exact."""

    earned_time: Decimal = ZERO
    time_cost: Decimal = ZERO
    approved_hours: Decimal = ZERO
    non_billable_hours: Decimal = ZERO
    billable_expenses: Decimal = ZERO
    expense_cost: Decimal = ZERO
    milestones_done: Decimal = ZERO
    billed: Decimal = ZERO
    co_amount: Decimal = ZERO
    co_hours: Decimal = ZERO
    planned_cost: Decimal = ZERO


def _entry_sums(e: TimeEntry) -> dict[str, Decimal]:
    if e.status != APPROVED:
        return {}
    out = {"time_cost": e.hours * e.cost_rate, "approved_hours": e.hours}
    if e.billable:
        out["earned_time"] = e.hours * e.bill_rate
    else:
        out["non_billable_hours"] = e.hours
    return out


def _expense_sums(x: Expense) -> dict[str, Decimal]:
    if x.status != APPROVED:
        return {}
    out = {"expense_cost": x.amount}
    if x.billable:
        out["billable_expenses"] = x.amount
    return out


def _milestone_sums(m: BillingMilestone) -> dict[str, Decimal]:
    return {"milestones_done": m.amount} if m.status in ("completed", "invoiced") else {}


def _change_order_sums(c: ChangeOrder) -> dict[str, Decimal]:
    return {"co_amount": c.amount_delta, "co_hours": c.hours_delta} if c.status == APPROVED else {}


SUMS = {
    "entry": _entry_sums,
    "expense": _expense_sums,
    "billing_milestone": _milestone_sums,
    "billing_event": lambda b: {"billed": b.amount},
    "change_order": _change_order_sums,
    "line": lambda ln: {"planned_cost": ln.hours * ln.est_cost_rate},
}


@dataclass
class ProjectState:
    """The folded rows of one project_code, and what was already emitted for it."""

    project_code: str
    opportunity: Opportunity | None = None
    opportunity_row: dict[str, Any] | None = None
    rows: dict[str, dict[Any, Any]] = field(default_factory=dict)
    sums: Sums = field(default_factory=Sums)
    #: approved bill rates per role, for rate leakage: role → Counter(rate → entries)
    approved_rates: dict[str, Counter] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=lambda: {"request": None, "demand": {}, "risks": {}, "triggers": {}})
    #: last contributions sent to the rollup stage (not persisted: re-sent after a restart)
    sent: dict[str, Any] = field(default_factory=dict)
    #: the rules raised (rule → detail) at the last evaluation: when a row leaves them as they were, neither the
    #: alerts nor the project_risks rows can change (not persisted: None after a restart)
    last_raised: dict[str, str] | None = None

    def table(self, kind: str) -> dict[Any, Any]:
        return self.rows.setdefault(kind, {})

    def apply(self, kind: str, key: Any, row: Any) -> Any:
        """Fold one row (None = deleted); returns the previous row of that key."""
        if kind == "opportunity":
            previous = self.opportunity
            self.opportunity = row[0] if row is not None else None
            self.opportunity_row = row[1] if row is not None else None
            return previous
        rows = self.table(kind)
        previous = rows.pop(key, None)
        if row is not None:
            rows[key] = row
        contribution = SUMS.get(kind)
        if contribution is not None:
            if previous is not None:
                for name, value in contribution(previous).items():
                    setattr(self.sums, name, getattr(self.sums, name) - value)
            if row is not None:
                for name, value in contribution(row).items():
                    setattr(self.sums, name, getattr(self.sums, name) + value)
        if kind == "entry":
            for e, step in ((previous, -1), (row, 1)):
                if e is not None and e.status == APPROVED:
                    counter = self.approved_rates.get(e.role)
                    if counter is None:
                        counter = self.approved_rates[e.role] = Counter()
                    counter[e.bill_rate] += step
                    if counter[e.bill_rate] == 0:
                        del counter[e.bill_rate]
        return previous

    # ---- figures (DOMAIN.md section 2)
    @property
    def won(self) -> bool:
        return self.opportunity is not None and self.opportunity.stage == CLOSED_WON

    def figures(self) -> dict[str, Any]:
        """Exact figures of the project (requires the opportunity)."""
        o, s = self.opportunity, self.sums
        assert o is not None
        contract_value = o.amount + s.co_amount
        contract_hours = o.estimated_hours + s.co_hours
        revenue = s.earned_time if o.contract_type == TIME_AND_MATERIALS else s.milestones_done
        delivered = revenue + s.billable_expenses
        cost = s.time_cost + s.expense_cost
        planned_cost = quotient(s.planned_cost, o.amount)
        return {
            "contract_value": contract_value, "contract_hours": contract_hours, "earned_revenue": revenue,
            "billable_expenses": s.billable_expenses, "delivered_value": delivered, "billed": s.billed,
            "wip": delivered - s.billed, "backlog": contract_value - revenue, "cost": cost,
            "margin": quotient(delivered - cost, delivered),
            "planned_margin": None if planned_cost is None else wide("subtract", ONE, planned_cost),
            "hours_burn": quotient(s.approved_hours, contract_hours),
        }

    def view_row(self) -> dict[str, Any] | None:
        """The stored ``project_financials`` row, rounded as the reporting store keeps it; None if not won."""
        if not self.won:
            return None
        o, row, f = self.opportunity, self.opportunity_row, self.figures()
        money = ("contract_value", "earned_revenue", "billable_expenses", "delivered_value", "billed", "wip",
                 "backlog", "cost")
        out: dict[str, Any] = {
            "project_code": self.project_code, "opportunity_id": o.opportunity_id, "account_id": row["account_id"],
            "service_line": o.service_line, "contract_type": o.contract_type, "currency": row["currency"],
        }
        for name in money:
            out[name] = store(f[name], MONEY_SCALE)
        # wip from the stored delivered value and billed: bills are whole cents of the delivered value rounded as
        # stored, so after the final close wip is 0, as DOMAIN.md section 5 requires (docs/formulas.md).
        out["wip"] = out["delivered_value"] - out["billed"]
        out["contract_hours"] = store(f["contract_hours"], HOURS_SCALE)
        out["margin_pct"] = store_ratio(f["margin"])
        out["planned_margin_pct"] = store_ratio(f["planned_margin"])
        out["hours_burn"] = store_ratio(f["hours_burn"])
        return out

    def raised(self) -> dict[str, str]:
        """Rules raised now → a short detail (DOMAIN.md section 3, on exact values)."""
        if not self.won:
            return {}
        f = self.figures()
        raised: dict[str, str] = {}
        if burn_rule(f["hours_burn"], f["earned_revenue"], f["contract_value"]):
            raised[BURN] = (f"hours burn {store(f['hours_burn'], RATIO_SCALE)} with earned revenue "
                            f"{f['earned_revenue']} of {f['contract_value']}")
        if margin_rule(f["margin"], f["planned_margin"], f["delivered_value"], f["contract_value"]):
            raised[MARGIN] = (f"margin {store(f['margin'], RATIO_SCALE)} against planned "
                              f"{store(f['planned_margin'], RATIO_SCALE)}")
        share = quotient(self.sums.non_billable_hours, self.sums.approved_hours)
        if share is not None and share >= NON_BILLABLE_THRESHOLD:
            raised[NON_BILLABLE] = f"non-billable share {store(share, RATIO_SCALE)} of approved hours"
        sold: dict[str, Decimal] = {}
        for ln in self.table("line").values():
            sold[ln.role] = min(sold.get(ln.role, ln.bill_rate), ln.bill_rate)
        leaks = [f"{role} billed at {min(rates)} below sold {sold[role]}"
                 for role, rates in sorted(self.approved_rates.items())
                 if role in sold and rates and min(rates) < sold[role]]
        if leaks:
            raised[RATE_LEAKAGE] = "; ".join(leaks)
        return raised


class ProjectStage:
    """The project states of one partition, plus what is broadcast to it (accounts, billing periods)."""

    def __init__(self) -> None:
        self.projects: dict[str, ProjectState] = {}
        self.accounts: dict[int, dict[str, Any]] = {}
        self.periods: dict[int, BillingPeriod] = {}
        #: project code → kinds of the rows folded since its last settle (see :meth:`on_row`)
        self.unsettled: dict[str, set[str]] = {}

    def state(self, project_code: str) -> ProjectState:
        st = self.projects.get(project_code)
        if st is None:
            st = self.projects[project_code] = ProjectState(project_code)
        return st

    # ---- folding without effects (rebuild from the mirror)
    def load(self, project_code: str, kind: str, key: Any, row: Any) -> None:
        if kind == "meta":
            self.state(project_code).meta = row
        elif kind == "account":
            self.accounts[key] = row
        elif kind == "period":
            self.periods[key] = row
        else:
            self.state(project_code).apply(kind, key, row)

    # ---- folding with effects
    def on_row(self, project_code: str, kind: str, key: Any, row: Any, *, settle: bool = True,
               commit_ms: str | None = None) -> Effects:
        """Fold a row change of ``project_code`` and return what it changes downstream.

        With ``settle=False`` the project's derivations (its view row, request, demand, rollup contribution and
        risk rules) wait for :meth:`settle`, which runs them once for a group of rows (the worker: the rows of
        one stage message): in a catch-up a message holds dozens of rows of a project, and evaluating every
        rule after each of them was a quarter of the stage's time. A milestone's billing trigger is still
        derived at once. What a group derives is what its last state gives: a rule that a row of the group
        raises and a later one clears is neither raised nor cleared, and a request carries the lines that
        arrived with its opportunity (docs/processors.md, "Derivations per message").
        """
        st = self.state(project_code)
        meta_before = st.meta
        previous = st.apply(kind, key, row)
        fx = Effects()
        if kind == "billing_milestone":
            if row is not None:
                self._milestone_trigger(st, row, previous, fx, commit_ms)
            elif previous is not None:
                # deleted: what it billed is taken back
                if st.opportunity_row is not None and not self._stale_milestone(st, previous.milestone_id, commit_ms):
                    self._milestone_adjust(st, previous.milestone_id, None, fx)
        if kind == "line" and row is None:
            # always: a lost deletion would leave demand behind. Keyed by the project too: a line moved to another
            # opportunity is taken out here and put in by its new project's partition, and the two must not
            # replace each other in the rollup, whichever arrives last.
            fx.rollup.append((f"line|{project_code}|{key}", None))
            st.sent.pop(f"line|{project_code}|{key}", None)
        if settle:
            self._refresh(st, fx, (kind,))
        else:
            kinds = self.unsettled.get(project_code)
            if kinds is None:
                kinds = self.unsettled[project_code] = set()
            kinds.add(kind)
        if st.meta is not meta_before:
            fx.meta.append((project_code, st.meta))
        return fx

    def settle(self, project_code: str) -> Effects:
        """The derivations the rows of ``project_code`` folded with ``settle=False`` are waiting for, at once."""
        kinds = self.unsettled.pop(project_code, None)
        fx = Effects()
        if kinds is None:
            return fx
        st = self.projects[project_code]
        before = st.meta
        self._refresh(st, fx, kinds)
        if st.meta is not before:
            fx.meta.append((project_code, st.meta))
        return fx

    def on_account(self, account_id: int, row: dict[str, Any] | None) -> Effects:
        if row is None:
            self.accounts.pop(account_id, None)
        else:
            self.accounts[account_id] = row
        fx = Effects()
        for st in self.projects.values():
            if st.opportunity_row is not None and st.opportunity_row["account_id"] == account_id:
                self._request(st, fx, False)
                fx.meta.append((st.project_code, st.meta))  # changed or not: see on_period
        return fx

    def on_period(self, period_id: int, period: BillingPeriod | None) -> Effects:
        """A billing period changed; when it is closed, bill every project of this partition."""
        if period is None:
            self.periods.pop(period_id, None)
            return Effects()
        self.periods[period_id] = period
        fx = Effects()
        if period.status != "closed":
            return fx
        for st in self.projects.values():
            self._period_trigger(st, period, fx)
            # The metadata of every project the row may change, changed or not: a crash can leave the local store
            # ahead of the changelog; the replay of this row then finds its triggers recorded and changes nothing,
            # and only writing the metadata again puts them on the changelog (as the worker does for a project's
            # own rows, processors/app.py).
            fx.meta.append((st.project_code, st.meta))
        return fx

    def refresh_all(self) -> Effects:
        """Every view row, rollup contribution and current derived event of the partition, after a rebuild."""
        fx = Effects()
        for st in self.projects.values():
            self._resend(st, fx)
        return fx

    def refresh(self, project_code: str) -> Effects | None:
        """What :meth:`refresh_all` gives for one project (``psmesh processors republish --project``); None when
        the partition holds no such project."""
        st = self.projects.get(project_code)
        if st is None:
            return None
        fx = Effects()
        self._resend(st, fx)
        return fx

    def _resend(self, st: ProjectState, fx: Effects) -> None:
        st.sent.clear()
        before = st.meta
        self._refresh(st, fx, resend=True)
        if st.meta is not before:
            fx.meta.append((st.project_code, st.meta))

    def view_rows(self):
        """The view rows of the partition as its state gives them, deriving nothing (queries after a rebuild)."""
        for st in self.projects.values():
            row = st.view_row()
            if row is None:
                continue
            yield "project_financials", (st.project_code,), row
            raised = st.raised()
            for rule in RULES:
                was, detail = st.meta["risks"].get(rule), raised.get(rule)
                if was is not None and detail is not None:
                    yield "project_risks", (st.project_code, rule), {
                        "project_code": st.project_code, "rule": rule,
                        "raised_at": datetime.fromisoformat(was["raised_at"]), "detail": detail}

    # ---- derivations
    def _refresh(self, st: ProjectState, fx: Effects, kinds: Collection[str] | None = None,
                 resend: bool = False) -> None:
        """Re-derive what rows of ``kinds`` can change (everything when None); ``resend`` repeats current events."""
        fx.views.append(("project_financials", (st.project_code,), st.view_row))
        mark = len(fx.events)
        if (kinds is None or "opportunity" in kinds) and st.opportunity_row is not None:
            # milestones completed before the opportunity arrived bill now, in its currency
            for m in list(st.table("billing_milestone").values()):
                self._milestone_trigger(st, m, None, fx)
        if kinds is None or not COMMERCIAL_KINDS.isdisjoint(kinds):
            self._request(st, fx, resend)
            self._demand(st, fx, resend)
            self._rollup(st, fx)
        self._risks(st, fx, resend)
        if resend:
            # each recorded trigger once: those of completed milestones went out above already
            sent = {key["billing_event_id"] for topic, key, _ in fx.events[mark:] if topic == TRIGGERS_TOPIC}
            for event_id, amount in sorted(st.meta["triggers"].items()):
                if event_id in sent:
                    continue
                trigger_type, source_id = parse_trigger_id(event_id)
                if trigger_type == MILESTONE_COMPLETED:
                    self._send_trigger(st, fx, event_id, trigger_type, Decimal(amount), milestone_id=source_id)
                else:
                    self._send_trigger(st, fx, event_id, trigger_type, Decimal(amount), period_id=source_id)

    def _request(self, st: ProjectState, fx: Effects, resend: bool) -> None:
        o, row = st.opportunity, st.opportunity_row
        if o is None or not st.won or row is None or o.closed_at is None:
            return
        account = self.accounts.get(row["account_id"])
        if account is None:
            return  # the account has not arrived yet; its arrival re-evaluates this project
        f = st.figures()
        content = {
            "project_code": st.project_code, "opportunity_id": o.opportunity_id, "account_id": row["account_id"],
            "name": row["name"], "service_line": o.service_line, "contract_type": o.contract_type,
            "currency": row["currency"], "budget_amount": store(f["contract_value"], MONEY_SCALE),
            "budget_hours": store(f["contract_hours"], HOURS_SCALE),
            "start_date": _date(row["target_start_date"]), "end_date": _date(row["target_end_date"]),
            "billing_frequency": billing_frequency(o.contract_type), "revenue_method": revenue_method(o.contract_type),
            "cost_center": cost_center(account["region"], o.service_line), "won_at": o.closed_at,
            "milestones": [
                {"milestone_id": m["milestone_id"], "name": m["name"], "amount": Decimal(m["amount"]),
                 "planned_date": _date(m["planned_date"])}
                for _, m in sorted(st.table("opp_milestone").items())],
            "staffing_lines": [
                {"line_id": ln.line_id, "role": ln.role, "skill": ln.skill, "hours": ln.hours,
                 "bill_rate": ln.bill_rate, "est_cost_rate": ln.est_cost_rate,
                 "start_date": ln.start_date, "end_date": ln.end_date}
                for _, ln in sorted(st.table("line").items())],
        }
        digest = hashlib.sha256(repr(sorted(content.items())).encode()).hexdigest()[:16]
        if st.meta["request"] == digest:
            if not resend:
                return
            seq = st.meta.get("request_seq")
            if seq is None:  # recorded before request_seq: its id was the digest alone
                event_type = "request" if st.meta.get("first_request", digest) == digest else "update"
                event_id = f"{st.project_code}-{digest}"
            else:
                event_type, event_id = _request_identity(st.project_code, digest, seq)
        else:
            seq = st.meta.get("request_seq", 0 if st.meta["request"] is None else 1) + 1
            event_type, event_id = _request_identity(st.project_code, digest, seq)
            st.meta = {**st.meta, "request": digest, "request_seq": seq,
                       "first_request": st.meta.get("first_request", digest)}
        fx.events.append((REQUESTS_TOPIC, {"project_code": st.project_code},
                          {"event_id": event_id, "event_type": event_type, **content}))

    def _demand(self, st: ProjectState, fx: Effects, resend: bool) -> None:
        o = st.opportunity
        demand = dict(st.meta["demand"])
        lines = st.table("line")
        for line_id in sorted(set(lines) | {int(k) for k in demand}):
            previous, seq = demand.get(str(line_id), (None, 0))
            ln = lines.get(line_id)
            state = resource_demand_state(o if ln is not None else None, previous)
            if demand_change(previous, state) is not None:
                seq += 1
                demand[str(line_id)] = [state, seq]
            elif not resend or state is None:
                continue
            fx.events.append((DEMAND_TOPIC, {"line_id": line_id}, {
                "event_id": f"{st.project_code}-L{line_id}-{seq}", "line_id": line_id,
                "opportunity_id": ln.opportunity_id if ln else int(st.project_code[4:]),
                "project_code": st.project_code, "state": state,
                "role": ln.role if ln else None, "skill": ln.skill if ln else None,
                "hours": ln.hours if ln else None, "start_date": ln.start_date if ln else None,
                "end_date": ln.end_date if ln else None,
                "probability": o.probability if o is not None else None,
            }))
        if demand != st.meta["demand"]:
            st.meta = {**st.meta, "demand": demand}

    def _risks(self, st: ProjectState, fx: Effects, resend: bool = False) -> None:
        """Raise and clear alerts per (project, rule); the view keeps a row while an alert is raised."""
        raised = st.raised()
        if raised == st.last_raised and not resend:
            return
        st.last_raised = raised
        risks = dict(st.meta["risks"])  # rule → {"raised_at", "seq"} while raised; "<rule>_seq" → last seq
        for rule in RULES:
            was, detail = risks.get(rule), raised.get(rule)
            key = {"project_code": st.project_code, "rule": rule}
            if detail is not None:
                if was is None:
                    seq = risks.get(f"{rule}_seq", 0) + 1
                    was = risks[rule] = {"raised_at": _now().isoformat(), "seq": seq}
                    risks[f"{rule}_seq"] = seq
                    resend = True
                raised_at = datetime.fromisoformat(was["raised_at"])
                if resend:
                    fx.events.append((ALERTS_TOPIC, key, {
                        "event_id": f"{st.project_code}-{rule}-raised-{was['seq']}", **key, "state": "raised",
                        "raised_at": raised_at, "detail": detail}))
                fx.views.append(("project_risks", (st.project_code, rule),
                                 {**key, "raised_at": raised_at, "detail": detail}))
            elif was is not None:
                del risks[rule]
                fx.events.append((ALERTS_TOPIC, key, {
                    "event_id": f"{st.project_code}-{rule}-cleared-{was['seq']}", **key, "state": "cleared",
                    "raised_at": datetime.fromisoformat(was["raised_at"]), "detail": "cleared"}))
                fx.views.append(("project_risks", (st.project_code, rule), None))
        if risks != st.meta["risks"]:
            st.meta = {**st.meta, "risks": risks}

    def _milestone_trigger(self, st: ProjectState, m: BillingMilestone, previous: BillingMilestone | None,
                           fx: Effects, commit_ms: str | None = None) -> None:
        if st.opportunity_row is None:
            return  # without the opportunity there is no currency yet: its arrival bills it
        if self._stale_milestone(st, m.milestone_id, commit_ms):
            return
        event_id = milestone_event_id(st.project_code, m.milestone_id)
        recorded = st.meta["triggers"].get(event_id)
        if recorded is not None:
            if m.status == "completed":
                self._send_trigger(st, fx, event_id, MILESTONE_COMPLETED, Decimal(recorded), milestone_id=m.milestone_id)
            self._milestone_adjust(st, m.milestone_id, m, fx)
            return
        if m.status != "completed":
            return
        if previous is not None and previous.status in ("completed", "invoiced"):
            return
        if m.amount == 0:
            return
        recorded = str(m.amount)
        st.meta = {**st.meta, "triggers": {**st.meta["triggers"], event_id: recorded}}
        self._send_trigger(st, fx, event_id, MILESTONE_COMPLETED, Decimal(recorded), milestone_id=m.milestone_id)

    @staticmethod
    def _stale_milestone(st: ProjectState, milestone_id: int, commit_ms: str | None) -> bool:
        """True for a version of a milestone's row committed before the last one its billing followed: the capture
        sending again from its slot what it published before (after a restart). Billing follows versions in commit
        order only, so a replay adds no invoice and credit note of its own, and the newer versions after it find
        nothing to adjust. Otherwise the version's commit time (None for a snapshot row) is recorded."""
        if commit_ms is None:
            return False
        followed = st.meta.get("milestone_ms", {})
        last = followed.get(str(milestone_id))
        if last is not None and int(commit_ms) < int(last):
            return True
        if last != commit_ms:
            st.meta = {**st.meta, "milestone_ms": {**followed, str(milestone_id): commit_ms}}
        return False

    def _milestone_adjust(self, st: ProjectState, milestone_id: int, m: BillingMilestone | None, fx: Effects) -> None:
        """A milestone the mesh billed follows its row: moved back from completed, deleted (``m`` None) or its amount
        changed, it is adjusted by an event of its own, '<code>-M<id>-<n>' (a credit when negative), so that the
        project's events keep summing to its delivered value (formulas.billing.milestone_adjustment). Recorded like
        the other triggers: a replay finds nothing left to adjust and resends nothing new."""
        if st.opportunity_row is None:
            return
        event_id = milestone_event_id(st.project_code, milestone_id)
        triggers = st.meta["triggers"]
        first = triggers.get(event_id)
        if first is None:
            return  # never billed by the mesh (an 'invoiced' milestone first seen so): nothing to follow
        adjustments = [tid for tid in triggers if tid.startswith(event_id + "-")]
        billed = Decimal(first) + sum((Decimal(triggers[tid]) for tid in adjustments), ZERO)
        amount = milestone_adjustment(m, billed)
        if amount == 0:
            return
        adjustment_id = milestone_adjustment_id(st.project_code, milestone_id, len(adjustments) + 1)
        st.meta = {**st.meta, "triggers": {**triggers, adjustment_id: str(amount)}}
        self._send_trigger(st, fx, adjustment_id, MILESTONE_COMPLETED, amount, milestone_id=milestone_id)

    def _period_trigger(self, st: ProjectState, period: BillingPeriod, fx: Effects) -> None:
        """Bill what the project delivered and was not billed yet; a negative amount is a credit.

        As :func:`processors.formulas.billing.period_close_billing`: through the period's end, or through the
        latest date an earlier close of the project billed through when that is later (a period closed after a
        later one, or after a later one was reopened or deleted, takes back nothing that close billed). The amount
        and that date are recorded the first time, so a replay resends the same amount.
        """
        o = st.opportunity
        if o is None or not st.won:
            return
        event_id = period_event_id(st.project_code, period.period_id)
        recorded = st.meta["triggers"].get(event_id)
        if recorded is None:
            through = period.end_date
            billed_through = self._billed_through(st)
            if billed_through is not None and billed_through > through:
                through = billed_through
            billed_events = st.table("billing_event")
            # what earlier billing took: its period closes, and on time and materials its milestones too, whose
            # amounts are the time the closes bill (formulas.billing.period_close_billing)
            counted = close_counts(o.contract_type)
            already = ZERO
            for tid, amount in st.meta["triggers"].items():
                kind = parse_trigger_id(tid)[0]
                if kind in counted and tid != event_id and tid not in billed_events:
                    already += Decimal(amount)  # emitted, not yet back from the ERP
            already += sum((b.amount for b in billed_events.values()
                            if b.trigger_type in counted and b.billing_event_id != event_id), ZERO)
            # Bill the value to date rounded to the cent, less what was billed: the cents never drift.
            value = period_billable_value(o.contract_type, through, st.table("entry").values(),
                                          st.table("expense").values())
            amount = store(value, MONEY_SCALE) - already
            if amount == 0:
                return
            recorded = str(amount)
            st.meta = {**st.meta, "triggers": {**st.meta["triggers"], event_id: recorded},
                       "billed_through": through.isoformat()}
        self._send_trigger(st, fx, event_id, PERIOD_CLOSE, Decimal(recorded), period_id=period.period_id)

    def _billed_through(self, st: ProjectState) -> date | None:
        """The latest date the project's period-close events billed through (None before the first).

        Recorded with each trigger; for triggers recorded before that was (no ``billed_through``), the ends of
        their periods as this partition knows them."""
        recorded = st.meta.get("billed_through")
        if recorded is not None:
            return date.fromisoformat(recorded)
        ids = {tid for tid in st.meta["triggers"] if parse_trigger_id(tid)[0] == PERIOD_CLOSE}
        ids.update(b.billing_event_id for b in st.table("billing_event").values() if b.trigger_type == PERIOD_CLOSE)
        ends = [p.end_date for p in self.periods.values() if period_event_id(st.project_code, p.period_id) in ids]
        return max(ends, default=None)

    def _send_trigger(self, st: ProjectState, fx: Effects, event_id: str, trigger_type: str, amount: Decimal,
                      period_id: int | None = None, milestone_id: int | None = None) -> None:
        currency = st.opportunity_row["currency"] if st.opportunity_row else None
        fx.events.append((TRIGGERS_TOPIC, {"billing_event_id": event_id}, {
            "billing_event_id": event_id, "project_code": st.project_code, "trigger_type": trigger_type,
            "period_id": period_id, "milestone_id": milestone_id, "amount": store(amount, MONEY_SCALE),
            "currency": currency,
        }))

    def _rollup(self, st: ProjectState, fx: Effects) -> None:
        o = st.opportunity
        opp_id = st.project_code[4:]
        contribution = None
        if o is not None:
            pipeline = bookings = None
            if o.is_open and o.expected_close_date is not None:
                pipeline = [o.service_line, month_start(o.expected_close_date).isoformat(), str(o.amount),
                            str(o.amount * o.probability / 100)]
            if o.stage == CLOSED_WON and o.closed_at is not None:
                bookings = [o.service_line, month_start(o.closed_at).isoformat(), str(st.figures()["contract_value"])]
            if pipeline or bookings:
                contribution = {"pipeline": pipeline, "bookings": bookings}
        _send_rollup(st, fx, f"opp|{opp_id}", contribution)
        weight = demand_weight(o) if o is not None else Fraction(0)
        for line_id, ln in st.table("line").items():
            _send_rollup(st, fx, f"line|{st.project_code}|{line_id}", {
                "skill": ln.skill, "start": ln.start_date.isoformat(), "end": ln.end_date.isoformat(),
                "hours": str(ln.hours), "weight": f"{weight.numerator}/{weight.denominator}",
            })
        for key in [k for k in st.sent if k.startswith("line|") and int(k.rpartition("|")[2]) not in st.table("line")]:
            _send_rollup(st, fx, key, None)
            del st.sent[key]


def _request_identity(project_code: str, digest: str, seq: int) -> tuple[str, str]:
    """The event type and id of a project's ``seq``-th request event: the first is the request, each later one an
    update whose id carries its number too, so that content changed back to an earlier version's (a change order
    approved, then rejected) is a new event and not a repeat of that version's id."""
    if seq == 1:
        return "request", f"{project_code}-{digest}"
    return "update", f"{project_code}-{digest}-{seq}"


def _send_rollup(st: ProjectState, fx: Effects, key: str, value: Any) -> None:
    if key in st.sent and st.sent[key] == value:
        return
    if key not in st.sent and value is None:
        st.sent[key] = None
        fx.rollup.append((key, None))
        return
    st.sent[key] = value
    fx.rollup.append((key, value))


# A project's ``meta`` is never changed in place: every change assigns a new dict (copy on write), so a changed
# meta is a new object, and the stages compare identities instead of the contents.
