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

Delivery is at least once (a batch's events are acknowledged, and their
offsets committed, only once every record the batch produced is on the
broker: processors/sender.py), and every effect is idempotent by design: stages replace rows by
key, never add deltas; view events are upserts of the whole row; derived
events carry deterministic ids. After a restart each stage rebuilds its
in-memory state from its mirror table and, on the first event of each
partition, re-publishes that partition's views and current derived events,
so whatever a crash cut off in flight is published again; a tick (an empty
message) to each stage partition it holds makes that first event come at
once (``Processors._tick``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import ssl
import time
import weakref
from collections import defaultdict, deque
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import faust
from aiohttp import web as aioweb
from aiokafka.errors import KafkaError
from faust.exceptions import FaustError
from faust.streams import _current_event
from faust.types import TP

try:
    from rocksdict import WriteBatch
except ImportError:  # pragma: no cover - rocksdict is a dependency; the memory store does without
    WriteBatch = None
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.gc_collector import GCCollector

from processors.batch import Cause, Outbox, messages, stage_partition
from processors.capacity import ResourceStage
from processors.effects import Effects, view_row
from processors.codec import ChangeEventDecoder, TopicEncoder
from processors import faust_fixes
from processors.exceptions import BadChangeEvent, ProcessorError
from processors.project import ProjectStage, project_code_of
from processors.sender import ProducerFailed, RecordTooLarge, Sender, Ticket
from processors.records import KIND_OF_TOPIC, KINDS, SOURCE_TOPICS, check_row, dumps, loads, parse, pick
from processors.rollup import RollupStage, legacy_line_key
from psmesh.config import SECURITY_PROTOCOLS, Settings, worker_bind, worker_url
from psmesh.latency import commit_ms_of
from streams import position

logger = logging.getLogger(__name__)
#: the delivery ticket of the batch the current agent task is handling (processors/sender.py)
_TICKET: ContextVar[Ticket] = ContextVar("psmesh_processors_ticket")
#: the (stage, Outbox) of the batch being handled whose mirror writes wait for its outputs to be on the broker
#: (Processors._settle_batch); unset, Processors._flush waits for them and writes at once
_UNRECORDED: ContextVar[list] = ContextVar("psmesh_processors_unrecorded")

APP_ID = "psmesh-processors"
PARTITIONS = 6  # as the change topics (topology.yaml defaults), so route is co-partitioned with them
#: A partition behind its end offset whose committed offset has not moved for this long is re-fetched.
STALL_SECONDS = 30.0
#: A changelog partition that table recovery has received nothing of for this long since it started is re-fetched.
RECOVERY_STALL_SECONDS = 10.0

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
#: Kinds from each row of which a stage derives something (a billing milestone's trigger, a period close's, an
#: account's requests), not only from the state a message leaves: every version of them is routed, and the versions
#: of other rows are coalesced only between two of them (_coalesced).
PER_ROW_KINDS = BROADCAST_KINDS | {"billing_milestone"}
#: Faust tables → partitions (their changelog topics are ``<app id>-<table>-changelog``). The views are not
#: tables: each stage rebuilds them from its mirror, and the rows last published are kept in memory.
TABLES = {"routes": PARTITIONS, "project_rows": PARTITIONS, "resource_rows": PARTITIONS, "rollup_rows": 1}
#: Each stage's input topic (its name after ``<app id>-``) and its partitions.
STAGE_INPUTS = {"project": ("by_project-repartition", PARTITIONS), "resource": ("by_resource-repartition", PARTITIONS),
                "rollup": ("rollup-repartition", 1)}
#: Change events the router takes at a time, and batch messages a stage takes at a time (each holds the rows
#: one router batch sent to that stage partition); a batch is handled at the latest this long after its first event.
#: A stage batch holds up to about STAGE_BATCH × ROUTE_BATCH / PARTITIONS rows (in a catch-up 5,000–7,000 were
#: measured, two seconds' work), so offsets are committed often and the stall watchdog sees every partition move.
#: Larger batches coalesce more (a view row changed by many rows of a batch is published once): with 4,000 events
#: per router batch the benchmark's worker used 295–315 µs of CPU per change event, with 1,000 324–374 µs (3 runs
#: each, docs/processors.md); under a light load a batch is whatever arrived within BATCH_SECONDS. 8,000 events and
#: 12 messages (the same rows per stage batch, half the router's waits for the broker per change event) read 8,108
#: events/s on average against 7,513 with 4,000 and 24, in 12 alternating runs each (docs/processors-performance.md,
#: "Tenth round").
ROUTE_BATCH = 8000
#: The message a stage's partitions get after a rebuild (Processors._tick): no rows, read as any message.
TICK, TICK_KEY = b"[]", b"tick"
#: The key of the same empty message sent by ``psmesh processors republish`` (request_republish): the worker that
#: holds the partition publishes its views and current derived events again, whether it was rebuilt or not.
REPUBLISH_KEY = b"republish"
#: The key of a request for one project or resource (``--project``, ``--resource``): this prefix and its key in the
#: stage (a project_code, a resource_id), sent to the partition that holds it.
REPUBLISH_ONE = REPUBLISH_KEY + b"|"
STAGE_BATCH = 12
#: Views whose rows a stage holds back while its input keeps coming (a catch-up, a snapshot), publishing each once
#: when the input pauses or HOLD_SECONDS after the first was held, as Kafka Streams' record cache does between
#: commits: a week's row that the batches of a catch-up touch five times is computed, encoded and sent once.
#: Only views whose rows the state always gives (capacity.ResourceState.week_row, RollupStage.skill_row): a
#: deletion comes as None and is published at once, so a crash that loses what was held loses no deletion, and the
#: rebuild after it publishes every row again (Processors._republish_later). docs/processors.md, "Week rows held
#: while input keeps coming".
HELD_VIEWS = frozenset({"resource_week", "skill_week"})
#: How long a stage holds a view row at most while its input keeps coming, and how many rows it holds at most.
HOLD_SECONDS, HOLD_ROWS = 5.0, 50_000
#: How long a stage that holds rows waits for input, with the agents upstream waiting too, before it publishes
#: them: its input paused. Under a light load, what a view row waits for.
HOLD_IDLE_SECONDS = 0.2
BATCH_SECONDS = 0.5
#: The longest the broker holds a fetch of the worker's that finds nothing new (faust_fixes.short_fetch_wait).
FETCH_WAIT_MS = 100
#: The agents each stage's input comes from, directly or not.
UPSTREAM = {"project": frozenset({"route"}), "resource": frozenset({"route"}),
            "rollup": frozenset({"route", "project", "resource"})}
#: Events a stream buffers before Faust pauses its partitions (Faust's default is 4,096).
STREAM_BUFFER = 32768
#: Attempts at an event that failed for a reason other than its content (broker, metadata), 1 s apart.
TRANSIENT_ATTEMPTS = 30
#: Batches an agent may have on their way to the broker while it handles the next one. A batch is settled (its
#: outputs acknowledged by the broker, then its mirror rows written, then those acknowledged, then its events)
#: in order, behind the ones before it, while the agent goes on: waiting for each batch before the next left the
#: worker idle while the broker acknowledged (docs/processors-performance.md, "Eleventh round").
SETTLING = 1
#: The worker's cycle collector thresholds (CPython's default is 700, 10, 10). A worker allocates dicts, lists and
#: tuples by the million and keeps its stages' state, which grows with the firm: with the default, a young
#: collection ran every 700 allocations and a full one, over the whole state, every hundred of those; a bench
#: worker whose drain of the backlog took 10.5-11.6 CPU s spent 3.0-3.5 s of its run in the collector, which
#: found fewer than 1,500 objects in cycles (everything else is freed by reference counting). Here a young
#: collection runs every 50,000 allocations and a full one after some hundred million
#: (docs/processors-performance.md, "Sixth round").
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Make the cycle collector rare (GC_THRESHOLDS) and leave out what the worker has loaded before it starts
    (modules, the app, its codecs): ``gc.freeze`` moves them to a generation no collection walks. Reference
    counting still frees every object, frozen or not, that nothing refers to."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    logger.info("cycle collector: thresholds %s, %d objects frozen", gc.get_threshold(), gc.get_freeze_count())


@dataclass
class _Handled:
    """A batch as its agent handled it, to be settled (Processors._settled_in_order)."""

    taken: faust_fixes.Taken
    rows: int
    started: float
    #: the stage's epoch when it was handled: a batch handled before a failure of an earlier one is handled again
    epoch: int
    ticket: Ticket
    #: its (stage, Outbox) whose mirror rows wait for its outputs to be on the broker
    unrecorded: list
    #: the error of the infrastructure that interrupted its handling, if one did
    failed: BaseException | None = None


@dataclass
class Metrics:
    registry: CollectorRegistry
    events: Counter
    published: Counter
    dead_letters: Counter
    coalesced: Counter
    repeated: Counter
    latency: Histogram
    consumer_lag: Gauge
    settled_at: Gauge
    held: Gauge

    @classmethod
    def create(cls) -> "Metrics":
        registry = CollectorRegistry()
        GCCollector(registry=registry)  # python_gc_collections_total and python_gc_objects_collected_total
        return cls(
            registry,
            Counter("psmesh_processor_events_total", "Events processed, per stage", ["stage"], registry=registry),
            Counter("psmesh_processor_published_total", "Records published, per topic", ["topic"], registry=registry),
            Counter("psmesh_processor_dead_letters_total", "Events sent to dlq.processors, per stage", ["stage"],
                    registry=registry),
            Counter("psmesh_processor_coalesced_total", "Change events the router did not forward: a later "
                    "version of the same row in its batch superseded them", registry=registry),
            Counter("psmesh_processor_repeated_total", "Change events the router left out because the capture "
                    "had published them already (sent again after its restart: streams/position.py), per topic",
                    ["topic"], registry=registry),
            Histogram("psmesh_processor_event_seconds", "Time to process one event, per stage (a batch's time "
                      "over its rows, once per batch)", ["stage"], registry=registry,
                      buckets=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)),
            Gauge("psmesh_processor_consumer_lag", "End offset minus committed offset, per input partition "
                  "(refreshed every 10 s)", ["topic", "partition"], registry=registry),
            Gauge("psmesh_processor_last_settled_timestamp_seconds", "When a stage last settled a batch (its "
                  "outputs and mirror rows acknowledged by the broker, its events acknowledged), per stage: Unix "
                  "time", ["stage"], registry=registry),
            Gauge("psmesh_processor_held_view_rows", "View rows a stage holds back while its input keeps coming, "
                  "published once it pauses or within 5 s (docs/processors.md, \"Week rows held while input keeps "
                  "coming\"), per stage",
                  ["stage"], registry=registry),
        )


