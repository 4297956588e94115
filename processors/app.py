"""The Faust app: change events in, views and derived events out.

Three hops, each an agent:

1. **route** reads the CDC change topics (keyed by source primary key) and
   forwards each row to the stage that owns it: by project_code, by
   resource_id, or broadcast to every project partition (accounts, billing
   periods). The ``routes`` table remembers where each source row went last,
   so a row whose project_code (or resource_id) changes is removed from its
   old owner: the sources' REPLICA IDENTITY DEFAULT gives no before image.
2. **project** and **resource** stages mirror the rows they own in a
   changelog-backed table and fold them (processors/project.py,
   processors/capacity.py); they keep the project_financials, project_risks
   and resource_week views and emit the derived events.
3. **rollup** (one partition) folds per-contributor contributions into the
   firm-wide pipeline, bookings and skill_week views.

Delivery is at least once (Faust flushes the producer before it commits an
offset), and every effect is idempotent by design: stages replace rows by
key, never add deltas; view events are upserts of the whole row; derived
events carry deterministic ids. After a restart each stage rebuilds its
in-memory state from its mirror table and, on the first event of each
partition, re-publishes that partition's views and current derived events,
so whatever a crash cut off in flight is published again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import faust
from aiohttp import web as aioweb
from aiokafka.errors import KafkaError
from faust.exceptions import FaustError
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from processors.capacity import ResourceStage
from processors.codec import ChangeEventDecoder, TopicEncoder
from processors.effects import Effects
from processors.exceptions import BadChangeEvent, ProcessorError
from processors.project import ProjectStage, project_code_of
from processors.records import KIND_OF_TOPIC, KINDS, SOURCE_TOPICS, dumps, loads, parse, pick
from processors.rollup import RollupStage
from psmesh.config import Settings
from psmesh.latency import commit_headers, passed_headers

logger = logging.getLogger(__name__)

APP_ID = "psmesh-processors"
PARTITIONS = 6  # as the change topics (topology.yaml defaults), so route is co-partitioned with them
#: A partition behind its end offset whose committed offset has not moved for this long is re-fetched.
STALL_SECONDS = 30.0

VIEW_STAGE = {
    "project_financials": "project", "project_risks": "project", "resource_week": "resource",
    "pipeline": "rollup", "bookings": "rollup", "skill_week": "rollup",
}
VIEW_KEYS = {
    "project_financials": ("project_code",), "project_risks": ("project_code", "rule"),
    "resource_week": ("resource_id", "week_start"), "pipeline": ("service_line", "close_month"),
    "bookings": ("service_line", "won_month"), "skill_week": ("skill", "week_start"),
}
PROJECT_KINDS = {"opportunity", "line", "opp_milestone", "change_order", "entry", "expense", "billing_milestone",
                 "billing_event"}
RESOURCE_KINDS = {"resource", "assignment", "time_off", "entry"}
BROADCAST_KINDS = {"account", "period"}
BY_OPPORTUNITY = {"opportunity", "line", "opp_milestone", "change_order"}
#: Faust tables → partitions (their changelog topics are ``<app id>-<table>-changelog``).
TABLES = {"routes": PARTITIONS, "project_rows": PARTITIONS, "resource_rows": PARTITIONS, "rollup_rows": 1,
          **{f"view_{v}": 1 if s == "rollup" else PARTITIONS for v, s in VIEW_STAGE.items()}}
#: Attempts at an event that failed for a reason other than its content (broker, metadata), 1 s apart.
TRANSIENT_ATTEMPTS = 30


@dataclass
class Metrics:
    registry: CollectorRegistry
    events: Counter
    published: Counter
    dead_letters: Counter
    latency: Histogram
    consumer_lag: Gauge

    @classmethod
    def create(cls) -> "Metrics":
        registry = CollectorRegistry()
        return cls(
            registry,
            Counter("psmesh_processor_events_total", "Events processed, per stage", ["stage"], registry=registry),
            Counter("psmesh_processor_published_total", "Records published, per topic", ["topic"], registry=registry),
            Counter("psmesh_processor_dead_letters_total", "Events sent to dlq.processors, per stage", ["stage"],
                    registry=registry),
            Histogram("psmesh_processor_event_seconds", "Time to process one event, per stage", ["stage"],
                      registry=registry, buckets=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)),
            Gauge("psmesh_processor_consumer_lag", "End offset minus committed offset, per input partition "
                  "(refreshed every 10 s)", ["topic", "partition"], registry=registry),
        )


def _destinations(kind: str, row: dict[str, Any] | None) -> list[list[str]]:
    """Where a row lives: [stage, key] pairs (an entry lives with its project and its resource)."""
    if row is None:
        return []
    out = []
    if kind in BY_OPPORTUNITY:
        if row.get("opportunity_id") is not None:
            out.append(["p", project_code_of(row["opportunity_id"])])
    elif kind in PROJECT_KINDS and row.get("project_code"):
        out.append(["p", row["project_code"]])
    if kind in RESOURCE_KINDS and row.get("resource_id") is not None:
        out.append(["r", str(row["resource_id"])])
    return out


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Processors:
    """Builds the Faust app and holds the stages' in-memory state."""

    def __init__(self, settings: Settings, *, web_port: int = 6066, datadir: Path | None = None,
                 app_id: str = APP_ID, store: str = "rocksdb://", replication_factor: int = 1) -> None:
        self.settings = settings
        datadir = datadir or settings.home / "processors" / f"worker-{web_port}"
        datadir.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            app_id,
            broker=f"kafka://{settings.bootstrap_servers}",
            store=store,
            datadir=str(datadir),
            web_port=web_port,
            # /metrics is on this port: reachable from a Prometheus elsewhere (PSMESH_METRICS_HOST, docs/operating.md).
            web_host=settings.metrics_host,
            canonical_url=f"http://127.0.0.1:{web_port}",
            topic_partitions=PARTITIONS,
            topic_replication_factor=replication_factor,
            table_standby_replicas=0,
            consumer_auto_offset_reset="earliest",
            key_serializer="raw",
            value_serializer="raw",
            # A killed worker's partitions move on after 20 s instead of Kafka's default 60 s.
            broker_session_timeout=20.0,
            broker_heartbeat_interval=3.0,
            broker_commit_every=2000,
            broker_commit_interval=1.0,
            producer_linger_ms=5,
            web_enabled=True,
        )
        self.metrics = Metrics.create()
        self._registry_url = settings.schema_registry_url
        self._decoder: ChangeEventDecoder | None = None
        self._encoders: dict[str, TopicEncoder] = {}
        self.project_stages: dict[int, ProjectStage] = {}
        self.resource_stages: dict[int, ResourceStage] = {}
        self.rollup_stage = RollupStage()
        self._fresh: set[tuple[str, int]] = set()  # (stage, partition) rebuilt and not yet re-published
        self._progress: dict[Any, tuple[int, float]] = {}  # tp → (committed offset, since when)
        self._watermark_client: Any = None
        self._define()

    # ---- wiring
    def _define(self) -> None:
        app = self.app
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
        self.sources = app.topic(*SOURCE_TOPICS, **raw)
        self.by_project = app.topic(f"{app.conf.id}-by_project-repartition", partitions=PARTITIONS, internal=True,
                                    **raw)
        self.by_resource = app.topic(f"{app.conf.id}-by_resource-repartition", partitions=PARTITIONS,
                                     internal=True, **raw)
        self.to_rollup = app.topic(f"{app.conf.id}-rollup-repartition", partitions=1, internal=True, **raw)
        self.outputs = {name: app.topic(name, **raw) for name in (
            "derived.project_requests", "derived.resource_demand", "derived.billing_triggers",
            "derived.project_risk_alerts", "dlq.processors", *(f"views.{v}" for v in VIEW_KEYS))}

        table = {"key_type": bytes, "value_type": bytes}
        tables = {name: app.Table(name, partitions=partitions, **table) for name, partitions in TABLES.items()}
        self.routes, self.project_rows = tables["routes"], tables["project_rows"]
        self.resource_rows, self.rollup_rows = tables["resource_rows"], tables["rollup_rows"]
        self.views = {v: tables[f"view_{v}"] for v in VIEW_KEYS}
        self.project_rows.on_recover(self._rebuild_projects)
        self.resource_rows.on_recover(self._rebuild_resources)
        self.rollup_rows.on_recover(self._rebuild_rollup)

        app.agent(self.sources, name="route")(self._route_agent)
        app.agent(self.by_project, name="project")(self._project_agent)
        app.agent(self.by_resource, name="resource")(self._resource_agent)
        app.agent(self.to_rollup, name="rollup")(self._rollup_agent)
        # Faust pages take (view, request, **match_info): plain functions, not bound methods.
        async def list_view(web, request, view):
            return await self._list_view(web, request, view)

        async def get_view(web, request, view, key):
            return await self._get_view(web, request, view, key)

        async def metrics_page(web, request):
            return await self._metrics_page(web, request)

        app.timer(10.0)(self._watch_stalls)
        app.page("/views/{view}/")(list_view)
        app.page("/views/{view}/{key}")(get_view)
        app.page("/metrics")(metrics_page)

    # ---- codecs (lazily: the registry is reached once the worker runs)
    @property
    def decoder(self) -> ChangeEventDecoder:
        if self._decoder is None:
            self._decoder = ChangeEventDecoder(SchemaRegistryClient({"url": self._registry_url}))
        return self._decoder

    def encoder(self, topic: str) -> TopicEncoder:
        enc = self._encoders.get(topic)
        if enc is None:
            enc = self._encoders[topic] = TopicEncoder(SchemaRegistryClient({"url": self._registry_url}), topic)
        return enc

    async def _publish(self, topic: str, key: dict[str, Any], value: dict[str, Any] | None,
                       headers: dict[str, bytes] | None = None) -> None:
        enc = self.encoder(topic)
        await self.outputs[topic].send(key=enc.key(key), value=None if value is None else enc.value(value),
                                       headers=headers)
        self.metrics.published.labels(topic).inc()

    async def _dead_letter(self, stage: str, event: Any, exc: Exception) -> None:
        msg = event.message
        logger.warning("dead letter from %s: %s (%s[%d]@%d)", stage, exc, msg.topic, msg.partition, msg.offset)
        self.metrics.dead_letters.labels(stage).inc()
        await self._publish("dlq.processors", {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}, {
            "topic": msg.topic, "partition": msg.partition, "offset": msg.offset, "stage": stage,
            "reason": f"{type(exc).__name__}: {exc}", "key": event.key, "value": event.value, "failed_at": _now(),
        })

    # ---- hop 1: route
    async def _route_agent(self, stream) -> None:
        async for event in stream.events():
            started = time.perf_counter()
            await self._guarded("route", event, self._route)
            self.metrics.events.labels("route").inc()
            self.metrics.latency.labels("route").observe(time.perf_counter() - started)

    async def _route(self, event: Any) -> None:
        kind = KIND_OF_TOPIC[event.message.topic]
        envelope = self.decoder.decode(event.value)
        if envelope is None:
            return  # the tombstone after a delete: the delete itself was routed
        op = envelope.get("op")
        if op == "t":
            raise BadChangeEvent("truncate cannot be folded into views; re-snapshot the table")
        image = envelope.get("after") if op != "d" else envelope.get("before")
        if image is None:
            raise BadChangeEvent(f"op {op!r} without a row image")
        pk_column = KINDS[kind][1]
        pk = image.get(pk_column)
        if pk is None:
            raise BadChangeEvent(f"{event.message.topic}: primary key {pk_column} missing")
        row = pick(kind, envelope["after"]) if op != "d" else None
        body = dumps({"k": kind, "id": pk, "row": row})  # encoded once, sent to every destination
        headers = commit_headers(envelope)
        if kind in BROADCAST_KINDS:
            for partition in range(PARTITIONS):
                await self.by_project.send(key=f"~{kind}|{pk}".encode(), value=body, partition=partition,
                                           headers=headers)
            return
        route_key = f"{kind}|{pk}".encode()
        previous = self.routes.get(route_key)
        old = loads(previous) if previous is not None else []
        new = _destinations(kind, row)
        for stage, key in old:
            if [stage, key] not in new:
                await self._forward(stage, key, dumps({"k": kind, "id": pk, "row": None}), headers)
        for stage, key in new:
            await self._forward(stage, key, body, headers)
        if new != old:
            if new:
                self.routes[route_key] = dumps(new)
            else:
                del self.routes[route_key]

    async def _forward(self, stage: str, key: str, body: bytes, headers: dict[str, bytes] | None) -> None:
        topic = self.by_project if stage == "p" else self.by_resource
        await topic.send(key=key.encode(), value=body, headers=headers)

    # ---- hop 2: project stage
    def _project_stage(self, partition: int) -> ProjectStage:
        return self.project_stages.setdefault(partition, ProjectStage())

    async def _rebuild_projects(self) -> None:
        self.project_stages = {}
        count = 0
        for key, value in self.project_rows.items():
            partition, code, kind, ident = key.decode().split("|", 3)
            row = loads(value)
            stage = self._project_stage(int(partition))
            ident_value = _ident(kind, ident)
            if kind == "meta":
                stage.load(code, "meta", None, row)
            elif kind in BROADCAST_KINDS:
                stage.load(code, kind, ident_value, parse(kind, row))
            else:
                stage.load(code, kind, ident_value, _parse_project(kind, row))
            count += 1
        self._fresh |= {("project", p) for p in range(PARTITIONS)}
        logger.info("project stage rebuilt from %d mirrored rows", count)

    async def _project_agent(self, stream) -> None:
        async for event in stream.events():
            started = time.perf_counter()
            await self._guarded("project", event, self._project)
            self.metrics.events.labels("project").inc()
            self.metrics.latency.labels("project").observe(time.perf_counter() - started)

    async def _project(self, event: Any) -> None:
        partition = event.message.partition
        stage = self._project_stage(partition)
        if ("project", partition) in self._fresh:
            self._fresh.discard(("project", partition))
            await self._apply(stage.refresh_all(), partition, resend=True)
        message = loads(event.value)
        kind, ident, row = message["k"], message["id"], message["row"]
        if kind in BROADCAST_KINDS:
            mirror_key = f"{partition}|~|{kind}|{ident}".encode()
            parsed = parse(kind, row) if row is not None else None
            self._mirror(self.project_rows, mirror_key, row)
            fx = stage.on_account(ident, row) if kind == "account" else stage.on_period(ident, parsed)
        else:
            code = event.key.decode()
            self._mirror(self.project_rows, f"{partition}|{code}|{kind}|{ident}".encode(), row)
            fx = stage.on_row(code, kind, ident, _parse_project(kind, row) if row is not None else None)
        await self._apply(fx, partition, headers=passed_headers(event))

    # ---- hop 2: resource stage
    def _resource_stage(self, partition: int) -> ResourceStage:
        return self.resource_stages.setdefault(partition, ResourceStage())

    async def _rebuild_resources(self) -> None:
        self.resource_stages = {}
        count = 0
        for key, value in self.resource_rows.items():
            partition, rid, kind, ident = key.decode().split("|", 3)
            self._resource_stage(int(partition)).load(int(rid), kind, int(ident), parse(kind, loads(value)))
            count += 1
        self._fresh |= {("resource", p) for p in range(PARTITIONS)}
        logger.info("resource stage rebuilt from %d mirrored rows", count)

    async def _resource_agent(self, stream) -> None:
        async for event in stream.events():
            started = time.perf_counter()
            await self._guarded("resource", event, self._resource)
            self.metrics.events.labels("resource").inc()
            self.metrics.latency.labels("resource").observe(time.perf_counter() - started)

    async def _resource(self, event: Any) -> None:
        partition = event.message.partition
        stage = self._resource_stage(partition)
        if ("resource", partition) in self._fresh:
            self._fresh.discard(("resource", partition))
            await self._apply(stage.refresh_all(), partition, resend=True)
        message = loads(event.value)
        kind, ident, row = message["k"], message["id"], message["row"]
        rid = int(event.key)
        self._mirror(self.resource_rows, f"{partition}|{rid}|{kind}|{ident}".encode(), row)
        fx = stage.on_row(rid, kind, ident, parse(kind, row) if row is not None else None)
        await self._apply(fx, partition, headers=passed_headers(event))

    # ---- hop 3: rollup
    async def _rebuild_rollup(self) -> None:
        self.rollup_stage = RollupStage()
        for key, value in self.rollup_rows.items():
            self.rollup_stage.load(key.decode(), loads(value))
        self._fresh.add(("rollup", 0))
        logger.info("rollup stage rebuilt from %d contributions", len(self.rollup_stage.contributions))

    async def _rollup_agent(self, stream) -> None:
        async for event in stream.events():
            started = time.perf_counter()
            await self._guarded("rollup", event, self._rollup)
            self.metrics.events.labels("rollup").inc()
            self.metrics.latency.labels("rollup").observe(time.perf_counter() - started)

    async def _rollup(self, event: Any) -> None:
        if ("rollup", 0) in self._fresh:
            self._fresh.discard(("rollup", 0))
            await self._apply(self.rollup_stage.refresh_all(), 0, resend=True)
        key, value = event.key.decode(), loads(event.value)
        self._mirror(self.rollup_rows, event.key, value)
        await self._apply(self.rollup_stage.on_contribution(key, value), 0, headers=passed_headers(event))

    async def _guarded(self, stage: str, event: Any, handle) -> None:
        """Handle one event: bad input goes to the dead-letter topic, a broker hiccup is retried.

        An error of the event's content (undecodable, a missing column, a
        value a formula rejects) is dead-lettered with its bytes and the
        stream goes on. An error of the infrastructure (Kafka, metadata,
        Faust's own checks) says nothing about the event: it is retried, 1 s
        apart; if it persists the worker crashes, so that it is restarted and
        replays from its last commit instead of dropping events.
        """
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            try:
                await handle(event)
                return
            except (KafkaError, FaustError) as exc:
                if attempt == TRANSIENT_ATTEMPTS:
                    logger.error("%s: giving up on %s[%d]@%d after %d attempts: %s", stage, event.message.topic,
                                 event.message.partition, event.message.offset, attempt, exc)
                    await self.app.crash(exc)
                    raise
                logger.warning("%s: %s; retrying in 1s (attempt %d)", stage, exc, attempt)
                if stage != "route":  # what the failed attempt left unpublished is published again
                    self._fresh.add((stage, 0 if stage == "rollup" else event.message.partition))
                await asyncio.sleep(1.0)
            except Exception as exc:  # bad input never vanishes: it goes to the dead-letter topic
                await self._dead_letter(stage, event, exc)
                return

    # ---- effects
    @staticmethod
    def _mirror(table: Any, key: bytes, row: Any) -> None:
        if row is None:
            if key in table:
                del table[key]
        else:
            table[key] = dumps(row)

    async def _apply(self, fx: Effects, partition: int, resend: bool = False,
                     headers: dict[str, bytes] | None = None) -> None:
        """Store and publish what a change produced; ``headers`` carry its source commit time onwards."""
        for code, meta in fx.meta:
            self.project_rows[f"{partition}|{code}|meta|".encode()] = dumps(meta)
        for view, key, row in fx.views:
            table = self.views[view]
            table_key = "|".join(str(k) for k in key).encode()
            stored = dumps(row) if row is not None else None
            current = table.get(table_key)
            if stored == current and not resend:
                continue
            if stored is None:
                if current is None:
                    continue
                del table[table_key]
            else:
                table[table_key] = stored
            record_key = dict(zip(VIEW_KEYS[view], key))
            await self._publish(f"views.{view}", record_key, None if row is None else {**row, "updated_at": _now()},
                                headers)
        for topic, key, value in fx.events:
            await self._publish(topic, key, value, headers)
        for key, value in fx.rollup:
            await self.to_rollup.send(key=key.encode(), value=dumps(value), headers=headers)

    # ---- stalled partitions
    async def _watch_stalls(self) -> None:
        """Re-fetch a partition that stopped being read although records wait in it.

        faust-streaming 0.15 with aiokafka 0.12 can leave a partition assigned
        but never fetched again after a rebalance (faust-streaming/faust#629;
        seen here when records arrived during recovery after a kill -9). A
        partition whose committed offset stays below its end offset for
        ``STALL_SECONDS`` is sought back to its committed offset: at worst a
        few records are read twice, which every stage tolerates.
        """
        app = self.app
        if app.rebalancing or app.consumer is None:
            self._progress.clear()
            return
        topics = {self.by_project.get_topic_name(), self.by_resource.get_topic_name(),
                  self.to_rollup.get_topic_name(), *SOURCE_TOPICS}
        tps = [tp for tp in app.consumer.assignment() if tp.topic in topics]
        if not tps:
            return
        ends = await asyncio.to_thread(self._watermarks, tps)
        now = time.monotonic()
        for tp in tps:
            low, high = ends.get(tp, (None, None))
            if high is None:
                continue
            committed = app.consumer._committed_offset.get(tp)
            position = committed if committed is not None else low
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, high - position))
            if position >= high:
                self._progress.pop(tp, None)
                continue
            seen = self._progress.get(tp)
            if seen is None or seen[0] != position:
                self._progress[tp] = (position, now)
            elif now - seen[1] >= STALL_SECONDS:
                logger.warning("partition %s[%d] stalled at offset %d below its end %d for %.0fs: fetching it again",
                               tp.topic, tp.partition, position, high, now - seen[1])
                # Recovery pauses every partition; one left paused is never fetched: resume, then seek.
                app.consumer.resume_partitions({tp})
                await app.consumer.seek(tp, position)
                self._progress[tp] = (position, now)

    def _watermarks(self, tps) -> dict:
        from confluent_kafka import Consumer, TopicPartition

        if self._watermark_client is None:
            self._watermark_client = Consumer({**self.settings.kafka_client_config(),
                                               "group.id": f"{self.app.conf.id}-watch"})
        out = {}
        for tp in tps:
            try:
                out[tp] = self._watermark_client.get_watermark_offsets(TopicPartition(tp.topic, tp.partition),
                                                                       timeout=5)
            except Exception:  # the broker is away: try again at the next tick
                continue
        return out

    # ---- interactive queries
    def _route_topic(self, view: str):
        stage = VIEW_STAGE[view]
        return {"project": self.by_project, "resource": self.by_resource, "rollup": self.to_rollup}[stage]

    async def _get_view(self, web, request, view: str, key: str) -> Any:
        """One view row by key, answered by the worker that owns it (others forward the request).

        Keys are the view key columns joined by '|': ``PRJ-7``, ``PRJ-7|burn``, ``12|2026-03-02``,
        ``cloud_migration|2026-04-01``.
        """
        if view not in VIEW_KEYS:
            return web.json({"error": f"unknown view {view!r}; views: {sorted(VIEW_KEYS)}"}, status=404)
        routing = key.split("|", 1)[0] if VIEW_STAGE[view] != "rollup" else key
        try:
            return await self.app.router.route_topic_req(self._route_topic(view), routing.encode(), web.web, request)
        except faust.web.exceptions.ServiceUnavailable:
            return web.json({"error": "the owner of this key is not known yet (rebalancing)"}, status=503)
        except Exception as exc:
            if type(exc).__name__ != "SameNode":
                raise
        value = self.views[view].get(key.encode())
        if value is None:
            return web.json({"error": f"no {view} row with key {key!r}"}, status=404)
        return web.json(loads(value))

    async def _list_view(self, web, request, view: str) -> Any:
        """The rows of a view held by this worker (its partitions)."""
        if view not in VIEW_KEYS:
            return web.json({"error": f"unknown view {view!r}; views: {sorted(VIEW_KEYS)}"}, status=404)
        rows = [loads(v) for _, v in self.views[view].items()]
        return web.json({"view": view, "worker": str(self.app.conf.canonical_url), "rows": rows})

    async def _metrics_page(self, web, request) -> Any:
        return aioweb.Response(body=generate_latest(self.metrics.registry),
                               headers={"Content-Type": CONTENT_TYPE_LATEST})


