"""``psmesh status``: the whole mesh on one screen, for the people who run it.

Every figure is read from the running system, nothing from a file of
expectations: replication slots from PostgreSQL, consumer groups, committed
offsets and end offsets from Kafka, subjects from the registry, and each
service's own ``/metrics``. A part is

* ``ok``,
* ``warn``: working, but someone should look (lag above the threshold, dead
  letters waiting, a capture whose metrics do not answer from here, the
  executive page down), or
* ``fail``: broken (a server unreachable, a slot with no capture attached, a
  consumer group with no member, a service not answering, a sink paused
  because its database is away).

The mesh is healthy when nothing fails (with ``--strict``: nothing warns
either); ``psmesh status`` exits 1 otherwise, so scripts and probes can use it.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import click

from psmesh.config import Settings, load_settings
from psmesh.ports import capture_metrics_port, sink_metrics_port
from psmesh.topology.model import Topology

#: The processors' Faust app id, which is also their consumer group (processors/app.py APP_ID).
PROCESSORS_GROUP = "psmesh-processors"
#: Consumer groups Kafka reports for a group whose members are gone.
_NO_MEMBERS = {"EMPTY", "DEAD", "UNKNOWN"}
TIMEOUT = 5.0


@dataclass
class Check:
    area: str
    name: str
    state: str  # ok | warn | fail
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Thresholds:
    #: Replication slot lag (bytes of WAL not yet confirmed) above which a capture warns.
    slot_lag_bytes: int = 256 * 1024 * 1024
    #: Records behind, per consumer group, above which the group warns.
    consumer_lag: int = 10_000


@dataclass
class Report:
    checked_at: str
    checks: list[Check]
    strict: bool = False

    @property
    def healthy(self) -> bool:
        bad = {"fail", "warn"} if self.strict else {"fail"}
        return not any(c.state in bad for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "checked_at": self.checked_at, "checks": [asdict(c) for c in self.checks]}


def collect(settings: Settings, topology: Topology, thresholds: Thresholds | None = None,
            strict: bool = False) -> Report:
    """Look at every part of the mesh; never raises for a part that is down (that part fails)."""
    thresholds = thresholds or Thresholds()
    checks: list[Check] = []
    kafka = _kafka(settings, checks)
    _postgres(settings, topology, checks)
    _registry(settings, checks)
    _captures(settings, topology, thresholds, checks)
    if kafka is not None:
        admin, consumer = kafka
        try:
            _groups(settings, topology, admin, consumer, thresholds, checks)
            _dead_letters(settings, topology, admin, checks)
        finally:
            consumer.close()
    _services(settings, topology, checks)
    return Report(datetime.now(timezone.utc).isoformat(timespec="seconds"), checks, strict)


# ---- servers ------------------------------------------------------------------
def _kafka(settings: Settings, checks: list[Check]):
    from confluent_kafka import Consumer, KafkaException
    from confluent_kafka.admin import AdminClient

    # librdkafka would print every failed connection attempt to stderr; the check says it once.
    conf = {**settings.kafka_client_config(), "log_level": 0}
    try:
        admin = AdminClient(conf)
        meta = admin.list_topics(timeout=TIMEOUT)
    except KafkaException as exc:
        checks.append(Check("server", "kafka", "fail", f"unreachable at {settings.bootstrap_servers}: {exc}"))
        for area in ("consumer group", "dead letters"):
            checks.append(Check(area, "-", "fail", "not checked: Kafka is unreachable"))
        return None
    topics = [t for t in meta.topics if not t.startswith("_")]
    checks.append(Check("server", "kafka", "ok", f"{len(meta.brokers)} broker(s), {len(topics)} topics at "
                        f"{settings.bootstrap_servers}", {"brokers": len(meta.brokers), "topics": len(topics)}))
    consumer = Consumer({**conf, "group.id": "psmesh-status", "enable.auto.commit": False})
    return admin, consumer


def _postgres(settings: Settings, topology: Topology, checks: list[Check]) -> None:
    import psycopg

    database = topology.sources[0].database if topology.sources else "postgres"
    try:
        with psycopg.connect(settings.pg_dsn(database), connect_timeout=int(TIMEOUT)) as conn:
            version = conn.execute("show server_version").fetchone()[0]
    except psycopg.Error as exc:
        checks.append(Check("server", "postgresql", "fail", f"unreachable: {_first_line(exc)}"))
        return
    checks.append(Check("server", "postgresql", "ok", f"PostgreSQL {version} at "
                        f"{settings.pg_host or settings.bind_host}:{settings.pg_port}", {"version": version}))


def _registry(settings: Settings, checks: list[Check]) -> None:
    """The registry answers at one of its URLs (PSMESH_REGISTRY_URL may list several, as its client takes them)."""
    failures = []
    for url in (part.strip().rstrip("/") for part in settings.schema_registry_url.split(",")):
        try:
            with urllib.request.urlopen(f"{url}/subjects", timeout=TIMEOUT) as response:
                subjects = json.loads(response.read())
        except (OSError, ValueError) as exc:
            failures.append(f"{url}: {exc}")
            continue
        checks.append(Check("server", "registry", "ok", f"{len(subjects)} subjects at {url}",
                            {"subjects": len(subjects)}))
        return
    checks.append(Check("server", "registry", "fail", f"unreachable at {'; '.join(failures)}"))


# ---- captures -----------------------------------------------------------------
def _captures(settings: Settings, topology: Topology, thresholds: Thresholds, checks: list[Check]) -> None:
    import psycopg

    for source in topology.sources:
        figures: dict[str, Any] = {"slot": source.slot, "active": False, "lag_bytes": None, "lag_seconds": None,
                                   "events_produced": None, "last_event_at": None}
        try:
            with psycopg.connect(settings.pg_dsn(source.database), connect_timeout=int(TIMEOUT)) as conn:
                slot = conn.execute(
                    "select active, confirmed_flush_lsn::text, "
                    "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, wal_status "
                    "from pg_replication_slots where slot_name = %s", (source.slot,)).fetchone()
        except psycopg.Error as exc:
            checks.append(Check("capture", source.name, "fail", f"database {source.database} unreachable: "
                                f"{_first_line(exc)}", figures))
            continue
        if slot is None:
            checks.append(Check("capture", source.name, "fail",
                                f"no replication slot {source.slot}: the capture never ran", figures))
            continue
        figures.update(active=bool(slot[0]), confirmed_lsn=slot[1], lag_bytes=int(slot[2] or 0))
        port = capture_metrics_port(settings, topology, source.name)
        scraped = _scrape(settings, port) if port else None
        if scraped is not None:
            figures["lag_seconds"] = _value(scraped, "psmesh_cdc_replication_lag_seconds")
            figures["events_produced"] = _sum(scraped, "psmesh_cdc_events_produced_total")
        status_file = settings.home / "cdc" / f"{source.name}.status.json"
        held: list[str] = []
        errors: dict[str, str] = {}
        if status_file.exists():
            try:
                data = json.loads(status_file.read_text())
                figures["last_event_at"] = data.get("last_event_at")
                held, errors = list(data.get("held") or ()), dict(data.get("errors") or {})
            except (OSError, ValueError, TypeError):  # being rewritten, or cut short
                pass
        figures["stopped_tables"] = held
        lag = f"slot lag {_bytes(figures['lag_bytes'])}"
        if figures["lag_seconds"] is not None:
            lag += f", {figures['lag_seconds']:.1f} s behind"
        if figures["events_produced"] is not None:
            lag += f", {figures['events_produced']:,.0f} events produced"
        if slot[3] == "lost":
            state, detail = "fail", (f"slot {source.slot} invalidated by PostgreSQL (max_slot_wal_keep_size): changes "
                                     "lost; the capture's log says how to snapshot again")
        elif not figures["active"]:
            state, detail = "fail", f"slot {source.slot} inactive: no capture attached ({lag})"
        elif held:
            reasons = "; ".join(errors.get(t, t) for t in held)
            state, detail = "fail", (f"capture of {', '.join(held)} stopped by a refused schema change, its changes "
                                     f"held in slot {source.slot} ({lag}): {reasons}")
        elif figures["lag_bytes"] > thresholds.slot_lag_bytes:
            state, detail = "warn", f"slot {source.slot} {lag}: above {_bytes(thresholds.slot_lag_bytes)}"
        elif port and scraped is None:
            state, detail = "warn", f"slot {source.slot} active, {lag}; metrics not answering on port {port}"
        else:
            state, detail = "ok", f"slot {source.slot} active, {lag}"
        checks.append(Check("capture", source.name, state, detail, figures))


# ---- consumer groups --------------------------------------------------------------
def _groups(settings: Settings, topology: Topology, admin, consumer, thresholds: Thresholds,
            checks: list[Check]) -> None:
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException

    groups = ([PROCESSORS_GROUP] if topology.processors else []) + [f"psmesh-{s.name}" for s in topology.sinks]
    try:
        described = {g: f.result() for g, f in admin.describe_consumer_groups(groups, request_timeout=TIMEOUT).items()}
    except KafkaException as exc:
        checks.append(Check("consumer group", "-", "fail", f"cannot describe the consumer groups: {exc}"))
        return
    for group in groups:
        info = described[group]
        state = info.state.name if hasattr(info.state, "name") else str(info.state)
        members = len(info.members)
        try:
            offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                        request_timeout=TIMEOUT)[group].result()
        except KafkaException as exc:
            checks.append(Check("consumer group", group, "fail", f"cannot read committed offsets: {exc}"))
            continue
        lag_by_topic: dict[str, int] = {}
        try:
            for tp in offsets.topic_partitions:
                if tp.offset < 0:
                    continue
                _, high = consumer.get_watermark_offsets(tp, timeout=TIMEOUT, cached=False)
                lag_by_topic[tp.topic] = lag_by_topic.get(tp.topic, 0) + max(0, high - tp.offset)
        except KafkaException as exc:  # a partition without a leader, a request that timed out
            checks.append(Check("consumer group", group, "fail", f"cannot read the end offsets of its topics: {exc}"))
            continue
        total = sum(lag_by_topic.values())
        figures = {"state": state, "members": members, "lag": total, "lag_by_topic": dict(sorted(lag_by_topic.items()))}
        summary = f"{state.lower()}, {members} member(s), lag {total:,} records over {len(lag_by_topic)} topics"
        if members == 0 or state in _NO_MEMBERS:
            checks.append(Check("consumer group", group, "fail", f"{summary}: nobody consumes", figures))
        elif not lag_by_topic:
            checks.append(Check("consumer group", group, "warn", f"{summary}: nothing committed yet", figures))
        elif total > thresholds.consumer_lag:
            checks.append(Check("consumer group", group, "warn",
                                f"{summary}: above {thresholds.consumer_lag:,}", figures))
        else:
            checks.append(Check("consumer group", group, "ok", summary, figures))


def _dead_letters(settings: Settings, topology: Topology, admin, checks: list[Check]) -> None:
    """Each dead-letter topic's letters not acknowledged yet (psmesh/dlq.py)."""
    from confluent_kafka import KafkaException

    from psmesh.dlq import ack_consumer, spans

    try:
        existing = admin.list_topics(timeout=TIMEOUT).topics
    except KafkaException as exc:
        checks.append(Check("dead letters", "-", "fail", f"cannot list the topics: {exc}"))
        return
    consumer = ack_consumer(settings)
    try:
        for name in topology.dead_letter_topics:
            if name not in existing:
                checks.append(Check("dead letters", name, "fail", "topic missing: run psmesh topology apply"))
                continue
            try:
                found = spans(consumer, name, existing[name].partitions)
            except KafkaException as exc:  # a partition without a leader, a request that timed out
                checks.append(Check("dead letters", name, "fail", f"cannot read its offsets: {exc}"))
                continue
            waiting, total = sum(s.waiting for s in found), sum(s.high - s.low for s in found)
            figures = {"count": waiting, "acknowledged": total - waiting}
            if waiting:
                checks.append(Check("dead letters", name, "warn", f"{waiting:,} dead letter(s) waiting: read them "
                                    f"with psmesh dlq list, then psmesh dlq ack", figures))
            else:
                checks.append(Check("dead letters", name, "ok", f"0 dead letter(s) waiting ({total:,} acknowledged)"
                                    if total else "0 dead letter(s)", figures))
    finally:
        consumer.close()


