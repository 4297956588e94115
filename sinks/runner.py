"""The sink runner: consume, write in batches, dead-letter what cannot be written, commit.

Guarantees, whatever the sink:

* **No loss.** Offsets are committed manually (``enable.auto.commit`` off),
  for a batch, only after its database transaction committed and Kafka
  acknowledged its dead letters. A crash anywhere replays from the last
  committed offsets; the sinks' writes are idempotent, so replay is harmless.
* **Target down.** A batch whose write fails for a transient reason
  (no connection, SQLSTATE classes 08/40/53/57/58, see :mod:`sinks.faults`)
  is retried with exponential backoff (``backoff_initial`` doubling up to
  ``backoff_max``) while consumption of every assigned partition is paused;
  the consumer keeps polling so it stays in its group. Consumption resumes
  after the batch is written.
* **Poison.** A record that cannot be decoded or prepared, or that the
  database refuses (SQLSTATE classes 21/22/23), goes to the dead-letter topic
  with the reason, its original key and value bytes, topic, partition and
  offset; the rest of the batch is written. A refused batch is retried record
  by record (one savepoint each, one transaction) to isolate the bad ones.
* **Fatal.** Anything else (missing table, authentication) stops the runner
  with :class:`~sinks.exceptions.SinkError`; nothing of that batch is committed.

Per key, records are written in partition order; a batch holds each key's
outcome (see :mod:`sinks.statements`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from psmesh import db
from psmesh.latency import commit_time_ms
from sinks import metrics
from sinks.base import Sink, Write
from sinks.dlq import DeadLetter, DeadLetterPublisher
from sinks.exceptions import RecordRejected, SinkError, TargetUnavailable
from sinks.faults import Fault, classify, describe
from sinks.records import RecordDecoder

logger = logging.getLogger(__name__)

T = TypeVar("T")
Partition = tuple[str, int]


@dataclass(frozen=True)
class RunnerConfig:
    """Where a sink reads, writes and dead-letters, and how it batches and retries."""

    kafka: dict[str, str]
    registry_url: str
    #: libpq connection string of the target database.
    dsn: str
    group_id: str
    dead_letter_topic: str = "dlq.sinks"
    batch_size: int = 1000
    batch_timeout: float = 0.5
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    auto_offset_reset: str = "earliest"


LOCK_TIMEOUT = "10s"
STATEMENT_TIMEOUT = "120s"


def make_engine(dsn: str) -> Engine:
    """The sink's engine: two connections, no overflow (one batch at a time)."""
    # A row lock an ERP user holds (a project being edited), or a statement stuck on a server in trouble: the write
    # fails as transient (55P03, 57014) and is retried with backoff, logged and counted, rather than wait unseen.
    return db.make_engine(dsn, "psmesh-sink", lock_timeout=LOCK_TIMEOUT, statement_timeout=STATEMENT_TIMEOUT)


class _Stopped(Exception):
    """Raised inside a retry wait when the runner is asked to stop."""


