"""The executive page in headless Chromium against the running demo: the figures shown are the store's.

The expected figures are computed here with SQL straight from the reporting
store's view tables and source mirrors (DOMAIN.md sections 2 and 4), not
through the page's own queries; they are formatted to the page's displayed
precision (rounded half away from zero) and compared with the text of every
``data-figure`` element, and every row of the tables under the charts is
compared with its view. The screenshot is saved to tests/artifacts/.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.integration

SCREENSHOT = Path(__file__).resolve().parents[1] / "artifacts" / "exec-page.png"
DASH = "—"


# --- the page's formatting, to its displayed precision ----------------------
def _dec(value: Decimal, places: int) -> str:
    q = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)  # half away from zero
    if q == 0:
        q = abs(q)
    return format(q, f",.{places}f")


def money0(v, currency=None) -> str:
    return DASH if v is None else (f"{currency} " if currency else "") + _dec(v, 0)


def money2(v, currency=None) -> str:
    return DASH if v is None else (f"{currency} " if currency else "") + _dec(v, 2)


def pct(v, places: int) -> str:
    return DASH if v is None else _dec(v * 100, places) + "%"


def num2(v) -> str:
    return DASH if v is None else _dec(v, 2)


def _ratio(numerator, denominator, places: int):
    """As the store rounds a ratio when it is read: half away from zero; null over zero."""
    if numerator is None or not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


# --- what the store says ------------------------------------------------------
def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def store_figures(dsn: str) -> dict:
    """Tile texts and table cells the page must show, from the store's tables (one snapshot of it)."""
    with psycopg.connect(dsn, autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        q = lambda sql, *a: conn.execute(sql, a).fetchall()  # noqa: E731

        won_count, bookings = q("SELECT coalesce(sum(won_count), 0), coalesce(sum(contract_value), 0) FROM bookings")[0]
        portfolio = q("SELECT currency, sum(backlog), sum(wip), sum(billed), sum(delivered_value), sum(cost) "
                      "FROM project_financials GROUP BY currency ORDER BY currency")
        [(current_week,)] = q("SELECT max(week_start) FROM (SELECT week_start FROM resource_week "
                              "GROUP BY week_start HAVING sum(total_hours) > 0) worked")
        billable, capacity = q("SELECT sum(billable_hours), sum(capacity_hours) FROM resource_week "
                               "WHERE week_start <= %s", current_week)[0]
        utilization = _ratio(billable, capacity, 4) if current_week else None
        gap_from = current_week or _monday(q("SELECT current_date")[0][0])
        [(gap,)] = q("SELECT coalesce(sum(greatest(gap_hours, 0)), 0) FROM skill_week "
                     "WHERE week_start >= %s AND week_start < %s", gap_from, gap_from + dt.timedelta(days=28))
        [(dso_as_of,)] = q("SELECT max(end_date) FROM source.billing_periods WHERE status = 'closed'")
        dso = None
        if dso_as_of is not None:
            receivables, issued = q(
                "SELECT coalesce(sum(amount - coalesce(written_off, 0)) FILTER (WHERE paid_on IS NULL OR paid_on > %s), 0), "
                "       coalesce(sum(amount) FILTER (WHERE issued_on >= %s), 0) "
                "FROM source.invoices WHERE status <> 'void' AND issued_on IS NOT NULL AND issued_on <= %s",
                dso_as_of, dso_as_of - dt.timedelta(days=89), dso_as_of)[0]
            dso = _ratio(receivables * 90, issued, 2)

        tiles: dict[tuple[str, str | None], str] = {}
        single = portfolio[0][0] if len(portfolio) == 1 else None
        if len(portfolio) > 1:  # bookings per currency: the won projects' contract value
            for currency, contract_value in q("SELECT currency, sum(contract_value) FROM project_financials GROUP BY 1"):
                tiles[("bookings", currency)] = money0(contract_value, currency)
        else:
            tiles[("bookings", single)] = money0(bookings, single)
        if portfolio:
            for currency, backlog, wip, billed, delivered, cost in portfolio:
                tiles[("backlog", currency)] = money0(backlog, currency)
                tiles[("wip", currency)] = money0(wip, currency)
                tiles[("billed", currency)] = money0(billed, currency)
                margin = _ratio(delivered - cost, delivered, 4)
                tiles[("margin", currency if len(portfolio) > 1 else None)] = pct(margin, 1)
        else:
            for figure in ("backlog", "wip", "billed"):
                tiles[(figure, None)] = money0(Decimal(0))
            tiles[("margin", None)] = DASH
        tiles[("utilization", None)] = pct(utilization, 1)
        tiles[("dso", None)] = DASH if dso is None else _dec(dso, 1) + " days"
        tiles[("staffing_gap", None)] = _dec(gap, 0) + " h"

        tables: dict[str, dict[str, dict[str, str]]] = {
            "bookings": {m.isoformat(): {"won_month": m.isoformat()[:7], "won_count": f"{n:,}", "contract_value": money2(v)}
                         for m, n, v in q("SELECT won_month, sum(won_count), sum(contract_value) FROM bookings GROUP BY 1")},
            "utilization": {w.isoformat(): {"week_start": w.isoformat(), "capacity_hours": num2(c), "billable_hours": num2(b),
                                            "utilization": pct(_ratio(b, c, 4), 2)}
                            for w, c, b in q("SELECT week_start, sum(capacity_hours), sum(billable_hours) FROM resource_week "
                                             "WHERE week_start <= %s GROUP BY 1", current_week)} if current_week else {},
            "staffing_gap": {w.isoformat(): {"week_start": w.isoformat(), "demand_hours": num2(d), "supply_hours": num2(s),
                                             "booked_hours": num2(b), "staffing_gap_hours": num2(g)}
                             for w, d, s, b, g in q("SELECT week_start, sum(demand_hours), sum(supply_hours), sum(booked_hours), "
                                                    "sum(greatest(gap_hours, 0)) FROM skill_week GROUP BY 1")},
            "billed": {f"{w.isoformat()}/{c}": {"week_start": w.isoformat(), "events": f"{n:,}", "billed": money2(v, c)}
                       for w, c, n, v in q("SELECT week_start, currency, events, billed FROM exec_billed_weekly")},
            "dso": {a.isoformat(): {"as_of": a.isoformat(), "receivables": money2(r), "issued_90d": money2(i), "dso_days": num2(d)}
                    for a, r, i, d in q("SELECT as_of, receivables, issued_90d, dso_days FROM exec_dso_by_period")},
        }
        [(snapshots, last_snapshot)] = q("SELECT count(*), max(taken_at) FROM kpi_snapshots")
        latest = q("SELECT taken_at, currency, backlog, wip, margin_pct FROM kpi_snapshots ORDER BY taken_at DESC LIMIT 1")
        conn.rollback()
    history = {}
    if latest:
        taken_at, currency, backlog, wip, margin = latest[0]
        key = taken_at.astimezone(dt.timezone.utc)
        history = {"backlog": (key, money2(backlog, currency)), "wip": (key, money2(wip, currency)),
                   "margin": (key, pct(margin, 2))}
    return {"tiles": tiles, "tables": tables, "snapshots": (snapshots, last_snapshot), "history": history}


# --- what the page shows ------------------------------------------------------
class _PageParser(HTMLParser):
    """data-figure elements (figure, currency, value, text) and data-table rows (key → column → text)."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict] = []
        self.tables: dict[str, dict[str, dict[str, str]]] = {}
        self.loaded = False
        self._open: list[tuple[str, dict | None]] = []
        self._table: str | None = None
        self._row: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body" and a.get("data-loaded") == "true":
            self.loaded = True
        if tag == "table" and "data-table" in a:
            self._table = a["data-table"]
            self.tables[self._table] = {}
        if tag == "tr" and self._table and "data-key" in a:
            self._row = a["data-key"]
            self.tables[self._table][self._row] = {}
        target = None
        if "data-figure" in a:
            target = {"figure": a["data-figure"], "currency": a.get("data-currency"), "value": a.get("data-value"), "text": ""}
            self.figures.append(target)
        elif tag == "td" and self._table and self._row is not None and "data-col" in a:
            target = {"cell": a["data-col"], "text": ""}
            self.tables[self._table][self._row][a["data-col"]] = target
        self._open.append((tag, target))

    def handle_endtag(self, tag):
        while self._open:
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break
        if tag == "table":
            self._table = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        for _, target in self._open:
            if target is not None:
                target["text"] += data


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (scripts/setup.sh installs Debian's chromium)", pytrace=False)
        pytest.skip("chromium is not installed (scripts/setup.sh installs Debian's chromium)")
    return found


def _run_chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         f"--user-data-dir={profile}", "--virtual-time-budget=10000", *args],
        capture_output=True, text=True, timeout=120)


def test_exec_page_in_chromium_shows_the_reporting_stores_figures(running_demo, tmp_path):
    chromium = _chromium()
    settings = running_demo.settings
    url = f"http://{settings.bind_host}:{settings.page_port}/"
    dsn = settings.pg_dsn("reporting")

    # The store is settled when the demo ends; read it before and after the page, and retry if it moved.
    for attempt in range(5):
        before = store_figures(dsn)
        dom = _run_chromium(chromium, tmp_path / "profile", "--dump-dom", url)
        after = store_figures(dsn)
        if before == after:
            break
    else:
        pytest.fail("the reporting store kept changing while the page was read")
    assert dom.returncode == 0, dom.stderr[-3000:]
    page = _PageParser()
    page.feed(dom.stdout)
    assert page.loaded, f"the page did not render the summary:\n{dom.stdout[:3000]}"

    expected = before
    shown = {(f["figure"], f["currency"]): f["text"].strip() for f in page.figures}
    assert len(shown) == len(page.figures), f"a figure is shown twice: {page.figures}"
    figures = {figure for figure, _ in shown}
    assert figures == {"bookings", "backlog", "utilization", "wip", "billed", "dso", "margin", "staffing_gap"}, figures
    assert shown == expected["tiles"]
    # data-value holds the exact decimal each tile was formatted from.
    for f in page.figures:
        if f["value"]:
            Decimal(f["value"])

    for table, rows in expected["tables"].items():
        on_page = {key: {col: cell["text"] for col, cell in cells.items()} for key, cells in page.tables[table].items()}
        assert on_page == rows, f"table {table}"

    count, _ = expected["snapshots"]
    assert count >= 1, "the reporting sink took no KPI snapshot during the demo"
    for figure, (taken_at, text) in expected["history"].items():
        latest_key = next(iter(page.tables[figure]))  # newest first
        assert dt.datetime.fromisoformat(latest_key) == taken_at, figure
        assert page.tables[figure][latest_key][{"margin": "margin_pct"}.get(figure, figure)]["text"] == text, figure

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    shot = _run_chromium(chromium, tmp_path / "profile", f"--screenshot={SCREENSHOT}", "--window-size=1440,2000", url)
    assert shot.returncode == 0 and SCREENSHOT.exists() and SCREENSHOT.stat().st_size > 20_000, shot.stderr[-3000:]
    print(f"\nscreenshot of the executive page: {SCREENSHOT}")
