"""Runs the firm day by day over the simulated calendar and writes what it does.

Determinism: one ``random.Random(seed)`` drives every draw, ids are assigned
in order from 1, timestamps come from the simulated calendar. The same seed,
parameters and erp contents (always the case in open loop, where the firm
does not wait for the mesh's projects) give the same source rows.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Callable, Iterator, Mapping

from psmesh.config import Settings
from psmesh.firm.actors import Firm, simulate_day
from psmesh.firm.model import ErpView, RowChange, iso_week, simulated_days
from psmesh.firm.params import FirmParams
from psmesh.firm.writer import SourceWriter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeekProgress:
    """Reported after each simulated ISO week has been written."""

    iso_year: int
    iso_week: int
    week_number: int  # 1-based within the run
    weeks: int
    changes: int  # row changes written this week
    total: int  # row changes written so far
    elapsed: float  # wall-clock seconds since the run began

    @property
    def rate(self) -> float:
        return self.total / self.elapsed if self.elapsed > 0 else 0.0


def simulate(
    params: FirmParams,
    seed: int,
    weeks: int | None = None,
    open_loop: bool = False,
    erp: Callable[[date], ErpView] | None = None,
) -> Iterator[tuple[date, list[RowChange]]]:
    """Every simulated day and its row changes, without a database.

    ``erp`` tells the firm what the mesh has written into erp by the start of
    a day; without it the firm sees an empty erp (nothing to bill, and in
    closed loop no project to book time to).
    """
    firm = Firm(params=params, rng=random.Random(seed), open_loop=open_loop)
    empty = ErpView()
    for day in simulated_days(params.start_date, weeks or params.weeks):
        view = erp(day) if erp is not None and day.isoweekday() <= 5 else empty
        yield day, simulate_day(firm, day, view)


class _MeshWait:
    """Closed loop: read erp once the mesh has caught up with what the firm did."""

    def __init__(self, writer: SourceWriter, timeout: float) -> None:
        self.writer = writer
        self.timeout = timeout
        self.won: set[str] = set()
        self.period_closed = False
        self.gave_up = False  # after one timeout, stop waiting until the mesh has caught up again

    def note(self, changes: list[RowChange]) -> None:
        for change in changes:
            values = change.as_dict()
            if change.table == "opportunities" and values.get("stage") == "closed_won":
                self.won.add(f"PRJ-{change.key}")
            if change.table == "billing_periods" and values.get("status") == "closed":
                self.period_closed = True

    def read(self) -> ErpView:
        deadline = time.monotonic() + (0 if self.gave_up else self.timeout)
        view = self.writer.read_erp()
        while not self.won <= view.projects and time.monotonic() < deadline:
            time.sleep(0.2)
            view = self.writer.read_erp()
        if self.won <= view.projects:
            self.gave_up = False
        elif not self.gave_up:
            self.gave_up = True
            logger.warning("the mesh has not created %d won project(s) in erp after %.0fs; "
                           "going on without waiting until it catches up", len(self.won - view.projects), self.timeout)
        if self.period_closed:
            self.period_closed = False
            stable_since, seen = time.monotonic(), len(view.billing_events)
            while time.monotonic() - stable_since < 1.5 and time.monotonic() < deadline:
                time.sleep(0.25)
                view = self.writer.read_erp()
                if len(view.billing_events) != seen:
                    stable_since, seen = time.monotonic(), len(view.billing_events)
        return view


def run(
    settings: Settings,
    params: FirmParams,
    seed: int,
    weeks: int | None = None,
    pace: float | None = None,
    open_loop: bool = False,
    progress: Callable[[WeekProgress], None] | None = None,
    databases: Mapping[str, str] | None = None,
    fresh: bool = False,
    mesh_timeout: float = 60.0,
) -> dict[str, int]:
    """Simulate ``weeks`` weeks of the firm and write them; return row changes per ``source.table``.

    ``pace`` caps row changes per second (a day's changes are written at once,
    then the run sleeps as needed); None runs as fast as possible. Creates the
    source tables when missing. Refuses tables that already hold the firm's
    rows unless ``fresh``, which truncates them first (never the tables the
    mesh owns: erp.projects, billing_milestones, billing_events).

    Closed loop waits for the mesh, as a firm's people would: a day starts
    only once every deal won so far has its ERP project (and, after a period
    close, once the billing events stop arriving), at most ``mesh_timeout``
    seconds per day; this is what makes a closed-loop run repeatable.
    """
    if pace is not None and pace <= 0:
        raise ValueError("pace must be positive, or None for as fast as possible")
    weeks = weeks or params.weeks
    writer = SourceWriter(settings, databases)
    written: Counter[str] = Counter()
    try:
        writer.prepare(fresh=fresh)
        began = time.monotonic()
        week_changes = 0
        mesh = _MeshWait(writer, mesh_timeout)
        erp = writer.read_erp if open_loop else mesh.read
        for n, (day, changes) in enumerate(simulate(params, seed, weeks, open_loop, erp=lambda _: erp())):
            if changes:
                written.update(writer.apply(changes))
                week_changes += len(changes)
                mesh.note(changes)
            total = sum(written.values())
            if pace is not None:
                behind = total / pace - (time.monotonic() - began)
                if behind > 0:
                    time.sleep(behind)
            if day.isoweekday() == 7:
                year, week = iso_week(day)
                report = WeekProgress(year, week, n // 7 + 1, weeks, week_changes, total, time.monotonic() - began)
                logger.info("simulated week %d-W%02d: %d row changes", year, week, week_changes)
                if progress is not None:
                    progress(report)
                week_changes = 0
    finally:
        writer.dispose()
    return dict(sorted(written.items()))