#: What the router reads of a change event of each kind: the columns it forwards (and the primary key, among them),
#: the operation, and the commit time; the rest is skipped undecoded (processors/avroread.py).
ROUTE_PROJECTIONS = {kind: {"Envelope": {"before", "after", "source", "op"}, "Source": {"ts_ms", "snapshot"},
                            "Value": set(columns)} for kind, (_, _, columns) in KINDS.items()}


def _destinations(kind: str, row: dict[str, Any] | None) -> list[list[str]]:
    """Where a row lives: [stage, key] pairs (an entry lives with its project and its resource)."""
    if row is None:
        return []
    out = []
    if kind in BY_OPPORTUNITY:
        if row.get("opportunity_id") is not None:
            out.append(["p", project_code_of(row["opportunity_id"])])
    elif kind in PROJECT_KINDS and row.get("project_code"):
        code = row["project_code"]
        if "|" in code:  # the mirrors' keys are '|'-separated (partition|code|kind|id), and no project's code has one
            raise BadChangeEvent(f"project_code {code!r} contains '|': no project has such a code "
                                 "('PRJ-' || opportunity_id, DOMAIN.md section 1)")
        out.append(["p", code])
    if kind in RESOURCE_KINDS and row.get("resource_id") is not None:
        out.append(["r", str(row["resource_id"])])
    return out


def _row_versions(events: list) -> list[list[Any]]:
    """The change events of a router batch grouped for decoding, in the order of each group's last event: the
    versions of a row (its topic and key) between two events of a per-row kind (PER_ROW_KINDS), latest first.

    Only the first of a group needs decoding (see _coalesced for why the others change nothing). Tombstones are
    left out: the delete before each is routed. An event of a per-row kind, or without a key, is a group of its
    own.
    """
    groups: list[list[Any]] = []
    last: dict[tuple[str, bytes], list[Any]] = {}
    for event in reversed(events):
        value = event.value
        if value is None:
            continue
        topic = event.message.topic
        key = event.key
        if KIND_OF_TOPIC.get(topic) in PER_ROW_KINDS:
            last.clear()
            groups.append([event])
            continue
        if key is None:
            groups.append([event])
            continue
        versions = last.get((topic, key))
        if versions is not None:
            versions.append(event)
            continue
        versions = last[(topic, key)] = [event]
        groups.append(versions)
    groups.reverse()
    return groups


