"""The capture loop of one source database: snapshot, then stream, never lose.

Guarantees (DESIGN.md "Semantics that must hold"):

* **No loss.** The position reported to PostgreSQL as flushed is what
  :class:`~streams.offsets.FlushTracker` allows: the end LSN of the last
  transaction whose events Kafka acknowledged, with every earlier one. A crash
  anywhere replays from there: duplicates are possible, loss is not.
* **Order.** Events are produced in commit order by one idempotent producer,
  keyed by primary key, so each key's events reach its partition in commit
  order.
* **Rolled back = nothing.** pgoutput sends only committed transactions;
  streamed in-progress ones are spilled to disk and published at their
  Stream Commit, never before (:mod:`streams.spill`).
* **Schema first.** A Relation message registers the table's schemas before
  any event uses them. A refusal (SchemaRefused) stops that table's capture:
  nothing of it is published from there on and the slot is confirmed no
  further (the tracker holds the transaction), while the source's other
  tables go on. Once the registry accepts the schema, the run ends with
  :class:`~streams.exceptions.SchemaNowAccepted` and the next one publishes
  the table's held changes from the slot; it skips what the other tables
  published meanwhile (saved when the run stopped; after a crash they come
  again: duplicates, not loss). A table refused when its snapshot begins is
  left out of the snapshot and of the stream, with the slot held the same
  way, and stays owed its snapshot, which the next run takes once the
  registry accepts the schema, before it publishes the table's held changes.
* **Every table snapshotted once.** A table added to a source whose slot
  exists is snapshotted inside a temporary slot's exported snapshot, before
  the stream starts; the stream then skips that table's changes committed
  before the temporary slot's consistent point (they are in the snapshot)
  and publishes the rest. The slot is kept, so no other table loses a change.

Event shapes follow Debezium's PostgreSQL connector: insert → ``c``, update →
``u``, a primary-key change → ``d`` + tombstone for the old key, then ``c``
for the new one; delete → ``d`` then a tombstone; snapshot rows → ``r``;
truncate → ``t`` (only on topics that accept null keys; on compacted topics it
is logged and counted, since compaction cannot hold a keyless record).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import signal
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import psycopg
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from psycopg import sql

from psmesh import __version__
from streams import metrics, position
from streams.avrocodegen import compile_encoder
from streams.envelope import CONNECTOR, ColumnSpec, avro_type
from streams.exceptions import (
    ReplicationError,
    SchemaNowAccepted,
    SchemaRefused,
    StreamsError,
    UnencodableValue,
    ValueConversionError,
)
from streams.offsets import DeliveryFailed, FlushTracker, PendingTransaction
from streams.pgoutput import (
    UNCHANGED_TOAST,
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    PgOutputDecoder,
    Relation,
    ReplicaIdentity,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    Update,
)
from streams.pgtypes import DATE, TIMESTAMP, TIMESTAMPTZ, RowConverter
from streams.publisher import ChangePublisher, producer_config
from streams.registration import SchemaRegistrar, TableSchemas
from streams.lsn import Lsn
from streams.replication import ReplicationStream, XLogData
from streams.rowcodec import Fallback, RowCodec, encode_long, encode_string, tagged_long
from streams.snapshot import Snapshotter, TableRef, Unrepresentable, table_columns
from streams.spill import SpilledTransaction
from streams.state import CaptureState, TableState

logger = logging.getLogger(__name__)

PG_EPOCH_MS = 946_684_800_000

_XLOG_HEAD = struct.Struct(">QQ")  # XLogData: start and end of the WAL it carries
_RELATION_ID = struct.Struct("!I")
_INSERT, _UPDATE, _DELETE = b"I"[0], b"U"[0], b"D"[0]
_KEY, _OLD, _NEW = b"K"[0], b"O"[0], b"N"[0]
#: Delivery reports are served every this many messages (and at every commit and idle moment).
_POLL_EVERY = 64
#: An envelope's bytes after `source.lsn`: `source.sequence` (null) and `op`; `ts_ms` follows.
_OP_HEADS = {op: b"\x00" + encode_string(op) for op in "cud"}


def _toasted(names: list[str]) -> bytes:
    """The Avro array of the unchanged TOASTed columns' names."""
    return encode_long(len(names)) + b"".join(encode_string(n) for n in names) + b"\x00"


def _carry_toasted(before: dict[str, Any], after: dict[str, Any], unchanged: tuple[str, ...]) -> tuple[str, ...]:
    """Copy each unchanged TOASTed column's value from the old row ``before`` into ``after``, where the
    old row has one; returns the names still without a value (NULL or unchanged in the old row too).

    Under REPLICA IDENTITY FULL the old row ('O') is logged with its TOASTed values inlined
    (ExtractReplicaIdentity in src/backend/access/heap/heapam.c flattens it), while the new row marks a
    value stored out of line that the update left alone as 'u' (logicalrep_write_tuple in
    src/backend/replication/logical/proto.c). The old value is the new one: carrying it spares consumers
    a previous value they do not have when the primary key changed.
    """
    left = []
    for name in unchanged:
        value = before[name]
        if value is None:
            left.append(name)
        else:
            after[name] = value
    return tuple(left)


def _carry_toasted_parts(positions: dict[str, int], before: list[bytes], after: list[bytes],
                         unchanged: list[str]) -> list[str]:
    """:func:`_carry_toasted` on the fast path's parts of a Value (its branch tag, then each column's
    tagged Avro encoding, old and new by the same codec, hence the reference path's bytes)."""
    left = []
    for name in unchanged:
        i = positions[name] + 1
        value = before[i]
        if value == b"\x00":  # NULL, or unchanged in the old row too
            left.append(name)
        else:
            after[i] = value
    return left


@dataclass(frozen=True)
class CaptureConfig:
    """What one capture process reads and where it writes."""

    name: str  # source name: topic prefix, e.g. "crm" → crm.public.accounts
    dsn: str
    database: str
    tables: tuple[str, ...]  # "accounts" or "schema.table"
    slot: str
    publication: str
    registry_url: str
    kafka: dict[str, Any]
    state_dir: Path
    partitions: int = 1
    replication_factor: int = 1
    create_topics: bool = True
    status_interval: float = 1.0
    heartbeat_interval: float = 10.0
    #: How often the schemas of a table stopped by a refusal are offered to the registry again.
    held_retry_interval: float = 30.0
    #: Where a change with a value that has no Avro form is set aside (topology.yaml ``sources[].dead_letter``);
    #: None: such a change stops the capture.
    dead_letter_topic: str | None = None
    snapshot: bool = True
    snapshot_chunk_rows: int = 5000
    topic_partitions: dict[str, int] = field(default_factory=dict)
    #: A topic's replication factor and configs when the capture creates it (the topology's; capped to the live
    #: brokers); a topic not listed gets ``replication_factor`` and compaction.
    topic_replication: dict[str, int] = field(default_factory=dict)
    topic_configs: dict[str, dict[str, str]] = field(default_factory=dict)

    def table_refs(self) -> list[TableRef]:
        refs = []
        for t in self.tables:
            schema, _, table = t.rpartition(".")
            refs.append(TableRef(schema or "public", table))
        return refs

    def topic(self, schema: str, table: str) -> str:
        return f"{self.name}.{schema}.{table}"


class _TableInfo:
    """A table's current shape: columns, converters, registered encoders, metric children."""

    __slots__ = ("ref", "qualified", "topic", "columns", "names", "key_idx", "convert", "schemas", "captured", "produced", "compacted",
                 "unflushed", "codec", "value_head", "key_head", "source_txn", "source_prefix")

    def __init__(self, ref: TableRef, topic: str, columns: Sequence[ColumnSpec], convert: Callable | None,
                 schemas: TableSchemas, source: str, compacted: bool, codec: RowCodec | None = None) -> None:
        self.ref = ref
        self.qualified = ref.qualified
        self.topic = topic
        self.columns = tuple(columns)
        self.names = tuple(c.name for c in columns)
        self.key_idx = tuple(i for i, c in enumerate(columns) if c.key)
        self.convert = convert
        self.schemas = schemas
        self.captured = {op: metrics.EVENTS_CAPTURED.labels(source, ref.table, op) for op in "cudrt"}
        self.produced = metrics.EVENTS_PRODUCED.labels(source, ref.table)
        self.compacted = compacted
        #: Events counted since the metrics were last updated (they are updated per transaction, not per row).
        self.unflushed = dict.fromkeys("cudrt", 0)
        self.codec = codec
        # The fast path's constant bytes: Confluent headers, and the `source` block up to txId for one transaction.
        self.value_head = _confluent_header(schemas.value)
        self.key_head = _confluent_header(schemas.key)
        self.source_txn: object = None
        self.source_prefix = b""

    def flush_counts(self) -> None:
        produced = 0
        for op, n in self.unflushed.items():
            if n:
                self.captured[op].inc(n)
                produced += n
                self.unflushed[op] = 0
        if produced:
            self.produced.inc(produced)


