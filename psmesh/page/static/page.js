// The executive page: polls /api/summary and draws tiles, SVG charts and tables.
//
// Figures arrive as strings of exact decimals and are formatted here without
// going through floating point (rounding half away from zero, as the store
// rounds). Numbers are used only for chart geometry. Each figure's element
// carries data-figure (and data-currency for money) and holds exactly the
// text shown; data-value holds the exact decimal it was formatted from.
"use strict";

// ---------------------------------------------------------------- formatting
const DASH = "—";

function splitDecimal(s) {
  let text = String(s).trim();
  const negative = text.startsWith("-");
  if (negative || text.startsWith("+")) text = text.slice(1);
  const [whole, fraction = ""] = text.split(".");
  return { negative, whole: whole || "0", fraction };
}

/** An exact decimal string shifted by 10^places (places ≥ 0), still a string. */
function shiftDecimal(s, places) {
  const { negative, whole, fraction } = splitDecimal(s);
  const padded = fraction.padEnd(places, "0");
  const out = `${whole}${padded.slice(0, places)}.${padded.slice(places)}`;
  return (negative ? "-" : "") + out.replace(/\.$/, "");
}

/** An exact decimal string rounded half away from zero to `places`, grouped by thousands. */
function roundDecimal(s, places) {
  const { negative, whole, fraction } = splitDecimal(s);
  let scaled = BigInt(whole + fraction.padEnd(places, "0").slice(0, places));
  const dropped = fraction.slice(places);
  if (dropped.length > 0 && dropped[0] >= "5") scaled += 1n;
  let digits = scaled.toString().padStart(places + 1, "0");
  const intPart = digits.slice(0, digits.length - places).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const fracPart = places > 0 ? "." + digits.slice(digits.length - places) : "";
  return (negative && scaled !== 0n ? "-" : "") + intPart + fracPart;
}

const fmt = {
  money0: (v) => (v == null ? DASH : roundDecimal(v, 0)),
  money2: (v) => (v == null ? DASH : roundDecimal(v, 2)),
  pct1: (v) => (v == null ? DASH : roundDecimal(shiftDecimal(v, 2), 1) + "%"),
  pct2: (v) => (v == null ? DASH : roundDecimal(shiftDecimal(v, 2), 2) + "%"),
  days1: (v) => (v == null ? DASH : roundDecimal(v, 1) + " days"),
  hours0: (v) => (v == null ? DASH : roundDecimal(v, 0) + " h"),
  num2: (v) => (v == null ? DASH : roundDecimal(v, 2)),
  int: (v) => (v == null ? DASH : roundDecimal(String(v), 0)),
  date: (v) => (v == null ? DASH : String(v).slice(0, 10)),
  month: (v) => (v == null ? DASH : String(v).slice(0, 7)),
  time: (v) => (v == null ? DASH : new Date(v).toISOString().slice(11, 19)),
  text: (v) => (v == null ? DASH : String(v)),
};

function withCurrency(currency, text) {
  return currency && text !== DASH ? `${currency} ${text}` : text;
}

/** Axis tick labels only (never a figure): short, approximate. */
function compact(n) {
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "B";
  if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
  if (a >= 1e3) return (n / 1e3).toFixed(a >= 1e4 ? 0 : 1) + "k";
  return String(Math.round(n * 100) / 100);
}
const tickPct = (n) => `${Math.round(n * 1000) / 10}%`;

// ---------------------------------------------------------------- tiles
function tileValues(tile, entries) {
  // entries: [{figure, currency, value, text}]
  const box = document.querySelector(`[data-tile="${tile}"] .values`);
  box.replaceChildren(...entries.map((e) => {
    const el = document.createElement("div");
    el.className = "figure" + (entries.length > 1 ? " several" : "");
    el.dataset.figure = e.figure;
    if (e.currency) el.dataset.currency = e.currency;
    el.dataset.value = e.value == null ? "" : String(e.value);
    el.textContent = e.text;
    return el;
  }));
}

function tileNote(tile, text) {
  document.querySelector(`[data-tile="${tile}"] .note`).textContent = text;
}

/** Money per currency: one line per currency of the portfolio (never summed across currencies). */
function moneyTile(figure, summary) {
  const rows = summary.portfolio;
  if (rows.length === 0) {
    return [{ figure, currency: null, value: summary.kpis[figure], text: fmt.money0(summary.kpis[figure]) }];
  }
  return rows.map((r) => ({ figure, currency: r.currency, value: r[figure],
                            text: withCurrency(r.currency, fmt.money0(r[figure])) }));
}