def ensure_internal_topics(settings: Settings, app_id: str = APP_ID, replication_factor: int = 1,
                           timeout: float = 30.0) -> list[str]:
    """Create the app's repartition and changelog topics before the worker starts; returns those created.

    Faust declares them itself at start, but a worker that joins the group
    before the broker's metadata lists a new topic ignores it ("Ignoring
    missing topic") and never reads it until the next rebalance: the first
    run would leave a stage idle; and a table whose changelog topic the
    metadata does not list yet refuses its first write (PartitionsMismatch).
    Creating them first, and waiting until the metadata shows them, avoids both.
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    wanted = {f"{app_id}-by_project-repartition": PARTITIONS, f"{app_id}-by_resource-repartition": PARTITIONS,
              f"{app_id}-rollup-repartition": 1}
    changelogs = {f"{app_id}-{table}-changelog": partitions for table, partitions in TABLES.items()}
    admin = AdminClient(settings.kafka_client_config())
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [NewTopic(name, partitions, replication_factor) for name, partitions in wanted.items()
               if name not in existing]
    missing += [NewTopic(name, partitions, replication_factor, config={"cleanup.policy": "compact"})
                for name, partitions in changelogs.items() if name not in existing]
    wanted.update(changelogs)
    created = []
    for name, future in (admin.create_topics(missing).items() if missing else ()):
        try:
            future.result()
            created.append(name)
        except Exception as exc:  # another worker created it first
            if "TOPIC_ALREADY_EXISTS" not in str(exc).upper().replace(" ", "_"):
                raise
    deadline = time.monotonic() + timeout
    while not set(wanted) <= set(admin.list_topics(timeout=timeout).topics):
        if time.monotonic() > deadline:
            raise ProcessorError(f"internal topics {sorted(wanted)} not visible after {timeout:.0f}s")
        time.sleep(0.2)
    return created


def _ident(kind: str, ident: str) -> Any:
    if kind in ("meta",):
        return None
    return ident if kind == "billing_event" else int(ident)


def _parse_project(kind: str, row: dict[str, Any]) -> Any:
    parsed = parse(kind, row)
    return (parsed, row) if kind == "opportunity" else parsed


__all__ = ["Processors", "ProcessorError", "APP_ID"]
