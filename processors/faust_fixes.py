"""Work-arounds for faust-streaming 0.15's consumer hot path, measured on this project's benchmark.

faust-streaming hands every fetched record to the conductor through
``Consumer._drain_messages``, which awaits, per record,
``wait_first(callback(message), suspend_flow.wait())``: two tasks created and
an ``asyncio.wait`` per record, so that a callback blocked during a rebalance
(faust-streaming/faust#229) does not deadlock the fetcher. On this machine a
worker whose agent does nothing read 4,600 records/s that way, where
aiokafka alone reads more than 100,000/s.

The callback (the conductor's ``on_message``) only waits when the
conductor's subscription lock is held (a rebalance is changing the
subscription) or when flow is suspended; its queue put never blocks (a full
stream buffer pauses the partition instead). :func:`install` replaces
``_drain_messages`` with the same loop that awaits the callback directly in
the common case (calling the partition's handler that ``on_message`` would
look up under that lock) and keeps ``wait_first`` for those two cases. Everything else
(gaps, read offsets, commit_every, yielding every 100 records) is as in
faust-streaming 0.15.3.

Three smaller costs per record, each 1-3 % of the processors' worker in a
py-spy profile (docs/processors-performance.md, "Fifth round"), are left out the same way:

- :class:`RawSchema`: a topic of raw bytes still decodes every key and value
  through faust's serializer registry, whose ``raw`` codec gives the bytes
  back unchanged, and reads the event class from its settings per record;
  this schema gives the bytes back directly, in an event of the same class.
- :func:`detach_monitor`: faust's own Monitor is called four times per
  record (in, stream in, stream out, out) to keep counters for its ``/stats``
  page; the worker keeps its own Prometheus metrics and never reads them.
- :func:`cheap_ebb`: the conductor awaits the producer buffer's
  ``wait_until_ebb`` before every record, which reads a setting to size a
  buffer that this worker never fills (its records go through
  processors/sender.py); the check is now the queue's length.

And the largest two: :func:`take_batches` gives an agent its events in lists
taken straight from its stream's queue, where ``Stream.take_events`` passes
each event through Faust's per-event iterator (docs/processors-performance.md,
"Sixth round": a Faust agent that only takes events read 15,000 of them a second
through ``take_events`` and 26,700 this way). A :class:`Feed` goes further for
the router's change topics, whose records come one change each: the drain
loop hands each partition's fetched list to the agent as it is, with no
message, event, queue or acknowledgement per record ("Ninth round": 78,000
records a second where ``take_batches`` gave 25,000).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, Iterator

import faust
from faust.transport import consumer as _consumer
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

logger = logging.getLogger(__name__)

#: the versions whose ``_drain_messages`` this replaces (the loop below is a copy of theirs, but for the wait)
SUPPORTED = ("0.15.",)
_installed = False


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - the fetcher's thread
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = _consumer.CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    suspended = self.suspend_flow.is_set
    subscription_lock = getattr(self.app.topics, "_tp_to_callback_lock", None)
    busy = subscription_lock.locked if subscription_lock is not None else (lambda: True)
    #: the partition → handler map the conductor's ``on_message`` looks up under that lock (changed in place)
    handlers = getattr(self.app.topics, "_tp_to_callback", None)

    #: topic → the feed its records are handed to in lists (:class:`Feed`), past the per-record path below
    feeds = getattr(self.app, _FEEDS, None)

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = _getmany_feeding(self, feeds, 1.0) if feeds else getmany(timeout=1.0)
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset:
                            if acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None:
                            if self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                        if suspended() or busy():
                            # as faust does it: a suspension of the flow ends the wait
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        else:
                            # the lock is free: the conductor's handler of the partition, as on_message would
                            # take it under the lock; the queue put does not block
                            handler = handlers.get(tp) if handlers is not None else None
                            await (handler(message) if handler is not None else callback(message))
                        set_read_offset(tp, offset)
            unset_flag(flag_consumer_fetching)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)


_FEEDS = "_psmesh_feeds"


async def _getmany_feeding(consumer: Any, feeds: dict[str, "Feed"], timeout: float) -> Any:  # pragma: no cover
    """Faust's ``Consumer.getmany``, but the records of a fed topic go to its :class:`Feed` as the lists the fetch
    gave, and only the others are yielded one by one (as Faust yields them, round-robin between topics)."""
    records, active_partitions = await consumer._wait_next_records(timeout)
    generation_id = consumer.app.consumer_generation_id
    if records is None or consumer.should_stop:
        return
    if not consumer.flow_active:
        consumer.log.dev("getmany called while flow not active. Seek back to committed offsets.")
        try:
            await consumer.perform_seek()
        except Exception as ex:
            consumer.log.warning(f"exception performing seek when flow not active {ex}")
        return
    buffered = consumer._buffered_partitions
    rest = {}
    for tp, batch in records.items():
        if not (active_partitions is None or tp in active_partitions or tp in buffered):
            continue
        feed = feeds.get(tp.topic)
        if feed is None:
            rest[tp] = batch
        elif batch:
            consumer.app.monitor.track_tp_end_offset(tp, consumer.highwater(tp))
            await _hand_over(consumer, feed, tp, batch, generation_id)
    if not rest:
        return
    to_message = consumer._to_message
    for tp, record in consumer.scheduler.iterate(rest):
        if not consumer.flow_active or consumer.app.consumer_generation_id != generation_id:
            break
        consumer.app.monitor.track_tp_end_offset(tp, consumer.highwater(tp))
        yield tp, to_message(tp, record)


async def _hand_over(consumer: Any, feed: "Feed", tp: Any, batch: list, generation_id: int) -> None:
    """What the drain loop does per record (read offsets, gaps, ``commit_every``), once for a partition's list."""
    tp = TP(tp.topic, tp.partition)  # aiokafka's partition tuple, as Faust's own (which its partition sets assert)
    read = consumer._read_offset[tp]
    if read is not None and batch[0].offset < read:
        batch = [record for record in batch if record.offset >= read]  # read already (a seek back): dropped
        if not batch:
            return
    first = batch[0].offset
    if read and first - read > 1 and consumer.app.topics.acks_enabled_for(tp.topic):
        await consumer._add_gap(tp, read + 1, first)
    commit_every = consumer._commit_every
    if commit_every is not None and consumer._n_acked >= commit_every:
        consumer._n_acked = 0
        await consumer.commit()
    feed.offer(consumer, tp, generation_id, batch)
    consumer._read_offset[tp] = batch[-1].offset