function renderTiles(summary) {
  const k = summary.kpis;
  if (summary.portfolio.length > 1) {
    // exec_kpis does not sum bookings across currencies: the won projects' contract value, per currency
    tileValues("bookings", summary.portfolio.map((r) => ({ figure: "bookings", currency: r.currency,
      value: r.contract_value, text: withCurrency(r.currency, fmt.money0(r.contract_value)) })));
  } else {
    tileValues("bookings", [{ figure: "bookings", currency: k.currency, value: k.bookings,
                              text: withCurrency(k.currency, fmt.money0(k.bookings)) }]);
  }
  tileNote("bookings", `${fmt.int(k.won_count)} deals won to date`);
  tileValues("backlog", moneyTile("backlog", summary));
  tileValues("utilization", [{ figure: "utilization", value: k.utilization, text: fmt.pct1(k.utilization) }]);
  tileNote("utilization", `billable, to the week of ${fmt.date(k.current_week)}`);
  tileValues("wip", moneyTile("wip", summary));
  tileValues("billed", moneyTile("billed", summary));
  tileValues("dso", [{ figure: "dso", value: k.dso_days, text: fmt.days1(k.dso_days) }]);
  tileNote("dso", k.dso_as_of ? `as of ${fmt.date(k.dso_as_of)}, the last closed period` : "no closed billing period yet");
  if (summary.portfolio.length > 1) {
    tileValues("margin", summary.portfolio.map((r) => ({ figure: "margin", currency: r.currency, value: r.margin_pct,
                                                         text: withCurrency(r.currency, fmt.pct1(r.margin_pct)) })));
  } else {
    tileValues("margin", [{ figure: "margin", value: k.margin_pct, text: fmt.pct1(k.margin_pct) }]);
  }
  tileValues("staffing_gap", [{ figure: "staffing_gap", value: k.staffing_gap_hours, text: fmt.hours0(k.staffing_gap_hours) }]);
}

// ---------------------------------------------------------------- charts
const SVG = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text != null) el.textContent = text;
  return el;
}

function niceStep(raw) {
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / power;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * power;
}