# ---- services ---------------------------------------------------------------------
def _services(settings: Settings, topology: Topology, checks: list[Check]) -> None:
    services: list[tuple[str, int]] = []
    if topology.processors:
        services.append(("processors", settings.processors_port))
    for sink in topology.sinks:
        short = sink.name.removesuffix("_sink")
        if short in ("erp", "reporting"):
            services.append((f"sink-{short}", sink_metrics_port(settings, topology, short)))
    services.append(("page", settings.page_port))
    for name, port in services:
        address = f"http://{settings.bind_host}:{port}/metrics"
        scraped = _scrape(settings, port)
        if scraped is None:
            # The page only shows the store; the data path does not depend on it.
            state = "warn" if name == "page" else "fail"
            checks.append(Check("service", name, state, f"not answering on {address}", {"address": address}))
            continue
        figures: dict[str, Any] = {"address": address}
        detail = f"answering on {address}"
        if name == "processors":
            figures["events"] = _sum(scraped, "psmesh_processor_events_total")
            figures["dead_letters"] = _sum(scraped, "psmesh_processor_dead_letters_total")
            detail += f", {figures['events']:,.0f} events processed"
        elif name.startswith("sink-"):
            figures["rows_written"] = _sum(scraped, "psmesh_sink_rows_written_total")
            figures["paused"] = bool(_sum(scraped, "psmesh_sink_paused"))
            p50 = _quantile(scraped, "psmesh_e2e_latency_seconds", 0.5)
            p99 = _quantile(scraped, "psmesh_e2e_latency_seconds", 0.99)
            figures["e2e_latency_p50_seconds"], figures["e2e_latency_p99_seconds"] = p50, p99
            detail += f", {figures['rows_written']:,.0f} rows written"
            if p50 is not None:
                detail += f", end-to-end latency p50 ≤ {p50:g} s, p99 ≤ {p99:g} s"
            if figures["paused"]:
                paused = ("; PAUSED: its database (or the registry, or its dead-letter topic) is unreachable; its log "
                          "names which")
                checks.append(Check("service", name, "fail", detail + paused, figures))
                continue
        checks.append(Check("service", name, "ok", detail, figures))


