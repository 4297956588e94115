"""Prometheus metrics of the sinks (one process per sink)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from psmesh.latency import LATENCY_BUCKETS

ROWS_WRITTEN = Counter("psmesh_sink_rows_written_total", "Rows inserted, updated or deleted in the target", ["sink", "table"])
RECORDS = Counter("psmesh_sink_records_total", "Records consumed and settled (written, ignored or dead-lettered)", ["sink", "topic"])
DEAD_LETTERS = Counter("psmesh_sink_dead_letters_total", "Records sent to the dead-letter topic", ["sink", "topic"])
TARGET_RETRIES = Counter("psmesh_sink_target_retries_total", "Batches retried because the target or registry was unreachable", ["sink"])
BATCH_SECONDS = Histogram(
    "psmesh_sink_batch_seconds",
    "Decode + database transaction + dead letters + offset commit of one batch",
    ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BATCH_RECORDS = Histogram("psmesh_sink_batch_records", "Records per batch", ["sink"], buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000))
CONSUMER_LAG = Gauge("psmesh_sink_consumer_lag", "High watermark minus the sink's position", ["sink", "topic", "partition"])
E2E_LATENCY = Histogram(
    "psmesh_e2e_latency_seconds",
    "Source commit to the row committed in the sink's database, for rows the processors derived (psmesh.latency)",
    ["sink", "table"],
    buckets=LATENCY_BUCKETS,
)
PAUSED = Gauge("psmesh_sink_paused", "1 while consumption is paused because the target is unreachable", ["sink"])
