"""The premise of processors/faust_fixes.py holds for the installed faust-streaming, and install() applies it."""

from __future__ import annotations

import inspect

import faust
from faust.transport import consumer as faust_consumer

from processors import faust_fixes


def test_the_installed_faust_waits_per_record_as_the_fix_assumes_and_install_replaces_that_loop():
    original = faust_consumer.Consumer._drain_messages
    if original is faust_fixes._drain_messages:  # installed by another test's import of processors.app
        assert faust.__version__.startswith(faust_fixes.SUPPORTED)
        return
    source = inspect.getsource(original)
    assert "await self.wait_first(\n                                callback(message), self.suspend_flow.wait()" in source
    assert faust_fixes.install() is True
    assert faust_consumer.Consumer._drain_messages is faust_fixes._drain_messages


def test_the_conductor_lock_the_fix_checks_exists():
    from faust.transport.conductor import Conductor

    assert "_tp_to_callback_lock" in inspect.getsource(Conductor.__init__)
    # ... and its on_message does no more than take the partition's handler under it (the fix takes it unlocked)
    handler = inspect.getsource(Conductor._compile_message_handler)
    assert "async with self._tp_to_callback_lock:\n                    callback = get_callback_for_tp(message.tp)" in handler
    assert "get_callback_for_tp = self._tp_to_callback.__getitem__" in handler


class _Message:
    def __init__(self, key, value) -> None:
        self.key, self.value, self.headers = key, value, {"h": b"1"}


def test_the_raw_schema_gives_the_bytes_faust_raw_codec_gives(tmp_path):
    import asyncio

    app = faust.App("fixes-raw", broker="kafka://127.0.0.1:1", store="memory://", datadir=str(tmp_path))
    stock = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    async def decode(schema, message):
        return await schema.compile(app)(message, propagate=True)

    for message in (_Message(b"\x00\x00\x00\x00\x01k", b"\x00\x00\x00\x00\x02v\xff"), _Message(None, None),
                    _Message(b"k", b"")):
        ours, theirs = (asyncio.run(decode(s, message)) for s in (faust_fixes.RawSchema(), stock))
        assert (ours.key, ours.value, ours.headers) == (theirs.key, theirs.value, theirs.headers)
        assert type(ours) is type(theirs) and ours.message is theirs.message is message


def test_the_monitor_is_left_out_of_the_per_record_sensors_and_kept_as_the_monitor(tmp_path):
    app = faust.App("fixes-monitor", broker="kafka://127.0.0.1:1", store="memory://", datadir=str(tmp_path))
    faust_fixes.detach_monitor(app)
    list(app.on_init_dependencies())
    assert app.monitor not in set(app.sensors)
    assert app.monitor is not None  # the consumer still tracks end offsets and commits on it


def test_the_cheap_ebb_reads_the_queue_faust_sizes_the_buffer_by(tmp_path):
    import asyncio

    from faust.transport.producer import ProducerBuffer

    source = inspect.getsource(ProducerBuffer)
    assert "queue_items = self.pending._queue" in source and "if self.size > self.max_messages:" in source
    app = faust.App("fixes-ebb", broker="kafka://127.0.0.1:1", store="memory://", datadir=str(tmp_path))
    faust_fixes.cheap_ebb(app)
    list(app.on_init_dependencies())
    buffer = app.producer.buffer
    assert buffer.wait_until_ebb.__name__ == "wait_until_ebb_cheaply"  # installed once the app made its producer
    flushed = []

    async def flush_atmost(n):
        flushed.append(n)
        return 0

    buffer.flush_atmost = flush_atmost
    asyncio.run(buffer.wait_until_ebb())
    assert flushed == []  # an empty buffer: no wait
    buffer.pending._queue.extend(range(buffer.max_messages + 1))
    asyncio.run(buffer.wait_until_ebb())
    assert flushed == [buffer.max_messages]  # over its size: faust's own wait, which flushes


def test_the_installed_faust_stream_skips_and_tracks_as_take_batches_does():
    """take_batches keeps what Faust's per-event iterator does with a record: skip one of an earlier assignment,
    track one of an acking topic as pending, acknowledge through Event.ack; if a new Faust does more, this fails."""
    from faust.streams import Stream

    source = inspect.getsource(Stream._py_aiter)
    assert "not self.app.flow_control.is_active()" in source
    assert "message.generation_id != self.app.consumer_generation_id" in source
    assert "if topic in acking_topics and not message.tracked:" in source
    assert "add_unacked(message)" in source
    assert "last_stream_to_ack = event.ack()" in source
    assert "chan_queue = chan.queue" in source  # the queue take_batches reads


def test_faust_holds_fetches_for_the_time_the_fix_shortens_and_aiokafka_reads_it_when_it_starts():
    from aiokafka import AIOKafkaConsumer
    from faust.transport.drivers import aiokafka as driver

    assert "fetch_max_wait_ms=1500," in inspect.getsource(driver.AIOKafkaConsumerThread._create_worker_consumer)
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms," in inspect.getsource(AIOKafkaConsumer.start)


def test_the_worker_consumer_is_made_with_the_short_fetch_wait(tmp_path):
    import asyncio

    app = faust.App("fixes-fetch-wait", broker="kafka://127.0.0.1:1", store="memory://", datadir=str(tmp_path))
    faust_fixes.short_fetch_wait(app, 100)
    list(app.on_init_dependencies())

    async def fetch_wait_of_the_consumer_made():
        consumer = app.consumer._thread._create_consumer(loop=asyncio.get_running_loop())
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()  # made, never started: nothing connected

    assert asyncio.run(fetch_wait_of_the_consumer_made()) == 100