# ---- metrics scraping -----------------------------------------------------------------
def _scrape(settings: Settings, port: int) -> dict[str, list[tuple[dict[str, str], float]]] | None:
    """The samples a service's /metrics serves, by sample name; None when it does not answer."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://{settings.bind_host}:{port}/metrics", timeout=TIMEOUT) as response:
            text = response.read().decode()
    except OSError:
        return None
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def _sum(samples: dict, name: str) -> float:
    return sum(v for _, v in samples.get(name, []))


def _value(samples: dict, name: str) -> float | None:
    values = samples.get(name)
    return max(v for _, v in values) if values else None


def _quantile(samples: dict, name: str, q: float) -> float | None:
    """Upper bound of the bucket holding quantile q, over every label set of a histogram."""
    buckets: dict[float, float] = {}
    for labels, value in samples.get(f"{name}_bucket", []):
        bound = float(labels["le"])
        buckets[bound] = buckets.get(bound, 0.0) + value
    if not buckets or buckets.get(float("inf"), 0.0) == 0:
        return None
    total = buckets[float("inf")]
    for bound in sorted(buckets):
        if buckets[bound] >= q * total:
            return bound
    return None


# ---- output -----------------------------------------------------------------------------
_AREAS = (("server", "servers"), ("capture", "captures: replication slots"),
          ("consumer group", "consumer groups: lag per topic"), ("dead letters", "dead letters"),
          ("service", "services"))
_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


def render(report: Report) -> str:
    fails = sum(c.state == "fail" for c in report.checks)
    warns = sum(c.state == "warn" for c in report.checks)
    verdict = "healthy" if report.healthy else "UNHEALTHY"
    lines = [f"psmesh status at {report.checked_at}: {verdict} ({fails} failing, {warns} warning)"]
    for area, title in _AREAS:
        checks = [c for c in report.checks if c.area == area]
        if not checks:
            continue
        lines.append(f"\n{title}")
        for c in checks:
            lines.append(f"  {_MARK[c.state]}  {c.name:24} {c.detail}")
            by_topic = c.figures.get("lag_by_topic")
            if by_topic:
                cells = [f"{topic} {lag:,}" for topic, lag in by_topic.items()]
                for i in range(0, len(cells), 3):
                    lines.append("          " + " · ".join(cells[i:i + 3]))
    return "\n".join(lines)


def _bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _a_number(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value != value:  # NaN passes every range check
        raise click.BadParameter("must be a number, not nan", ctx=ctx, param=param)
    return value


@click.command("status")
@click.option("--file", "topology_file", type=click.Path(), default=None, help="Topology file (default: ./topology.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON, for scripts.")
@click.option("--strict", is_flag=True, help="Warnings (lag above threshold, dead letters) also make it unhealthy.")
@click.option("--max-slot-lag-mb", type=click.FloatRange(min=0, max=1e9), default=256, show_default=True,
              callback=_a_number,
              help="Replication slot lag above which a capture warns.")
@click.option("--max-consumer-lag", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Records behind above which a consumer group warns.")
@click.option("--watch", type=click.FloatRange(min=0.1, max=86400), default=None, metavar="SECONDS",
              help="Refresh every SECONDS until Ctrl-C.")
def status_command(topology_file: str | None, as_json: bool, strict: bool, max_slot_lag_mb: float,
                   max_consumer_lag: int, watch: float | None) -> None:
    """The whole mesh on one screen: slot lag, consumer lag per topic, dead letters, servers and services.

    Exits 1 when a part fails (with --strict, also when one warns).
    """
    from psmesh.topology.cli import default_topology_path
    from psmesh.topology.exceptions import TopologyError
    from psmesh.topology.model import load_topology

    try:
        topology = load_topology(topology_file or default_topology_path())
    except TopologyError as exc:
        raise click.ClickException(str(exc)) from exc
    thresholds = Thresholds(int(max_slot_lag_mb * 1024 * 1024), max_consumer_lag)
    settings = load_settings()
    while True:
        report = collect(settings, topology, thresholds, strict)
        if as_json:
            click.echo(json.dumps(report.as_dict(), indent=2, default=str))
        else:
            if watch:
                click.clear()
            click.echo(render(report))
        if not watch:
            break
        time.sleep(watch)
    raise SystemExit(0 if report.healthy else 1)