def _confluent_header(encoder) -> bytes:
    return struct.pack(">bI", 0, encoder.schema_id)


def _unloadable(ref: TableRef, columns: Sequence[ColumnSpec]) -> StreamsError:
    """The snapshot's error for a value psycopg cannot load, naming the table and the columns it can be in (not the
    value: it is the firm's data), as a change stops the stream with UnencodableValue."""
    temporal = [c.name for c in columns if c.type_oid in (DATE, TIMESTAMP, TIMESTAMPTZ)]
    where = f" (one of its columns {', '.join(temporal)})" if temporal else ""
    return StreamsError(f"snapshot of {ref.qualified}: a value Python cannot hold{where}. Dates of infinity, before "
                        "year 1 or after 9999 have no Avro date the consumers could read; correct the row (or leave "
                        "the table out of the topology, or give the source a dead_letter topic, where such rows are "
                        "set aside) and start the capture again")


class _Unrepresentable(UnencodableValue):
    """A snapshot row holds a value Python cannot (read as :class:`~streams.snapshot.Unrepresentable`)."""


def _unrepresentable(value: Any) -> bool:
    """An :class:`Unrepresentable`, or an array (of arrays) holding one."""
    if value.__class__ is list:
        return any(_unrepresentable(v) for v in value)
    return value.__class__ is Unrepresentable


def _check_representable(ref: TableRef, columns: Sequence[ColumnSpec], row: dict[str, Any]) -> None:
    odd = [name for name, value in row.items() if _unrepresentable(value)]
    if odd:
        raise _Unrepresentable(ref.qualified, ", ".join(odd), "a value Python cannot hold (a date or time of infinity, "
                               "before year 1 or after 9999: no Avro date or timestamp the consumers could read)",
                               "in the snapshot")