/** A bar or line chart of points [{label, value (exact string or null), title}] into an <svg>. */
function drawChart(svg, points, { kind, tick, highlight }) {
  const W = 640, H = 230, L = 62, R = 14, T = 14, B = 42;
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const values = points.filter((p) => p.value != null).map((p) => Number(p.value));
  if (values.length === 0) {
    svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, "no data yet"));
    return;
  }
  let lo = Math.min(0, ...values), hi = Math.max(0, ...values);
  if (hi === lo) hi = lo + 1;
  const step = niceStep((hi - lo) / 4);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const plotW = W - L - R, plotH = H - T - B;
  const y = (v) => T + plotH - ((v - lo) / (hi - lo)) * plotH;
  const band = plotW / points.length;
  const x = (i) => L + band * i + band / 2;

  for (let v = lo; v <= hi + step / 2; v += step) {
    svg.append(svgEl("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: Math.abs(v) < step / 1e6 ? "axis" : "grid" }));
    svg.append(svgEl("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, tick(v)));
  }
  const every = Math.max(1, Math.ceil(points.length / 8));
  points.forEach((p, i) => {
    if (i % every === 0 || i === points.length - 1) {
      svg.append(svgEl("text", { x: x(i), y: H - B + 16, "text-anchor": "middle", class: "tick" }, p.label));
    }
  });

  if (kind === "bar") {
    const width = Math.max(2, Math.min(46, band * 0.7));
    points.forEach((p, i) => {
      if (p.value == null) return;
      const v = Number(p.value);
      const top = Math.min(y(v), y(0)), height = Math.max(1, Math.abs(y(v) - y(0)));
      const bar = svgEl("rect", { x: x(i) - width / 2, y: top, width, height,
                                  class: "bar" + (v < 0 ? " negative" : "") + (highlight && highlight(p) ? " current" : "") });
      bar.append(svgEl("title", {}, p.title));
      svg.append(bar);
    });
  } else {
    const drawn = points.map((p, i) => [p, i]).filter(([p]) => p.value != null);
    svg.append(svgEl("polyline", { class: "line",
      points: drawn.map(([p, i]) => `${x(i)},${y(Number(p.value))}`).join(" ") }));
    for (const [p, i] of drawn) {
      const dot = svgEl("circle", { cx: x(i), cy: y(Number(p.value)), r: drawn.length > 60 ? 1.5 : 3, class: "dot" });
      dot.append(svgEl("title", {}, p.title));
      svg.append(dot);
    }
  }
}

// ---------------------------------------------------------------- the eight cards
const HISTORY_ROWS = 12;
const moneyOf = (row, col) => withCurrency(row.currency, fmt.money2(row[col]));

const CARDS = [
  { figure: "bookings", title: "Bookings per month", subtitle: "contract value won, by month closed (exec_bookings)",
    kind: "bar", tick: compact, rows: (s) => s.series.bookings, label: (r) => fmt.month(r.won_month),
    value: "contract_value", title_: (r) => `${fmt.month(r.won_month)}: ${fmt.money2(r.contract_value)}`,
    key: (r) => r.won_month,
    columns: [["won_month", "Month", (r) => fmt.month(r.won_month)], ["won_count", "Deals", (r) => fmt.int(r.won_count)],
              ["contract_value", "Contract value", (r) => fmt.money2(r.contract_value)]] },
  { figure: "backlog", title: "Backlog over time", subtitle: "snapshots of the store (kpi_snapshots)",
    kind: "line", tick: compact, rows: (s) => s.series.snapshots, label: (r) => fmt.time(r.taken_at),
    value: "backlog", title_: (r) => `${fmt.time(r.taken_at)}: ${moneyOf(r, "backlog")}`, history: true,
    key: (r) => r.taken_at,
    columns: [["taken_at", "Snapshot (UTC)", (r) => fmt.time(r.taken_at)], ["backlog", "Backlog", (r) => moneyOf(r, "backlog")]] },
  { figure: "utilization", title: "Billable utilization per week", subtitle: "billable hours / capacity (exec_utilization)",
    kind: "line", tick: tickPct, rows: (s) => s.series.utilization, label: (r) => fmt.date(r.week_start).slice(5),
    value: "utilization", title_: (r) => `week of ${fmt.date(r.week_start)}: ${fmt.pct2(r.utilization)}`,
    key: (r) => r.week_start,
    columns: [["week_start", "Week of", (r) => fmt.date(r.week_start)], ["capacity_hours", "Capacity h", (r) => fmt.num2(r.capacity_hours)],
              ["billable_hours", "Billable h", (r) => fmt.num2(r.billable_hours)], ["utilization", "Utilization", (r) => fmt.pct2(r.utilization)]] },
  { figure: "wip", title: "WIP over time", subtitle: "snapshots of the store (kpi_snapshots)",
    kind: "line", tick: compact, rows: (s) => s.series.snapshots, label: (r) => fmt.time(r.taken_at),
    value: "wip", title_: (r) => `${fmt.time(r.taken_at)}: ${moneyOf(r, "wip")}`, history: true,
    key: (r) => r.taken_at,
    columns: [["taken_at", "Snapshot (UTC)", (r) => fmt.time(r.taken_at)], ["wip", "WIP", (r) => moneyOf(r, "wip")]] },
  { figure: "billed", title: "Billed per week", subtitle: "billing events by the week they bill (exec_billed_weekly)",
    kind: "bar", tick: compact, rows: (s) => s.series.billed, label: (r) => fmt.date(r.week_start).slice(5),
    value: "billed", title_: (r) => `week of ${fmt.date(r.week_start)}: ${moneyOf(r, "billed")}`,
    key: (r) => `${r.week_start}/${r.currency}`,
    columns: [["week_start", "Week of", (r) => fmt.date(r.week_start)], ["events", "Events", (r) => fmt.int(r.events)],
              ["billed", "Billed", (r) => moneyOf(r, "billed")]] },
  { figure: "dso", title: "DSO per closed billing period", subtitle: "days sales outstanding at each period end (exec_dso_by_period)",
    kind: "line", tick: compact, rows: (s) => s.series.dso, label: (r) => fmt.date(r.as_of).slice(5),
    value: "dso_days", title_: (r) => `${fmt.date(r.as_of)}: ${fmt.num2(r.dso_days)} days`,
    key: (r) => r.as_of,
    columns: [["as_of", "Period end", (r) => fmt.date(r.as_of)], ["receivables", "Receivables", (r) => fmt.money2(r.receivables)],
              ["issued_90d", "Invoiced, 90 days", (r) => fmt.money2(r.issued_90d)], ["dso_days", "DSO days", (r) => fmt.num2(r.dso_days)]] },
  { figure: "margin", title: "Margin over time", subtitle: "snapshots of the store (kpi_snapshots)",
    kind: "line", tick: tickPct, rows: (s) => s.series.snapshots, label: (r) => fmt.time(r.taken_at),
    value: "margin_pct", title_: (r) => `${fmt.time(r.taken_at)}: ${fmt.pct2(r.margin_pct)}`, history: true,
    key: (r) => r.taken_at,
    columns: [["taken_at", "Snapshot (UTC)", (r) => fmt.time(r.taken_at)], ["margin_pct", "Margin", (r) => fmt.pct2(r.margin_pct)]] },
  { figure: "staffing_gap", title: "Staffing gap per week", subtitle: "Σ over skills of unmet demand hours (exec_staffing_gap)",
    kind: "bar", tick: compact, rows: (s) => s.series.staffing_gap, label: (r) => fmt.date(r.week_start).slice(5),
    value: "staffing_gap_hours", title_: (r) => `week of ${fmt.date(r.week_start)}: ${fmt.num2(r.staffing_gap_hours)} h`,
    key: (r) => r.week_start,
    columns: [["week_start", "Week of", (r) => fmt.date(r.week_start)], ["demand_hours", "Demand h", (r) => fmt.num2(r.demand_hours)],
              ["supply_hours", "Supply h", (r) => fmt.num2(r.supply_hours)], ["booked_hours", "Booked h", (r) => fmt.num2(r.booked_hours)],
              ["staffing_gap_hours", "Gap h", (r) => fmt.num2(r.staffing_gap_hours)]] },
];

function buildCards() {
  const charts = document.getElementById("charts");
  for (const card of CARDS) {
    const el = document.createElement("article");
    el.className = "card";
    el.dataset.chart = card.figure;
    el.innerHTML = `<header><h3></h3><p class="muted"></p></header>
      <svg class="chart" role="img" preserveAspectRatio="xMidYMid meet"></svg>
      <div class="table-wrap"><table data-table="${card.figure}"><thead><tr></tr></thead><tbody></tbody></table></div>`;
    el.querySelector("h3").textContent = card.title;
    el.querySelector("header p").textContent = card.subtitle;
    el.querySelector("svg").setAttribute("aria-label", card.title);
    const head = el.querySelector("thead tr");
    for (const [, heading] of card.columns) {
      const th = document.createElement("th");
      th.textContent = heading;
      head.append(th);
    }
    charts.append(el);
  }
}

function renderCards(summary) {
  const currentWeek = summary.kpis.current_week;
  for (const card of CARDS) {
    const el = document.querySelector(`[data-chart="${card.figure}"]`);
    const rows = card.rows(summary) || [];
    const points = rows.map((r) => ({ label: card.label(r), value: r[card.value], title: card.title_(r), row: r }));
    drawChart(el.querySelector("svg"), points, {
      kind: card.kind, tick: card.tick,
      highlight: card.figure === "staffing_gap" ? (p) => p.row.week_start === currentWeek : null,
    });
    // Newest first; history tables show the latest snapshots only.
    const shown = rows.slice().reverse().slice(0, card.history ? HISTORY_ROWS : rows.length);
    const body = el.querySelector("tbody");
    body.replaceChildren(...shown.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset.key = card.key(r);
      for (const [col, , format] of card.columns) {
        const td = document.createElement("td");
        td.dataset.col = col;
        td.textContent = format(r);
        tr.append(td);
      }
      return tr;
    }));
    if (shown.length === 0) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = card.columns.length;
      td.className = "muted";
      td.textContent = card.history ? "no snapshot yet: the reporting sink takes one while the store changes" : "no rows yet";
      tr.append(td);
      body.append(tr);
    }
  }
}