class Taken(list):
    """A list of events an agent took (:func:`take_batches`, :meth:`Feed.batches`), and how to acknowledge them:
    :meth:`ack`, once, when everything they caused is on the broker. Until then they hold up a rebalance and a
    shutdown, as Faust's own unacknowledged messages do."""

    def __init__(self, events: list, ack: Any) -> None:
        super().__init__(events)
        self._ack = ack

    def ack(self) -> None:
        ack, self._ack = self._ack, None
        if ack is not None:
            ack()


class FedEvent:
    """A record a :class:`Feed` hands over: what the worker reads of a Faust event and of its message (the event is
    its own ``message``: ``topic``, ``partition``, ``offset``, ``tp``), made for a fraction of their cost."""

    __slots__ = ("record", "tp", "__weakref__")

    def __init__(self, record: Any, tp: Any) -> None:
        self.record, self.tp = record, tp

    message = property(lambda self: self)
    topic = property(lambda self: self.record.topic)
    partition = property(lambda self: self.record.partition)
    offset = property(lambda self: self.record.offset)
    key = property(lambda self: self.record.key)
    value = property(lambda self: self.record.value)
    headers = property(lambda self: dict(self.record.headers))


class _Pending:
    """Stands in Faust's set of unacknowledged messages for a fed batch being handled: a rebalance or a shutdown
    waits for it (``Consumer.wait_empty``) as for the messages of a batch taken from a stream."""

    __slots__ = ("acked", "refcount", "__weakref__")

    def __init__(self) -> None:
        self.acked, self.refcount = False, 1


