"""The worker's output producer: librdkafka (confluent-kafka) instead of Faust's per-record aiokafka path.

Every record the stages write (changelog records of the mirror tables, rows
forwarded to the next stage, view and derived events, dead letters) goes
through one :class:`Sender`. Faust sends each record on its own through its
producer buffer and aiokafka: on the benchmark that path cost more than all
the stages' folding together (docs/processors-performance.md, "Third
round"). librdkafka batches and delivers in C; a background thread serves
its delivery reports.

Delivery is tracked per batch: :meth:`Sender.ticket` opens one, and
:meth:`Sender.wait` returns when the broker has acknowledged every record
produced for it (``acks=all``, idempotent producer), or raises
:class:`DeliveryFailed`. A batch's events are acknowledged to Faust (and their
offsets committed) only after that, so a crash replays whatever was not
delivered, as before.

Only the last record of a batch on each partition asks for a delivery report
(docs/processors.md, "One delivery report per partition of a batch"): a
report costs CPU in confluent-kafka (a ``Message`` object and a Python call),
and a snapshot's change event made about 3.5 of them. The producer keeps a
partition's records in order, retries without a time limit
(``message.timeout.ms`` 0) and stops for good on any error that would leave a
gap before a later record (``enable.gapless.guarantee``), raising that error
before it reports any later record of the partition. So the last record's
report stands for every earlier one, unless the producer stopped first: then
every batch waiting, or waited on later, fails (:class:`ProducerFailed`).

Keys hash as Kafka's Java client and aiokafka hash them (``murmur2_random``),
so a key stays on the partition it had when Faust produced it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError
from confluent_kafka import KafkaError as ConfluentKafkaError
from confluent_kafka import KafkaException, Producer

logger = logging.getLogger(__name__)

#: records larger than this are queued at once, with a report, so that one the client refuses for its size
#: (``message.max.bytes``, 1,000,000 by default) is refused by the call that produced it (:class:`RecordTooLarge`)
HELD_BYTES = 512 * 1024


class DeliveryFailed(KafkaError):
    """The broker did not acknowledge a record of the batch: the batch is retried (an error of the infrastructure)."""


class ProducerFailed(DeliveryFailed):
    """The producer stopped for good (a fatal error of librdkafka, such as a gap in a partition's records): no
    retry on it can deliver anything, so the worker stops and replays its input after the restart."""


class RecordTooLarge(DeliveryFailed):
    """The client refused a record for its size (librdkafka's ``message.max.bytes``): sending it again cannot
    help. A view or derived record is dead-lettered with the row that caused it (processors/app.py, ``_emit``);
    any other record is an error of the batch, as before."""


@dataclass(eq=False)
class Ticket:
    """The records of one batch: those that ask for a report (``sent``) and those reported (``delivered``), the
    first error, the highest offset per (changelog topic, partition)."""

    loop: asyncio.AbstractEventLoop
    sent: int = 0
    delivered: int = 0
    closed: bool = False
    error: str | None = None
    offsets: dict[tuple[Any, int], int] = field(default_factory=dict)
    done: asyncio.Future | None = None
    #: changelog topic → its table, for the offsets
    tables: dict[str, Any] = field(default_factory=dict)
    #: the delivery report callbacks of the ticket's records, other and changelog (made once, not per record)
    reports: tuple[Any, Any] | None = None
    #: (topic, partition) → the last record produced there, not queued yet: (key, value, headers, changelog); it
    #: is queued with a report when the batch is released, or without one when another comes for the partition
    last: dict[tuple[str, int], tuple[Any, Any, Any, bool]] = field(default_factory=dict)


class Sender:
    def __init__(self, client_config: dict[str, Any], *, linger_ms: int = 5) -> None:
        self._config = {
            **client_config,
            "enable.idempotence": True,
            "acks": "all",
            # a partition's last record reported stands for all before it: no gap without a fatal error, and no
            # record given up for time (librdkafka's INTRODUCTION.md, "Idempotent Producer")
            "enable.gapless.guarantee": True,
            "message.timeout.ms": 0,
            "linger.ms": linger_ms,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 512 * 1024,
        }
        self._producer: Producer | None = None
        self._fatal: str | None = None
        #: tickets a wait is pending on: failed at once if the producer stops for good (see _stopped)
        self._waiting: set[Ticket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None

    # ---- lifecycle
    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self._config)
            self._poller = threading.Thread(target=self._poll, name="psmesh-sender", daemon=True)
            self._poller.start()
        return self._producer

    def _poll(self) -> None:
        producer = self._producer
        while not self._stopping.is_set():
            try:
                producer.poll(0.05)
            except KafkaException as exc:  # confluent-kafka raises a fatal error from poll; the reports go on
                if not _fatal(exc):
                    logger.exception("handling a delivery report failed")
                    continue
                self._stopped(str(exc.args[0]))
            except Exception:  # a delivery report that failed must not stop the reports of every later batch
                logger.exception("handling a delivery report failed")

    def _stopped(self, error: str) -> None:
        """The producer stopped for good: fail every batch waiting now. librdkafka fails the records still in its
        queue, but not a request in flight that comes back to be retried (a later request of the partition the
        broker refuses as out of sequence): the producer sends nothing any more, and with no message timeout
        that record's report would never come."""
        with self._lock:
            if self._fatal is not None:
                return
            self._fatal = error
            waiting, self._waiting = self._waiting, set()
            for ticket in waiting:
                if ticket.error is None:
                    ticket.error = f"the producer stopped for good: {error}"
        logger.error("the producer stopped for good: %s", error)
        for ticket in waiting:
            _wake(ticket.loop, ticket.done)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued, for up to ``timeout`` seconds. The poller stops first, so that the flush is the
        only reader of librdkafka's events: a fatal error it raises still fails the batches waiting (_stopped)."""
        if self._producer is None:
            return
        self._stopping.set()
        if self._poller is not None:
            self._poller.join(1.0)
        try:
            left = self._producer.flush(timeout)
        except KafkaException as exc:
            if not _fatal(exc):
                raise
            self._stopped(str(exc.args[0]))
            left = len(self._producer)
        if left:
            logger.warning("%d records not delivered at shutdown; they are sent again after the restart", left)

    # ---- batches
    def ticket(self) -> Ticket:
        return Ticket(asyncio.get_running_loop())

    def produce(self, ticket: Ticket, topic: str, key: bytes | None, value: bytes | None, *,
                partition: int | None = None, headers: dict[str, bytes] | None = None,
                table: Any = None) -> None:
        """Add one record to ``ticket``'s batch; ``table`` asks for its offset (a changelog record).

        A record for a given partition is held until the next one for the partition comes, and then queued without
        a delivery report; the last one is queued, with its report, when the batch is released (:meth:`release`,
        :meth:`wait`). A record for any partition (``partition`` None), or over HELD_BYTES, is queued at once,
        with its report."""
        if table is not None:
            ticket.tables[topic] = table
        if partition is None:
            self._queue(ticket, topic, key, value, -1, headers, table is not None)
            return
        last = ticket.last
        earlier = last.pop((topic, partition), None)
        if earlier is not None:
            producer = self._producer or self.producer
            try:  # the common case in one C call; _queue retries a full queue and tells the errors apart
                if earlier[2] is None:
                    producer.produce(topic, earlier[1], earlier[0], partition)
                else:
                    producer.produce(topic, earlier[1], earlier[0], partition, headers=earlier[2])
            except (BufferError, KafkaException):
                self._queue(None, topic, earlier[0], earlier[1], partition, earlier[2], False)
        if value is not None and len(value) > HELD_BYTES:  # a record the client may refuse: refused here, at once
            self._queue(ticket, topic, key, value, partition, headers, table is not None)
        else:
            last[(topic, partition)] = (key, value, headers, table is not None)

    def release(self, ticket: Ticket) -> None:
        """Queue the last record of each partition of the batch, each with its delivery report."""
        last, ticket.last = ticket.last, {}
        for (topic, partition), (key, value, headers, changelog) in last.items():
            self._queue(ticket, topic, key, value, partition, headers, changelog)

    def _queue(self, ticket: Ticket | None, topic: str, key: bytes | None, value: bytes | None, partition: int,
               headers: dict[str, bytes] | None, changelog: bool) -> None:
        """Hand one record to librdkafka, with the ticket's delivery report, or with none (``ticket`` None)."""
        if self._fatal is not None:
            raise ProducerFailed(f"{topic}: the producer stopped for good: {self._fatal}")
        producer = self._producer or self.producer
        delivered = None
        if ticket is not None:
            reports = ticket.reports
            if reports is None:
                reports = ticket.reports = (self._reporter(ticket, False), self._reporter(ticket, True))
            delivered = reports[1] if changelog else reports[0]
            ticket.sent += 1
        while True:
            try:
                if headers is None:  # positional: keyword arguments cost the C call more than half a µs more
                    producer.produce(topic, value, key, partition, delivered)
                else:
                    producer.produce(topic, value, key, partition, on_delivery=delivered, headers=headers)
                return
            except BufferError:  # the local queue is full: let the poller deliver some
                if self._stopping.wait(0.01):
                    if ticket is not None:
                        ticket.sent -= 1
                    raise DeliveryFailed(f"{topic}: the producer is closing with its queue full") from None
            except KafkaException as exc:
                if ticket is not None:
                    ticket.sent -= 1
                error = exc.args[0] if exc.args else None
                if isinstance(error, ConfluentKafkaError) and error.code() == ConfluentKafkaError.MSG_SIZE_TOO_LARGE:
                    raise RecordTooLarge(f"{topic}: a record of {len(value or b'')} bytes: {exc}") from exc
                if _fatal(exc):
                    raise ProducerFailed(f"{topic}: the producer stopped for good: {self._fatal or exc}") from exc
                raise DeliveryFailed(f"{topic}: {exc}") from exc

    def send_now(self, topic: str, key: bytes | None, value: bytes | None, partition: int) -> None:
        """One record outside any batch: nothing waits for it, and a failure to deliver it is logged."""
        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                logger.warning("%s[%d]: a record outside any batch was not delivered: %s", topic, partition, err)

        try:
            (self._producer or self.producer).produce(topic, value, key, partition, delivered)
        except (BufferError, KafkaException) as exc:
            logger.warning("%s[%d]: a record outside any batch was not queued: %s", topic, partition, exc)

    def _reporter(self, ticket: Ticket, changelog: bool) -> Any:
        """The delivery report callback of ``ticket``'s records (run on the poller's thread); ``changelog``: of
        its changelog records, whose offsets it keeps per (changelog topic, partition)."""
        lock, offsets = self._lock, ticket.offsets

        def delivered(err: Any, msg: Any) -> None:
            with lock:
                if err is not None:
                    if ticket.error is None:
                        ticket.error = f"{msg.topic()}[{msg.partition()}]: {err}"
                elif changelog:  # by topic name: a Faust table's __hash__ is Python, 1 % of the GIL in a profile
                    slot = (msg.topic(), msg.partition())
                    offset = msg.offset()
                    if offset > offsets.get(slot, -1):
                        offsets[slot] = offset
                ticket.delivered += 1
                # the future of the wait this report completes, read under the lock: a later wait on the ticket
                # (after more records) makes a new one, which this report must not resolve
                done = ticket.done if ticket.closed and ticket.delivered == ticket.sent else None
            _wake(ticket.loop, done)

        return delivered

    async def wait(self, ticket: Ticket) -> dict[tuple[Any, int], int]:
        """Until every record of the batch is acknowledged; the highest changelog offset per (table, partition).

        A ticket can be waited on more than once (records produced after a wait are waited for by the next).
        """
        self.release(ticket)
        with self._lock:
            ticket.closed = True
            if self._fatal is not None:  # even with every report in: an earlier record without one may have failed
                pending = False
                if ticket.error is None:
                    ticket.error = f"the producer stopped for good: {self._fatal}"
            else:
                pending = ticket.delivered != ticket.sent
            if pending:
                ticket.done = ticket.loop.create_future()
                self._waiting.add(ticket)
        if pending:
            try:
                await ticket.done
            finally:
                with self._lock:
                    self._waiting.discard(ticket)
        if ticket.error is not None:
            if self._fatal is not None:  # its error names the refusal that stopped it
                raise ProducerFailed(f"a record of the batch was not delivered: the producer stopped for good: "
                                     f"{self._fatal}")
            raise DeliveryFailed(f"a record of the batch was not delivered: {ticket.error}")
        return {(ticket.tables[topic], partition): offset for (topic, partition), offset in ticket.offsets.items()}


def _fatal(exc: KafkaException) -> bool:
    """Whether librdkafka's error stopped the producer for good (the error itself, or a call refused after it)."""
    error = exc.args[0] if exc.args else None
    return isinstance(error, ConfluentKafkaError) and (error.fatal() or error.code() == ConfluentKafkaError._FATAL)


def _wake(loop: asyncio.AbstractEventLoop, future: asyncio.Future | None) -> None:
    """From the poller's thread: resolve the future a wait is pending on, if there is one."""
    if future is None:
        return
    try:
        loop.call_soon_threadsafe(_resolve, future)
    except RuntimeError:  # the worker's loop is closed: nobody waits any more
        pass


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