class SinkRunner:
    """Runs one :class:`~sinks.base.Sink`: the loop described in the module docstring."""

    def __init__(self, sink: Sink, config: RunnerConfig, engine: Engine | None = None) -> None:
        self.sink = sink
        self.config = config
        self.engine = engine or make_engine(config.dsn)
        self._stop = threading.Event()
        registry = SchemaRegistryClient({"url": config.registry_url})
        self._decoder = RecordDecoder(registry, sink.contracts())
        self._dlq = DeadLetterPublisher(config.kafka, registry, config.dead_letter_topic, sink.name)
        self._consumer: Consumer | None = None
        self._assigned: set[Partition] = set()
        self._pending: list[Message] = []
        self._paused = False
        #: Next offset to consume per partition, as committed.
        self.positions: dict[Partition, int] = {}
        self._lag_checked = 0.0
        self.written: Counter[str] = Counter()
        self.dead_letters = 0

    # --- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        """Make the target ready (retrying while it is unreachable) and join the consumer group."""
        self._retrying("setting up the target", lambda: self._setup())
        if self._paused:  # it was unreachable at start, and answers now (no consumer to resume yet)
            self._paused = False
            metrics.PAUSED.labels(self.sink.name).set(0)
            logger.info("%s: target reachable", self.sink.name)
        self._consumer = Consumer({
            **self.config.kafka,
            "group.id": self.config.group_id,
            "client.id": f"psmesh-{self.sink.name}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": self.config.auto_offset_reset,
        })
        self._consumer.subscribe(list(self.sink.contracts()), on_assign=self._on_assign, on_revoke=self._on_revoke)
        logger.info("%s consuming %s as group %s", self.sink.name, ", ".join(self.sink.contracts()), self.config.group_id)

    def _setup(self) -> None:
        try:
            self.sink.setup(self.engine)
        except sa_exc.SQLAlchemyError as exc:
            raise self._wrap(exc, "setup") from exc

    def stop(self) -> None:
        """Ask the loop to stop after the current batch (safe from a signal handler or another thread)."""
        self._stop.set()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self._dlq.close()
        self.engine.dispose()

    def run(self) -> None:
        """Consume and write until :meth:`stop` (also while :meth:`start` still waits for the target)."""
        try:
            if self._consumer is None:
                self.start()
            while not self._stop.is_set():
                self.step()
        except _Stopped:
            pass

    def drain(self, timeout: float = 120.0) -> None:
        """Consume until every input partition is settled up to its end offset at the time of the call.

        For tests and benchmarks: the sink is then caught up with what was
        produced before the call. Raises TimeoutError after ``timeout`` seconds.
        """
        if self._consumer is None:
            self.start()
        assert self._consumer is not None
        ends: dict[Partition, int] = {}
        for topic in self.sink.contracts():
            meta = self._consumer.list_topics(topic, timeout=10).topics[topic]
            for p in meta.partitions:
                _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > 0:
                    ends[(topic, p)] = high
        deadline = time.monotonic() + timeout
        while any(self.positions.get(tp, -1) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                behind = {f"{t}[{p}]": (self.positions.get((t, p)), e) for (t, p), e in ends.items() if self.positions.get((t, p), -1) < e}
                raise TimeoutError(f"{self.sink.name} not caught up after {timeout}s: (position, end) {behind}")
            try:
                self.step()
            except _Stopped:
                return

    # --- one batch -----------------------------------------------------------
    def step(self) -> int:
        """Consume, write and commit one batch; the number of records settled."""
        assert self._consumer is not None, "start() first"
        messages = self._take()
        if not messages:
            self.sink.after_batch(self.engine, changed=False)
            self._report_lag()
            return 0
        started = time.perf_counter()
        writes, dead = self._retrying("decoding", lambda: self._prepare(messages))
        owned: list[Write] = []

        def write() -> tuple[Counter[str], list[DeadLetter]]:
            # Ownership as of this attempt: a retry's wait polls, and a rebalance in it hands partitions to another
            # instance, which writes their records (newer ones too) from the committed offsets; writing ours after
            # that would put older rows over newer ones.
            owned[:] = [w for w in writes if self._owned(w.record.topic, w.record.partition)]
            return self._write(owned)

        counts, refused = self._retrying("writing", write)
        self._observe_latency(messages, owned, refused)
        dead.extend(refused)
        dead = [d for d in dead if self._owned(d.topic, d.partition)]
        self._retrying("dead-lettering", lambda: self._dlq.publish(dead))
        self._commit(messages)
        if self._paused:
            self._resume()
        elapsed = time.perf_counter() - started
        name = self.sink.name
        for table, n in counts.items():
            metrics.ROWS_WRITTEN.labels(name, table).inc(n)
        for topic, n in Counter(m.topic() for m in messages).items():
            metrics.RECORDS.labels(name, topic).inc(n)
        for topic, n in Counter(d.topic for d in dead).items():
            metrics.DEAD_LETTERS.labels(name, topic).inc(n)
        metrics.BATCH_SECONDS.labels(name).observe(elapsed)
        metrics.BATCH_RECORDS.labels(name).observe(len(messages))
        self.written.update(counts)
        self.dead_letters += len(dead)
        self.sink.after_batch(self.engine, changed=sum(counts.values()) > 0)
        self._report_lag()
        return len(messages)

    def _observe_latency(self, messages: Sequence[Message], written: Sequence[Write], refused: Sequence[DeadLetter]) -> None:
        """Source commit → row committed here, for each record that carries its commit time (psmesh.latency)."""
        now_ms = time.time() * 1000
        commits = {}
        for m in messages:
            commit_ms = commit_time_ms(m.headers())
            if commit_ms is not None:
                commits[(m.topic(), m.partition(), m.offset())] = commit_ms
        if not commits:
            return
        failed = {(d.topic, d.partition, d.offset) for d in refused}
        seen = set()
        for w in written:
            at = (w.record.topic, w.record.partition, w.record.offset)
            if at in failed or at not in commits or (at, w.table) in seen:
                continue
            seen.add((at, w.table))
            metrics.E2E_LATENCY.labels(self.sink.name, w.table).observe(max(0.0, (now_ms - commits[at]) / 1000))

    def _take(self) -> list[Message]:
        """The next batch: messages buffered during a retry wait first, else fresh ones."""
        assert self._consumer is not None
        if self._pending:
            batch, self._pending = self._pending, []
        else:
            batch = self._consumer.consume(self.config.batch_size, self.config.batch_timeout)
        good = []
        for m in batch:
            if m.error():
                # Partition EOF and transient broker errors are informational; librdkafka retries.
                logger.debug("consumer: %s", m.error())
                continue
            good.append(m)
        return good

    def _prepare(self, messages: Sequence[Message]) -> tuple[list[Write], list[DeadLetter]]:
        writes: list[Write] = []
        dead: list[DeadLetter] = []
        for m in messages:
            try:
                record = self._decoder.decode(m.topic(), m.partition(), m.offset(), m.key(), m.value())
                writes.extend(self.sink.prepare(record))
            except RecordRejected as exc:
                dead.append(DeadLetter(m.topic(), m.partition(), m.offset(), m.key(), m.value(), exc.reason))
        return writes, dead

    def _write(self, writes: list[Write]) -> tuple[Counter[str], list[DeadLetter]]:
        """One transaction for the batch; on a record fault, one savepoint per record."""
        if not writes:
            return Counter(), []
        try:
            with self.engine.begin() as conn:
                return self.sink.write(conn, writes), []
        except sa_exc.SQLAlchemyError as exc:
            if classify(exc) is not Fault.RECORD:
                raise self._wrap(exc, "batch") from exc
            logger.info("%s: batch of %d writes refused (%s); writing record by record", self.sink.name, len(writes), describe(exc))
        return self._write_each(writes)

    def _write_each(self, writes: list[Write]) -> tuple[Counter[str], list[DeadLetter]]:
        by_record: dict[tuple[str, int, int], list[Write]] = {}
        for w in writes:
            by_record.setdefault((w.record.topic, w.record.partition, w.record.offset), []).append(w)
        counts: Counter[str] = Counter()
        dead: list[DeadLetter] = []
        try:
            with self.engine.begin() as conn:
                for group in by_record.values():
                    try:
                        with conn.begin_nested():
                            counts.update(self.sink.write(conn, group))
                    except sa_exc.SQLAlchemyError as exc:
                        if classify(exc) is not Fault.RECORD:
                            raise
                        r = group[0].record
                        dead.append(DeadLetter(r.topic, r.partition, r.offset, r.key_bytes, r.value_bytes,
                                               f"{self.sink.name}: database refused the write: {describe(exc)}"))
        except sa_exc.SQLAlchemyError as exc:
            raise self._wrap(exc, "record-by-record batch") from exc
        return counts, dead

    def _wrap(self, exc: sa_exc.SQLAlchemyError, what: str) -> SinkError:
        fault = classify(exc)
        if fault is Fault.TRANSIENT:
            return TargetUnavailable(f"{self.sink.name}: target database unavailable ({what}): {describe(exc)}")
        return SinkError(f"{self.sink.name}: {what} failed, stopping: {describe(exc)}: {exc}")

    # --- retries, pause and resume ------------------------------------------
    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        delay = self.config.backoff_initial
        while True:
            try:
                return fn()
            except TargetUnavailable as exc:
                metrics.TARGET_RETRIES.labels(self.sink.name).inc()
                logger.warning("%s; %s again in %.1fs", exc, what, delay)
                self._wait(delay)
                delay = min(delay * 2, self.config.backoff_max)

    def _wait(self, seconds: float) -> None:
        """Sleep with consumption paused, polling so the consumer stays in its group."""
        deadline = time.monotonic() + seconds
        consumer = self._consumer
        while True:
            if self._stop.is_set():
                raise _Stopped()
            if not self._paused:  # before the consumer exists too: a target unreachable at start
                self._paused = True
                metrics.PAUSED.labels(self.sink.name).set(1)
            if consumer is not None:
                assignment = consumer.assignment()
                if assignment:
                    consumer.pause(assignment)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if consumer is None:
                time.sleep(min(remaining, 0.5))
                continue
            msg = consumer.poll(min(remaining, 0.5))
            if msg is not None and not msg.error():
                # A partition assigned during the wait may deliver before it is paused: keep it for later.
                self._pending.append(msg)

    def _resume(self) -> None:
        assert self._consumer is not None
        assignment = self._consumer.assignment()
        if assignment:
            self._consumer.resume(assignment)
        self._paused = False
        metrics.PAUSED.labels(self.sink.name).set(0)
        logger.info("%s: target reachable again; consumption resumed", self.sink.name)

    def _owned(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self._assigned

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(p.topic, p.partition) for p in partitions}

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        self._assigned -= revoked
        # The new owner consumes from the committed offsets; what we hold for them is theirs now.
        self._pending = [m for m in self._pending if (m.topic(), m.partition()) not in revoked]

    # --- offsets and lag -----------------------------------------------------
    def _commit(self, messages: Sequence[Message]) -> None:
        assert self._consumer is not None
        nxt: dict[Partition, int] = {}
        for m in messages:
            tp = (m.topic(), m.partition())
            if tp in self._assigned:
                nxt[tp] = max(nxt.get(tp, 0), m.offset() + 1)
        if not nxt:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in nxt.items()]
        for attempt in range(3):
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
                self.positions.update(nxt)
                return
            except KafkaException as exc:
                # The rows are written; a commit that fails only means a harmless replay.
                logger.warning("%s: offset commit failed (attempt %d): %s", self.sink.name, attempt + 1, exc.args[0])
                time.sleep(0.5 * (attempt + 1))

    def _report_lag(self, every: float = 5.0) -> None:
        """Consumer lag per partition from the high watermarks the last fetches carried (no broker round trip)."""
        now = time.monotonic()
        if self._consumer is None or now - self._lag_checked < every:
            return
        self._lag_checked = now
        for topic, partition in sorted(self._assigned):
            tp = TopicPartition(topic, partition)
            try:
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high < 0:
                continue  # nothing fetched from this partition yet
            position = self.positions.get((topic, partition))
            if position is None:
                [current] = self._consumer.position([tp])
                position = current.offset if current.offset >= 0 else high
            metrics.CONSUMER_LAG.labels(self.sink.name, topic, str(partition)).set(max(high - position, 0))


def run_sink(sink: Sink, config: RunnerConfig, install_signals: bool = True) -> None:
    """Run ``sink`` until SIGTERM or SIGINT (the CLI's entry point)."""
    import signal

    runner = SinkRunner(sink, config)
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: runner.stop())
    try:
        runner.run()
    finally:
        runner.close()


