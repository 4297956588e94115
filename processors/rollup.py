"""The rollup stage: firm-wide views on one partition (pipeline, bookings, skill_week).

Its input is one contribution per contributor, replaced as a whole each time
(``opp|<id>`` from the project stage: pipeline and bookings;
``line|<project_code>|<id>``: an opportunity line's weighted demand, from its
project, so that a line moved to another opportunity is taken out by one
project and put in by the other without the two replacing each other;
``res|<id>`` from the resource stage:
a resource's supply profile). Replacing, never adding, makes a repeated
contribution harmless. The aggregates are exact (demand as ``Fraction``) and
rebuilt from the mirrored contributions after a restart.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from datetime import date
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache, partial
from typing import Any

from processors.capacity import weeks_between
from processors.effects import Effects
from processors.formulas import HOURS_SCALE, MONEY_SCALE, store, weekdays_between, weekdays_in
from processors.formulas.weeks import FRIDAY, SUNDAY
from processors.formulas.rounding import to_decimal

ZERO = Decimal(0)
ZERO_HOURS = Fraction(0)
#: The skills of DOMAIN.md section 1: skill_week has a row for each of them in every week of its range.
SKILLS = ("aws", "azure", "gcp", "sap", "salesforce", "data_engineering", "security")


def legacy_line_key(key: str) -> str | None:
    """For a line's contribution (``line|<project_code>|<id>``), the key versions before 3ab4465 gave it
    (``line|<id>``); None for any other key. A rollup state written by such a version still holds those."""
    kind, _, rest = key.partition("|")
    if kind != "line" or "|" not in rest:
        return None
    return f"line|{rest.rpartition('|')[2]}"


@lru_cache(maxsize=4096)
def _weeks(first: date, last: date) -> tuple[date, ...]:
    """:func:`weeks_between`, remembered: the same spans and the same range come back contribution after
    contribution (a range of a hundred weeks was listed twice for each of them)."""
    return tuple(weeks_between(first, last))


def _line_weeks(value: dict[str, Any] | None) -> tuple[date, ...]:
    if value is None:
        return ()
    start, end = date.fromisoformat(value["start"]), date.fromisoformat(value["end"])
    return _weeks(start, end)


def _line_demands(value: dict[str, Any]) -> list[tuple[date, Fraction]]:
    """The line's weighted demand in each week of its span: weight × hours spread evenly over its weekdays.

    Exact: (weight × hours / weekdays) × weekdays in the week is the same rational as
    weight × hours × weekdays in the week / weekdays, computed once per line instead of once per week.
    """
    start, end = date.fromisoformat(value["start"]), date.fromisoformat(value["end"])
    weeks = _weeks(start, end)
    whole = weekdays_between(start, end)
    if whole == 0:
        return [(week, Fraction(0)) for week in weeks]
    per_weekday = Fraction(value["weight"]) * Fraction(value["hours"]) / whole
    # A week's demand is per_weekday × its weekdays in the span (0..5), so there are at most six values, each
    # computed once; a week the span covers from Monday to Friday has 5 without counting (a line spans half a
    # year of weeks, most of them whole, and a Fraction product per week was most of the rollup's time).
    multiples: dict[int, Fraction] = {5: per_weekday * 5}
    demands = []
    for week in weeks:
        n = 5 if start <= week and week + FRIDAY <= end else weekdays_in(start, end, week)
        demand = multiples.get(n)
        if demand is None:
            demand = multiples[n] = per_weekday * n
        demands.append((week, demand))
    return demands


class RollupStage:
    def __init__(self) -> None:
        self.contributions: dict[str, Any] = {}
        self.pipeline: dict[tuple[str, date], list] = {}
        self.bookings: dict[tuple[str, date], list] = {}
        self.demand: dict[str, dict[date, Fraction]] = {s: {} for s in SKILLS}
        self.members: dict[str, set[int]] = {s: set() for s in SKILLS}
        # supply_hours(skill, week) = Σ capacity of the active members hired by the week's Sunday (by hire date,
        # cumulated on demand) + Σ of what their time off takes away in that week; booked_hours likewise per week.
        self.capacity_by_hire: dict[str, dict[date, Decimal]] = {}
        self.off_by_week: dict[str, dict[date, Decimal]] = {}
        self.booked: dict[str, dict[date, Decimal]] = {}
        self._cumulated: dict[str, tuple[list[date], list[Decimal]]] = {}
        self.firsts: Counter = Counter()
        self.lasts: Counter = Counter()
        #: line contribution key → _line_demands of the contribution it holds now
        self._demands_of: dict[str, list[tuple[date, Fraction]]] = {}

    # ---- folding
    def load(self, key: str, value: Any) -> None:
        self._apply(key, value)

    def _apply(self, key: str, value: Any) -> Any:
        previous = self.contributions.pop(key, None)
        if value is not None:
            self.contributions[key] = value
        kind, _, ident = key.partition("|")
        for contribution, step in ((previous, -1), (value, 1)):
            if contribution is None:
                continue
            if kind == "opp":
                self._opp(contribution, step)
            elif kind == "line":
                self._line(key, contribution, step)
            elif kind == "res":
                self._res(int(ident), contribution, step)
        return previous

    def _opp(self, c: dict[str, Any], step: int) -> None:
        if c["pipeline"]:
            sl, month, amount, weighted = c["pipeline"]
            agg = self.pipeline.setdefault((sl, date.fromisoformat(month)), [0, ZERO, ZERO])
            agg[0] += step
            agg[1] += step * Decimal(amount)
            agg[2] += step * Decimal(weighted)
        if c["bookings"]:
            sl, month, value = c["bookings"]
            agg = self.bookings.setdefault((sl, date.fromisoformat(month)), [0, ZERO])
            agg[0] += step
            agg[1] += step * Decimal(value)

    def _line(self, key: str, c: dict[str, Any], step: int) -> None:
        # A contribution taken out is the one put in before: its demands as they were computed then.
        if step > 0:
            demands = self._demands_of[key] = _line_demands(c)
        else:
            demands = self._demands_of.pop(key, None) or _line_demands(c)
        if not demands:
            return
        self.firsts[demands[0][0]] += step
        self.lasts[demands[-1][0]] += step
        per_week = self.demand.setdefault(c["skill"], {})
        for week, demand in demands:
            per_week[week] = per_week.get(week, ZERO_HOURS) + (demand if step > 0 else -demand)

    def _res(self, resource_id: int, c: dict[str, Any], step: int) -> None:
        skill = c["skill"]
        if skill is not None:
            members = self.members.setdefault(skill, set())
            (members.add if step > 0 else members.discard)(resource_id)
            if c["active"]:
                capacity = Decimal(c["capacity"])
                hired = date.fromisoformat(c["hired_on"]) if c["hired_on"] is not None else date.min
                by_hire = self.capacity_by_hire.setdefault(skill, {})
                by_hire[hired] = by_hire.get(hired, ZERO) + step * capacity
                self._cumulated.pop(skill, None)
                off_by_week = self.off_by_week.setdefault(skill, {})
                for iso, off in c["off"].items():
                    week = date.fromisoformat(iso)
                    if hired <= week + SUNDAY:  # capacity never below 0: time off takes at most all of it
                        taken = min(Decimal(off), capacity) if capacity > 0 else ZERO
                        off_by_week[week] = off_by_week.get(week, ZERO) - step * taken
            booked = self.booked.setdefault(skill, {})
            for iso, hours in c["booked"].items():
                week = date.fromisoformat(iso)
                booked[week] = booked.get(week, ZERO) + step * Decimal(hours)
        if c["first"] is not None:
            self.firsts[date.fromisoformat(c["first"])] += step
            self.lasts[date.fromisoformat(c["last"])] += step

    def week_range(self) -> tuple[date, ...]:
        firsts = [w for w, n in self.firsts.items() if n > 0]
        lasts = [w for w, n in self.lasts.items() if n > 0]
        if not firsts:
            return ()
        return _weeks(min(firsts), max(lasts))

    # ---- views
    def pipeline_row(self, key: tuple[str, date]) -> dict[str, Any] | None:
        agg = self.pipeline.get(key)
        if agg is None or agg[0] == 0:
            return None
        return {"service_line": key[0], "close_month": key[1], "open_count": agg[0],
                "open_amount": store(agg[1], MONEY_SCALE), "weighted_amount": store(agg[2], MONEY_SCALE)}

    def bookings_row(self, key: tuple[str, date]) -> dict[str, Any] | None:
        agg = self.bookings.get(key)
        if agg is None or agg[0] == 0:
            return None
        return {"service_line": key[0], "won_month": key[1], "won_count": agg[0],
                "contract_value": store(agg[1], MONEY_SCALE)}

    def skill_row(self, skill: str, week: date) -> dict[str, Any]:
        found = self.demand.get(skill)
        demand = to_decimal(found.get(week, ZERO) if found else ZERO)
        supply = self._supply(skill, week)
        booked = self.booked.get(skill, {}).get(week, ZERO)
        return {"skill": skill, "week_start": week, "demand_hours": store(demand, HOURS_SCALE),
                "supply_hours": store(supply, HOURS_SCALE), "booked_hours": store(booked, HOURS_SCALE),
                "gap_hours": store(demand - (supply - booked), HOURS_SCALE)}

    def _supply(self, skill: str, week: date) -> Decimal:
        cumulated = self._cumulated.get(skill)
        if cumulated is None:
            hires, totals, total = [], [], ZERO
            for hired, capacity in sorted(self.capacity_by_hire.get(skill, {}).items()):
                total += capacity
                hires.append(hired)
                totals.append(total)
            cumulated = self._cumulated[skill] = (hires, totals)
        hires, totals = cumulated
        hired_by = bisect_right(hires, week + SUNDAY)
        base = totals[hired_by - 1] if hired_by else ZERO
        return base + self.off_by_week.get(skill, {}).get(week, ZERO)

    def on_contribution(self, key: str, value: Any) -> Effects:
        before = self.week_range()
        previous = self._apply(key, value)
        after = self.week_range()
        fx = Effects()
        kind = key.partition("|")[0]
        if kind == "opp":
            for c in (previous, value):
                if c and c["pipeline"]:
                    k = (c["pipeline"][0], date.fromisoformat(c["pipeline"][1]))
                    fx.views.append(("pipeline", k, partial(self.pipeline_row, k)))
                if c and c["bookings"]:
                    k = (c["bookings"][0], date.fromisoformat(c["bookings"][1]))
                    fx.views.append(("bookings", k, partial(self.bookings_row, k)))
            return fx
        if before is not after and before != after:  # the same range is the same remembered tuple
            for week in sorted(set(before) - set(after)):
                for skill in SKILLS:
                    fx.views.append(("skill_week", (skill, week), None))
            fx.extend(self._skill_rows(SKILLS, after))
            return fx
        skills = {c["skill"] for c in (previous, value) if c and c.get("skill") in SKILLS}
        if kind == "line":
            weeks = sorted(set(_line_weeks(previous)) | set(_line_weeks(value)))
            in_range = set(after)
            fx.extend(self._skill_rows(skills, [w for w in weeks if w in in_range]))
        else:
            fx.extend(self._skill_rows(skills, after))
        return fx

    def _skill_rows(self, skills, weeks) -> Effects:
        fx = Effects()
        for skill in sorted(skills):
            for week in weeks:
                fx.views.append(("skill_week", (skill, week), partial(self.skill_row, skill, week)))
        return fx

    def view_rows(self):
        """Every row of the three views as the contributions give them (queries after a rebuild)."""
        for view, rows in (("pipeline", self.pipeline), ("bookings", self.bookings)):
            for k in rows:
                row = self.pipeline_row(k) if view == "pipeline" else self.bookings_row(k)
                if row is not None:
                    yield view, k, row
        for week in self.week_range():
            for skill in SKILLS:
                yield "skill_week", (skill, week), self.skill_row(skill, week)

    def refresh_all(self) -> Effects:
        fx = Effects()
        for k in self.pipeline:
            fx.views.append(("pipeline", k, partial(self.pipeline_row, k)))
        for k in self.bookings:
            fx.views.append(("bookings", k, partial(self.bookings_row, k)))
        fx.extend(self._skill_rows(SKILLS, self.week_range()))
        return fx


