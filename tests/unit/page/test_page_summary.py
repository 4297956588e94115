"""The executive page without a server: the summary document, the HTTP routes, the page's number formatting."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import subprocess
from decimal import Decimal

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import exc as sa_exc

from psmesh.page.server import STATIC_DIR, create_app
from psmesh.page.summary import QUERIES, build_summary, jsonable

AS_OF = dt.datetime(2026, 1, 25, 12, 0, tzinfo=dt.timezone.utc)


def _results() -> dict[str, list[dict]]:
    return {
        "kpis": [{"current_week": dt.date(2026, 1, 19), "won_count": 3, "bookings": Decimal("193603.64"),
                  "currency": "USD", "backlog": Decimal("-12.50"), "wip": Decimal("0.00"), "billed": Decimal("0E-2"),
                  "margin_pct": None, "utilization": Decimal("0.0949"), "dso_as_of": dt.date(2026, 1, 18),
                  "dso_days": Decimal("41.25"), "staffing_gap_hours": Decimal("352.00")}],
        "portfolio": [{"currency": "USD", "projects": 3, "backlog": Decimal("-12.50")}],
        "bookings": [{"won_month": dt.date(2026, 1, 1), "won_count": 3, "contract_value": Decimal("193603.64")}],
        "snapshots": [{"taken_at": AS_OF, "backlog": Decimal("1E+3")}],
    }


def test_money_and_ratios_travel_as_exact_decimal_strings_never_floats():
    assert jsonable(Decimal("0E-8")) == "0.00000000"
    assert jsonable(Decimal("1E+3")) == "1000"
    assert jsonable(Decimal("-12.50")) == "-12.50"
    assert jsonable(dt.date(2026, 1, 19)) == "2026-01-19"
    assert jsonable(AS_OF) == "2026-01-25T12:00:00+00:00"
    summary = build_summary(_results(), AS_OF)
    text = json.dumps(summary)
    assert "193603.64" in text and "e+" not in text.lower().replace("e+00", "")
    assert summary["kpis"]["bookings"] == "193603.64"
    assert summary["kpis"]["billed"] == "0.00"
    assert summary["series"]["snapshots"][0]["backlog"] == "1000"
    assert not any(isinstance(v, float) for v in summary["kpis"].values())


def test_summary_has_every_series_even_when_the_store_is_empty():
    summary = build_summary({}, AS_OF)
    assert summary["kpis"] == {} and summary["portfolio"] == []
    assert set(summary["series"]) == set(QUERIES) - {"kpis", "portfolio"}
    assert all(rows == [] for rows in summary["series"].values())


class _Store:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.reads = 0

    def read(self):
        self.reads += 1
        if self.fail:
            raise sa_exc.OperationalError("SELECT", {}, Exception("connection refused"))
        return build_summary(_results(), AS_OF)

    def ping(self):
        if self.fail:
            raise sa_exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    def close(self):
        pass


async def _get(store, *paths: str) -> list[tuple[int, str]]:
    async with TestClient(TestServer(create_app(store, cache_seconds=60))) as client:
        out = []
        for path in paths:
            response = await client.get(path)
            out.append((response.status, await response.text()))
        return out


def test_routes_serve_the_page_the_summary_health_and_metrics():
    store = _Store()
    (page, _), (s1, body), (s2, _), (health, _), (js, _), (metrics_status, metrics) = asyncio.run(
        _get(store, "/", "/api/summary", "/api/summary", "/healthz", "/static/page.js", "/metrics"))
    assert page == 200 and s1 == 200 and s2 == 200 and health == 200 and js == 200 and metrics_status == 200
    assert json.loads(body)["kpis"]["dso_days"] == "41.25"
    assert store.reads == 1, "polls within the cache time share one read of the store"
    assert 'psmesh_page_requests_total{route="/api/summary",status="200"} 2.0' in metrics


def test_an_unreadable_store_is_a_503_with_a_reason_not_a_crash():
    (summary, body), (health, _) = asyncio.run(_get(_Store(fail=True), "/api/summary", "/healthz"))
    assert summary == 503 and "reporting store cannot be read" in json.loads(body)["error"]
    assert health == 503


def test_every_figure_of_the_page_has_a_tile_and_the_static_files_ship():
    html = (STATIC_DIR / "index.html").read_text()
    for figure in ("bookings", "backlog", "utilization", "wip", "billed", "dso", "margin", "staffing_gap"):
        assert f'data-tile="{figure}"' in html
    assert "http://" not in html.replace('"http://www.w3.org', "") and "https://" not in html, "no CDN"


# The page formats the exact decimal strings itself (page.js); run its functions under Node.
FORMATS = [
    ("money0", "193603.64", "193,604"),
    ("money0", "-0.40", "0"),
    ("money0", "-2.50", "-3"),
    ("money0", "0", "0"),
    ("money2", "1234567.895", "1,234,567.90"),
    ("money2", "-1000.00", "-1,000.00"),
    ("pct1", "0.0949", "9.5%"),
    ("pct1", "0.12345", "12.3%"),
    ("pct1", "0.1235", "12.4%"),
    ("pct1", "-0.0005", "-0.1%"),
    ("pct1", "1", "100.0%"),
    ("pct2", "0.2688", "26.88%"),
    ("days1", "41.25", "41.3 days"),
    ("days1", None, "—"),
    ("hours0", "352.00", "352 h"),
    ("hours0", "1234.49", "1,234 h"),
    ("int", 1234, "1,234"),
]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (the page's formatting runs in a browser)")
def test_the_page_rounds_exact_decimals_half_away_from_zero_without_floats():
    script = ("const {fmt} = require(process.argv[1]);"
              "const cases = JSON.parse(process.argv[2]);"
              "console.log(JSON.stringify(cases.map(([f, v]) => fmt[f](v))));")
    cases = [[f, v] for f, v, _ in FORMATS]
    out = subprocess.run(["node", "-e", script, str(STATIC_DIR / "page.js"), json.dumps(cases)],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [expected for _, _, expected in FORMATS]