def _coalesced(changes: list[tuple]) -> list[tuple]:
    """The changes of a router batch a stage needs, in order: of the versions of a row (kind, primary key) between
    two changes of a per-row kind (PER_ROW_KINDS), the last one.

    A stage replaces rows by key and derives from the state a message leaves, or, for the per-row kinds, from the
    state at that row: whatever reads the state between two such points sees the same with or without a row's
    earlier versions. Kafka Streams' record caches forward a key's last update for the same reason. A backlog
    (the bench's time entries, inserted as submitted and then approved) has many; a live stream few.
    """
    keep: list[tuple] = []
    seen: set[tuple[str, Any]] = set()
    for change in reversed(changes):
        kind, pk = change[1], change[2]
        if kind in PER_ROW_KINDS:
            seen.clear()
        elif (kind, pk) in seen:
            continue
        else:
            seen.add((kind, pk))
        keep.append(change)
    keep.reverse()
    return keep


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Processors:
    """Builds the Faust app and holds the stages' in-memory state."""

    def __init__(self, settings: Settings, *, web_port: int = 6066, datadir: Path | None = None,
                 app_id: str = APP_ID, store: str = "rocksdb://", replication_factor: int = 1,
                 url: str | None = None, host: str | None = None) -> None:
        self.settings = settings
        canonical = worker_url(url or settings.processors_url, web_port)
        faust_fixes.install()
        datadir = datadir or settings.home / "processors" / f"worker-{web_port}"
        datadir.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            app_id,
            broker=f"kafka://{settings.bootstrap_servers}",
            broker_credentials=broker_credentials(settings),
            store=store,
            datadir=str(datadir),
            web_port=web_port,
            # The views and /metrics: on this host only, unless the workers run on several (psmesh.config.worker_bind).
            web_bind=worker_bind(host or settings.processors_host, canonical),
            # Where the other workers forward a view query for a key this one owns (Faust's router): the worker's
            # own address, which only the operator knows when workers run on several hosts (PSMESH_PROCESSORS_URL).
            canonical_url=canonical,
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
            # Larger fetches and stream buffers: with Faust's defaults (4,096 events per stream buffer, 1 MiB per
            # partition fetch) the worker waited on its own fetcher (docs/processors-performance.md, "Third round").
            stream_buffer_maxsize=STREAM_BUFFER,
            broker_max_poll_records=ROUTE_BATCH * 5,
            consumer_max_fetch_size=16 * 1024 * 1024,
            web_enabled=True,
        )
        faust_fixes.detach_monitor(self.app)
        faust_fixes.short_fetch_wait(self.app, FETCH_WAIT_MS)
        faust_fixes.cheap_ebb(self.app)
        self.metrics = Metrics.create()
        self.sender = Sender(settings.kafka_client_config())
        self._published_counters: dict[str, Any] = {}
        self._published_tally: dict[str, int] = {}  # topic → records published since the last _count_published
        #: routes rows of batches handled but not yet settled: key → (the batch's Outbox, row); the router reads
        #: them before the table, whose store has them only once their batch is settled
        self._unsettled_routes: dict[bytes, tuple[Outbox, Any]] = {}
        #: stage → how many times its batches on their way to the broker have been handled again after a failure
        self._epochs: defaultdict[str, int] = defaultdict(int)
        #: stages whose failed batches are being handled again: no new batch until they are
        self._recovering: set[str] = set()
        self._registry_url = settings.schema_registry_url
        self._registry: SchemaRegistryClient | None = None
        self._decoder: ChangeEventDecoder | None = None
        self._encoders: dict[str, TopicEncoder] = {}
        self.project_stages: dict[int, ProjectStage] = {}
        self.resource_stages: dict[int, ResourceStage] = {}
        self.rollup_stage = RollupStage()
        #: view → table key → the row as last published, for queries and to publish only what changed
        self.published: dict[str, dict[bytes, dict[str, Any]]] = {v: {} for v in VIEW_KEYS}
        self._fresh: set[tuple[str, int]] = set()  # (stage, partition) rebuilt and not yet re-published
        #: stage → (view, table key) → [key tuple, row or callable, cause, resend]: rows of HELD_VIEWS held back
        self._held: dict[str, dict[tuple[str, bytes], list]] = defaultdict(dict)
        self._held_since: dict[str, float] = {}  # stage → when its first held row was held
        #: the stages whose agents hand them an empty batch when their input pauses (_stage_batches): outside a
        #: running worker, none, and nothing is held
        self._holding: set[str] = set()
        self._progress: dict[Any, tuple[int, float]] = {}  # tp → (committed offset, since when)
        self._read: dict[Any, float] = {}  # tp → when an agent last took an event of it
        self._waiting: set[str] = set()  # the agents waiting for input with none buffered (faust_fixes.Waiting)
        self._watermark_client: Any = None
        self._define()

    # ---- wiring
    def _define(self) -> None:
        app = self.app
        raw = {"schema": faust_fixes.RawSchema()}
        self.sources = app.topic(*SOURCE_TOPICS, **raw)
        self.by_project, self.by_resource, self.to_rollup = (
            app.topic(f"{app.conf.id}-{suffix}", partitions=partitions, internal=True, **raw)
            for suffix, partitions in (STAGE_INPUTS[stage] for stage in ("project", "resource", "rollup")))
        self.outputs = {name: app.topic(name, **raw) for name in (
            "derived.project_requests", "derived.resource_demand", "derived.billing_triggers",
            "derived.project_risk_alerts", "dlq.processors", *(f"views.{v}" for v in VIEW_KEYS))}

        table = {"key_type": bytes, "value_type": bytes}
        self.tables = tables = {name: app.Table(name, partitions=partitions, **table)
                                for name, partitions in TABLES.items()}
        self.routes, self.project_rows = tables["routes"], tables["project_rows"]
        self.resource_rows, self.rollup_rows = tables["resource_rows"], tables["rollup_rows"]
        self.project_rows.on_recover(self._rebuild_projects)
        self.resource_rows.on_recover(self._rebuild_resources)
        self.rollup_rows.on_recover(self._rebuild_rollup)

        # The router's records come in the lists the fetch gives, past Faust's per-record path (faust_fixes.Feed).
        self.feed = faust_fixes.feed(app, SOURCE_TOPICS, STREAM_BUFFER)
        app.agent(self.sources, name="route")(self._route_agent)
        app.agent(self.by_project, name="project")(self._project_agent)
        app.agent(self.by_resource, name="resource")(self._resource_agent)
        app.agent(self.to_rollup, name="rollup")(self._rollup_agent)
        # Faust pages take (view, request, **match_info): plain functions, not bound methods.
        async def views_index(web, request):
            return await self._views_index(web, request)

        async def list_view(web, request, view):
            return await self._list_view(web, request, view)

        async def get_view(web, request, view, key):
            return await self._get_view(web, request, view, key)

        async def metrics_page(web, request):
            return await self._metrics_page(web, request)

        app.timer(10.0)(self._watch_stalls)

        @app.on_before_shutdown.connect
        async def close_sender(app, **kwargs):  # records of unacknowledged batches are sent again anyway
            await asyncio.to_thread(self.sender.close)

        app.page("/views/")(views_index)
        app.page("/views/{view}/")(list_view)
        app.page("/views/{view}/{key}")(get_view)
        app.page("/metrics")(metrics_page)

    # ---- codecs (lazily: the registry is reached once the worker runs)
    @property
    def registry(self) -> SchemaRegistryClient:
        """One registry client for the decoder and every encoder: a client makes its own TLS context, which loads
        the system's certificates (30-40 ms each), and one per output topic made 3-4 % of a worker's first
        8 seconds of a backlog."""
        if self._registry is None:
            self._registry = SchemaRegistryClient({"url": self._registry_url})
        return self._registry

    @property
    def decoder(self) -> ChangeEventDecoder:
        if self._decoder is None:
            # Decimals as text: the router only forwards them, as text (processors/records.py), and a Decimal made
            # to be turned back into a string cost more than the rest of its column's reading.
            self._decoder = ChangeEventDecoder(self.registry, ROUTE_PROJECTIONS, decimal_text=True)
        return self._decoder

    def encoder(self, topic: str) -> TopicEncoder:
        enc = self._encoders.get(topic)
        if enc is None:
            enc = self._encoders[topic] = TopicEncoder(self.registry, topic)
        return enc

    def _publish(self, topic: str, key: dict[str, Any], value: dict[str, Any] | None,
                 headers: dict[str, bytes] | None = None) -> None:
        enc = self.encoder(topic)
        self._send(topic, enc.key(key), None if value is None else enc.value(value), headers=headers)
        tally = self._published_tally
        tally[topic] = tally.get(topic, 0) + 1

    def _count_published(self) -> None:
        """Add the records a batch published to the Prometheus counters: once per topic, not once per record
        (a counter's increment takes a lock; per record it was 2-3 % of the resource stage's time)."""
        for topic, count in self._published_tally.items():
            counter = self._published_counters.get(topic)
            if counter is None:
                counter = self._published_counters[topic] = self.metrics.published.labels(topic)
            counter.inc(count)
        self._published_tally.clear()

    def _send(self, topic: str, key: bytes | None, value: bytes | None, *, partition: int | None = None,
              headers: dict[str, bytes] | None = None, table: Any = None) -> None:
        """Queue a record on the current batch's ticket; acknowledged before the batch's events are."""
        self.sender.produce(_TICKET.get(), topic, key, value, partition=partition, headers=headers, table=table)

    def _send_rows(self, topic: Any, key: bytes, partition: int, rows: list[list[Any]], too_large=None) -> None:
        """Rows for a stage partition (each ending with its commit time), in messages of at most MESSAGE_BYTES,
        each with the commit-time header of the latest row of all. A row the client refuses for its size (a
        message of its own, over librdkafka's 1 MB) goes to ``too_large(row, exc)`` when given."""
        latest = max((row[-1] for row in rows if row[-1]), default=None, key=int)
        headers = Cause(None, None, None, latest).headers
        bodies = messages(rows)
        for body in bodies:
            try:
                self._send(topic.get_topic_name(), key, body, partition=partition, headers=headers)
            except RecordTooLarge as exc:
                items = loads(body) if too_large is not None else []
                if len(items) != 1:  # a message of several rows is cut under the limit: not the rows' fault
                    raise
                too_large(items[0], exc)

    def _dead_letter(self, stage: str, cause: Cause, exc: Exception) -> None:
        msg = cause.event.message
        logger.warning("dead letter from %s: %s (%s[%d]@%d)", stage, exc, msg.topic, msg.partition, msg.offset)
        self.metrics.dead_letters.labels(stage).inc()
        self._publish("dlq.processors", {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}, {
            "topic": msg.topic, "partition": msg.partition, "offset": msg.offset, "stage": stage,
            "reason": f"{type(exc).__name__}: {exc}",
            "key": cause.key if cause.item is None else str(cause.item[0]).encode(),
            "value": cause.value if cause.item is None else dumps(cause.item), "failed_at": _now(),
        })

    # ---- batches
    async def _batches(self, batches, stage: str, handle) -> None:
        """Hand each batch of events (a ``faust_fixes.Taken``) to ``handle``, and settle it (``_settle_batch``) while
        the next ones are handled, up to SETTLING behind; its events are acknowledged once it is settled (never if
        it fails for good: the worker then stops, and the batch is read again after the restart).

        ``handle`` publishes a batch's outputs without waiting for anything (``_flush`` leaves the mirror writes to
        ``_settle_batch``), so a settling batch never runs in the middle of the next one's handling, and batches are
        settled, or handled again after a failure, in the order they were handled.
        """
        settling: deque[asyncio.Task] = deque()
        # on a faust-streaming version not checked, Faust acknowledges a list when the next is taken: settled first
        pipelined = faust.__version__.startswith(faust_fixes.SUPPORTED)
        try:
            async for taken in batches:
                started = time.perf_counter()
                now = time.monotonic()
                for event in taken:
                    self._read[event.message.tp] = now
                while settling and (settling[0].done() or len(settling) > SETTLING or stage in self._recovering):
                    await settling.popleft()
                if not settling:
                    self._recovering.discard(stage)  # every batch handled before the failure has been again
                batch = _Handled(taken, 0, started, self._epochs[stage], self.sender.ticket(), [])
                tokens = _TICKET.set(batch.ticket), _UNRECORDED.set(batch.unrecorded)
                try:
                    batch.rows = await handle(taken)
                    self.sender.release(batch.ticket)  # its outputs go now, not when the batch is settled
                except (KafkaError, FaustError) as exc:  # the client refused a record: handled again, in order
                    batch.failed = exc
                finally:
                    _TICKET.reset(tokens[0])
                    _UNRECORDED.reset(tokens[1])
                    self._count_published()
                previous = settling[-1] if settling else None
                settling.append(asyncio.create_task(self._settled_in_order(stage, handle, batch, previous)))
                if not pipelined:
                    await settling.popleft()
            while settling:
                await settling.popleft()
        finally:
            for task in settling:  # the worker stops: what was not settled is read again after the restart
                task.cancel()

    async def _settled_in_order(self, stage: str, handle, batch: _Handled, previous: asyncio.Task | None) -> None:
        """Settle a handled batch behind the one before it; if it or one before it failed, handle it again.

        An error of the infrastructure (Kafka, metadata, Faust's own checks) says nothing about the events. The
        first batch it hits starts the stage over: its state is rebuilt from the mirror (which holds only what
        was settled), and it and every batch handled after it are handled again, in order, one at a time
        (``_guarded``); the agent takes no new batch until they are.
        """
        if previous is not None:
            await previous
        if batch.failed is None and batch.epoch == self._epochs[stage]:
            try:
                await self._settle_batch(batch.ticket, batch.unrecorded)
            except (KafkaError, FaustError) as exc:
                batch.failed = exc
        if isinstance(batch.failed, ProducerFailed):  # no attempt can deliver: no rebuild for one either
            await self._give_up(stage, batch.taken, batch.failed, 1)
        if batch.failed is not None or batch.epoch != self._epochs[stage]:
            if batch.epoch == self._epochs[stage]:  # the first batch to fail
                self._epochs[stage] += 1
                self._recovering.add(stage)
                logger.warning("%s: %s; handling the batch %s, and those after it, again in 1s", stage,
                               batch.failed, _origin(batch.taken))
                await asyncio.sleep(1.0)
                await self._rebuild_after_failure(stage)
            batch.rows = await self._guarded(stage, batch.taken, handle)
        batch.taken.ack()
        self.metrics.events.labels(stage).inc(batch.rows)
        self.metrics.settled_at.labels(stage).set(time.time())
        if batch.rows:
            self.metrics.latency.labels(stage).observe((time.perf_counter() - batch.started) / batch.rows)

    async def _guarded(self, stage: str, events: list, handle) -> int:
        """Handle one batch and settle it before anything else; returns the rows it held. Bad input is
        dead-lettered inside ``handle``.

        An error of the infrastructure is retried, 1 s apart, after rebuilding the stage from its mirror (folding
        a row again changes nothing, so what the failed attempt left unpublished must be sent from the state);
        if it persists the worker crashes, so that it is restarted and replays from its last commit instead of
        dropping events.
        """
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            ticket, unrecorded = self.sender.ticket(), []
            tokens = _TICKET.set(ticket), _UNRECORDED.set(unrecorded)
            try:
                rows = await handle(events)
                await self._settle_batch(ticket, unrecorded)
                return rows
            except (KafkaError, FaustError) as exc:
                if attempt == TRANSIENT_ATTEMPTS or isinstance(exc, ProducerFailed):  # no retry can deliver then
                    await self._give_up(stage, events, exc, attempt)
                logger.warning("%s: %s; retrying the batch in 1s (attempt %d)", stage, exc, attempt)
                await asyncio.sleep(1.0)
                await self._rebuild_after_failure(stage)
            finally:
                _TICKET.reset(tokens[0])
                _UNRECORDED.reset(tokens[1])
                self._count_published()
        return 0

    async def _give_up(self, stage: str, events: list, exc: Exception, attempts: int) -> None:
        """Stop the worker on a batch no attempt can settle: restarted, it replays from its last commit."""
        logger.error("%s: giving up on a batch of %d %s after %d attempts: %s", stage, len(events), _origin(events),
                     attempts, exc)
        await self.app.crash(exc)
        raise exc

    async def _settle_batch(self, ticket: Ticket, unrecorded: list) -> None:
        """Once a batch's outputs are on the broker, send its mirror rows (``unrecorded``) to the changelogs, and
        once those are there too, write them to the store (``_record``)."""
        await self.sender.wait(ticket)
        stores = [(out, self._record(out, ticket)) for stage, out in unrecorded]
        offsets = await self.sender.wait(ticket)
        for out, batches in stores:
            self._store(out, batches)
        self._persisted(offsets)

    async def _rebuild_after_failure(self, stage: str) -> None:
        """Before a failed batch is retried: the stage's state from its mirror again, as after a restart.

        The failed attempt folded its rows into the in-memory state, and perhaps not all its outputs reached the
        broker; the mirror holds only what was recorded after its outputs were (see _flush). Rebuilt from it, the
        retry derives the batch's changes again, and the first event of each partition re-publishes its views.
        The router keeps nothing in memory but the routes of batches not settled, which are handled again.
        """
        if stage == "route":
            self._unsettled_routes.clear()
        rebuild = {"project": self._rebuild_projects, "resource": self._rebuild_resources,
                   "rollup": self._rebuild_rollup}.get(stage)
        if rebuild is not None:
            await rebuild()

    def _persisted(self, offsets: dict[tuple[Any, int], int]) -> None:
        """Remember in each table's store the last changelog offset it holds, as Faust does after a send: a
        restart on its own RocksDB data reads the changelog from there on only."""
        for (table, partition), offset in offsets.items():
            table.data.set_persisted_offset(TP(table.changelog_topic.get_topic_name(), partition), offset)

    @staticmethod
    def _fold(out: Outbox, cause: Cause, fold, *args) -> None:
        """Fold one row: an error of its content goes to the dead-letter topic with the batch (``_flush``) and
        the batch goes on."""
        try:
            fold(*args)
        except (KafkaError, FaustError):
            raise
        except Exception as exc:  # bad input never vanishes: it goes to the dead-letter topic
            out.refused.append((cause, exc))

    async def _flush(self, stage: str, out: Outbox, paused: bool = False) -> None:
        """Publish what changed, each with the header of its cause; once that is on the broker, write the
        coalesced table rows. Rows of HELD_VIEWS are held back while the stage's input keeps coming, and published
        once it pauses (``paused``: an empty batch, handed on after HOLD_IDLE_SECONDS without input), HOLD_SECONDS
        after the first was held, or when HOLD_ROWS are.

        Outputs first, state after: a stage re-derives an output only from a change it has not recorded yet. Had
        the mirror recorded a change whose outputs a crash then cut off (a view row's deletion, say), the replay
        would find nothing changed, and a re-publication from the state cannot bring back a deletion.
        """
        for cause, exc in out.refused:
            self._dead_letter(stage, cause, exc)
        now = _now()
        held = self._held[stage] if stage in self._holding else None
        for slot, (key, row, cause, resend) in out.views.items():
            if held is not None and slot[0] in HELD_VIEWS:
                if row is not None:
                    earlier = held.get(slot)
                    held[slot] = [key, row, cause, resend or (earlier is not None and earlier[3])]
                    continue
                held.pop(slot, None)  # a deletion: at once, and what was held of the row is not published after it
            self._publish_view(stage, slot, key, row, cause, resend, now)
        if held is not None and (held or stage in self._held_since):
            since = self._held_since.setdefault(stage, time.monotonic())
            # an empty batch: the stage's input paused, or HOLD_SECONDS passed without input (take_batches)
            if held and (paused or len(held) >= HOLD_ROWS or time.monotonic() - since >= HOLD_SECONDS):
                self._held[stage] = {}
                for slot, (key, row, cause, resend) in held.items():
                    self._publish_view(stage, slot, key, row, cause, resend, now)
                held = None
            if not held:  # published, or deletions dropped the last rows held
                del self._held_since[stage]
            self.metrics.held.labels(stage).set(len(held) if held else 0)
        for topic, key, value, cause in out.events:
            self._emit(stage, cause, topic, key, value)
        if out.rollup:
            self._send_rows(self.to_rollup, b"rollup", 0,
                            [[key, value, cause.commit_ms] for key, (value, cause) in out.rollup.items()])
        if not out.writes:
            return
        unrecorded = _UNRECORDED.get(None)
        if unrecorded is not None:  # the agent writes them when it settles the batch (_settle_batch)
            unrecorded.append((stage, out))
            return
        ticket = _TICKET.get()
        await self.sender.wait(ticket)
        stores = self._record(out, ticket)
        offsets = await self.sender.wait(ticket)
        self._store(out, stores)
        self._persisted(offsets)

    def _publish_view(self, stage: str, slot: tuple[str, bytes], key: tuple, row: Any, cause: Cause, resend: bool,
                      now: datetime) -> None:
        """A view row as the state gives it now, published if it changed (or ``resend``), with its cause's header."""
        view, table_key = slot
        published = self.published[view]
        try:
            row = view_row(row)
        except Exception as exc:  # a row the state cannot give: the change that asked for it is dead-lettered
            self._dead_letter(stage, cause, exc)
            return
        current = published.get(table_key)
        if row == current and not resend:
            return
        if row is None:
            if current is None:
                return
            del published[table_key]
        else:
            published[table_key] = row
        self._emit(stage, cause, f"views.{view}", dict(zip(VIEW_KEYS[view], key)),
                   None if row is None else {**row, "updated_at": now})

    def _record(self, out: Outbox, ticket: Ticket) -> list[_StoreBatch]:
        """A batch's table rows, once its outputs are on the broker: their changelog records, as Faust's table
        assignment writes them, but through the batch's producer (processors/sender.py) rather than one aiokafka
        send each; and the store's write batches, one per partition, which :meth:`_store` writes once the
        changelog holds them.

        The store never gets ahead of the changelog. A replay (after a crash, or a retry after a delivery that
        failed) compares with the store: a deletion is recorded only for a row the store holds, a route only when
        it changed. Had the store taken a batch whose changelog records were then lost, the replay would find
        nothing to record, and a worker restoring the partition from its changelog would bring back the deleted
        row or the old route."""
        batches: dict[tuple[str, int], Any] = {}
        changelogs = {name: table.changelog_topic.get_topic_name() for name, table in self.tables.items()}
        produce = self.sender.produce
        for (name, key), (event, row) in out.writes.items():
            partition = event.message.partition
            batch = batches.get((name, partition))
            if batch is None:
                batch = batches[(name, partition)] = _StoreBatch(self.tables[name].data, partition)
            if row is None:
                if not batch.holds(key):
                    continue
                value = None
            else:
                value = dumps(row)
            batch.put(key, value)
            produce(ticket, changelogs[name], key, value, partition=partition, table=self.tables[name])
        return list(batches.values())

    def _store(self, out: Outbox, batches: list[_StoreBatch]) -> None:
        """Write a batch's rows to the store, once the broker has acknowledged their changelog records."""
        for batch in batches:
            batch.write()
        unsettled = self._unsettled_routes
        if unsettled:
            for name, key in out.writes:
                if name == "routes" and unsettled.get(key, (None,))[0] is out:
                    del unsettled[key]  # in the store now, unless a later batch has routed the row again since

    def _emit(self, stage: str, cause: Cause, topic: str, key: dict[str, Any], value: Any) -> None:
        try:
            self._publish(topic, key, value, cause.headers)
        except RecordTooLarge as exc:  # no retry can send it: the row that caused it is dead-lettered
            self._dead_letter(stage, cause, exc)
        except (KafkaError, FaustError):
            raise
        except Exception as exc:  # a record its schema refuses: the row that caused it is dead-lettered
            self._dead_letter(stage, cause, exc)

    def _stage_batches(self, stream: Any, stage: str) -> Any:
        """A stage's batches: the messages sent to it, taken from the agent's stream; a batch not full yet is
        handed on as soon as every agent upstream waits with nothing to do (no more input is on its way)."""
        waiting = faust_fixes.Waiting(self._waiting, stage, UPSTREAM[stage])
        if faust.__version__.startswith(faust_fixes.SUPPORTED):  # an empty batch publishes what is held (_flush)
            self._holding.add(stage)
        return faust_fixes.take_batches(stream, STAGE_BATCH, BATCH_SECONDS, waiting,
                                        idle=lambda: HOLD_IDLE_SECONDS if self._held.get(stage) else None,
                                        due=lambda: time.monotonic() - self._held_since.get(stage, math.inf)
                                        >= HOLD_SECONDS)

    # ---- hop 1: route
    async def _route_agent(self, stream) -> None:
        if faust_fixes.fed(self.app, SOURCE_TOPICS[0]):
            batches = self.feed.batches(stream, ROUTE_BATCH, BATCH_SECONDS, faust_fixes.Waiting(self._waiting, "route"))
        else:  # a faust-streaming version the feed was not checked with
            batches = faust_fixes.take_batches(stream, ROUTE_BATCH, BATCH_SECONDS)
        await self._batches(batches, "route", self._route_batch)

    async def _route_batch(self, events: list) -> int:
        out = Outbox()
        taken = len(events)
        events, marks = self._unrepeated(events)
        changes: list[tuple[Cause, str, Any, dict[str, Any] | None, str | None]] = []
        left_out = sum(self._decode_versions(out, versions, changes) for versions in _row_versions(events))
        # Versions of a row under other keys (a key schema that changed) are left out after decoding (_coalesced).
        routed = _coalesced(changes)
        self.metrics.coalesced.inc(left_out + len(changes) - len(routed))
        for cause, kind, pk, row, commit_ms in routed:
            self._fold(out, cause, self._route, cause.event, kind, pk, row, commit_ms, out)
        # The marks after the routes: the changelog keeps the order a batch's records were sent in (an idempotent
        # producer), so a crash that cut it short left a mark only with every route of the rows it passed.
        for key, mark, event in marks:
            out.write("routes", key, event, mark)
        refused: set[int] = set()

        def too_large(item: list[Any], exc: Exception) -> None:
            # a row no message can carry (a JSON over 1 MB): bad input, dead-lettered once with its change event
            for cause, kind, pk, _, _ in routed:
                if (kind, pk) == (item[1], item[2]):
                    if id(cause) not in refused:
                        refused.add(id(cause))
                        self._dead_letter("route", cause, exc)
                    return
            raise exc

        for (stage, partition), rows in out.forwards.items():
            self._send_rows(self.by_project if stage == "p" else self.by_resource, stage.encode(), partition, rows,
                            too_large)
        # The routes table moves on only once the rows are on the broker (_flush, _settle_batch): if a forward (a
        # removal from a row's old owner) failed, the retry must still find the old destination in the table.
        # Until then the next batches find the new one among the unsettled routes.
        for (name, key), (_, row) in out.writes.items():
            if name == "routes":
                self._unsettled_routes[key] = (out, row)
        await self._flush("route", out)
        return taken

    def _unrepeated(self, events: list) -> tuple[list, list[tuple[bytes, list, Any]]]:
        """The events of a router batch less those the capture had published already and sent again after its
        restart (an older version of a row after a newer one): by their ``psmesh-position`` header, against the
        mark of their partition (streams/position.py). Folded, a repeat would take the row back for a moment, and
        the demand or request derived from it would count a change that never happened, under a new id. Also
        the partitions' new marks: (key, mark, the last event taken).

        The marks live in the ``routes`` table (``~position|<topic>|<partition>``), written and settled with the
        batch's routes: a mark is in the store only once the rows it passed are on the broker, so a batch handled
        again after a failure or a restart is not taken for a repeat of itself."""
        marks: dict[tuple[str, int], list] = {}
        kept = []
        for event in events:
            at = position.of(event.message.headers)
            if at is None:
                kept.append(event)
                continue
            message = event.message
            tp = (message.topic, message.partition)
            entry = marks.get(tp)
            if entry is None:
                key = f"~position|{message.topic}|{message.partition}".encode()
                pending = self._unsettled_routes.get(key)
                if pending is not None:
                    mark = pending[1]
                else:
                    stored = _read(self.routes, event, key)
                    mark = loads(stored) if stored is not None else None
                entry = marks[tp] = [key, mark, None]
            mark = position.advance(entry[1], at)
            if mark is None:
                self.metrics.repeated.labels(message.topic).inc()
                continue
            entry[1], entry[2] = mark, event
            kept.append(event)
        return kept, [(key, mark, event) for key, mark, event in marks.values() if event is not None]

    def _decode_versions(self, out: Outbox, versions: list[Any], changes: list) -> int:
        """The last version of a row in the batch (``versions``, latest first), decoded and checked onto
        ``changes``; what cannot be read is dead-lettered, and then the version before it stands. The earlier ones
        could change nothing, and only their frame is checked: one this worker has not read before is decoded too.
        Returns the versions left out."""
        for i, event in enumerate(versions):
            if self._decoded(out, event, changes):
                for earlier in versions[i + 1:]:
                    if not self.decoder.known(earlier.value):
                        self._decoded(out, earlier, [])
                return len(versions) - i - 1
        return 0

    def _decoded(self, out: Outbox, event: Any, changes: list) -> bool:
        """Decode ``event`` onto ``changes``; False if it was refused (dead-lettered with the batch)."""
        cause = Cause(event, event.key, event.value)
        refused = len(out.refused)
        self._fold(out, cause, self._decode_change, event, cause, changes)
        return len(out.refused) == refused

    def _decode_change(self, event: Any, cause: Cause, changes: list) -> None:
        """A change event's row (the columns the stages use; None for a delete), checked, onto ``changes``."""
        kind = KIND_OF_TOPIC[event.message.topic]
        envelope = self.decoder.decode(event.value, kind)
        if envelope is None:
            return  # the tombstone after a delete: the delete itself is routed
        op = envelope.get("op")
        if op == "t":
            raise BadChangeEvent("truncate cannot be folded into views: the views keep the table's rows; delete "
                                 "rows with DELETE instead (docs/operating.md, \"Known limitations\")")
        image = envelope.get("after") if op != "d" else envelope.get("before")
        if image is None:
            raise BadChangeEvent(f"op {op!r} without a row image")
        pk_column = KINDS[kind][1]
        pk = image.get(pk_column)
        if pk is None:
            raise BadChangeEvent(f"{event.message.topic}: primary key {pk_column} missing")
        row = pick(kind, envelope["after"]) if op != "d" else None
        if row is not None:
            check_row(kind, row)
        changes.append((cause, kind, pk, row, commit_ms_of(envelope)))

    def _route(self, event: Any, kind: str, pk: Any, row: dict[str, Any] | None, commit_ms: str | None,
               out: Outbox) -> None:
        if kind in BROADCAST_KINDS:
            for partition in range(PARTITIONS):
                out.forwards.setdefault(("p", partition), []).append(["~", kind, pk, row, commit_ms])
            return
        route_key = f"{kind}|{pk}".encode()
        pending = out.writes.get(("routes", route_key)) or self._unsettled_routes.get(route_key)
        if pending is not None:
            old = pending[1] or []
        else:
            previous = _read(self.routes, event, route_key)
            old = loads(previous) if previous is not None else []
        new = _destinations(kind, row)
        for stage, key in old:
            if [stage, key] not in new:
                self._forward(out, stage, key, [key, kind, pk, None, commit_ms])
        body = row if new else None  # the same dict in both stages' messages: encoded with each message
        for stage, key in new:
            self._forward(out, stage, key, [key, kind, pk, body, commit_ms])
        if new != old:
            out.write("routes", route_key, event, new or None)

    @staticmethod
    def _forward(out: Outbox, stage: str, key: str, item: list[Any]) -> None:
        out.forwards.setdefault((stage, stage_partition(key.encode(), PARTITIONS)), []).append(item)

    # ---- hop 2: project stage
    def _project_stage(self, partition: int) -> ProjectStage:
        return self.project_stages.setdefault(partition, ProjectStage())

    async def _rebuild_projects(self) -> None:
        self.project_stages = {}
        count = 0
        held = self._assigned("project")
        for key, value in self.project_rows.items():
            partition, code, kind, ident = key.decode().split("|", 3)
            if held is not None and int(partition) not in held:
                continue
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
        self._republish_later("project", range(PARTITIONS), self.project_stages.values())
        logger.info("project stage rebuilt from %d mirrored rows", count)

    def _republish_later(self, stage: str, partitions, stages) -> None:
        """After a rebuild: the views as the state gives them (for queries), re-published on the partition's next
        event, which a tick to each of the stage's partitions this worker holds makes come at once."""
        self._held.pop(stage, None)  # every row is published again, from the rebuilt state
        self._held_since.pop(stage, None)
        self.metrics.held.labels(stage).set(0)
        for view in [v for v, s in VIEW_STAGE.items() if s == stage]:
            self.published[view] = {}
        for st in stages:
            for view, key, row in st.view_rows():
                self.published[view]["|".join(str(k) for k in key).encode()] = row
        self._fresh |= {(stage, p) for p in partitions}
        self._tick(stage)

    def _tick(self, stage: str) -> None:
        """An empty message (no rows) to each partition of ``stage``'s input that this worker was assigned: its
        first event after the rebuild, so the partition's views and derived events are published again now, as
        the state and this code give them, rather than when a change next reaches it (after an upgrade that
        changes a formula, a quiet partition would keep the old code's rows). It runs through the stage's batch
        like any message: acknowledged once what it re-publishes is on the broker. A tick lost in a crash is sent
        again by the next rebuild; one a rebalance hands to another worker is an empty message there."""
        partitions = self._assigned(stage)
        if partitions is None:
            return
        name = self._stage_topic(stage).get_topic_name()
        for partition in partitions:
            self.sender.send_now(name, TICK_KEY, TICK, partition)
        if partitions:
            logger.info("%s stage: a tick to partitions %s re-publishes their views", stage, partitions)

    def _stage_topic(self, stage: str) -> Any:
        return {"project": self.by_project, "resource": self.by_resource, "rollup": self.to_rollup}[stage]

    def _assigned(self, stage: str) -> list[int] | None:
        """The partitions of ``stage``'s input this worker was assigned; None outside a running worker
        (bench/stages.py, unit tests), where it holds every one.

        A rebuild folds only these partitions' mirror rows. Faust's RocksDB store reads only the partitions
        assigned to the worker, but its memory store (``--memory-store``) keeps the rows of those a rebalance
        took away, and a worker rebuilt from them would answer for another's rows and keep them in memory."""
        consumer = getattr(self.app, "_consumer", None)
        if consumer is None:
            return None
        name = self._stage_topic(stage).get_topic_name()
        return sorted(tp.partition for tp in consumer.assignment() if tp.topic == name)

    def _refresh_due(self, stage: str, partition: int, event: Any) -> bool:
        """Whether ``event`` re-publishes its partition's views and current derived events before its rows: the
        partition's first event after a rebuild, or a request of ``psmesh processors republish``."""
        if (stage, partition) in self._fresh:
            self._fresh.discard((stage, partition))
            return True
        if event.key == REPUBLISH_KEY:
            logger.info("%s stage: partition %d re-publishes its views, as asked", stage, partition)
            return True
        return False

    async def _project_agent(self, stream) -> None:
        await self._batches(self._stage_batches(stream, "project"), "project", self._project_batch)

    def _refresh_one(self, stage: str, partition: int, event: Any, refresh) -> Effects | None:
        """What a request of ``psmesh processors republish --project/--resource`` (its key REPUBLISH_ONE and the
        stage key) re-publishes: ``refresh`` of that key, which gives None when the partition does not hold it."""
        if event.key is None or not event.key.startswith(REPUBLISH_ONE):
            return None
        key = event.key[len(REPUBLISH_ONE):].decode(errors="replace")
        try:
            fx = refresh(key)
        except ValueError:  # not a resource id: no worker or command of this version sends one
            fx = None
        if fx is None:
            logger.warning("%s stage: partition %d holds no %s %r; nothing to re-publish", stage, partition, stage,
                           key)
        else:
            logger.info("%s stage: %s %s re-publishes its views, as asked", stage, stage, key)
        return fx

    async def _project_batch(self, events: list) -> int:
        out, rows = Outbox(), 0
        for event in events:
            partition = event.message.partition
            stage = self._project_stage(partition)
            if self._refresh_due("project", partition, event):
                out.add(stage.refresh_all(), Cause(event, None, None), "project_rows", partition, resend=True)
            elif (one := self._refresh_one("project", partition, event, stage.refresh)) is not None:
                out.add(one, Cause(event, None, None), "project_rows", partition, resend=True)
            touched: dict[str, Cause] = {}  # project → the cause of its last row in the message
            for cause, item in self._items("project", event):
                rows += 1
                self._fold(out, cause, self._project, stage, partition, item, cause, out, touched)
            # Each project's derivations once per message, on its state after the message's rows (ProjectStage.
            # on_row). Per message, not per batch: a replay reads the same messages, whatever batches it takes
            # them in, so it derives the same events under the same ids.
            for code, cause in touched.items():
                self._fold(out, cause, self._settle, stage, partition, code, cause, out)
        await self._flush("project", out, paused=not events)
        return rows

    def _project(self, stage: ProjectStage, partition: int, item: list, cause: Cause, out: Outbox,
                 touched: dict[str, Cause]) -> None:
        code, kind, ident, row = item[:4]
        # The mirror takes a row once it is folded: one the stage refuses (dead-lettered by _fold) must not come back
        # with the next rebuild.
        if kind in BROADCAST_KINDS:
            parsed = parse(kind, row) if row is not None else None
            fx = stage.on_account(ident, row) if kind == "account" else stage.on_period(ident, parsed)
            out.write("project_rows", f"{partition}|~|{kind}|{ident}".encode(), cause.event, row)
        else:
            parsed = _parse_project(kind, row) if row is not None else None
            fx = stage.on_row(code, kind, ident, parsed, settle=False, commit_ms=item[4] if len(item) > 4 else None)
            out.write("project_rows", f"{partition}|{code}|{kind}|{ident}".encode(), cause.event, row)
            touched[code] = cause
        out.add(fx, cause, "project_rows", partition)

    def _settle(self, stage: ProjectStage, partition: int, code: str, cause: Cause, out: Outbox) -> None:
        # The project's metadata with every batch that touches it, changed or not: a crash can leave the local
        # store ahead of the changelog (written, not yet delivered); the replay re-folds the rows and writes them
        # again, and with them the metadata, which it finds unchanged. Once per project and message rather than
        # per row; what settling changes replaces it (Outbox.add).
        out.write("project_rows", f"{partition}|{code}|meta|".encode(), cause.event, stage.state(code).meta)
        out.add(stage.settle(code), cause, "project_rows", partition)

    def _items(self, stage: str, event: Any) -> list[tuple[Cause, list]]:
        """The rows of a batch message, each with its cause; an unreadable message is dead-lettered whole."""
        try:
            items = loads(event.value)
            return [(Cause(event, None, None, item[-1], item), item) for item in items]
        except Exception as exc:
            self._dead_letter(stage, Cause(event, event.key, event.value), exc)
            return []

    # ---- hop 2: resource stage
    def _resource_stage(self, partition: int) -> ResourceStage:
        return self.resource_stages.setdefault(partition, ResourceStage())

    async def _rebuild_resources(self) -> None:
        self.resource_stages = {}
        count = 0
        held = self._assigned("resource")
        for key, value in self.resource_rows.items():
            partition, rid, kind, ident = key.decode().split("|", 3)
            if held is not None and int(partition) not in held:
                continue
            self._resource_stage(int(partition)).load(int(rid), kind, int(ident), parse(kind, loads(value)))
            count += 1
        self._republish_later("resource", range(PARTITIONS), self.resource_stages.values())
        logger.info("resource stage rebuilt from %d mirrored rows", count)

    async def _resource_agent(self, stream) -> None:
        await self._batches(self._stage_batches(stream, "resource"), "resource", self._resource_batch)

    async def _resource_batch(self, events: list) -> int:
        out, rows = Outbox(), 0
        for event in events:
            partition = event.message.partition
            stage = self._resource_stage(partition)
            if self._refresh_due("resource", partition, event):
                out.add(stage.refresh_all(), Cause(event, None, None), resend=True)
            elif (one := self._refresh_one("resource", partition, event,
                                           lambda key: stage.refresh(int(key)))) is not None:
                out.add(one, Cause(event, None, None), resend=True)
            for cause, item in self._items("resource", event):
                rows += 1
                self._fold(out, cause, self._resource, stage, partition, item, cause, out)
        await self._flush("resource", out, paused=not events)
        return rows

    def _resource(self, stage: ResourceStage, partition: int, item: list, cause: Cause, out: Outbox) -> None:
        key, kind, ident, row = item[:4]
        rid = int(key)
        parsed = parse(kind, row) if row is not None else None
        fx = stage.on_row(rid, kind, ident, parsed)
        out.write("resource_rows", f"{partition}|{rid}|{kind}|{ident}".encode(), cause.event, row)  # once folded
        out.add(fx, cause)

    # ---- hop 3: rollup
    async def _rebuild_rollup(self) -> None:
        self.rollup_stage = RollupStage()
        held = self._assigned("rollup")
        for key, value in self.rollup_rows.items() if held is None or 0 in held else ():
            self.rollup_stage.load(key.decode(), loads(value))
        self._republish_later("rollup", (0,), (self.rollup_stage,))
        logger.info("rollup stage rebuilt from %d contributions", len(self.rollup_stage.contributions))

    async def _rollup_agent(self, stream) -> None:
        await self._batches(self._stage_batches(stream, "rollup"), "rollup", self._rollup_batch)

    async def _rollup_batch(self, events: list) -> int:
        out, rows = Outbox(), 0
        for event in events:
            if self._refresh_due("rollup", 0, event):
                out.add(self.rollup_stage.refresh_all(), Cause(event, None, None), resend=True)
            for cause, item in self._items("rollup", event):
                rows += 1
                self._fold(out, cause, self._rollup, item, cause, out)
        await self._flush("rollup", out, paused=not events)
        return rows

    def _rollup(self, item: list, cause: Cause, out: Outbox) -> None:
        key, value = item[0], item[1]
        legacy = legacy_line_key(key)
        if legacy is not None and legacy in self.rollup_stage.contributions:
            # The line as a version before 3ab4465 contributed it: its project's contribution replaces it (kept
            # beside it, the line's demand would count twice in skill_week for good).
            out.write("rollup_rows", legacy.encode(), cause.event, None)
            out.add(self.rollup_stage.on_contribution(legacy, None), cause)
        out.write("rollup_rows", key.encode(), cause.event, value)
        out.add(self.rollup_stage.on_contribution(key, value), cause)

    # ---- stalled partitions
    async def _watch_stalls(self) -> None:
        """Re-fetch a partition that stopped being read although records wait in it.

        faust-streaming 0.15 with aiokafka 0.12 can leave a partition assigned
        but never fetched again after a rebalance (faust-streaming/faust#629;
        seen here when records arrived during recovery after a kill -9). A
        partition whose committed offset stays below its end offset, and of
        which no agent took an event, for ``STALL_SECONDS`` is sought back to
        its committed offset: at worst a few records are read twice, which
        every stage tolerates. (A partition merely slow, behind a backlog of
        long batches, is read all along: seeking it back would only replay it.)
        """
        app = self.app
        if app.consumer is not None:
            await self._kick_recovery(app.tables.recovery, app.consumer, time.monotonic())
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
            elif now - seen[1] >= STALL_SECONDS and now - self._read.get(tp, 0.0) >= STALL_SECONDS:
                # not merely slow (a long batch, a backlog): nothing of it was read for as long
                logger.warning("partition %s[%d] stalled at offset %d below its end %d for %.0fs: fetching it again",
                               tp.topic, tp.partition, position, high, now - seen[1])
                # Recovery pauses every partition; one left paused is never fetched: resume, then seek.
                app.consumer.resume_partitions({tp})
                await app.consumer.seek(tp, position)
                self._progress[tp] = (position, now)

    @staticmethod
    async def _kick_recovery(recovery: Any, consumer: Any, now: float) -> list:
        """Fetch again the changelog partitions that table recovery waits on and has received nothing of since it
        started, RECOVERY_STALL_SECONDS ago or more; returns them.

        The stall of :meth:`_watch_stalls`, in recovery (faust-streaming/faust#21): after a rebalance a worker's
        recovery can wait for ever on changelog partitions it never fetches (seen in a CI run of the two-worker
        test: "No event received for active tp ... since recovery start", the worker never ready). Such a partition
        is resumed and sought to where recovery started it (Recovery._seek_offsets): nothing of it was read, so
        nothing is read twice."""
        started = recovery._recovery_started_at
        if not recovery.in_recovery or started is None or now - started < RECOVERY_STALL_SECONDS:
            return []
        received = recovery._active_events_received_at
        stalled = sorted(tp for tp, remaining in recovery.active_remaining().items()
                         if remaining > 0 and tp not in received)
        for tp in stalled:
            offset = max(recovery.active_offsets.get(tp, -1), 0)
            logger.warning("table recovery has read nothing of %s[%d] in %.0fs although it waits on it: fetching it "
                           "again from offset %d", tp.topic, tp.partition, now - started, offset)
            consumer.resume_partitions({tp})
            await consumer.seek(tp, offset)
        return stalled

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
    async def _views_index(self, web, request) -> Any:
        """The views, each with its key columns and the addresses of its rows on this worker."""
        base = str(self.app.conf.canonical_url).rstrip("/")
        return web.json({"views": {view: {"key": list(columns), "rows": f"{base}/views/{view}/",
                                          "row": f"{base}/views/{view}/<{'|'.join(columns)}>"}
                                   for view, columns in VIEW_KEYS.items()}})

    async def _get_view(self, web, request, view: str, key: str) -> Any:
        """One view row by key, answered by the worker that owns it (others forward the request).

        Keys are the view key columns joined by '|': ``PRJ-7``, ``PRJ-7|burn``, ``12|2026-03-02``,
        ``cloud_migration|2026-04-01``.
        """
        if view not in VIEW_KEYS:
            return web.json({"error": f"unknown view {view!r}; views: {sorted(VIEW_KEYS)}"}, status=404)
        if self.app.rebalancing:
            return _recovering(web)
        routing = key.split("|", 1)[0] if VIEW_STAGE[view] != "rollup" else key
        try:
            return await self.app.router.route_topic_req(self._stage_topic(VIEW_STAGE[view]), routing.encode(),
                                                         web.web, request)
        except faust.web.exceptions.ServiceUnavailable:
            return web.json({"error": "the owner of this key is not known yet (rebalancing)"}, status=503)
        except Exception as exc:
            if type(exc).__name__ != "SameNode":
                raise
        value = self._view_value(view, key)
        if value is None:
            return web.json({"error": f"no {view} row with key {key!r}"}, status=404)
        return web.json(loads(dumps(value)))

    def _view_value(self, view: str, key: str) -> dict[str, Any] | None:
        """A view row of this worker's partitions as the state gives it now: held back (HELD_VIEWS) or published."""
        held = self._held.get(VIEW_STAGE[view], {}).get((view, key.encode()))
        return self.published[view].get(key.encode()) if held is None else view_row(held[1])

    async def _list_view(self, web, request, view: str) -> Any:
        """The rows of a view held by this worker (its partitions)."""
        if view not in VIEW_KEYS:
            return web.json({"error": f"unknown view {view!r}; views: {sorted(VIEW_KEYS)}"}, status=404)
        if self.app.rebalancing:
            return _recovering(web)
        rows = dict(self.published[view])
        for (held_view, table_key), (_, row, _, _) in self._held.get(VIEW_STAGE[view], {}).items():
            if held_view == view:
                rows[table_key] = view_row(row)  # never None: HELD_VIEWS
        rows = loads(dumps(list(rows.values())))
        return web.json({"view": view, "worker": str(self.app.conf.canonical_url), "rows": rows})

    async def _metrics_page(self, web, request) -> Any:
        """The worker's metrics; ``?name[]=<sample name>`` (repeated as needed) gives only those samples, as
        prometheus_client's own exporter does: a frequent poller of one counter does not make the whole page."""
        names = request.query.getall("name[]", [])
        registry = self.metrics.registry.restricted_registry(names) if names else self.metrics.registry
        return aioweb.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def broker_credentials(settings: Settings) -> Any:
    """Faust's credentials for its aiokafka clients, from the settings the worker's librdkafka clients take
    (``Settings.kafka_client_config``): the same protocol, SASL mechanism and user, and CA file."""
    protocol = settings.kafka_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    if protocol not in SECURITY_PROTOCOLS:  # load_settings refuses it already; a Settings built directly may hold it
        raise ProcessorError(f"PSMESH_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol!r}: expected one of "
                             f"{', '.join(SECURITY_PROTOCOLS)}")
    context = None
    if protocol in ("SSL", "SASL_SSL"):  # the system's CAs unless a CA file is given, as librdkafka
        context = ssl.create_default_context(cafile=settings.kafka_ssl_ca_location)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
    return faust.SASLCredentials(username=settings.kafka_sasl_username, password=password, ssl_context=context,
                                 mechanism=settings.kafka_sasl_mechanism or "PLAIN")


