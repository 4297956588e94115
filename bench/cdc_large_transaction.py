"""Benchmark: one 1,000,000-row transaction through the capture, with its peak memory.

PostgreSQL streams a transaction larger than ``logical_decoding_work_mem``
(protocol 2, ``streaming 'on'``) before it commits; the capture spills it to
disk and publishes it at Stream Commit. This prints the capture process's
peak RSS (VmHWM) before and after the transaction, the spill size, the time
from commit to the last acknowledgement, and checks that the topic holds
exactly ROWS records.

    .venv/bin/python bench/cdc_large_transaction.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from psmesh.config import load_settings  # noqa: E402
from psmesh.sources import source_sql  # noqa: E402
from psmesh.stack import LocalStack  # noqa: E402
from streams.source import CaptureConfig, CaptureSource  # noqa: E402


def _capture(config: CaptureConfig) -> None:
    capture = CaptureSource(config)
    capture.install_signal_handlers()
    capture.run()


def _rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _lsn(conn: psycopg.Connection, sql: str, *args) -> int:
    return conn.execute(sql, args).fetchone()[0] or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    settings = load_settings()
    if not settings.kafka_bootstrap:
        LocalStack(settings).up()
    name = f"big{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.pg_dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
        work_mem = conn.execute("show logical_decoding_work_mem").fetchone()[0]
    dsn = settings.pg_dsn(name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(source_sql("timeexp"))
    topic = f"{name}.public.time_entries"
    admin = AdminClient(settings.kafka_client_config())
    admin.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"})])[topic].result()
    state_dir = Path(tempfile.mkdtemp(prefix="psmesh-bench-"))
    config = CaptureConfig(
        name=name, dsn=dsn, database=name, tables=("public.time_entries",), slot=f"slot_{name}",
        publication=f"pub_{name}", registry_url=settings.schema_registry_url, kafka=settings.kafka_client_config(),
        state_dir=state_dir, snapshot=False, heartbeat_interval=0, status_interval=0.2, create_topics=False,
    )
    proc = mp.get_context("spawn").Process(target=_capture, args=(config,))
    proc.start()
    while not (state_dir / f"{name}.status.json").exists():
        time.sleep(0.1)
    idle_peak = _rss_peak_kib(proc.pid)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            """insert into time_entries
               select g, g %% 50, 'PRJ-' || (g %% 97), 'consultant', date '2026-01-05' + (g %% 60)::int,
                      7.50, g %% 5 <> 0, 150.00, 90.00, 'submitted', 'design workshop', now(), null, now()
               from generate_series(1, %s) g""",
            (args.rows,),
        )
        conn.commit()
        committed = time.perf_counter()
        end = _lsn(conn, "select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
    spill_peak = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        while _lsn(conn, "select pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint from pg_replication_slots where slot_name = %s", config.slot) < end:
            spill = sum(f.stat().st_size for f in (state_dir / "spill").rglob("*.spill")) if (state_dir / "spill").exists() else 0
            spill_peak = max(spill_peak, spill)
            if not proc.is_alive():
                raise SystemExit(f"the capture process died (exit code {proc.exitcode}); see its traceback above")
            time.sleep(0.2)
    elapsed = time.perf_counter() - committed
    peak = _rss_peak_kib(proc.pid)
    proc.terminate()
    proc.join(60)
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"bench-{name}"})
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.close()
    print(f"logical_decoding_work_mem = {work_mem}")
    print(f"{args.rows:,} rows in one transaction: {high - low:,} records in {topic}; "
          f"commit → all acknowledged in {elapsed:.1f} s ({args.rows / elapsed:,.0f} rows/s)")
    print(f"capture peak RSS: {idle_peak / 1024:.0f} MiB before the transaction, {peak / 1024:.0f} MiB after "
          f"(spill file peak seen: {spill_peak / 2**20:.0f} MiB on disk)")
    with psycopg.connect(settings.pg_dsn("postgres"), autocommit=True) as conn:
        conn.execute("select pg_drop_replication_slot(%s)", (config.slot,))
        conn.execute(f'drop database "{name}" with (force)')
    admin.delete_topics([topic])


if __name__ == "__main__":
    main()