class Feed:
    """The records of an agent's topics, handed to it in lists straight from the fetch.

    Faust gives an agent its records one by one: a message and an event made
    per record, a queue put and get, a sensor call and an acknowledgement
    each (docs/processors-performance.md, "Ninth round": 17 % of a worker's
    profile went to that path, 5 % with a feed). A feed takes, in the drain loop, each partition's
    list of fetched records as it is and gives the agent lists of up to
    ``max_`` of them (:meth:`batches`), acknowledging each list's offsets as
    one range. What the per-record path does that matters is kept: read
    offsets and gaps, a full buffer taking its partitions out of the fetch
    (Faust's ``on_buffer_full``/``on_buffer_drop``), records fetched before a
    rebalance neither handed on nor acknowledged, a batch in hand holding up
    a rebalance and a shutdown until it is acknowledged.

    Use :func:`feed` to make one for an agent's topics before the app starts.
    """

    def __init__(self, app: Any, topics: Any, limit: int) -> None:
        self.app, self.topics, self.limit = app, frozenset(topics), limit
        #: (tp, generation) → its records fetched and not taken yet, in the order the partitions first came
        self._lists: dict[tuple[Any, int], list] = {}
        self._count = 0
        self._ready = asyncio.Event()
        #: partitions taken out of the fetch while the feed is full → the assignment (generation) they were in then
        self._held: dict[Any, int] = {}

    def offer(self, consumer: Any, tp: Any, generation_id: int, records: list) -> None:
        held = self._lists.get((tp, generation_id))
        if held is None:
            self._lists[tp, generation_id] = list(records)
        else:
            held.extend(records)
        self._count += len(records)
        self._ready.set()
        if self._count >= self.limit and not self.app.in_recovery:
            consumer.on_buffer_full(tp)
            self._held[tp] = generation_id

    def _take(self, max_: int) -> list[tuple[Any, int, list]]:
        """Up to ``max_`` records, each partition's in order, taken evenly from the partitions that have some: a
        partition's unused share goes to the others. A snapshot's or a catch-up's rows are spread over the
        partitions by key, so a list takes the same stretch of each, and the rows of one view row (a
        resource's week, a project) come together: taken a partition after another, as a fetch hands them
        over, they came in 4-5 lists and the view row was published after each (docs/processors-performance.md,
        "Eighteenth round")."""
        lists = self._lists
        if self._count <= max_:
            taken = [(tp, generation, records) for (tp, generation), records in lists.items()]
            lists.clear()
            self._count = 0
        else:
            shares: dict[tuple[Any, int], int] = dict.fromkeys(lists, 0)
            left, open_ = max_, list(lists)
            while left and open_:
                share = max(1, left // len(open_))
                still = []
                for key in open_:
                    k = min(share, len(lists[key]) - shares[key], left)
                    shares[key] += k
                    left -= k
                    if shares[key] < len(lists[key]):
                        still.append(key)
                open_ = still
            taken = []
            for key, k in shares.items():
                if not k:
                    continue
                records = lists[key]
                taken.append((key[0], key[1], records[:k]))
                if k == len(records):
                    del lists[key]
                else:
                    lists[key] = records[k:]
            self._count -= max_ - left
        if not lists:
            self._ready.clear()
        if self._held and self._count < self.limit // 2:
            consumer, generation = self.app.consumer, self.app.consumer_generation_id
            for tp, held_in in self._held.items():
                if held_in == generation:
                    consumer.on_buffer_drop(tp)
                else:  # a rebalance came between: the new assignment decided which partitions are fetched
                    consumer._buffered_partitions.discard(tp)
            self._held.clear()
        return taken

    async def batches(self, stream: Any, max_: int, within: float, waiting: Waiting | None = None) -> Any:
        """Lists (:class:`Taken`) of up to ``max_`` events (:class:`FedEvent`, in each partition's order) of the
        agent's ``stream``, each taken within ``within`` seconds of its first; a list's records are acknowledged
        when the caller says so (``Taken.ack``), which may be after it has taken the next lists (never if it does
        not: they are read again after the restart). With ``waiting``, the agent is in it while it waits for
        records with none fetched."""
        app = self.app
        _queue_of(stream)  # subscribes the agent's topics, as iterating the stream would; nothing comes through it
        loop = asyncio.get_running_loop()
        while not (app.should_stop or stream.should_stop):
            if waiting is None or self._count:
                await self._ready.wait()
            else:
                with waiting.idle():
                    await self._ready.wait()
            deadline = loop.time() + within
            while self._count < max_ and loop.time() < deadline:
                await asyncio.sleep(POLL_SECONDS)
            taken = self._take(max_)
            generation, active = app.consumer_generation_id, app.flow_control.is_active()
            # fetched before a rebalance: read again from the committed offset, by whoever owns it now
            kept = [(tp, records) for tp, gen, records in taken if active and gen == generation]
            if not kept:
                continue
            consumer = app.consumer
            pending = _Pending()
            consumer._unacked_messages.add(pending)
            yield Taken([FedEvent(record, tp) for tp, records in kept for record in records],
                        partial(self._ack, kept, generation, pending))

    def _ack(self, kept: list[tuple[Any, list]], generation: int, pending: _Pending) -> None:
        consumer = self.app.consumer
        if self.app.consumer_generation_id == generation:
            _ack_ranges(consumer, kept)
        # else a rebalance came while the list was handled: its partitions are read again from their committed
        # offsets, by whoever owns them now (handling a record twice is harmless, skipping one is not)
        pending.acked = True
        consumer._unacked_messages.discard(pending)


def _ack_ranges(consumer: Any, kept: list[tuple[Any, list]]) -> None:
    """Acknowledge every offset from each list's first record to its last, as ``Consumer.ack`` would one by one
    (an offset between two records, a compacted or a transaction marker's, is acknowledged too: nothing will come
    for it)."""
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    with ack_lock:
        for tp, records in kept:
            if not acks_enabled_for(tp.topic):
                continue
            start, end = records[0].offset, records[-1].offset + 1
            committed = consumer._committed_offset[tp]
            if committed is not None and start < committed:
                start = committed
            if start >= end:
                continue
            index = consumer._acked_index[tp]
            fresh: Any = range(start, end)
            if index and not index.isdisjoint(fresh):
                fresh = [offset for offset in fresh if offset not in index]
            index.update(fresh)
            consumer._acked[tp].extend(fresh)
            consumer._n_acked += len(fresh)
        notify(consumer._waiting_for_ack)


def feed(app: Any, topics: Any, limit: int) -> Feed:
    """A :class:`Feed` for ``topics`` (names), registered with the app's drain loop; on a faust-streaming version
    not checked, or without :func:`install`, nothing is registered and the caller keeps ``take_batches``."""
    fed = Feed(app, topics, limit)
    if _installed:
        feeds = getattr(app, _FEEDS, None)
        if feeds is None:
            feeds = {}
            setattr(app, _FEEDS, feeds)
        for topic in fed.topics:
            feeds[topic] = fed
    return fed


def fed(app: Any, topic: str) -> bool:
    """Whether ``topic``'s records go to a feed."""
    return topic in (getattr(app, _FEEDS, None) or {})


class RawSchema(faust.Schema):
    """Keys and values as the bytes the broker gave (faust's ``raw`` codec returns them unchanged)."""

    def __init__(self) -> None:
        super().__init__(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    def loads_key(self, app: Any, message: Any, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.key

    def loads_value(self, app: Any, message: Any, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.value

    def compile(self, app: Any, *, on_key_decode_error: Any = None, on_value_decode_error: Any = None,
                default_propagate: bool = False) -> Any:
        """The topic's decoder: the record's event, made as ``app.create_event`` makes it, but with the event class
        read from the settings once instead of per record (faust's settings lookups are slow); raw bytes cannot
        fail to decode."""
        event_class = None

        async def decode(message: Any, *, propagate: bool = default_propagate) -> Any:
            nonlocal event_class
            if event_class is None:
                event_class = app.conf.Event
            return event_class(app, message.key, message.value, message.headers, message)

        return decode


#: How often a batch that is not full yet looks for more events, until its time (``within``) is up.
POLL_SECONDS = 0.005


class Waiting:
    """The agents of a worker waiting for input with none buffered (their names), as one agent sees them: ``name``
    is its own, ``upstream`` the agents its input comes from. Once every one of those waits, no more input is on
    its way, and a list not full yet is handed on without waiting out its time (``take_batches``)."""

    def __init__(self, agents: set[str], name: str, upstream: frozenset[str] = frozenset()) -> None:
        self.agents, self.name, self.upstream = agents, name, upstream

    @contextmanager
    def idle(self) -> Iterator[None]:
        """The agent among the waiting for as long as the block runs."""
        self.agents.add(self.name)
        try:
            yield
        finally:
            self.agents.discard(self.name)

    def upstream_quiet(self) -> bool:
        return bool(self.upstream) and self.upstream <= self.agents


async def take_batches(stream: Any, max_: int, within: float, waiting: Waiting | None = None,
                       idle: Callable[[], float | None] | None = None, due: Callable[[], bool] = lambda: False) -> Any:
    """Lists (:class:`Taken`) of up to ``max_`` events of an agent's stream, each taken within ``within`` seconds
    of its first event, or as soon as the agents upstream all wait with nothing to do (``waiting``); a list's
    events are acknowledged when the caller says so (``Taken.ack``), which may be after it has taken the next
    lists, and never if it does not. When ``idle`` gives a number of seconds, no event comes within them, and the
    agents upstream all wait or ``due`` says the caller's work cannot wait longer: an empty list (the caller has
    work held back for when its input pauses), though never in a rebalance.

    ``Stream.take_events`` gives the same lists through Faust's per-event iterator: a turn of the event loop
    (``sleep(0)``), a processor coroutine that appends the event, a context variable and four sensor calls per
    event. This takes the events from the stream's queue as they are, and keeps what the iterator does that
    matters here: a record of an earlier assignment (its generation is not the consumer's, or flow is stopped
    by a rebalance) is not handed on, as Faust skips it, but neither is it acknowledged (Faust acknowledges it):
    after the rebalance the partition is read again from its committed offset, and an acknowledgement could
    move that offset past a record nobody processed. A record of an acking topic is tracked as pending until
    acknowledged, so that a rebalance waits for it; acknowledgements go through ``Event.ack`` and the message
    sensors. On a faust-streaming version not checked: ``take_events`` itself.
    """
    if not faust.__version__.startswith(SUPPORTED):
        # Faust acknowledges these itself, when the next list is asked for: the caller must settle a list before
        # it takes the next (the worker does on such a version: processors/app.py, Processors._batches)
        async for events in stream.take_events(max_, within=within):
            yield Taken(events, _nothing)
        return
    app = stream.app
    queue = _queue_of(stream)
    loop = asyncio.get_running_loop()
    consumer, sensors = app.consumer, app.sensors
    acking_topics, flow = app.topics.acking_topics, app.flow_control
    quiet = waiting.upstream_quiet if waiting is not None else (lambda: False)
    while not stream.should_stop:
        try:
            wait = idle() if idle is not None and queue.empty() else None
            if waiting is not None and queue.empty():
                with waiting.idle():
                    item = await _next(queue, wait)
            else:
                item = await _next(queue, wait)
            if item is _NO_EVENT:
                # not while the agents upstream are still at work (more is on its way) unless it is due, nor in a
                # rebalance until it ends (Faust turns flow back on before the tables' rebuilds): what is held may
                # belong to partitions another worker takes over, and the rebuild drops it
                if (quiet() or due()) and flow.is_active() and not app.rebalancing:
                    yield Taken([], _nothing)
                continue
            items = [item]
            deadline = loop.time() + within
            while True:
                while len(items) < max_ and not queue.empty():
                    items.append(queue.get_nowait())
                if len(items) >= max_ or loop.time() >= deadline or quiet():
                    break
                await asyncio.sleep(POLL_SECONDS)
        except StopAsyncIteration:
            # Faust ends its streams at shutdown by throwing this into their queues; what was taken is not
            # acknowledged, and is read again after the restart
            return
        events = []
        generation, active = app.consumer_generation_id, flow.is_active()
        unacked = consumer.unacked
        for event in items:
            message = event.message
            if not active or message.generation_id != generation:
                continue  # fetched before a rebalance: read again from the committed offset, by whoever owns it
            if message.topic in acking_topics and not message.tracked:
                message.tracked = True
                unacked.add(message)
                sensors.on_message_in(message.tp, message.offset, message)
            events.append(event)
        if events:
            yield Taken(events, partial(_ack_events, events, sensors))


_NO_EVENT = object()


async def _next(queue: Any, wait: float | None) -> Any:
    """The queue's next event; _NO_EVENT if none came within ``wait`` seconds (None: wait for it)."""
    if wait is None:
        return await queue.get()
    try:
        return await asyncio.wait_for(queue.get(), wait)  # a get cancelled at the timeout takes no event
    except asyncio.TimeoutError:
        return _NO_EVENT


def _queue_of(stream: Any) -> Any:
    """The queue Faust delivers an agent's events to, subscribing the agent's topic as ``take_events`` does."""
    stream.channel.__aiter__()
    return stream.channel.queue


def _ack_events(events: list, sensors: Any) -> None:
    for event in events:
        _ack(event, sensors)


def _nothing() -> None:
    pass


def _ack(event: Any, sensors: Any) -> None:
    if event.ack():
        message = event.message
        sensors.on_message_out(message.tp, message.offset, message)


def detach_monitor(app: faust.App) -> None:
    """Leave faust's Monitor out of the per-record sensor calls (it is still ``app.monitor`` for the consumer's
    end-offset and commit bookkeeping; other sensors, if any, are still called)."""
    _when_started(app, lambda: app.sensors._sensors.discard(app.monitor))  # added by on_init_dependencies


def cheap_ebb(app: faust.App) -> None:
    """The conductor's wait for the producer buffer, as faust's when the buffer holds more than it should."""

    def cheapen() -> None:
        if app.conf.producer_threaded:
            return  # another queue: faust's own check
        buffer = app.producer.buffer
        wait_until_ebb = buffer.wait_until_ebb

        async def wait_until_ebb_cheaply() -> None:
            if len(buffer.pending._queue) > buffer.max_messages:
                await wait_until_ebb()

        buffer.wait_until_ebb = wait_until_ebb_cheaply  # read by the conductor when it builds a partition's handler

    _when_started(app, cheapen)


def _when_started(app: faust.App, change: Any) -> None:
    """Run ``change`` once the app, starting, has made its services (``on_init_dependencies``), before any
    partition is assigned; nothing on a faust-streaming version not checked."""
    if not faust.__version__.startswith(SUPPORTED):
        return
    init_dependencies = app.on_init_dependencies

    def on_init_dependencies() -> Any:
        dependencies = init_dependencies()
        change()
        return dependencies

    app.on_init_dependencies = on_init_dependencies


def short_fetch_wait(app: faust.App, max_wait_ms: int) -> None:
    """Have the broker hold the worker's fetches at most ``max_wait_ms`` when they find nothing new (faust-streaming
    0.15 sets aiokafka's ``fetch_max_wait_ms`` to 1,500, with no setting).

    aiokafka keeps one fetch request in flight per broker, and leaves out of it every partition whose fetched
    records the worker has not taken yet. Those are the busy ones: a stage's input while the stage works through
    what came before. If nothing new arrives for the partitions the request does hold (the change topics once a
    backlog is read, or between the changes of a live stream), the broker keeps it for the whole wait, and the
    partitions left out are fetched again only after it: rows a stage sent another waited up to 1.5 s at each
    hop, with the worker idle (docs/processors-performance.md, "Fifteenth round"). An empty fetch every
    ``max_wait_ms`` is what a shorter wait costs when there is nothing to read. Nothing on a version not checked.
    """
    if not faust.__version__.startswith(SUPPORTED):
        return

    def shorten() -> None:
        thread = getattr(app.consumer, "_thread", None)
        create = getattr(thread, "_create_consumer", None)
        if create is None:
            logger.warning("the consumer's fetch wait is left at Faust's: no consumer thread found")
            return

        def create_consumer(*args: Any, **kwargs: Any) -> Any:
            consumer = create(*args, **kwargs)
            if hasattr(consumer, "_fetch_max_wait_ms"):  # aiokafka's, read when the consumer starts its fetcher
                consumer._fetch_max_wait_ms = max_wait_ms
            else:
                logger.warning("the consumer's fetch wait is left at Faust's: %r has none", consumer)
            return consumer

        thread._create_consumer = create_consumer

    _when_started(app, shorten)


def install() -> bool:
    """Replace faust's per-record drain loop; False (and faust's own loop kept) on a version not checked."""
    global _installed
    if _installed:
        return True
    if not faust.__version__.startswith(SUPPORTED):
        logger.warning("faust-streaming %s: its consumer loop is not replaced (checked with %s); throughput will "
                       "be lower", faust.__version__, ", ".join(v + "x" for v in SUPPORTED))
        return False
    _consumer.Consumer._drain_messages = _drain_messages
    _installed = True
    return True
