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

And the largest: :func:`take_batches` gives an agent its events in lists
taken straight from its stream's queue, where ``Stream.take_events`` passes
each event through Faust's per-event iterator (docs/processors-performance.md,
"Sixth round": a Faust agent that only takes events read 15,000 of them a second
through ``take_events`` and 26,700 this way).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from faust.transport import consumer as _consumer

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

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = getmany(timeout=1.0)
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


async def take_batches(stream: Any, max_: int, within: float) -> Any:
    """Lists of up to ``max_`` events of an agent's stream, each taken within ``within`` seconds of its first
    event; an event is acknowledged once the caller asks for the next list (never if it stops before).

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
        async for events in stream.take_events(max_, within=within):
            yield events
        return
    app = stream.app
    queue = _queue_of(stream)
    loop = asyncio.get_running_loop()
    consumer, sensors = app.consumer, app.sensors
    acking_topics, flow = app.topics.acking_topics, app.flow_control
    while not stream.should_stop:
        try:
            items = [await queue.get()]
            deadline = loop.time() + within
            while True:
                while len(items) < max_ and not queue.empty():
                    items.append(queue.get_nowait())
                if len(items) >= max_ or loop.time() >= deadline:
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
            yield events
            for event in events:
                _ack(event, sensors)


def _queue_of(stream: Any) -> Any:
    """The queue Faust delivers an agent's events to, subscribing the agent's topic as ``take_events`` does."""
    stream.channel.__aiter__()
    return stream.channel.queue


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