class Asked(NamedTuple):
    """A re-publish request sent: to ``partitions`` of ``topic``, for all they hold (``key`` None) or for one
    project_code or resource_id."""

    topic: str
    partitions: list[int]
    key: str | None = None


def request_republish(settings: Settings, stages: Iterable[str] = tuple(STAGE_INPUTS), app_id: str = APP_ID,
                      timeout: float = 10.0, *, projects: Iterable[str] = (),
                      resources: Iterable[int] = ()) -> list[Asked]:
    """Ask the running workers to publish views and current derived events again.

    For each of ``stages``, an empty message keyed REPUBLISH_KEY goes to every partition of the stage's input
    topic. For each of ``projects`` (project codes) and ``resources`` (resource ids), one keyed REPUBLISH_ONE and
    the key goes to the partition of the project or resource stage that holds it, as the router partitions its
    rows: that worker re-publishes that project's or resource's rows only. The worker holding a partition
    re-publishes when it reaches the message, after whatever is queued before it; a partition no worker holds now
    is re-published by the worker that starts with it (which re-publishes after its rebuild anyway).

    :class:`ProcessorError` when the broker cannot be reached, a stage's topic does not exist (no worker of
    ``app_id`` ever started on this cluster), or a message was not delivered.
    """
    from confluent_kafka import KafkaException, Producer

    projects, resources = list(projects), list(resources)
    needed = list(dict.fromkeys([*stages, *(["project"] if projects else []), *(["resource"] if resources else [])]))
    producer = Producer({**settings.kafka_client_config(), "log_level": 0})  # the error below says it once
    try:
        topics = producer.list_topics(timeout=timeout).topics  # all topics: naming one could auto-create it
    except KafkaException as exc:
        raise ProcessorError(f"cannot reach the Kafka broker at {settings.bootstrap_servers}: {exc}") from exc
    names: dict[str, str] = {}
    for stage in needed:
        name = f"{app_id}-{STAGE_INPUTS[stage][0]}"
        if name not in topics or topics[name].error is not None:
            raise ProcessorError(f"the {stage} stage's input topic {name} does not exist on "
                                 f"{settings.bootstrap_servers}: no processor worker of app id {app_id} has "
                                 "started there (psmesh processors run, or --app-id)")
        names[stage] = name
    asked = [Asked(names[stage], sorted(topics[names[stage]].partitions)) for stage in stages]
    for stage, keys in (("project", projects), ("resource", [str(r) for r in resources])):
        asked += [Asked(names[stage], [stage_partition(key.encode(), STAGE_INPUTS[stage][1])], key) for key in keys]
    failed: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failed.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    for ask in asked:
        key = REPUBLISH_KEY if ask.key is None else REPUBLISH_ONE + ask.key.encode()
        for partition in ask.partitions:
            producer.produce(ask.topic, TICK, key, partition, delivered)
    left = producer.flush(timeout)
    if left or failed:
        raise ProcessorError(f"the re-publish request did not reach every partition: {left} not delivered after "
                             f"{timeout:.0f}s; " + "; ".join(failed))
    return asked


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

    wanted = {f"{app_id}-{suffix}": partitions for suffix, partitions in STAGE_INPUTS.values()}
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