// ---------------------------------------------------------------- polling
// ?refresh=N: seconds between polls (at least 1; 5 by default).
const REFRESH_SECONDS = typeof location === "undefined" ? 5
  : Math.max(1, Number(new URLSearchParams(location.search).get("refresh")) || 5);

function render(summary) {
  const asOf = document.getElementById("as-of");
  asOf.dataset.asOf = summary.as_of;
  asOf.dateTime = summary.as_of;
  asOf.textContent = new Date(summary.as_of).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  document.getElementById("firm-week").textContent = `firm week of ${fmt.date(summary.kpis.current_week)}`;
  renderTiles(summary);
  renderCards(summary);
  document.body.dataset.loaded = "true";
}

async function poll() {
  const error = document.getElementById("error");
  try {
    const response = await fetch("/api/summary", { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    render(body);
    error.hidden = true;
  } catch (exc) {
    error.textContent = `not refreshed: ${exc.message}; showing the last figures`;
    error.hidden = false;
  } finally {
    setTimeout(poll, REFRESH_SECONDS * 1000);
  }
}

if (typeof document !== "undefined") {
  buildCards();
  document.getElementById("refresh-note").textContent = `refreshes every ${REFRESH_SECONDS} s`;
  poll();
} else if (typeof module !== "undefined") {
  // Node: the formatting, for tests/unit/page.
  module.exports = { roundDecimal, shiftDecimal, fmt };
}
