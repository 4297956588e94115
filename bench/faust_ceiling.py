"""The ceiling of one Faust worker on this machine: an agent that only takes the change events (and decodes them).

Run by ``bench/processors.py --ceiling`` against the backlog it produced; not
meant to be run alone. It reads the change topics with a new consumer group,
in lists of ROUTE_BATCH (8,000) as the processors' router does, and
prints ``CEILING <mode>: <events> in <s> = <events/s>``. Modes:

- ``stock``: faust-streaming 0.15.3 as installed (its per-record ``wait_first`` in the drain loop)
- ``fixed``: with processors/faust_fixes.py (its drain loop, raw schema, detached Monitor and cheaper ebb check)
  and the worker's fetch and buffer settings
- ``decode``: as ``fixed``, and every change event decoded from Avro (processors/codec.py)
- ``bulk``: as ``fixed``, the events taken as the worker's stages take them (``faust_fixes.take_batches``)
- ``feed``: as ``fixed``, the events taken as the worker's router takes them (``faust_fixes.Feed``: each fetched
  list handed over as it is)

    python bench/faust_ceiling.py <mode> <events> <bootstrap> <registry url>
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import faust  # noqa: E402

from processors import app as processors_app  # noqa: E402
from processors import faust_fixes  # noqa: E402  (imported, not installed: install() is per mode below)
from processors.records import SOURCE_TOPICS  # noqa: E402


def main() -> None:
    mode, total, bootstrap, registry = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    tuned = {}
    if mode != "stock":
        faust_fixes.install()
        tuned = {"stream_buffer_maxsize": processors_app.STREAM_BUFFER,
                 "broker_max_poll_records": processors_app.ROUTE_BATCH * 5,
                 "consumer_max_fetch_size": 16 * 1024 * 1024}
    datadir = Path(os.environ.get("TMPDIR", "/tmp")) / f"psmesh-ceiling-{os.getpid()}"
    app = faust.App(f"psmesh-ceiling-{mode}-{int(time.time())}", broker=f"kafka://{bootstrap}", store="memory://",
                    datadir=str(datadir), web_enabled=False, topic_partitions=processors_app.PARTITIONS,
                    consumer_auto_offset_reset="earliest", key_serializer="raw", value_serializer="raw", **tuned)
    if mode == "stock":
        topic = app.topic(*SOURCE_TOPICS, key_type=bytes, value_type=bytes, key_serializer="raw",
                          value_serializer="raw")
    else:  # as the worker: raw bytes without the serializer registry, no Monitor per record, the cheaper ebb
        topic = app.topic(*SOURCE_TOPICS, schema=faust_fixes.RawSchema())
        faust_fixes.detach_monitor(app)
        faust_fixes.cheap_ebb(app)
    fed = faust_fixes.feed(app, SOURCE_TOPICS, processors_app.STREAM_BUFFER) if mode == "feed" else None
    seen = {"n": 0, "first": 0.0}

    @app.agent(topic)
    async def take(stream):
        decoder = None
        if mode == "decode":
            from confluent_kafka.schema_registry import SchemaRegistryClient

            from processors.codec import ChangeEventDecoder

            decoder = ChangeEventDecoder(SchemaRegistryClient({"url": registry}))
        if fed is not None:
            batches = fed.batches(stream, processors_app.ROUTE_BATCH, processors_app.BATCH_SECONDS)
        elif mode == "bulk":
            batches = faust_fixes.take_batches(stream, processors_app.ROUTE_BATCH, processors_app.BATCH_SECONDS)
        else:
            batches = stream.take_events(processors_app.ROUTE_BATCH, within=processors_app.BATCH_SECONDS)
        async for events in batches:
            if not seen["first"]:
                seen["first"] = time.perf_counter()
            if decoder is not None:
                for event in events:
                    decoder.decode(event.value)
            seen["n"] += len(events)
            if isinstance(events, faust_fixes.Taken):
                events.ack()  # as the worker acknowledges a list once it is settled
            if seen["n"] >= total:
                elapsed = time.perf_counter() - seen["first"]
                print(f"CEILING {mode}: {seen['n']:,} change events in {elapsed:.1f}s = "
                      f"{seen['n'] / elapsed:,.0f} events/s", flush=True)
                os._exit(0)

    app.main()


if __name__ == "__main__":
    main()