def _recovering(web: Any) -> Any:
    """A query during a rebalance: the partitions may be new to this worker, and its views are rebuilt from their
    mirrors only once their tables are recovered; an answer now could say a row that exists does not."""
    return web.json({"error": "the worker is rebalancing and recovering its tables; ask again shortly"}, status=503)


def _rocksdb(store: Any) -> bool:
    """Whether a table's store is Faust's RocksDB store on rocksdict, whose partition databases are written
    and read here directly (the memory store of tests goes through the table instead)."""
    return getattr(store, "use_rocksdict", False) and hasattr(store, "_db_for_partition")


def _origin(events: list) -> str:
    """Where a batch starts, for a log line: ``from <topic>[<partition>]@<offset>``; an empty batch (its stage's
    input paused) publishes the view rows held back."""
    if not events:
        return "of no events (publishing the view rows held back)"
    first = events[0].message
    return f"from {first.topic}[{first.partition}]@{first.offset}"


def _read(table: Any, event: Any, key: bytes) -> bytes | None:
    """A table's value of ``key`` in the partition of ``event``: from its RocksDB partition directly (as Faust's
    store reads it, without the table mapping's per-read machinery), or through the table (the memory store)."""
    store = table.data
    if _rocksdb(store):
        return store._db_for_partition(event.message.partition).get(key)
    _within(event)
    return table.get(key)