class CaptureSource:
    """One source database → its change topics. ``run()`` until stopped or failed."""

    def __init__(self, config: CaptureConfig, *, registrar: SchemaRegistrar | None = None,
                 publisher: ChangePublisher | None = None, fast_path: bool = True) -> None:
        """``registrar`` and ``publisher`` replace the real ones in tests; ``fast_path=False`` runs every
        change through the reference path (decoder, converters, envelope dicts), which the fast path
        (:mod:`streams.rowcodec`) must match byte for byte."""
        self.config = config
        self.registrar = registrar or SchemaRegistrar(config.registry_url)
        self.publisher = publisher or ChangePublisher(producer_config(config.kafka, f"psmesh-cdc-{config.name}"))
        self.fast_path = fast_path
        self.tracker = FlushTracker()
        self.decoder = PgOutputDecoder(protocol_version=2)
        self.state = CaptureState.load(config.state_dir / f"{config.name}.state.json", [r.qualified for r in config.table_refs()])
        self.tables: dict[int, _TableInfo] = {}
        self._by_name: dict[str, _TableInfo] = {}
        self._spills: dict[int, SpilledTransaction] = {}
        self._stream_xid: int | None = None
        self._stop = threading.Event()
        self._compacted: dict[str, bool] = {}
        self._pk_cache: dict[str, frozenset[str]] = {}
        #: Relations of the publication that are not among the source's tables (added to it by hand): skipped.
        self._ignored: set[int] = set()
        #: Tables whose schema change the registry refused, by name: their changes are left in the slot for the rest
        #: of the run (the tracker holds the position), with the refused columns to offer the registry again.
        self._held: dict[str, tuple[TableRef, tuple[ColumnSpec, ...]]] = {}
        self._held_ids: set[int] = set()
        self._letter_encoders: tuple[Any, Any] | None = None
        self._configured = frozenset(r.qualified for r in config.table_refs())
        self._txn: PendingTransaction | None = None
        self._stream: ReplicationStream | None = None
        self._txn_meta: tuple[int, int] = (0, 0)  # xid, commit ts (µs since 2000)
        self._commit_lsn = 0  # of the transaction being published, for error messages
        #: the ``psmesh-position`` header of the transaction being published, up to its changes' own LSN
        self._position = b""
        #: the cluster, timeline and epoch of the positions this run publishes (streams/position.py), set when the
        #: stream opens (_set_origin)
        self._origin = b""
        #: whether a delivery failure moved the epoch on in this run already (_delivery_failed)
        self._epoch_moved = False
        #: the slot's confirmed position when the run began (_slot_exists), None without a slot
        self._slot_confirmed: int | None = None
        #: per table snapshotted while the slot existed: its snapshot's consistent point (see _skipping)
        self._skip_before: dict[str, int] = {}
        #: the tables whose changes the current transaction must not publish (None: none, the common case)
        self._skip: frozenset[str] | None = None
        self._server_lsn = 0
        self._written = 0
        self._confirmed = 0
        self._last_event_at: float | None = None
        self._last_commit_ts_ms: int | None = None
        self._ack: Callable = self._acker(PendingTransaction(), None)
        self._tail_ms = -1
        self._tails: dict[str, bytes] = {}
        self._labels = config.name
        self.status_path = config.state_dir / f"{config.name}.status.json"
        metrics.TABLES_HELD.labels(self._labels).set(0)

    # --- lifecycle --------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait_stop(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when a stop was asked for meanwhile."""
        return self._stop.wait(seconds)

    def close(self, timeout: float = 10.0) -> None:
        """Release the producer (after :meth:`run` returned or raised): events it could not deliver within
        ``timeout`` are dropped, to be sent again from the slot by the next capture. After a run that held a
        table, what the other tables published is then saved (:meth:`_remember_published`)."""
        left = self.publisher.close(timeout)
        if left:
            logger.warning("%s: %d events not acknowledged by Kafka were dropped; the next capture sends them again "
                           "from slot %s", self.config.name, left, self.config.slot)
        if self._held:
            self._remember_published()

    def _remember_published(self) -> None:
        """After a run that held a table: the slot resumes from before the refused change, so the next run would
        publish again everything the other tables published since (hours of it, if the table stayed held). Their
        position is saved instead (:attr:`CaptureState.published_lsn`) and the next run skips what Kafka
        acknowledged of them. Only what was acknowledged in full counts, and only after the producer let go: the
        rest comes again as after a crash."""
        try:
            acknowledged = self.tracker.acknowledged
        except DeliveryFailed:
            return
        for ref in self.config.table_refs():
            table = ref.qualified
            if table in self._held or acknowledged <= self.state.published_lsn.get(table, 0):
                continue
            self.state.published_lsn[table] = Lsn(acknowledged)
        self.state.save()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def run(self, until: Callable[["CaptureSource"], bool] | None = None) -> None:
        """Capture until :meth:`stop` (or ``until(self)`` is true); flush and confirm on the way out."""
        # Spill files of a previous run belong to transactions PostgreSQL will send again.
        shutil.rmtree(self.config.state_dir / "spill" / self.config.name, ignore_errors=True)
        # A previous run's status is not this one's (a health check reading its age would pass on it): the file
        # comes back once this run streams.
        self.status_path.unlink(missing_ok=True)
        self._ensure_publication()
        self._ensure_topics()
        stream = self._open_stream()
        self._stream = stream
        try:
            self._stream_loop(stream, until)
            self.publisher.flush(60)
            self._send_status(stream, force=True)
        finally:
            for spill in self._spills.values():
                spill.discard()
            stream.close()

    # --- setup ------------------------------------------------------------------
    def _ensure_publication(self) -> None:
        try:
            self._create_or_extend_publication()
        except psycopg.Error as exc:
            raise StreamsError(f"cannot set up publication {self.config.publication} in database {self.config.database}: {exc}") from exc

    def _create_or_extend_publication(self) -> None:
        refs = self.config.table_refs()
        with psycopg.connect(self.config.dsn, autocommit=True) as conn:
            self._check_keys(conn, refs)
            row = conn.execute("select puballtables from pg_publication where pubname = %s", (self.config.publication,)).fetchone()
            idents = [sql.Identifier(r.schema, r.table) for r in refs]
            if row is None:
                conn.execute(sql.SQL("create publication {} for table {}").format(
                    sql.Identifier(self.config.publication), sql.SQL(", ").join(idents)))
                logger.info("created publication %s for %d tables", self.config.publication, len(refs))
                return
            present = {
                f"{s}.{t}" for s, t in conn.execute(
                    "select schemaname, tablename from pg_publication_tables where pubname = %s", (self.config.publication,))
            }
            missing = [i for r, i in zip(refs, idents) if r.qualified not in present]
            if missing and not row[0]:
                conn.execute(sql.SQL("alter publication {} add table {}").format(
                    sql.Identifier(self.config.publication), sql.SQL(", ").join(missing)))
                logger.info("added %d tables to publication %s", len(missing), self.config.publication)

    @staticmethod
    def _check_keys(conn: psycopg.Connection, refs: list[TableRef]) -> None:
        """Every table has the key its events are keyed by, before any is added to the publication: once a table
        without a replica identity key is published, PostgreSQL refuses its UPDATE and DELETE statements, so the
        firm's own application would fail on it."""
        keyless = []
        for ref in refs:
            row = conn.execute(
                "select c.relreplident,"
                " exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary),"
                " exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisreplident)"
                " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                " where n.nspname = %s and c.relname = %s and c.relkind in ('r', 'p')",
                (ref.schema, ref.table)).fetchone()
            if row is None:
                continue  # no such table: the publication's statement says so
            identity, primary, index = row
            usable = index if identity == "i" else primary if identity in ("d", "f") else False
            if not usable:
                keyless.append(ref.qualified + (" (REPLICA IDENTITY NOTHING)" if identity == "n" else ""))
        if keyless:
            raise StreamsError(
                f"table(s) {', '.join(keyless)} without a primary key (or a REPLICA IDENTITY USING INDEX): give each "
                "one before it is captured. The publication was left as it was: PostgreSQL refuses UPDATE and DELETE "
                "on a published table that has no replica identity key, so publishing it would break the "
                "applications that write it")

    def _ensure_topics(self) -> None:
        admin = AdminClient(self.config.kafka)
        topics = [self.config.topic(r.schema, r.table) for r in self.config.table_refs()]
        if self.config.dead_letter_topic:
            topics.append(self.config.dead_letter_topic)
        try:
            metadata = admin.list_topics(timeout=15)
        except KafkaException as exc:
            raise StreamsError(f"cannot reach Kafka at {self.config.kafka.get('bootstrap.servers')}: {exc}") from exc
        existing, brokers = metadata.topics, max(len(metadata.brokers), 1)
        missing = [t for t in topics if t not in existing]
        if missing:
            if not self.config.create_topics:
                raise StreamsError(f"topics missing: {', '.join(missing)}; run psmesh topology apply")
            futures = admin.create_topics([
                NewTopic(t, self.config.topic_partitions.get(t, self.config.partitions),
                         min(self.config.topic_replication.get(t, self.config.replication_factor), brokers),
                         config=self.config.topic_configs.get(t, {"cleanup.policy": "compact"}))
                for t in missing
            ])
            for topic, future in futures.items():
                try:
                    future.result()
                    logger.info("created topic %s", topic)
                except Exception as exc:  # noqa: BLE001 - a racing creator is fine
                    if "TOPIC_ALREADY_EXISTS" not in str(exc):
                        raise StreamsError(f"cannot create topic {topic}: {exc}") from exc
        # A topic just created may not be known to every request path yet: retry briefly.
        deadline = time.monotonic() + 30
        pending = list(topics)
        while pending:
            resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in pending]
            pending = []
            for resource, future in admin.describe_configs(resources).items():
                try:
                    policy = future.result().get("cleanup.policy")
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART or time.monotonic() > deadline:
                        raise StreamsError(f"cannot read the configuration of topic {resource.name}: {exc}") from exc
                    pending.append(resource.name)
                    continue
                self._compacted[resource.name] = bool(policy and "compact" in policy.value)
            if pending:
                time.sleep(0.2)

    def _slot_exists(self) -> bool:
        """Whether the slot exists; a slot no capture can resume stops the capture (no reconnect can mend it)."""
        with psycopg.connect(self.config.dsn, autocommit=True) as conn:
            row = conn.execute(
                "select database, wal_status, confirmed_flush_lsn - '0/0'::pg_lsn from pg_replication_slots "
                "where slot_name = %s", (self.config.slot,)
            ).fetchone()
        self._slot_confirmed = int(row[2]) if row and row[2] is not None else None
        if row and row[0] != self.config.database:
            raise StreamsError(f"slot {self.config.slot} belongs to database {row[0]}, not {self.config.database}: "
                               "give this source a slot of its own (its slot setting)")
        if row and row[1] == "lost":
            raise StreamsError(
                f"slot {self.config.slot} was invalidated by PostgreSQL (wal_status lost): the WAL it held passed "
                "max_slot_wal_keep_size while the capture was down, and the changes since its confirmed position "
                f"are gone. To capture again from a new snapshot of every table, drop it (select "
                f"pg_drop_replication_slot('{self.config.slot}')) and start the capture; rows deleted meanwhile "
                "stay on the compacted topics until their tombstones are written by hand")
        return row is not None

    def _open_stream(self) -> ReplicationStream:
        """Snapshot what needs it, then start streaming the slot.

        A new slot: every table is snapshotted inside the snapshot it exports, and the stream starts at its
        consistent point. An existing slot is never dropped (the changes between its confirmed position and
        a new slot, deletes included, would be lost): the tables whose snapshot never completed are
        snapshotted through a temporary slot (:meth:`_catch_up`) and the stream resumes where it was confirmed.
        """
        if self._slot_exists():
            owed = [r for r in self.config.table_refs() if self.state.needs_snapshot(r.qualified)] if self.config.snapshot else []
            if owed:
                self._catch_up(owed)
            self._skip_before = self.state.skip_points()
            self._streaming(self.config.table_refs())
            stream = ReplicationStream(self.config.dsn)
            self._set_origin(stream)
            try:
                stream.start(self.config.slot, self.config.publication, 0)
            except BaseException:
                stream.close()
                raise
            return stream
        stream = ReplicationStream(self.config.dsn)
        self._set_origin(stream)
        try:
            consistent_lsn, snapshot_name = stream.create_slot(self.config.slot)
            logger.info("created slot %s at %s", self.config.slot, Lsn(consistent_lsn))
            # The new slot starts where every table's snapshot stands: nothing to skip from it. The point is kept
            # all the same: should this snapshot be interrupted, the one that redoes it (_catch_up) skips only
            # what came before this one, and the deletions since are published.
            self.state.new_slot(consistent_lsn, [ref.qualified for ref in self.config.table_refs()])
            if self.config.snapshot:
                self.state.move_all(TableState.SNAPSHOTTING)
                self.state.save()
                self._snapshot(self.config.table_refs(), snapshot_name, consistent_lsn)
            self._streaming(self.config.table_refs())
            self.tracker = FlushTracker(consistent_lsn)
            if self._held:  # a table's snapshot was refused: the slot keeps its changes from the consistent point on
                self.tracker.hold(None)
            stream.start(self.config.slot, self.config.publication, consistent_lsn)
        except BaseException:
            stream.close()
            raise
        return stream

    def _set_origin(self, stream: ReplicationStream) -> None:
        """The origin of this run's positions (streams/position.py): the server's, and the capture's epoch, which
        moves on if the server's WAL ends before what Kafka acknowledged of this capture, or its slot stands before
        what the capture confirmed (restored from a physical backup or a disk snapshot: the positions since then
        will be used again by other changes)."""
        state = self.state
        if stream.wal_end < state.acknowledged_lsn:
            went_back = (f"the server's WAL ends at {Lsn(stream.wal_end)}, before {Lsn(state.acknowledged_lsn)}, up to "
                         "which this capture published")
        elif self._slot_confirmed is not None and self._slot_confirmed < state.confirmed_lsn:
            went_back = (f"slot {self.config.slot} stands at {Lsn(self._slot_confirmed)}, before "
                         f"{Lsn(state.confirmed_lsn)}, which this capture confirmed")
        else:
            went_back = None
        if went_back is not None:
            logger.warning("%s: %s: the database went back in time (restored from a backup or a disk snapshot?), or "
                           "PostgreSQL crashed before it saved the slot. Its changes from here on are published under "
                           "a new epoch of positions (%d), which consumers do not compare with the old ones; what a "
                           "restore lost is not published again", self.config.name, went_back, state.epoch + 1)
            state.new_epoch()
            state.save()
        self._origin = position.origin(stream.system_identifier, stream.timeline, state.epoch)

    def _delivery_failed(self, err: Any) -> None:
        """A delivery Kafka refused (the run stops on it, and the next sends again from the slot): unless it was
        only purged, librdkafka's idempotent producer may have written later events of its partition since, so the
        next run's positions start a new epoch (streams/position.py) and are not taken for repeats of those."""
        code = err.code() if hasattr(err, "code") else None
        if self._epoch_moved or code in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            return
        self._epoch_moved = True
        self.state.new_epoch()
        self.state.save()

    # --- snapshot ---------------------------------------------------------------
    def _catch_up(self, refs: list[TableRef]) -> None:
        """Snapshot ``refs`` while the slot exists, before the slot streams.

        The snapshot is the one a temporary slot exports at its consistent point C: it holds every
        transaction committed before C, and none after. Once Kafka acknowledged its rows, C is saved per
        table; the stream then skips those tables' changes committed before C and publishes the rest
        (:meth:`_skipping`). Until then the tables stay SNAPSHOTTING, so a crash redoes the snapshot.
        The temporary slot goes with its connection; the slot's confirmed position does not move here.
        """
        names = ", ".join(r.qualified for r in refs)
        for ref in refs:
            self.state.move(ref.qualified, TableState.SNAPSHOTTING)
        self.state.save()
        temporary = ReplicationStream(self.config.dsn)
        try:
            name = f"{self.config.slot[:40]}_snap_{uuid.uuid4().hex[:12]}"
            consistent_lsn, snapshot_name = temporary.create_slot(name, temporary=True)
            logger.info("snapshotting %s (added to the source, or not snapshotted yet) at %s, temporary slot %s",
                        names, Lsn(consistent_lsn), name)
            # Saved before any row goes out. An attempt interrupted earlier keeps its point: its rows may be on
            # the topic, and the stream must publish what changed since then (a deletion of one of them among
            # it), even if this snapshot holds it too; a row may then show an older version briefly, never last.
            for ref in refs:
                if ref.qualified in self.state.snapshot_refused:
                    # its snapshot was refused earlier and the slot kept its changes since: all are published
                    self.state.snapshot_lsn.pop(ref.qualified, None)
                    continue
                earlier = self.state.snapshot_lsn.get(ref.qualified)
                self.state.snapshot_lsn[ref.qualified] = Lsn(
                    consistent_lsn if earlier is None else min(earlier, consistent_lsn))
            self.state.save()
            self._snapshot(refs, snapshot_name, None)
        finally:
            temporary.close()
        self.state.snapshot_refused -= {ref.qualified for ref in refs} - set(self._held)
        self._streaming(refs)  # saves the state file
        # The snapshot's events confirm nothing: the slot resumes from its own confirmed position.
        self.tracker = FlushTracker()
        if self._held:  # refused again: its changes stay in the slot
            self.tracker.hold(None)

    def _snapshot(self, refs: list[TableRef], snapshot_name: str, consistent_lsn: int | None) -> None:
        """Publish every row of ``refs`` as an ``r`` event and wait for Kafka's acknowledgement.

        ``consistent_lsn``: the position the snapshot makes flushable (the new slot's consistent point),
        or None when the snapshot is not the slot's own (a temporary slot's: nothing becomes flushable).
        """
        snap = Snapshotter(self.config.dsn, snapshot_name, self.config.snapshot_chunk_rows)
        try:
            txn = self.tracker.begin()
            ack = self._acker(txn, None)
            ts_ms = int(time.time() * 1000)
            for n, ref in enumerate(refs):
                columns = snap.columns(ref)
                try:
                    info = self._table(ref, columns, convert=None)
                except SchemaRefused as exc:
                    self._hold_snapshot(ref, columns, exc)
                    continue
                rows_counter = metrics.SNAPSHOT_ROWS.labels(self.config.name, ref.table)
                started = time.monotonic()

                def progress(done: int, total: int, ref=ref, started=started) -> None:
                    logger.info("snapshot %s: %d/%d rows (%.0f rows/s)", ref.qualified, done, total,
                                done / max(time.monotonic() - started, 1e-6))

                last = n == len(refs) - 1
                try:
                    for row in snap.rows(ref, columns, progress):
                        source = self._source_block(ref, ts_ms, None, None, "last" if last else "true")
                        try:
                            if snap.odd:
                                _check_representable(ref, columns, row)
                            self._publish(info, txn, ack, "r", None, row, source, ())
                        except UnencodableValue as exc:
                            if self.config.dead_letter_topic is None:
                                if isinstance(exc, _Unrepresentable):
                                    raise _unloadable(ref, columns) from None
                                raise
                            self._set_aside(info, txn, ack, exc, -1, "r", {"after": row}, row)
                        rows_counter.inc()
                except psycopg.DataError:  # psycopg could not load a value of a type not read as Unrepresentable
                    raise _unloadable(ref, columns) from None  # its message quotes the value: a row's data
                self.publisher.poll(0)
                info.flush_counts()
            self.tracker.seal(txn, consistent_lsn or 0)
            remaining = self.publisher.flush(300)
            if remaining:
                raise StreamsError(f"snapshot: {remaining} events not acknowledged by Kafka after 300 s")
            self.tracker.flushable  # raises DeliveryFailed if any event was refused
        finally:
            snap.close()

    # --- tables -----------------------------------------------------------------
    def _table(self, ref: TableRef, columns: Sequence[ColumnSpec], convert: Callable | None,
               codec: RowCodec | None = None) -> _TableInfo:
        topic = self.config.topic(ref.schema, ref.table)
        try:
            schemas = self.registrar.schemas_for(topic, ref.qualified, columns)
        except StreamsError as exc:
            self.state.move(ref.qualified, TableState.ERRORED, str(exc))
            self.state.save()
            raise
        info = _TableInfo(ref, topic, columns, convert, schemas, self.config.name, self._compacted.get(topic, True), codec)
        self._by_name[ref.qualified] = info
        return info

    def _primary_key(self, ref: TableRef) -> frozenset[str]:
        if ref.qualified not in self._pk_cache:
            with psycopg.connect(self.config.dsn, autocommit=True) as conn:
                self._pk_cache[ref.qualified] = frozenset(c.name for c in table_columns(conn, ref) if c.key)
        return self._pk_cache[ref.qualified]

    def _on_relation(self, rel: Relation) -> None:
        ref = TableRef(rel.namespace or "pg_catalog", rel.name)
        if ref.qualified not in self._configured:
            # in the publication but not in the topology (added to it by hand): no topic was made for it, and
            # publishing to one would stop the capture; its changes are left out, said once per relation
            if rel.relation_id not in self._ignored:
                logger.warning("table %s is in publication %s but not among source %s's tables; its changes are not "
                               "captured: add it to the topology's source, or drop it from the publication",
                               ref.qualified, self.config.publication, self.config.name)
            self._ignored.add(rel.relation_id)
            self.tables.pop(rel.relation_id, None)
            return
        self._ignored.discard(rel.relation_id)
        if ref.qualified in self._held:
            # stopped earlier in this run: its changes stay in the slot, whatever shape it has now
            self._held_ids.add(rel.relation_id)
            self.tables.pop(rel.relation_id, None)
            return
        if rel.replica_identity == ReplicaIdentity.FULL:
            # Under REPLICA IDENTITY FULL pgoutput flags every column as identity;
            # the event key stays the primary key, as in the snapshot.
            pk = self._primary_key(ref)
            columns = [ColumnSpec(c.name, c.type_oid, c.type_modifier, c.name in pk) for c in rel.columns]
        else:
            columns = [ColumnSpec(c.name, c.type_oid, c.type_modifier, c.is_key) for c in rel.columns]
        if not any(c.key for c in columns):
            raise StreamsError(f"table {ref.qualified} has no replica identity key; give it a primary key")
        codec = RowCodec(columns) if self.fast_path else None
        try:
            self.tables[rel.relation_id] = self._table(ref, columns, RowConverter(rel.columns), codec)
        except SchemaRefused as exc:
            self._hold(ref, rel.relation_id, columns, exc)

    def _hold(self, ref: TableRef, relation_id: int, columns: Sequence[ColumnSpec], exc: SchemaRefused) -> None:
        """Stop the capture of one table whose new schema the registry refused; the other tables go on.

        Its changes from here on are not published, and the slot is confirmed no further than the transactions
        before this one (:meth:`FlushTracker.hold`), so they all come again from the slot on a later run: the
        table loses nothing, and the others skip there what they published (:meth:`_remember_published`). The
        table is ERRORED in the state file with the reason (:meth:`_table`), which ``psmesh status`` and
        ``cdc status`` show."""
        self._held[ref.qualified] = (ref, tuple(columns))
        self._held_ids.add(relation_id)
        self.tables.pop(relation_id, None)
        self.tracker.hold(self._txn)
        metrics.TABLES_HELD.labels(self._labels).set(len(self._held))
        logger.error("%s. The capture of %s stops here; its changes stay in slot %s, which is confirmed no further "
                     "from now on (PostgreSQL keeps the WAL), while the source's other tables go on. Once the subject's "
                     "rule accepts the new schema, the capture publishes them by itself within %.0f s (docs/capture.md, "
                     "\"Schemas before data\")", exc, ref.qualified, self.config.slot, self.config.held_retry_interval)

    def _hold_snapshot(self, ref: TableRef, columns: Sequence[ColumnSpec], exc: SchemaRefused) -> None:
        """Stop the capture of one table whose schema the registry refused when its snapshot began; the other
        tables' snapshot and stream go on.

        None of its rows is published, and it stays owed a snapshot (ERRORED, in the state file's pending
        snapshots). Its changes in the stream are left out, and the slot is confirmed no further than where this
        snapshot stands (the tracker is held once the snapshot is done), so PostgreSQL keeps them. Once the
        subject's rule accepts the schema (:meth:`_retry_held`), the next run snapshots the table through a
        temporary slot (:meth:`_catch_up`) and then publishes every change of it the slot kept, from before that
        snapshot too: rows of the table may be on its topic from an earlier slot, and a deletion among those
        changes is the only thing that removes one there (a snapshot holds no deleted row). A row may show an
        older version for a moment, never last."""
        self._held[ref.qualified] = (ref, tuple(columns))
        self.state.snapshot_refused.add(ref.qualified)
        self.state.snapshot_lsn.pop(ref.qualified, None)
        self.state.save()
        metrics.TABLES_HELD.labels(self._labels).set(len(self._held))
        logger.error("%s. The snapshot of %s is not taken and its changes are not published, while the source's other "
                     "tables go on; slot %s is confirmed no further (PostgreSQL keeps the WAL). Once the subject's "
                     "rule accepts the schema, the capture starts again by itself within %.0f s, snapshots the table "
                     "and publishes its changes (docs/capture.md, \"Schemas before data\")", exc, ref.qualified,
                     self.config.slot, self.config.held_retry_interval)

    def _streaming(self, refs: Sequence[TableRef]) -> None:
        """Mark ``refs`` STREAMING in the state file, but for a table held since its snapshot was refused: it stays
        ERRORED and owed its snapshot."""
        for ref in refs:
            if ref.qualified not in self._held:
                self.state.move(ref.qualified, TableState.STREAMING)
        self.state.save()

    def _retry_held(self) -> None:
        """Offer the held tables' schemas to the registry again; once one is accepted, end the run
        (:class:`SchemaNowAccepted`) so that the next one publishes its changes from the slot. A registry that
        refuses still, or does not answer, leaves things as they are."""
        for qualified, (ref, columns) in self._held.items():
            try:
                self.registrar.schemas_for(self.config.topic(ref.schema, ref.table), qualified, columns)
            except StreamsError as exc:
                logger.debug("schemas of %s still not registered: %s", qualified, exc)
                continue
            what = ("to snapshot the table" if self.state.needs_snapshot(qualified)
                    else "to publish the changes it held")
            raise SchemaNowAccepted(f"the schema registry now accepts the schema of {qualified}: the capture starts "
                                    f"again from slot {self.config.slot} {what}")

    # --- the stream -------------------------------------------------------------
    def _stream_loop(self, stream: ReplicationStream, until) -> None:
        next_status = time.monotonic() + self.config.status_interval
        next_heartbeat = time.monotonic() + self.config.heartbeat_interval
        next_retry = time.monotonic() + self.config.held_retry_interval
        read_raw = stream.read_raw
        on_wal = self._on_wal
        poll = self.publisher.poll
        unpack_head = _XLOG_HEAD.unpack_from
        while not self._stop.is_set():
            # Up to _POLL_EVERY XLogData messages in a row without message objects, then delivery
            # reports and timers: a backlog is read without a select() or poll() per message.
            for _ in range(_POLL_EVERY):
                raw = read_raw(0.1)
                if raw is None:
                    break
                if raw[0] != 0x77:  # not 'w' XLogData: a keepalive
                    msg = stream.parse(raw)
                    if msg.wal_end > self._server_lsn:
                        self._server_lsn = msg.wal_end
                    if self._txn is None and not self._spills:
                        self.tracker.idle(msg.wal_end)
                    if msg.reply_requested:
                        self._send_status(stream, force=True)
                    break
                wal_start, wal_end = unpack_head(raw, 1)
                on_wal(bytes(raw[25:]), wal_start, wal_end)
            poll(0)
            now = time.monotonic()
            if now >= next_status:
                self._send_status(stream)
                next_status = now + self.config.status_interval
                if until is not None and until(self):
                    return
            if now >= next_heartbeat:
                self._heartbeat()
                next_heartbeat = now + self.config.heartbeat_interval
            if self._held and now >= next_retry:
                self._retry_held()
                next_retry = now + self.config.held_retry_interval

    def _on_wal(self, payload: bytes, wal_start: int, wal_end: int) -> None:
        """One pgoutput message of an XLogData: changes outside stream blocks take the fast path."""
        if wal_end > self._server_lsn:
            self._server_lsn = wal_end
        kind = payload[0]
        if not ((kind == _INSERT or kind == _UPDATE or kind == _DELETE) and self.fast_path
                and self._stream_xid is None and self._fast_change(payload, wal_start, 1)):
            self._handle(self.decoder.decode(payload), XLogData(wal_start, wal_end, 0, memoryview(payload)))
        if wal_start > self._written:
            self._written = wal_start

    def _handle(self, m: Any, x: XLogData) -> None:
        if self._stream_xid is not None and m.__class__ is not StreamStop:
            # Inside a stream block: keep the raw message until the transaction's fate is known.
            self._spills[self._stream_xid].append(getattr(m, "xid", None) or self._stream_xid, x.wal_start, x.payload)
            return
        cls = m.__class__
        if cls is Insert or cls is Update or cls is Delete:
            self._change(m, x.wal_start)
        elif cls is Begin:
            self._txn = self.tracker.begin()
            self._txn_meta = (m.xid, m.commit_ts)
            self._commit_lsn = m.final_lsn
            self._position = position.head(self._origin, m.final_lsn)
            self._skip = self._skipping(m.final_lsn) if self._skip_before else None
            self._ack = self._acker(self._txn, m.commit_ts)
        elif cls is Commit:
            self._commit(m.end_lsn, m.commit_ts)
        elif cls is Relation:
            self._on_relation(m)
        elif cls is Truncate:
            self._truncate(m, x.wal_start)
        elif cls is StreamStart:
            self._stream_xid = m.xid
            if m.xid not in self._spills:
                self._spills[m.xid] = SpilledTransaction(self.config.state_dir / "spill" / self.config.name, m.xid)
        elif cls is StreamStop:
            self._stream_xid = None
            metrics.SPILLED_BYTES.labels(self._labels).set(sum(s.bytes for s in self._spills.values()))
        elif cls is StreamCommit:
            self._replay(m)
        elif cls is StreamAbort:
            spill = self._spills.get(m.xid)
            if spill is not None:
                if m.is_whole_transaction:
                    spill.discard()
                    del self._spills[m.xid]
                else:
                    spill.abort_subtransaction(m.subxid)
        elif cls is LogicalMessage:
            if not m.transactional and self._txn is None and not self._spills:
                self.tracker.idle(x.wal_end)
        # Origin and Type need nothing: origins are not filtered, types map to strings.

    def _commit(self, end_lsn: int, commit_ts: int) -> None:
        txn = self._txn
        if txn is None:
            raise ReplicationError("commit without begin on the replication stream")
        self.tracker.seal(txn, end_lsn)
        if txn.pending == 0:
            self._transaction_acked(commit_ts)
        self._txn = None
        self._skip = None
        self._last_commit_ts_ms = commit_ts // 1000 + PG_EPOCH_MS
        self._flush_counts()

    def _skipping(self, commit_lsn: int) -> frozenset[str] | None:
        """The tables whose changes a transaction committing at ``commit_lsn`` must not publish.

        A table snapshotted while the slot existed has every transaction committed before its snapshot's
        consistent point in the snapshot: those are skipped, the ones committing at or after it published.
        Transactions arrive in commit order, so a consistent point once reached is forgotten.
        """
        for table, lsn in list(self._skip_before.items()):
            if commit_lsn >= lsn:
                del self._skip_before[table]
                logger.info("%s: the stream reached %s, before which its changes were in a snapshot or published "
                            "already; its changes are published", table, Lsn(lsn))
        return frozenset(self._skip_before) or None

    def _flush_counts(self) -> None:
        """Bring the event counters up to date (once per transaction, not once per row)."""
        for info in self._by_name.values():
            info.flush_counts()

    def _replay(self, m: StreamCommit) -> None:
        spill = self._spills.pop(m.xid, None)
        if spill is None:
            return
        self._txn = self.tracker.begin()
        self._txn_meta = (m.xid, m.commit_ts)
        self._commit_lsn = m.commit_lsn
        self._position = position.head(self._origin, m.commit_lsn)
        self._ack = self._acker(self._txn, m.commit_ts)
        # A streamed transaction's changes are published here, at its commit: compare its commit LSN.
        self._skip = self._skipping(m.commit_lsn) if self._skip_before else None
        decoder = PgOutputDecoder(protocol_version=2)
        decoder.decode(b"S" + m.xid.to_bytes(4, "big") + b"\x01")
        keepalive_at = time.monotonic() + 1.0
        fast = self._fast_change if self.fast_path else None
        try:
            for n, (_xid, wal_start, payload) in enumerate(spill.replay()):
                if n % 1000 == 0 and time.monotonic() >= keepalive_at and self._stream is not None:
                    # Publishing a huge transaction takes longer than wal_sender_timeout;
                    # a status update now and then tells the server we are alive.
                    self._send_status(self._stream, force=True)
                    keepalive_at = time.monotonic() + 1.0
                if n % _POLL_EVERY == 0:
                    self.publisher.poll(0)
                kind = payload[0]
                # Inside a stream block a change carries its (sub)transaction's xid before the relation id.
                if fast is not None and (kind == _INSERT or kind == _UPDATE or kind == _DELETE) and fast(payload, wal_start, 5):
                    continue
                msg = decoder.decode(payload)
                cls = msg.__class__
                if cls is Insert or cls is Update or cls is Delete:
                    self._change(msg, wal_start)
                elif cls is Relation:
                    self._on_relation(msg)
                elif cls is Truncate:
                    self._truncate(msg, wal_start)
        finally:
            spill.discard()
        self._commit(m.end_lsn, m.commit_ts)

    # --- events -----------------------------------------------------------------
    def _acker(self, txn: PendingTransaction, commit_ts: int | None) -> Callable:
        tracker = self.tracker

        def on_delivery(err, msg) -> None:
            # Called once per event: only the last acknowledgement of a sealed transaction can
            # move the flushable position, so the tracker is asked only then.
            if err is not None:
                self._delivery_failed(err)
                tracker.delivered(txn, f"{err} (topic {msg.topic()}, partition {msg.partition()})")
                return
            txn.pending -= 1
            if txn.pending == 0 and txn.sealed:
                tracker.settled()
                if commit_ts is not None:
                    self._transaction_acked(commit_ts)

        return on_delivery

    def _transaction_acked(self, commit_ts: int) -> None:
        commit_s = commit_ts / 1e6 + PG_EPOCH_MS / 1000
        now = time.time()
        metrics.COMMIT_TO_ACK.labels(self._labels).observe(max(0.0, now - commit_s))
        metrics.LAG_SECONDS.labels(self._labels).set(max(0.0, now - commit_s))

    def _source_block(self, ref: TableRef, ts_ms: int, xid: int | None, lsn: int | None, snapshot: str) -> dict:
        return {
            "version": __version__,
            "connector": CONNECTOR,
            "name": self.config.name,
            "ts_ms": ts_ms,
            "snapshot": snapshot,
            "db": self.config.database,
            "schema": ref.schema,
            "table": ref.table,
            "txId": xid,
            "lsn": lsn,
            "sequence": None,
        }

    def _row(self, info: _TableInfo, values) -> tuple[dict | None, tuple[str, ...]]:
        if values is None:
            return None, ()
        try:
            converted = info.convert(values)
        except ValueConversionError as exc:
            raise _located(exc, info, values) from exc
        unchanged = tuple(n for n, v in zip(info.names, converted) if v is UNCHANGED_TOAST)
        if unchanged:
            converted = [None if v is UNCHANGED_TOAST else v for v in converted]
        return dict(zip(info.names, converted)), unchanged

    def _change(self, m: Insert | Update | Delete, lsn: int) -> None:
        info = self.tables.get(m.relation_id)
        if info is None and (m.relation_id in self._ignored or m.relation_id in self._held_ids):
            return
        if info is None:
            raise ReplicationError(f"change for relation {m.relation_id} before its Relation message")
        txn = self._txn
        if txn is None:
            raise ReplicationError("change outside a transaction on the replication stream")
        if self._skip is not None and info.qualified in self._skip:
            return
        try:
            self._publish_change(info, txn, m, lsn)
        except (ValueConversionError, UnencodableValue) as exc:
            if getattr(m, "old", None) is not None:
                # Under REPLICA IDENTITY FULL the old row may be what holds the value (an update that corrects it, a
                # deletion of such a row): the change is published with the old row's key alone, as under the
                # default identity, rather than set aside.
                try:
                    self._publish_change(info, txn, _keyed(m, info.key_idx), lsn)
                    return
                except (ValueConversionError, UnencodableValue):
                    pass
            if self.config.dead_letter_topic is None:
                raise
            self._dead_letter(info, txn, exc, m, lsn)

    def _publish_change(self, info: _TableInfo, txn: PendingTransaction, m: Insert | Update | Delete, lsn: int) -> None:
        """The change's events, every one encoded before any is sent: one that cannot be encoded sends nothing."""
        xid, commit_ts = self._txn_meta
        source = self._source_block(info.ref, commit_ts // 1000 + PG_EPOCH_MS, xid, lsn, "false")
        cls = m.__class__
        if cls is Insert:
            after, unchanged = self._row(info, m.new)
            events = [("c", *self._encode(info, "c", None, after, source, unchanged))]
        elif cls is Update:
            after, unchanged = self._row(info, m.new)
            old_values = m.old if m.old is not None else m.key
            before, _ = self._row(info, old_values)
            if unchanged and m.old is not None:
                unchanged = _carry_toasted(before, after, unchanged)
            if before is not None and any(before[info.names[i]] != after[info.names[i]] for i in info.key_idx):
                # Primary key changed: the old key is deleted (and forgotten), the new one created.
                deleted = self._encode(info, "d", before, None, source, ())
                events = [("d", *deleted), (None, deleted[0], None),
                          ("c", *self._encode(info, "c", None, after, source, unchanged))]
            else:
                events = [("u", *self._encode(info, "u", before if m.old is not None else None, after, source,
                                              unchanged))]
        else:
            before, _ = self._row(info, m.old if m.old is not None else m.key)
            deleted = self._encode(info, "d", before, None, source, ())
            events = [("d", *deleted), (None, deleted[0], None)]
        headers = [(position.HEADER, self._position + b"%d" % lsn)]
        for op, key, value in events:
            self._send(info, txn, self._ack, op, key, value, headers)

    def _dead_letter(self, info: _TableInfo, txn: PendingTransaction, exc: Exception, m: Insert | Update | Delete,
                     lsn: int) -> None:
        """Set aside a change the capture cannot publish, as PostgreSQL sent it (each column's text)."""
        old = getattr(m, "old", None)
        if old is None:
            old = getattr(m, "key", None)
        new = getattr(m, "new", None)
        texts = {"before": _texts(info.names, old), "after": _texts(info.names, new)}
        key_row = None
        converters = getattr(info.convert, "converters", ())
        image = new if new is not None else old
        if image is not None and converters:
            try:  # the key alone: its columns convert even where another column's value does not
                key_row = {info.names[i]: converters[i](image[i]) if image[i].__class__ is str else image[i]
                           for i in info.key_idx}
            except (ValueError, TypeError, ArithmeticError):
                key_row = None
        op = "c" if m.__class__ is Insert else "u" if m.__class__ is Update else "d"
        self._set_aside(info, txn, self._ack, exc, lsn, op, texts, key_row)

    def _set_aside(self, info: _TableInfo, txn: PendingTransaction, ack: Callable, exc: Exception, lsn: int, op: str,
                   rows: dict[str, Any], key_row: dict[str, Any] | None) -> None:
        """Send a letter for one change to the source's dead-letter topic instead of stopping the capture.

        The letter counts in its transaction like an event: the slot is confirmed past the change only once Kafka
        acknowledged it, so the change is never lost (DESIGN.md, "Bad input never vanishes"). Downstream keeps the
        row's previous version until the row is corrected at the source, which publishes the correction."""
        if self._letter_encoders is None:
            self._letter_encoders = self.registrar.letter_encoders(self.config.dead_letter_topic)
        key_encoder, value_encoder = self._letter_encoders
        key = None
        if key_row is not None:
            try:
                key_values = {n: key_row[n] for n in info.schemas.key_names}
                if not any(_unrepresentable(v) for v in key_values.values()):
                    key = info.schemas.key.encode(key_values)
            except (KeyError, ValueError, TypeError, OverflowError):
                key = None
        where = {"topic": info.topic, "partition": -1, "offset": lsn}
        original = json.dumps({"table": info.qualified, "op": op, **rows}, default=str, sort_keys=True).encode()
        letter = {**where, "stage": f"capture_{self.config.name}", "reason": str(exc), "key": key, "value": original,
                  "failed_at": datetime.now(timezone.utc)}
        self.tracker.sent(txn)
        self.publisher.send(self.config.dead_letter_topic, key_encoder.encode(where), value_encoder.encode(letter), ack)
        metrics.DEAD_LETTERS.labels(self.config.name, info.ref.table).inc()
        self._last_event_at = time.time()
        logger.warning("%s: change set aside on %s (%s); the row's next version is captured as usual", info.qualified,
                       self.config.dead_letter_topic, exc)

    def _fast_change(self, buf: bytes, lsn: int, base: int) -> bool:
        """Publish an Insert, Update or Delete straight from its bytes (:mod:`streams.rowcodec`).

        ``base`` is the offset of the relation id (1, or 5 inside a stream block). False: the
        message was not taken and nothing was published; the caller runs the reference path,
        which publishes the same events or raises the reference error.
        """
        info = self.tables.get(_RELATION_ID.unpack_from(buf, base)[0])
        txn = self._txn
        if info is None or txn is None or info.codec is None:
            return False
        if self._skip is not None and info.qualified in self._skip:
            return True  # committed before the table's snapshot: the snapshot holds it
        codec = info.codec
        read = codec.read
        kind = buf[0]
        pos = base + 4
        unchanged: list[str] = []
        try:
            if kind == _INSERT:
                if buf[pos] != _NEW:
                    return False
                after = [info.value_head, b"\x00\x02"]  # header; before: null; after: a Value
                pos, key = read(buf, pos + 1, after.append, unchanged)
                if pos != len(buf) or key is None:
                    return False
                events = None
            elif kind == _UPDATE:
                tag = buf[pos]
                before = None
                if tag == _KEY or tag == _OLD:
                    before = [b"\x02"]
                    pos, old_key = read(buf, pos + 1, before.append, [])
                    tag = buf[pos]
                if tag != _NEW:
                    return False
                after = [b"\x02"]
                pos, key = read(buf, pos + 1, after.append, unchanged)
                if pos != len(buf) or key is None:
                    return False
                if unchanged and buf[base + 4] == _OLD:
                    unchanged = _carry_toasted_parts(codec.positions, before, after, unchanged)
                if before is None:
                    events = ((key, "u", None, after),)
                elif old_key is None or not codec.exact_keys:
                    return False
                elif old_key != key:
                    # Primary key changed: the old key is deleted (and forgotten), the new one created.
                    events = ((old_key, "d", before, None), (old_key, None, None, None), (key, "c", None, after))
                else:
                    events = ((key, "u", before if buf[base + 4] == _OLD else None, after),)
            elif kind == _DELETE:
                tag = buf[pos]
                if tag != _KEY and tag != _OLD:
                    return False
                before = [b"\x02"]
                pos, key = read(buf, pos + 1, before.append, [])
                if pos != len(buf) or key is None:
                    return False
                events = ((key, "d", before, None), (key, None, None, None))
            else:
                return False
        except (Fallback, ValueError, ArithmeticError, LookupError, TypeError, struct.error):
            # Malformed or unusual input (ValueConversionError and UnicodeDecodeError are ValueErrors):
            # the reference path raises the reference error, or publishes what it publishes.
            return False
        if info.source_txn is not txn:
            xid, commit_ts = self._txn_meta
            info.source_prefix = self._source_prefix(info, commit_ts // 1000 + PG_EPOCH_MS, xid)
            info.source_txn = txn
        now = time.time()
        ms = int(now * 1000)
        if ms != self._tail_ms:
            self._tail_ms = ms
            stamp = tagged_long(ms)
            self._tails = {op: head + stamp for op, head in _OP_HEADS.items()}
        lsn_bytes = tagged_long(lsn)
        headers = [(position.HEADER, self._position + b"%d" % lsn)]
        produce = self.publisher.produce
        topic, ack = info.topic, self._ack
        self._last_event_at = now
        if events is None:  # an insert: one event, the commonest case
            after += (info.source_prefix, lsn_bytes, self._tails["c"], _toasted(unchanged) if unchanged else b"\x00")
            txn.pending += 1
            txn.events += 1
            try:
                produce(topic, b"".join(after), info.key_head + key, -1, ack, headers=headers)
            except (BufferError, KafkaException):
                self.publisher.send(topic, info.key_head + key, b"".join(after), ack, headers)
            info.unflushed["c"] += 1
            return True
        for key, op, before, after in events:
            txn.pending += 1
            txn.events += 1
            if op is None:
                self.publisher.send(topic, info.key_head + key, None, ack, headers)
                continue
            toasted = _toasted(unchanged) if unchanged and after is not None else b"\x00"
            if after is None:
                parts = [info.value_head, *before, b"\x00"]
            elif before is None:
                parts = [info.value_head, b"\x00", *after]
            else:
                parts = [info.value_head, *before, *after]
            parts += (info.source_prefix, lsn_bytes, self._tails[op], toasted)
            self.publisher.send(topic, info.key_head + key, b"".join(parts), ack, headers)
            info.unflushed[op] += 1
        return True

    def _source_prefix(self, info: _TableInfo, ts_ms: int, xid: int) -> bytes:
        """The Avro bytes of a streamed change's ``source`` block up to ``txId``, taken from the reference encoder."""
        source = self._source_block(info.ref, ts_ms, xid, None, "false")
        empty = info.schemas.value.encode({"before": None, "after": None, "source": source, "op": "", "ts_ms": None,
                                           "unchanged_toasted": []})
        # header (5), before and after null (2) | source ... lsn null, sequence null (2) | op "", ts_ms null, [] (3)
        return empty[7:-5]

    def _truncate(self, m: Truncate, lsn: int) -> None:
        xid, commit_ts = self._txn_meta
        for relation_id in m.relation_ids:
            info = self.tables.get(relation_id)
            if info is None or (self._skip is not None and info.qualified in self._skip):
                continue
            info.captured["t"].inc()
            if info.compacted:
                logger.warning("truncate of %s not published: compacted topic %s cannot hold a keyless event", info.ref.qualified, info.topic)
                continue
            source = self._source_block(info.ref, commit_ts // 1000 + PG_EPOCH_MS, xid, lsn, "false")
            value = {"before": None, "after": None, "source": source, "op": "t",
                     "ts_ms": int(time.time() * 1000), "unchanged_toasted": []}
            self.tracker.sent(self._txn)
            self.publisher.send(info.topic, None, info.schemas.value.encode(value), self._ack,
                                [(position.HEADER, self._position + b"%d" % lsn)])

    def _publish(self, info: _TableInfo, txn: PendingTransaction, ack: Callable, op: str,
                 before: dict | None, after: dict | None, source: dict, unchanged: tuple[str, ...]) -> None:
        self._send(info, txn, ack, op, *self._encode(info, op, before, after, source, unchanged))

    def _encode(self, info: _TableInfo, op: str, before: dict | None, after: dict | None, source: dict,
                unchanged: tuple[str, ...]) -> tuple[bytes, bytes]:
        """An event's key and value; :class:`UnencodableValue` for a value with no form in its Avro type."""
        row = after if after is not None else before
        try:
            key = info.schemas.key.encode({n: row[n] for n in info.schemas.key_names})
            value = info.schemas.value.encode({
                "before": before, "after": after, "source": source, "op": op,
                "ts_ms": int(time.time() * 1000), "unchanged_toasted": list(unchanged),
            })
        except (ValueError, TypeError, OverflowError) as exc:
            raise self._unencodable(exc, info, (before, after), source) from exc
        return key, value

    def _send(self, info: _TableInfo, txn: PendingTransaction, ack: Callable, op: str | None, key: bytes,
              value: bytes | None, headers: list | None = None) -> None:
        """One event (``op`` None: the tombstone after a delete) to the table's topic, counted in ``txn``;
        ``headers``: a streamed change's position (streams/position.py), None for a snapshot row."""
        self.tracker.sent(txn)
        self.publisher.send(info.topic, key, value, ack, headers)
        if op is not None:
            info.unflushed[op] += 1
            self._last_event_at = time.time()

    def _unencodable(self, exc: Exception, info: _TableInfo, rows: tuple[dict | None, ...], source: dict) -> UnencodableValue:
        """The encoding error, naming the table, the column (found again, on this error path only) and where."""
        column = "?"
        for c in info.columns:
            probe = compile_encoder({"type": "record", "name": "Probe",
                                     "fields": [{"name": "v", "type": ["null", avro_type(c.type_oid, c.typmod)]}]})
            try:
                for row in rows:
                    if row is not None:
                        probe({"v": row.get(c.name)})
            except (ValueError, TypeError, OverflowError):
                column = c.name
                break
        if source["lsn"] is None:
            where = "in the snapshot"
        else:
            where = f"change at LSN {Lsn(source['lsn'])} of transaction {source['txId']} (commit LSN {Lsn(self._commit_lsn)})"
        return UnencodableValue(info.qualified, column, str(exc), where)

    # --- status -----------------------------------------------------------------
    def _send_status(self, stream: ReplicationStream, force: bool = False) -> None:
        flushed = self.tracker.flushable  # raises DeliveryFailed: stop without confirming
        if flushed != self._confirmed or force:
            stream.send_status(max(self._written, flushed), flushed)
            self._confirmed = flushed
            changed = bool(self.state.snapshot_lsn or self.state.published_lsn) and self.state.forget_snapshot_lsns(
                flushed)
            if flushed > self.state.confirmed_lsn:  # a restore to before it is told by it (_set_origin)
                self.state.confirmed_lsn = Lsn(flushed)
                changed = True
            if changed:
                self.state.save()
        acknowledged = self.tracker.acknowledged
        if acknowledged > self.state.acknowledged_lsn:  # so is one to before it, a table held or not (_set_origin)
            self.state.acknowledged_lsn = Lsn(acknowledged)
            self.state.save()
        metrics.CONFIRMED_LSN.labels(self._labels).set(flushed)
        metrics.LAG_BYTES.labels(self._labels).set(max(0, self._server_lsn - flushed))
        self._write_status()

    def _write_status(self) -> None:
        status = {
            "source": self.config.name,
            "slot": self.config.slot,
            "confirmed_lsn": str(Lsn(self._confirmed)),
            "server_lsn": str(Lsn(self._server_lsn)),
            "lag_bytes": max(0, self._server_lsn - self._confirmed),
            "in_flight": self.tracker.in_flight,
            "last_event_at": datetime.fromtimestamp(self._last_event_at, timezone.utc).isoformat() if self._last_event_at else None,
            "tables": {t: s.value for t, s in self.state.tables.items()},
            "errors": self.state.errors,
            #: tables stopped in this run by a refused schema: their changes wait in the slot
            "held": sorted(self._held),
            "updated_at": datetime.now(timezone.utc).isoformat(),
            "pid": os.getpid(),
        }
        tmp = self.status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status, indent=2))
        os.replace(tmp, self.status_path)

    def _heartbeat(self) -> None:
        """Emit a non-transactional logical message so an idle slot still advances (no WAL pinned)."""
        if self.config.heartbeat_interval <= 0:
            return
        try:
            with psycopg.connect(self.config.dsn, autocommit=True, connect_timeout=5) as conn:
                conn.execute("select pg_logical_emit_message(false, 'psmesh.heartbeat', '')")
        except psycopg.Error as exc:
            logger.warning("heartbeat on %s failed: %s", self.config.database, exc)


def _keyed(m: Update | Delete, key_idx: Sequence[int]) -> Update | Delete:
    """The change with its old row cut down to the key columns, as pgoutput sends it under the default identity."""
    key = tuple(v if i in key_idx else None for i, v in enumerate(m.old))
    return dataclasses.replace(m, old=None, key=key)


def _texts(names: Sequence[str], values: Sequence[Any] | None) -> dict[str, Any] | None:
    """A row image as pgoutput sent it: each column's text (bytes as text, an unchanged TOASTed value marked)."""
    if values is None:
        return None
    out: dict[str, Any] = {}
    for name, value in zip(names, values):
        if value is UNCHANGED_TOAST:
            out[name] = {"unchanged_toasted": True}
        elif isinstance(value, (bytes, memoryview)):
            out[name] = bytes(value).decode("utf-8", "replace")
        else:
            out[name] = value
    return out


def _located(exc: ValueConversionError, info: _TableInfo, values: Sequence[Any]) -> ValueConversionError:
    """The same conversion error, naming the table and the column (found again, on this error path only)."""
    column = "?"
    for name, convert, value in zip(info.names, getattr(info.convert, "converters", ()), values):
        if value.__class__ is str:
            try:
                convert(value)
            except ValueConversionError:
                column = name
                break
    return ValueConversionError(exc.type_name, f"{exc.reason} (table {info.ref.qualified}, column {column})", exc.text)
