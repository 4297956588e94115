"""Prometheus metrics of the capture (one process per source)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CAPTURED = Counter(
    "psmesh_cdc_events_captured_total", "Row changes decoded from the replication stream", ["source", "table", "op"]
)
EVENTS_PRODUCED = Counter(
    "psmesh_cdc_events_produced_total",
    "Change events handed to the Kafka producer, counted at their transaction's commit (per snapshotted table for "
    "snapshot rows), before Kafka acknowledges them; see psmesh_cdc_confirmed_lsn for what Kafka acknowledged",
    ["source", "table"]
)
LAG_BYTES = Gauge(
    "psmesh_cdc_replication_lag_bytes", "Server WAL position minus the position confirmed to it", ["source"]
)
LAG_SECONDS = Gauge(
    "psmesh_cdc_replication_lag_seconds",
    "Now minus the commit time of the last transaction Kafka acknowledged in full, set at that acknowledgement only: "
    "it does not grow while nothing is acknowledged (Kafka down)",
    ["source"]
)
CONFIRMED_LSN = Gauge("psmesh_cdc_confirmed_lsn", "LSN confirmed (flushed) to PostgreSQL", ["source"])
COMMIT_TO_ACK = Histogram(
    "psmesh_cdc_commit_to_ack_seconds",
    "Source commit to Kafka acknowledgement of the transaction's last event",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
TABLES_HELD = Gauge(
    "psmesh_cdc_tables_held", "Tables whose capture a refused schema change stopped in this run (their changes wait in "
    "the slot, which is confirmed no further)", ["source"]
)
DEAD_LETTERS = Counter(
    "psmesh_cdc_dead_letters_total", "Changes set aside on the source's dead-letter topic (a value with no Avro form)",
    ["source", "table"]
)
SNAPSHOT_ROWS = Counter("psmesh_cdc_snapshot_rows_total", "Rows read by the initial snapshot", ["source", "table"])
SPILLED_BYTES = Gauge("psmesh_cdc_spilled_bytes", "Bytes of streamed transactions buffered on disk", ["source"])