class _StoreBatch:
    """A batch's writes to one partition of a table's store: one RocksDB write batch (or, for the memory store
    of tests, the store's own assignment)."""

    def __init__(self, store: Any, partition: int) -> None:
        self.store, self.partition = store, partition
        self._db = self._batch = None
        if WriteBatch is not None and _rocksdb(store):
            self._db = store._db_for_partition(partition)
            self._batch = WriteBatch(raw_mode=True)  # as Faust writes its changelog batches at recovery
        self._writes: list[tuple[bytes, bytes | None]] = []

    def holds(self, key: bytes) -> bool:
        """Whether the partition has ``key`` now (its deletion needs a changelog tombstone)."""
        if self._db is not None:
            return self._db.get(key) is not None
        return key in self.store

    def put(self, key: bytes, value: bytes | None) -> None:
        # Faust's key → partition index (its LRU ``_key_index``) is not kept: this worker reads a partition's
        # database directly, and a key missing from the index makes Faust look in every partition.
        if self._batch is None:
            self._writes.append((key, value))
        elif value is None:
            self._batch.delete(key)
        else:
            self._batch.put(key, value)

    def write(self) -> None:
        if self._batch is not None:
            self._db.write(self._batch)
            return
        for key, value in self._writes:
            if value is None:
                del self.store[key]
            else:
                self.store[key] = value


def _within(event: Any) -> None:
    """Make ``event`` Faust's current event: a table takes the partition of a write (its changelog partition and
    its RocksDB store) from it, and the rows of one batch come from several partitions."""
    _current_event.set(weakref.ref(event))


def _ident(kind: str, ident: str) -> Any:
    if kind in ("meta",):
        return None
    return ident if kind == "billing_event" else int(ident)


def _parse_project(kind: str, row: dict[str, Any]) -> Any:
    parsed = parse(kind, row)
    return (parsed, row) if kind == "opportunity" else parsed


__all__ = ["Processors", "ProcessorError", "APP_ID"]
